//! The web view in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), against a live server with real clients: a Python
//! legacy client, raw legacy sockets and native clients, one with a hostile
//! name.
//!
//! Without Chromium the test is skipped, except when `CI` is set (to
//! anything), where it fails: `.ci/run` installs it. `CHROMIUM` and `CHROMEDRIVER` override
//! where the binaries are. `WEB_SCREENSHOT=FILE` also saves the page's
//! screenshot there (that is how `docs/web.png` is made).

mod common;
mod web_support;
mod webdriver;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use server::Config;
use shared::legacy::Position;
use shared::native::ClientMessage;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use webdriver::{Browser, find_program};

/// A name that would run script if it were ever treated as markup
/// (27 bytes: within the native protocol's 32).
const HOSTILE_NAME: &str = "<img src=x onerror=pwned=1>";

/// The issue's bound on how fast a move shows in the page.
const MOVE_SHOWN_WITHIN: Duration = Duration::from_secs(1);

/// The list as the page shows it: one entry per `<li>`.
const READ_LIST: &str = r#"
return [...document.querySelectorAll('#players li')].map((li) => ({
  id: Number(li.dataset.id),
  x: li.dataset.x === undefined ? null : li.dataset.x,
  y: li.dataset.y === undefined ? null : li.dataset.y,
  name: li.querySelector('.name .text') ? li.querySelector('.name .text').textContent : null,
  legacy: li.querySelector('.tag') !== null,
  elements: li.querySelectorAll('*').length,
}));
"#;

const READ_STATUS: &str =
    "return document.getElementById('status').textContent.replace(/\\s+/g, ' ').trim();";

/// Chromium and chromedriver, or `None` (skip) outside CI.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find_program("CHROMEDRIVER", &["chromedriver"]);
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            skip_unless_ci(
                "the browser test",
                "chromium or chromedriver",
                "apt-get install chromium chromium-driver (.ci/run does)",
            );
            None
        }
    }
}

fn with_web(addr: SocketAddr) -> impl FnOnce(&mut Config) {
    move |config| config.web = Some(addr)
}

/// The repository's Python legacy client, standing still at (x, y).
async fn python_client(port: u16, x: i16, y: i16) -> (Child, i32) {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/python/positions_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--start", &x.to_string(), &y.to_string(), "--no-move"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("python client connects in time")
        .unwrap()
        .expect("a line");
    let id = line
        .strip_prefix("connected id=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, id)
}

async fn list(browser: &Browser) -> Vec<Value> {
    let value = browser
        .execute(READ_LIST, vec![])
        .await
        .expect("read the list");
    value.as_array().cloned().unwrap_or_default()
}

fn entry(list: &[Value], id: i32) -> Option<&Value> {
    list.iter().find(|e| e["id"] == json!(id))
}

/// Polls the page until `check` passes on the list; returns how long it took.
async fn until_listed(browser: &Browser, what: &str, check: impl Fn(&[Value]) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let current = list(browser).await;
        if check(&current) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "page never showed {what}; list: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn until_status(browser: &Browser, wanted: &str) -> String {
    let started = Instant::now();
    loop {
        let status = browser
            .execute(READ_STATUS, vec![])
            .await
            .expect("read the status");
        let status = status.as_str().unwrap_or_default().to_owned();
        if status.contains(wanted) {
            return status;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "status never said {wanted:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Share of pixels of the most common colour, number of distinct colours,
/// and whether both player colours appear.
fn look_at(png_bytes: &[u8]) -> (f64, usize, bool, bool) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "colour screenshot");
    let mut counts = std::collections::HashMap::new();
    let near = |p: &[u8], c: [u8; 3]| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= 12);
    let (mut blue, mut orange) = (false, false);
    for pixel in pixels[..info.buffer_size()].chunks(channels) {
        *counts.entry([pixel[0], pixel[1], pixel[2]]).or_insert(0u64) += 1;
        blue |= near(pixel, [0x4e, 0xa1, 0xff]);
        orange |= near(pixel, [0xff, 0x9f, 0x43]);
    }
    let total = (info.width as u64 * info.height as u64) as f64;
    let top = *counts.values().max().unwrap() as f64;
    (top / total, counts.len(), blue, orange)
}

#[tokio::test]
async fn the_page_shows_every_player_live_and_names_only_as_text() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        return;
    };
    let browser = Browser::start(&chromium, &chromedriver)
        .await
        .unwrap_or_else(|e| panic!("cannot start headless chromium: {e}"));

    let server = TestServer::with(with_web("127.0.0.1:0".parse().unwrap())).await;
    let web = server.addrs.web.unwrap();

    // Players: the Python legacy client at a known spot, a raw legacy
    // socket that moves, and native players, one with a hostile name.
    let (python, python_id) = python_client(server.addrs.positions.port(), 123, -45).await;
    let (mut mover, mover_id) = connect_legacy(server.addrs.positions).await;
    send_position(&mut mover, -80, -60).await;
    let mut natives = Vec::new();
    for (name, x, y) in [(HOSTILE_NAME, -60, 40), ("alice", 30, 70), ("bob", 170, 20)] {
        let mut client = NativeClient::join(server.addrs.game, name).await;
        client
            .send(ClientMessage::MyPosition(Position::new(x, y)))
            .await;
        natives.push(client);
    }
    let hostile_id = natives[0].id;

    browser.goto(&format!("http://{web}/")).await.unwrap();

    // The Python client is listed with exactly its position.
    until_listed(&browser, "the Python client at (123, -45)", |l| {
        entry(l, python_id).is_some_and(|e| e["x"] == "123" && e["y"] == "-45")
    })
    .await;
    let now = list(&browser).await;
    let python_entry = entry(&now, python_id).unwrap();
    assert_eq!(python_entry["legacy"], true, "marked [py]");
    assert_eq!(python_entry["name"], format!("py-{python_id}"));
    assert_eq!(now.len(), 5, "five players: {now:?}");

    // A move shows within a second.
    until_listed(&browser, "the mover", |l| {
        entry(l, mover_id).is_some_and(|e| e["x"] == "-80")
    })
    .await;
    send_position(&mut mover, 200, 150).await;
    let shown_after = until_listed(&browser, "the move to (200, 150)", |l| {
        entry(l, mover_id).is_some_and(|e| e["x"] == "200" && e["y"] == "150")
    })
    .await;
    eprintln!("a move showed in the page after {shown_after:?}");
    assert!(shown_after < MOVE_SHOWN_WITHIN, "took {shown_after:?}");

    // The hostile name is shown as text, and nothing was injected.
    let hostile = entry(&now, hostile_id)
        .expect("hostile player listed")
        .clone();
    assert_eq!(hostile["name"], HOSTILE_NAME);
    assert_eq!(hostile["legacy"], false);
    assert_eq!(
        hostile["elements"], 5,
        "only the item's own spans: {hostile}"
    );
    let injected = browser
        .execute(
            "return { images: document.images.length, inList: document.querySelectorAll('#players img').length, pwned: typeof window.pwned };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected["inList"], 0);
    assert_eq!(injected["images"], 1, "only the page's own logo");
    assert_eq!(injected["pwned"], "undefined", "the onerror never ran");

    let status = until_status(&browser, "connected").await;
    assert!(status.contains("5 players"), "{status}");

    // The screenshot is not blank: a dark map with both kinds of player.
    tokio::time::sleep(Duration::from_millis(1500)).await; // motion settles
    let png = browser.screenshot().await.unwrap();
    let (top_share, colours, blue, orange) = look_at(&png);
    eprintln!(
        "screenshot: {} bytes, {colours} colours, most common {:.0}%",
        png.len(),
        top_share * 100.0
    );
    assert!(colours > 100 && top_share < 0.9, "blank-looking page");
    assert!(
        blue && orange,
        "native (blue) and legacy (orange) players drawn"
    );
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web.png");
    std::fs::write(&out, &png).unwrap();
    if let Some(path) = std::env::var_os("WEB_SCREENSHOT") {
        std::fs::write(&path, &png).unwrap();
    }

    // A leaver disappears.
    drop(python); // kills the Python client
    until_listed(&browser, "the Python client gone", |l| {
        entry(l, python_id).is_none()
    })
    .await;

    // The page ran under its CSP without a violation or an error.
    let console = browser.console().await.unwrap();
    let problems: Vec<&String> = console
        .iter()
        .filter(|m| m.contains("SEVERE") || m.contains("Content Security Policy"))
        .collect();
    assert!(problems.is_empty(), "console: {problems:?}");

    // It reconnects by itself when the server restarts.
    server.stop().await;
    until_status(&browser, "reconnecting").await;
    let server = TestServer::with(with_web(web)).await;
    let (_newcomer, newcomer_id) = connect_legacy(server.addrs.positions).await;
    until_status(&browser, "connected").await;
    until_listed(&browser, "only the new server's player", |l| {
        l.len() == 1 && entry(l, newcomer_id).is_some()
    })
    .await;
    server.stop().await;
}
