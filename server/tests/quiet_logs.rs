//! Logs under attack, read from the real binary's output: resets are
//! routine (not warnings), and a flood of the same warning is summarised.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const CHURN: usize = 300;

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
async fn resets_are_routine_and_a_flood_of_violations_is_summarised() {
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
    let mut addr: Option<SocketAddr> = None;
    while addr.is_none() {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("start-up log in time")
            .unwrap()
            .expect("server running");
        let line = strip_ansi(&line);
        if line.contains("listening") && line.contains("service=test_packets") {
            addr = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .map(|a| a.parse().unwrap());
        }
    }
    let addr = addr.unwrap();
    let collected = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(strip_ansi(&line));
        }
        all
    });

    for _ in 0..CHURN {
        // A reset: connect, take the id, close with RST.
        let (stream, _) = connect_legacy(addr).await;
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream);
        // A violation: bytes that are not an echo.
        let (mut stream, _) = connect_legacy(addr).await;
        stream.write_all(&[0xde, 0xad]).await.unwrap();
        expect_closed(&mut stream).await;
    }

    let pid = child.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits")
        .unwrap();
    let lines = collected.await.unwrap();
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains(" WARN ")).collect();
    let resets = lines
        .iter()
        .filter(|l| l.contains("disconnected") && l.contains("reset"))
        .count();
    let violations = lines
        .iter()
        .filter(|l| l.contains("protocol violation"))
        .count();
    assert!(
        warnings.len() <= 10,
        "{} warnings for {CHURN} resets and {CHURN} violations:\n{warnings:#?}",
        warnings.len()
    );
    assert!(
        !warnings.iter().any(|l| l.contains("reset")),
        "a reset is not a warning"
    );
    assert!(
        resets >= CHURN / 2,
        "resets are still logged, at info ({resets})"
    );
    assert!(
        violations < 10,
        "violations logged one by one: {violations}"
    );
    let summary = lines
        .iter()
        .find(|l| l.contains("more protocol_violation warnings"))
        .unwrap_or_else(|| panic!("no summary line in {warnings:#?}"));
    let count: u64 = summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix("count="))
        .and_then(|n| n.parse().ok())
        .expect("the summary says how many");
    assert_eq!(
        count + violations as u64,
        CHURN as u64,
        "every violation is either logged or counted"
    );
}
