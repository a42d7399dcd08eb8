//! The real `server` binary: flags, start-up log, and SIGTERM.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Starts the binary on loopback with every port 0 and returns it with the
/// addresses it logged.
async fn start_binary() -> (tokio::process::Child, HashMap<String, SocketAddr>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([
            "--host",
            "127.0.0.1",
            "--game-port",
            "0",
            "--test-port",
            "0",
        ])
        .args(["--math-port", "0", "--positions-port", "0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("server binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addrs = HashMap::new();
    while addrs.len() < 4 {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("start-up log in time")
            .unwrap()
            .expect("server still running");
        let line = strip_ansi(&line);
        if !line.contains("listening") {
            continue;
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        if let (Some(service), Some(addr)) = (field("service"), field("addr")) {
            addrs.insert(service, addr.parse().expect("a socket address"));
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addrs)
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn sigterm_says_goodbye_closes_everyone_and_exits_zero_within_two_seconds() {
    let (mut child, addrs) = start_binary().await;
    let mut native = NativeClient::join(addrs["game"], "leaving-soon").await;
    let (mut legacy, _) = connect_legacy(addrs["positions"]).await;
    let (mut math, _) = connect_legacy(addrs["math"]).await;
    let (mut probes, _) = connect_legacy(addrs["test_packets"]).await;

    let started = Instant::now();
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .expect("exits within 2 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let reason = native.goodbye().await;
    assert!(reason.contains("shutting down"), "{reason}");
    expect_closed(&mut legacy).await;
    expect_closed(&mut math).await;
    expect_closed(&mut probes).await;
}

#[tokio::test]
async fn help_lists_every_flag_with_its_environment_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--host",
        "--game-port",
        "--test-port",
        "--math-port",
        "--positions-port",
        "--probe-interval-ms",
        "--probe-timeout-ms",
        "--max-connections",
        "--max-connections-per-ip",
        "--max-frame-bytes",
        "--handshake-timeout-ms",
        "--idle-timeout-ms",
        "--write-timeout-ms",
        "--broadcast-interval-ms",
        "--metrics",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    assert!(help.contains("GAMESERVER_POSITIONS_PORT"), "{help}");
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--host", "127.0.0.1", "--game-port", &port])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let log = strip_ansi(&String::from_utf8_lossy(&output.stdout));
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{port} (game service)")),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
