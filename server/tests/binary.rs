//! The real `gameserver` binary: flags, start-up log, and SIGTERM.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Starts the binary on loopback with every port 0 and returns it with the
/// addresses it logged.
async fn start_binary() -> (tokio::process::Child, HashMap<String, SocketAddr>) {
    let (child, addrs, _log) = start_binary_logging(&[]).await;
    (child, addrs)
}

/// As [`start_binary`] with `extra` flags, also keeping every line the
/// binary logs.
async fn start_binary_logging(
    extra: &[&str],
) -> (tokio::process::Child, HashMap<String, SocketAddr>, Log) {
    spawn_server(Command::new(server_binary()), extra).await
}

/// Names of the threads of process `pid`.
#[cfg(target_os = "linux")]
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn worker_threads_sets_how_many_threads_run_the_connections() {
    // A new thread takes its name itself, once it runs: the server may
    // already listen while a worker still carries the process's name. So
    // wait for `expected` workers, then a little more, and count again (a
    // flag that was ignored gives two, one per CPU here, and fails).
    async fn workers(pid: u32, expected: usize) -> usize {
        let count = || {
            thread_names(pid)
                .iter()
                .filter(|name| *name == "tokio-rt-worker")
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while count() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        count()
    }
    let (child, addrs, _log) = start_binary_logging(&["--worker-threads", "1"]).await;
    assert_eq!(workers(child.id().unwrap(), 1).await, 1);
    // And it serves: a positions client gets its own record back.
    let (mut stream, id) = connect_legacy(addrs["positions"]).await;
    send_position(&mut stream, 3, 4).await;
    let record = read_record_until(&mut stream, |r| r.id == id).await;
    assert_eq!((record.x, record.y), (3, 4));
    let (child, _, _log) = start_binary_logging(&["--worker-threads", "3"]).await;
    assert_eq!(workers(child.id().unwrap(), 3).await, 3);
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
async fn version_names_the_binary_and_the_commit_it_was_built_from() {
    let output = Command::new(env!("CARGO_BIN_EXE_gameserver"))
        .arg("--version")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let version = String::from_utf8_lossy(&output.stdout);
    let expected = format!("gameserver {}", env!("CARGO_PKG_VERSION"));
    // Built from a git checkout (as in CI): the commit follows the version.
    // From a source tarball there is no commit to name.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(head) if head.status.success() => {
            // The short hash, whatever length git chose for it.
            let head = String::from_utf8_lossy(&head.stdout);
            let commit = version
                .trim()
                .strip_prefix(&format!("{expected} (git "))
                .and_then(|rest| rest.strip_suffix(')'))
                .unwrap_or_else(|| panic!("no commit in {version:?}"));
            assert!(
                commit.len() >= 7 && head.starts_with(commit),
                "{commit} is not HEAD ({head})"
            );
        }
        _ => assert_eq!(version.trim(), expected),
    }
}

#[tokio::test]
async fn help_lists_every_flag_with_its_environment_variable() {
    let output = Command::new(server_binary())
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    let flags = [
        "--host",
        "--game-port",
        "--test-port",
        "--math-port",
        "--positions-port",
        "--probe-interval-ms",
        "--probe-timeout-ms",
        "--max-connections",
        "--max-connections-per-ip",
        "--limit-loopback",
        "--max-frame-bytes",
        "--handshake-timeout-ms",
        "--idle-timeout-ms",
        "--message-timeout-ms",
        "--write-timeout-ms",
        "--broadcast-interval-ms",
        "--max-moves-per-second",
        "--overview-interval-ms",
        "--overview-max-players",
        "--worker-threads",
        "--lane-connections",
        "--legacy-welcome",
        "--positions-records",
        "--cluster",
        "--node-id",
        "--world",
        "--metrics",
        "--metrics-max-connections",
        "--web",
        "--web-max-connections",
        "--http-header-timeout-ms",
        "--http-idle-timeout-ms",
        "--record",
        "--record-max-bytes",
        "--record-snapshot-secs",
    ];
    // clap starts each flag's entry with "  -h, --flag" or "      --flag" (at
    // most 6 spaces in), its text and "[env: VAR=]" follow on lines indented
    // deeper: cut the help at each flag.
    let mut entries: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent <= 6 && trimmed.starts_with('-') {
            let flag = trimmed
                .split_whitespace()
                .find(|word| word.starts_with("--"))
                .unwrap()
                .to_string();
            current = Some(flag.clone());
            entries.entry(flag).or_default();
        }
        if let Some(flag) = &current {
            let entry = entries.get_mut(flag).unwrap();
            entry.push_str(trimmed);
            entry.push(' ');
        }
    }
    for flag in flags {
        let entry = entries
            .get(flag)
            .unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        let var = format!("GAMESERVER_{}", flag[2..].replace('-', "_").to_uppercase());
        assert!(
            entry.contains(&format!("[env: {var}")),
            "{flag} does not show its variable {var}: {entry}"
        );
    }
    let unlisted: Vec<&String> = entries
        .keys()
        .filter(|f| !flags.contains(&f.as_str()) && *f != "--help" && *f != "--version")
        .collect();
    assert!(
        unlisted.is_empty(),
        "flags this test does not check: {unlisted:?}"
    );
}

#[tokio::test]
async fn replay_help_lists_its_flags() {
    let output = Command::new(server_binary())
        .args(["replay", "--help"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in ["<PATH>", "--at <SECONDS>", "--print", "--web <HOST:PORT>"] {
        assert!(
            help.contains(flag),
            "{flag} missing from replay --help:\n{help}"
        );
    }
    let top = Command::new(server_binary())
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&top.stdout).contains("replay"),
        "gameserver --help names the replay command"
    );
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(server_binary())
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

/// Thousands of clients that reset their connection (SO_LINGER 0), then
/// thousands of protocol violations from as many peers: the resets are
/// routine (not warnings), the violations are logged a few at a time with a
/// summary that accounts for every one of them.
#[tokio::test]
async fn a_churn_of_resets_and_violations_leaves_a_few_summary_lines() {
    const RESETS: usize = 1500;
    const VIOLATIONS: u64 = 1500;
    let (mut child, addrs, log) = start_binary_logging(&[]).await;
    for _ in 0..RESETS {
        let (stream, _) = connect_legacy(addrs["positions"]).await;
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream); // RST instead of FIN
    }
    for _ in 0..VIOLATIONS {
        let (mut stream, _) = connect_legacy(addrs["math"]).await;
        // Announced command length 0x7fffffff: outside 1..=64.
        stream
            .write_all(&[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0])
            .await
            .unwrap();
        expect_closed(&mut stream).await;
    }
    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.success());
    // Let the reader task take the last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = log.lock().unwrap().clone();

    let warnings: Vec<&String> = log.iter().filter(|l| l.contains(" WARN ")).collect();
    assert!(
        warnings.len() <= 20,
        "{} warning lines, e.g. {:?}",
        warnings.len(),
        &warnings[..warnings.len().min(30)]
    );
    let resets_at_info = log
        .iter()
        .filter(|l| l.contains(" INFO ") && l.contains("disconnected") && l.contains("reset"))
        .count();
    assert!(
        resets_at_info > RESETS / 2,
        "resets are logged at info ({resets_at_info} of {RESETS})"
    );
    // Each violation is either a full line or counted in a summary.
    let full = warnings
        .iter()
        .filter(|l| l.contains("protocol violation") && l.contains("disconnected"))
        .count() as u64;
    let summarised: u64 = warnings
        .iter()
        .filter(|l| {
            l.contains("kind=\"protocol_violation\"") || l.contains("kind=protocol_violation")
        })
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("count="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum();
    assert!(
        full >= 1,
        "the first violations are logged in full: {warnings:?}"
    );
    assert_eq!(full + summarised, VIOLATIONS, "{warnings:?}");
}

/// The binary run by `prlimit` with `RLIMIT_NOFILE` at `soft`:`hard`.
#[cfg(target_os = "linux")]
fn under_nofile_limit(soft: u64, hard: u64) -> Command {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={soft}:{hard}"))
        .arg("--")
        .arg(server_binary());
    command
}

/// The value of `field=` on the first logged line containing `message`.
fn logged_field(log: &Log, message: &str, field: &str) -> Option<String> {
    let log = log.lock().unwrap();
    let line = log.iter().find(|line| line.contains(message))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{field}=")))
        .map(str::to_owned)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let soft = 256.min(hard);
    let (_child, addrs, log) = spawn_server(under_nofile_limit(soft, hard), &[]).await;
    assert_eq!(
        logged_field(&log, "open-file limit", "open_files"),
        Some(hard.to_string()),
        "log: {:?}",
        log.lock().unwrap()
    );
    let (mut stream, id) = connect_legacy(addrs["positions"]).await;
    send_position(&mut stream, 1, 2).await;
    assert_eq!(read_record_until(&mut stream, |r| r.id == id).await.x, 1);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn max_connections_is_lowered_to_what_the_open_file_limit_holds() {
    // 150 descriptors, hard: the base headroom (64, no HTTP listener) leaves
    // 86 for players, far below the default --max-connections.
    const NOFILE: u64 = 150;
    let room = NOFILE - server::fd_limit::BASE_HEADROOM;
    let (_child, addrs, log) = spawn_server(under_nofile_limit(NOFILE, NOFILE), &[]).await;
    let lowered = "--max-connections does not fit the open-file limit";
    assert_eq!(
        logged_field(&log, lowered, "effective_max_connections"),
        Some(room.to_string()),
        "log: {:?}",
        log.lock().unwrap()
    );
    // It serves, exactly up to the lowered cap: the next is refused cleanly
    // (closed without an id), not failed by `accept`.
    let mut players = Vec::new();
    for _ in 0..room {
        players.push(connect_legacy(addrs["math"]).await);
    }
    let mut refused = tokio::net::TcpStream::connect(addrs["math"]).await.unwrap();
    assert!(expect_closed(&mut refused).await.is_empty());
    // A player that leaves frees its slot for the next.
    drop(players.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut stream = tokio::net::TcpStream::connect(addrs["positions"])
            .await
            .unwrap();
        let mut greeting = [0u8; 4];
        let got = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut greeting),
        )
        .await
        .expect("an answer in time");
        if got.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
