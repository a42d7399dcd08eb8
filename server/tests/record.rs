//! `gameserver --record` end to end: the real binary records legacy (raw
//! TCP, as a Python client speaks) and native players, then `gameserver
//! replay PATH --at S --print` shows where they were; a SIGKILL loses at
//! most a second; files rotate; damaged, foreign and newer files give
//! clear errors with the offset.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use shared::legacy::Position;
use shared::native::ClientMessage;
use shared::recording::{HEADER_LEN, Header, Recording, rotated_path};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A fresh directory for one test's recordings.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gameserver-record-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the binary on loopback (every port 0) with `extra` flags; returns
/// it and the address of each service.
async fn start_server(extra: &[&str]) -> (Child, HashMap<String, SocketAddr>) {
    let (child, addrs, _log) = spawn_server(Command::new(server_binary()), extra).await;
    (child, addrs)
}

/// Stops the server with SIGTERM (a graceful shutdown flushes the recording).
async fn stop(mut child: Child) {
    let pid = child.id().expect("running") as i32;
    nix_kill(pid, "TERM");
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("server stops in time")
        .unwrap();
    assert!(status.success(), "graceful exit: {status}");
}

fn nix_kill(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// `gameserver replay PATH --at SECONDS --print`: (success, stdout, stderr).
fn replay_print(path: &Path, at_secs: f64) -> (bool, String, String) {
    let output = std::process::Command::new(server_binary())
        .args([
            "replay",
            path.to_str().unwrap(),
            "--at",
            &format!("{at_secs:.3}"),
            "--print",
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("replay runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The printed world as id → (x, y).
fn positions(printed: &str) -> HashMap<i32, (i16, i16)> {
    printed
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let id = fields.first()?.parse().ok()?;
            let x = fields.get(fields.len() - 2)?.parse().ok()?;
            let y = fields.last()?.parse().ok()?;
            Some((id, (x, y)))
        })
        .collect()
}

/// Seconds since the recording at `path` started (by its header's clock).
fn recording_seconds(path: &Path) -> f64 {
    let bytes = std::fs::read(path).unwrap();
    let header = Header::parse(&bytes[..HEADER_LEN]).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (now - header.start_unix_ms) as f64 / 1000.0
}

/// A legacy positions client over raw TCP: the id greeting, then `<hh`.
struct Legacy {
    stream: TcpStream,
    id: i32,
}

impl Legacy {
    async fn connect(addr: SocketAddr) -> Legacy {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let id = stream.read_i32_le().await.unwrap();
        Legacy { stream, id }
    }

    async fn go(&mut self, x: i16, y: i16) {
        let mut bytes = x.to_le_bytes().to_vec();
        bytes.extend_from_slice(&y.to_le_bytes());
        self.stream.write_all(&bytes).await.unwrap();
    }
}

/// How long to let a change settle before the moment it is looked at:
/// well inside the gaps between changes, so that the check is about where
/// a player was, not about when exactly the server saw it.
const SETTLE: Duration = Duration::from_millis(700);
const GAP: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn legacy_and_native_players_replay_where_they_were_at_chosen_moments() {
    let dir = scratch_dir("moments");
    let path = dir.join("session.rec");
    let (server, addrs) = start_server(&["--record", path.to_str().unwrap()]).await;
    let mut python = Legacy::connect(addrs["positions"]).await;
    let mut native = NativeClient::join(addrs["game"], "alice").await;
    let mut moments = Vec::new();
    for (step, (lx, ly, nx, ny)) in [(10, 11, 20, 21), (30, 31, -40, -41), (-500, 600, 700, -800)]
        .into_iter()
        .enumerate()
    {
        python.go(lx, ly).await;
        native
            .send(ClientMessage::MyPosition(Position::new(nx, ny)))
            .await;
        tokio::time::sleep(SETTLE).await;
        moments.push((recording_seconds(&path), step, (lx, ly), (nx, ny)));
        tokio::time::sleep(GAP - SETTLE).await;
    }
    let python_id = python.id;
    drop(python);
    tokio::time::sleep(SETTLE).await;
    let after_leave = recording_seconds(&path);
    tokio::time::sleep(GAP - SETTLE).await;
    native.send(ClientMessage::Bye).await;
    stop(server).await;

    for (at, step, legacy, native_at) in moments {
        let (ok, out, err) = replay_print(&path, at);
        assert!(ok, "replay failed: {err}");
        let world = positions(&out);
        assert_eq!(
            world.get(&python_id),
            Some(&legacy),
            "python at step {step} ({at:.2} s): {out}"
        );
        assert_eq!(
            world.get(&native.id),
            Some(&native_at),
            "alice at step {step} ({at:.2} s): {out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{} alice ", native.id))),
            "names are printed: {out}"
        );
    }
    let (ok, out, err) = replay_print(&path, after_leave);
    assert!(ok, "{err}");
    let world = positions(&out);
    assert!(
        !world.contains_key(&python_id),
        "the python player left: {out}"
    );
    assert!(
        world.contains_key(&native.id),
        "alice was still there: {out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_sigkill_during_recording_loses_at_most_one_second() {
    let dir = scratch_dir("sigkill");
    let path = dir.join("crash.rec");
    let (mut server, addrs) = start_server(&[
        "--record",
        path.to_str().unwrap(),
        "--max-moves-per-second",
        "0",
    ])
    .await;
    let mut python = Legacy::connect(addrs["positions"]).await;
    // One move every 20 ms, x counting up, for 4 s. From the second second
    // on, what is on disk is read every 100 ms: what a SIGKILL at that
    // moment would leave (the page cache survives a killed process), at
    // every phase of the flush cycle. Then a real SIGKILL.
    let mut x = 0i16;
    let mut worst_lag = 0.0f64;
    let mut checks = 0;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        x += 1;
        python.go(x, 0).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if started.elapsed() > Duration::from_secs(1) && x % 5 == 0 {
            let now = recording_seconds(&path);
            let on_disk = Recording::open(&path).expect("a recording being written opens");
            worst_lag = worst_lag.max(now - on_disk.duration_ms() as f64 / 1000.0);
            checks += 1;
        }
    }
    assert!(checks >= 20, "only {checks} checks");
    eprintln!("worst lag of the disk behind the world: {worst_lag:.3} s over {checks} checks");
    assert!(
        worst_lag <= 1.0,
        "at some moment the last {worst_lag:.3} s were not on disk yet (at most 1 s allowed)"
    );
    let killed_at = recording_seconds(&path);
    server.start_kill().unwrap();
    server.wait().await.unwrap();

    let recording = Recording::open(&path).expect("a killed recording still opens");
    let lost_secs = killed_at - recording.duration_ms() as f64 / 1000.0;
    assert!(
        lost_secs <= 1.0,
        "lost {lost_secs:.3} s of recording (at most 1 s allowed)"
    );
    let (ok, out, err) = replay_print(&path, killed_at + 5.0);
    assert!(ok, "replay of a killed recording: {err}");
    let (last_x, _) = positions(&out)[&python.id];
    // 50 moves a second at most: one second is 50 moves.
    assert!(
        x - last_x <= 50,
        "sent up to x={x}, the recording ends at x={last_x}: more than 1 s lost"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn recording_rotates_into_numbered_files_that_play_as_one() {
    let dir = scratch_dir("rotation");
    let path = dir.join("big.rec");
    let max_bytes = 4096u64;
    let (server, addrs) = start_server(&[
        "--record",
        path.to_str().unwrap(),
        "--record-max-bytes",
        &max_bytes.to_string(),
        "--max-moves-per-second",
        "0",
    ])
    .await;
    let mut python = Legacy::connect(addrs["positions"]).await;
    python.go(1, 1).await;
    tokio::time::sleep(SETTLE).await;
    let early = recording_seconds(&path);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for x in 2..=800 {
        python.go(x, -x).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let late = recording_seconds(&path);
    stop(server).await;

    let files: Vec<PathBuf> = (0..)
        .map(|i| rotated_path(&path, i))
        .take_while(|p| p.exists())
        .collect();
    assert!(
        files.len() >= 3,
        "800 moves of ≥ 18 bytes fill at least 3 files of 4 KiB: {files:?}"
    );
    for file in &files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(
            size <= max_bytes,
            "{} is {size} bytes, over {max_bytes}",
            file.display()
        );
    }
    let (ok, out, err) = replay_print(&path, early);
    assert!(ok, "{err}");
    assert_eq!(positions(&out).get(&python.id), Some(&(1, 1)), "{out}");
    let (ok, out, err) = replay_print(&path, late);
    assert!(ok, "{err}");
    assert_eq!(positions(&out).get(&python.id), Some(&(800, -800)), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A short real recording: a python player at (1, 2), then (3, 4).
async fn short_recording(path: &Path) -> (f64, f64) {
    let (server, addrs) = start_server(&["--record", path.to_str().unwrap()]).await;
    let mut python = Legacy::connect(addrs["positions"]).await;
    python.go(1, 2).await;
    tokio::time::sleep(SETTLE).await;
    let first = recording_seconds(path);
    tokio::time::sleep(SETTLE).await;
    python.go(3, 4).await;
    tokio::time::sleep(SETTLE).await;
    let second = recording_seconds(path);
    stop(server).await;
    (first, second)
}

#[tokio::test]
async fn damaged_foreign_and_newer_files_give_clear_errors_with_the_offset() {
    let dir = scratch_dir("damage");
    let good = dir.join("good.rec");
    let (first, second) = short_recording(&good).await;
    let bytes = std::fs::read(&good).unwrap();
    let blocks = shared::recording::read_all(&bytes).unwrap().1;
    assert!(
        blocks.len() >= 3,
        "snapshot, first move, second move: {blocks:?}"
    );
    let last = blocks.last().unwrap().offset as usize;

    // Torn tail: the last block cut short. What comes before plays.
    let torn = dir.join("torn.rec");
    std::fs::write(&torn, &bytes[..bytes.len() - 3]).unwrap();
    let (ok, out, err) = replay_print(&torn, second);
    assert!(ok, "a torn tail still plays: {err}");
    assert!(
        err.contains(&format!(
            "skipped {} bytes from offset {last}",
            bytes.len() - 3 - last
        )),
        "says what was skipped: {err}"
    );
    assert!(err.contains("the file ends inside the block"), "{err}");
    assert_eq!(
        positions(&replay_print(&torn, first).1).values().next(),
        Some(&(1, 2)),
        "{out}"
    );

    // A flipped bit in the middle: a checksum error at that block's offset.
    let middle = blocks[blocks.len() / 2].offset as usize;
    let mut flipped = bytes.clone();
    flipped[middle + 9] ^= 0x10;
    let corrupt = dir.join("corrupt.rec");
    std::fs::write(&corrupt, &flipped).unwrap();
    let (ok, _, err) = replay_print(&corrupt, second);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("from offset {middle}: checksum mismatch")),
        "{err}"
    );

    // Not a recording at all.
    let foreign = dir.join("foreign.rec");
    std::fs::write(&foreign, b"#!/bin/sh\necho this is not a recording\n").unwrap();
    let (ok, _, err) = replay_print(&foreign, 0.0);
    assert!(!ok);
    assert!(
        err.contains("not a recording") && err.contains("offset 0"),
        "{err}"
    );

    // A newer format version.
    let mut newer = bytes.clone();
    newer[8..10].copy_from_slice(&2u16.to_le_bytes());
    let newer_path = dir.join("newer.rec");
    std::fs::write(&newer_path, &newer).unwrap();
    let (ok, _, err) = replay_print(&newer_path, 0.0);
    assert!(!ok);
    assert!(
        err.contains("version 2 is newer than this build reads (up to 1)")
            && err.contains("offset 8"),
        "{err}"
    );

    // A header cut short.
    let stub = dir.join("stub.rec");
    std::fs::write(&stub, &bytes[..20]).unwrap();
    let (ok, _, err) = replay_print(&stub, 0.0);
    assert!(!ok);
    assert!(err.contains("header cut short: 20 of 36 bytes"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_recording_path_that_exists_or_cannot_be_created_stops_the_start() {
    let dir = scratch_dir("startup");
    let existing = dir.join("keep.rec");
    std::fs::write(&existing, b"last week's session").unwrap();
    for (path, expected) in [
        (existing.clone(), "already exists"),
        (dir.join("no/such/dir/x.rec"), "No such file or directory"),
    ] {
        let output = Command::new(server_binary())
            .args(LOOPBACK_ANY_PORT)
            .args(["--record", path.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .output()
            .await
            .unwrap();
        let log = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "must not start: {log}");
        assert!(
            log.contains(&format!("cannot record to {}", path.display())) && log.contains(expected),
            "{log}"
        );
    }
    assert_eq!(
        std::fs::read(&existing).unwrap(),
        b"last week's session",
        "never overwritten"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One WebSocket message of the web view, decoded: players' positions
/// after it (starting from `world`), every move in it added to `moves`,
/// and its CLOCK (now_ms, paused).
fn apply_web_message(
    bytes: &[u8],
    world: &mut HashMap<i32, Option<(i16, i16)>>,
    moves: &mut Vec<(i16, i16)>,
) -> Option<(u64, bool)> {
    let mut at = 0;
    let mut clock = None;
    while at < bytes.len() {
        match bytes[at] {
            1 => {
                world.clear();
                at += 1;
            }
            2 => {
                let id = i32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap());
                world.insert(id, None);
                at += 7 + bytes[at + 6] as usize;
            }
            3 => {
                let id = i32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap());
                let x = i16::from_le_bytes(bytes[at + 5..at + 7].try_into().unwrap());
                let y = i16::from_le_bytes(bytes[at + 7..at + 9].try_into().unwrap());
                world.insert(id, Some((x, y)));
                moves.push((x, y));
                at += 9;
            }
            4 => {
                let id = i32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap());
                world.remove(&id);
                at += 5;
            }
            5 => {
                let now = u64::from_le_bytes(bytes[at + 1..at + 9].try_into().unwrap());
                clock = Some((now, bytes[at + 29] == 1));
                at += 30;
            }
            tag => panic!("unknown web record tag {tag}"),
        }
    }
    clock
}

#[tokio::test]
async fn replay_web_serves_the_page_and_plays_from_any_moment_without_game_ports() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let dir = scratch_dir("web");
    let path = dir.join("web.rec");
    let (first, second) = short_recording(&path).await;
    let mut replay = Command::new(server_binary())
        .args(["replay", path.to_str().unwrap(), "--web", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(replay.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let addr: SocketAddr = loop {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("start-up log in time")
            .unwrap()
            .expect("replay still running");
        log.push(line.clone());
        if line.contains("replay web view")
            && let Some(addr) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
        {
            break addr.parse().unwrap();
        }
    };
    assert!(
        !log.iter().any(|l| l.contains("listening")),
        "no game port is opened: {log:?}"
    );

    // The same page, with its timeline.
    let mut http = TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("id=\"timeline\""), "{page}");

    // Paused at the first moment: the world then, and the clock.
    let at_ms = (first * 1000.0) as u64;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?at={at_ms}&paused=1"))
            .await
            .unwrap();
    let Some(Ok(Message::Binary(bytes))) = ws.next().await else {
        panic!("a binary snapshot first");
    };
    let mut world = HashMap::new();
    assert_eq!(
        apply_web_message(&bytes, &mut world, &mut Vec::new()),
        Some((at_ms, true))
    );
    assert_eq!(world.values().collect::<Vec<_>>(), vec![&Some((1, 2))]);
    // Read-only: a data message closes the stream.
    ws.send(Message::text("seek please")).await.unwrap();
    let closed = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(message)) = ws.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the stream closes");

    // Playing ×16 from the first moment: the second move arrives (the
    // player may leave in the same message, at the end), and the clock
    // moves on past it.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?at={at_ms}&speed=16"))
            .await
            .unwrap();
    let mut world = HashMap::new();
    let mut last_clock = 0;
    let mut seen = false;
    let moved_at = second - SETTLE.as_secs_f64();
    tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(Message::Binary(bytes))) = ws.next().await {
            let mut moves = Vec::new();
            let clock = apply_web_message(&bytes, &mut world, &mut moves);
            seen |= moves.contains(&(3, 4));
            if let Some((now, _)) = clock {
                last_clock = now;
            }
            if seen && last_clock as f64 >= moved_at * 1000.0 {
                break;
            }
        }
    })
    .await
    .expect("the replay plays on to the second move");
    drop(ws);
    replay.start_kill().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
