//! The stdlib Python clients in clients/python, run against the real server,
//! their output asserted. python3 is on every machine we support.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use shared::legacy::Position;
use shared::native::{ClientMessage, ServerMessage};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../clients/python")
        .join(name)
}

fn python(name: &str, args: &[String]) -> Command {
    let mut command = Command::new("python3");
    command.arg(script(name)).args(args).kill_on_drop(true);
    command
}

async fn run_to_end(mut command: Command) -> (bool, String) {
    let output = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .expect("python client finished in time")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.trim().is_empty() || output.status.success(),
        "stderr: {stderr}"
    );
    (output.status.success(), stdout)
}

fn port_args(port: u16) -> Vec<String> {
    vec![
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
    ]
}

#[tokio::test]
async fn math_client_once_prints_each_status() {
    let server = TestServer::start().await;
    let port = server.addrs.math.port();
    for (query, expected) in [
        (["SUMA", "3", "4"], "SUMA 3 4 -> status=0 (ok) value=7.0"),
        (
            ["DIVISION", "7", "2"],
            "DIVISION 7 2 -> status=0 (ok) value=3.5",
        ),
        (
            ["DIVISION", "1", "0"],
            "DIVISION 1 0 -> status=1 (division_by_zero) value=0.0",
        ),
        (
            ["POTENCIA", "2", "8"],
            "POTENCIA 2 8 -> status=2 (unknown_command) value=0.0",
        ),
        (
            ["resta", "-32768", "1"],
            "resta -32768 1 -> status=0 (ok) value=-32769.0",
        ),
    ] {
        let mut args = port_args(port);
        args.push("--once".into());
        args.extend(query.iter().map(|s| s.to_string()));
        let (ok, stdout) = run_to_end(python("math_client.py", &args)).await;
        assert!(ok, "{stdout}");
        assert!(
            stdout
                .lines()
                .next()
                .unwrap_or("")
                .starts_with("connected id="),
            "{stdout}"
        );
        assert!(
            stdout.lines().any(|l| l == expected),
            "expected {expected:?} in:\n{stdout}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn math_client_interval_mode_gets_valid_replies() {
    let server = TestServer::start().await;
    let mut args = port_args(server.addrs.math.port());
    args.extend([
        "--interval".into(),
        "0.05".into(),
        "--count".into(),
        "5".into(),
    ]);
    let (ok, stdout) = run_to_end(python("math_client.py", &args)).await;
    assert!(ok, "{stdout}");
    let replies: Vec<_> = stdout
        .lines()
        .filter(|l| l.contains(" -> status="))
        .collect();
    assert_eq!(replies.len(), 5, "{stdout}");
    // Each line is "OP a b -> status=S (label) value=V": recompute the
    // server's answer for the random operands and compare status and value.
    for line in replies {
        let (query, reply) = line.split_once(" -> ").unwrap();
        let query: Vec<&str> = query.split_whitespace().collect();
        let [op, a, b] = query[..] else {
            panic!("malformed query in {line:?}")
        };
        // An oracle of its own, not the server's `MathOp::evaluate`.
        let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
        let (expected_status, expected_value) = match op {
            "SUMA" => (0, a + b),
            "RESTA" => (0, a - b),
            "MULTIPLICACION" => (0, a * b),
            "DIVISION" if b == 0.0 => (1, 0.0),
            "DIVISION" => (0, a / b),
            other => panic!("unknown operation {other:?} in {line:?}"),
        };
        let status: i32 = reply
            .strip_prefix("status=")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {line:?}"));
        let value: f64 = reply
            .rsplit_once("value=")
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        assert_eq!(status, expected_status, "{line}");
        assert_eq!(value.to_bits(), expected_value.to_bits(), "{line}");
    }
    server.stop().await;
}

#[tokio::test]
async fn test_packets_client_echoes_probes() {
    let server = TestServer::with(|c| {
        c.probe_interval_ms = 50;
        c.probe_timeout_ms = 1000;
    })
    .await;
    let (_other, _) = connect_legacy(server.addrs.math).await;
    let mut args = port_args(server.addrs.test.port());
    args.extend(["--count".into(), "4".into()]);
    let (ok, stdout) = run_to_end(python("test_packets.py", &args)).await;
    assert!(ok, "{stdout}");
    let probes: Vec<_> = stdout.lines().filter(|l| l.starts_with("probe ")).collect();
    assert_eq!(
        probes,
        [
            "probe seq=1 clients=2",
            "probe seq=2 clients=2",
            "probe seq=3 clients=2",
            "probe seq=4 clients=2"
        ]
    );
    server.stop().await;
}

struct PythonWalker {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl PythonWalker {
    fn spawn(port: u16, extra: &[&str]) -> PythonWalker {
        let mut args = port_args(port);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = python("positions_client.py", &args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        PythonWalker { child, lines }
    }

    /// Reads output lines until one satisfies `wanted`.
    async fn line_where(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("python client never printed {what}"))
                .expect("read stdout")
                .unwrap_or_else(|| panic!("python client exited before printing {what}"));
            if wanted(&line) {
                return line;
            }
        }
    }
}

fn id_of(line: &str) -> i32 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("id="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no id in {line:?}"))
}

#[tokio::test]
async fn python_positions_client_and_native_client_see_each_other_move() {
    let server = TestServer::start().await;
    let mut native = NativeClient::join(server.addrs.game, "rusty").await;
    native
        .send(ClientMessage::MyPosition(Position::new(50, 60)))
        .await;

    let mut walker = PythonWalker::spawn(
        server.addrs.positions.port(),
        &["--start", "1", "1", "--interval", "0.05"],
    );
    let connected = walker
        .line_where("connected", |l| l.starts_with("connected id="))
        .await;
    let walker_id = id_of(&connected);
    let native_id = native.id;

    // The Python client sees the native player in its snapshot, then moving.
    walker
        .line_where("native JOIN", |l| {
            l == format!("JOIN id={native_id} x=50 y=60")
        })
        .await;
    native
        .send(ClientMessage::MyPosition(Position::new(51, 60)))
        .await;
    walker
        .line_where("native MOVE", |l| {
            l == format!("MOVE id={native_id} x=51 y=60")
        })
        .await;
    // ...and its own echo.
    walker
        .line_where("own echo", |l| l.ends_with("(me)") && id_of(l) == walker_id)
        .await;

    // The native client sees the Python player join and move away from its start.
    let moved = native
        .until(|m| match m {
            ServerMessage::Positions(list) => list
                .iter()
                .find(|p| p.id == walker_id && p.position != Position::new(1, 1))
                .copied(),
            _ => None,
        })
        .await;
    assert_eq!(moved.id, walker_id);

    // When the native player leaves, the Python client prints the leave.
    drop(native);
    walker
        .line_where("native LEAVE", |l| l == format!("LEAVE id={native_id}"))
        .await;
    walker.child.kill().await.ok();
    server.stop().await;
}

#[tokio::test]
async fn two_python_walkers_see_each_other_join_move_and_leave() {
    let server = TestServer::start().await;
    let port = server.addrs.positions.port();
    let mut a = PythonWalker::spawn(port, &["--start", "10", "10", "--interval", "0.05"]);
    let a_id = id_of(
        &a.line_where("connected", |l| l.starts_with("connected id="))
            .await,
    );
    let mut b = PythonWalker::spawn(
        port,
        &["--start", "-10", "-10", "--no-move", "--duration", "1"],
    );
    let b_id = id_of(
        &b.line_where("connected", |l| l.starts_with("connected id="))
            .await,
    );
    b.line_where("A in B's view", |l| {
        (l.starts_with("JOIN") || l.starts_with("MOVE")) && id_of(l) == a_id
    })
    .await;
    a.line_where("B joins", |l| l == format!("JOIN id={b_id} x=-10 y=-10"))
        .await;
    a.line_where("B leaves", |l| l == format!("LEAVE id={b_id}"))
        .await;
    let status = tokio::time::timeout(PATIENCE, b.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    a.child.kill().await.ok();
    server.stop().await;
}
