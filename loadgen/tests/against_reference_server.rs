//! Runs the load modes for real against the Python reference server
//! (`bench/reference_server.py`, started on port 0 for each test).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use loadgen::math::{MathConfig, run as run_math};
use loadgen::positions::{PositionsConfig, run as run_positions};

struct ReferenceServer {
    child: Child,
    math: u16,
    positions: u16,
}

impl ReferenceServer {
    fn start() -> ReferenceServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/reference_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([
                "--host",
                "127.0.0.1",
                "--test-port",
                "0",
                "--math-port",
                "0",
                "--positions-port",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs bench/reference_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the server prints its ports");
        // "listening test=<p> math=<p> positions=<p>"
        let port = |key: &str| -> u16 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        let (math, positions) = (port("math="), port("positions="));
        ReferenceServer {
            child,
            math,
            positions,
        }
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_positions_clients_see_their_echoes_and_converge() {
    let server = ReferenceServer::start();
    let config = PositionsConfig::new(
        format!("127.0.0.1:{}", server.positions),
        5,
        20.0,
        Duration::from_secs(2),
    );
    let report = run_positions(config).await.expect("the run starts");
    assert_eq!(report.clients_connected, 5, "{report:#?}");
    assert_eq!(report.errors.total, 0, "{report:#?}");
    assert!(report.convergence.converged, "{report:#?}");
    assert_eq!(report.convergence.pairs_seen, 20, "{report:#?}");
    assert_eq!(report.convergence.clients_complete, 5, "{report:#?}");
    // 5 clients at 20 Hz for 2 s: about 200 positions, each echoed.
    assert!(report.positions_sent >= 180, "{report:#?}");
    assert!(
        report.echo.samples >= report.positions_sent * 9 / 10,
        "{report:#?}"
    );
    assert!(
        report.records_received >= report.positions_sent * 4,
        "{report:#?}"
    );
    assert!(report.drain_ms.is_some(), "{report:#?}");
    assert_eq!(
        report.anomalies.echo_unknown + report.anomalies.echo_reordered,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_math_replies_are_all_correct() {
    let server = ReferenceServer::start();
    let report = run_math(MathConfig {
        addr: format!("127.0.0.1:{}", server.math),
        connections: 2,
        duration: Duration::from_millis(500),
        pipeline: 8,
        label: None,
    })
    .await
    .expect("the run starts");
    assert_eq!(report.connected, 2, "{report:#?}");
    assert_eq!(report.errors.total, 0, "{report:#?}");
    assert_eq!(report.wrong_replies, 0, "{report:#?}");
    assert!(report.replies > 100, "{report:#?}");
    assert!(report.division_by_zero_replies > 0, "{report:#?}");
}

#[tokio::test]
async fn connection_refused_is_counted_not_fatal() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = PositionsConfig::new(
        format!("127.0.0.1:{port}"),
        3,
        10.0,
        Duration::from_millis(100),
    );
    let report = run_positions(config).await.expect("the run starts");
    assert_eq!(report.clients_connected, 0);
    assert_eq!(report.errors.connect_failed, 3);
    assert_eq!(report.verdict, "collapsed");
}
