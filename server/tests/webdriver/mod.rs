//! Just enough of the W3C WebDriver protocol to drive Debian's headless
//! `chromium` through `chromedriver`: a session, navigation, scripts,
//! screenshots, the browser's console log.
//!
//! Hand-written over hyper's HTTP/1 client (already in the tree) because
//! the five calls we need are a few lines each, while `fantoccini` without
//! TLS still brings 31 more crates (two ICU stacks among them) to build.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::web_support::try_request;

/// Chromium's flags: headless, and none of the background traffic that is
/// refused on a machine without a network.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--window-size=1280,800",
];

/// How long chromedriver may take to start answering.
const DRIVER_START: Duration = Duration::from_secs(20);

/// Where a program is: `$VAR` if set, else the first `names` entry on PATH.
pub fn find_program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A chromedriver process and one browser session in it; both end on drop.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless
    /// Chromium session with a fresh profile.
    pub async fn start(chromium: &Path, chromedriver: &Path) -> Result<Browser, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", chromedriver.display()))?;
        let profile =
            std::env::temp_dir().join(format!("web-test-profile-{}-{port}", std::process::id()));
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            profile,
        };
        browser.wait_ready().await?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": chromium, "args": args },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let created = browser.call("POST", "/session", Some(capabilities)).await?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {created}"))?
            .to_owned();
        Ok(browser)
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + DRIVER_START;
        loop {
            if let Ok(status) = self.call("GET", "/status", None).await
                && status["ready"] == json!(true)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("chromedriver not ready within {DRIVER_START:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One WebDriver command; its `value`, or the error it reported.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let response = try_request(self.addr, method, path, body).await?;
        let parsed: Value = serde_json::from_slice(response.body())
            .map_err(|e| format!("{method} {path}: bad JSON: {e}"))?;
        let value = parsed["value"].clone();
        if let Some(error) = value.get("error") {
            return Err(format!("{method} {path}: {error}: {}", value["message"]));
        }
        Ok(value)
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )
        .await
        .map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page
    /// and returns what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The viewport as PNG bytes.
    pub async fn screenshot(&self) -> Result<Vec<u8>, String> {
        let encoded = self
            .call("GET", &self.session_path("/screenshot"), None)
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().ok_or("screenshot is not a string")?)
            .map_err(|e| format!("screenshot is not base64: {e}"))
    }

    /// Console messages since the last call (Chromium's log extension).
    pub async fn console(&self) -> Result<Vec<String>, String> {
        let entries = self
            .call(
                "POST",
                &self.session_path("/se/log"),
                Some(json!({ "type": "browser" })),
            )
            .await?;
        Ok(entries
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Drop for Browser {
    /// Closes the session (which quits Chromium), then stops chromedriver.
    /// Blocking and best effort: this also runs when a test panics.
    fn drop(&mut self) {
        if !self.session.is_empty()
            && let Ok(mut stream) =
                std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.addr
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
