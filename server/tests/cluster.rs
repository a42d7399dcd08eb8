//! Several nodes sharing one world over a real `nats-server` (started by each
//! test on a free loopback port), with real clients on real sockets.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use shared::legacy::PositionRecord;
use shared::native::{ClientMessage, ServerMessage};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Players of a killed node must be gone from the others within this.
const NODE_LOSS_BUDGET: Duration = Duration::from_secs(5);
/// After NATS comes back, the nodes must agree again within this.
const RECOVERY_BUDGET: Duration = Duration::from_secs(10);

/// A `nats-server` child process on a loopback port; killed on drop.
struct Nats {
    port: u16,
    child: Child,
}

impl Nats {
    fn start() -> Nats {
        let port = free_port();
        Nats::start_on(port)
    }

    fn start_on(port: u16) -> Nats {
        let child = match Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => panic!(
                "cannot start nats-server ({err}); install it (Debian: apt-get install nats-server; .ci/run does)"
            ),
        };
        let nats = Nats { port, child };
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn node(nats: &Nats, id: u16) -> TestServer {
    let url = nats.url();
    TestServer::with(move |c| {
        c.cluster = Some(url);
        c.node_id = id;
    })
    .await
}

/// The real binary as a cluster node, so it can be SIGKILLed.
struct NodeProcess {
    child: Child,
    positions: SocketAddr,
}

impl NodeProcess {
    fn start(nats: &Nats, id: u16) -> NodeProcess {
        let positions = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_gameserver"))
            .args([
                "--host",
                "127.0.0.1",
                "--game-port",
                "0",
                "--test-port",
                "0",
            ])
            .args([
                "--math-port",
                "0",
                "--positions-port",
                &positions.to_string(),
            ])
            .args(["--cluster", &nats.url(), "--node-id", &id.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server binary");
        NodeProcess {
            child,
            positions: SocketAddr::from(([127, 0, 0, 1], positions)),
        }
    }

    async fn connect_legacy(&self) -> Legacy {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if TcpStream::connect(self.positions).await.is_ok() {
                return Legacy::connect(self.positions).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no goodbye of any kind
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A legacy positions client that reads records cancel-safely (bytes read
/// stay buffered), so waits can be bounded by any budget.
struct Legacy {
    stream: TcpStream,
    buf: BytesMut,
    id: i32,
}

impl Legacy {
    async fn connect(addr: SocketAddr) -> Legacy {
        let (stream, id) = connect_legacy(addr).await;
        Legacy {
            stream,
            buf: BytesMut::new(),
            id,
        }
    }

    async fn send(&mut self, x: i16, y: i16) {
        send_position(&mut self.stream, x, y).await;
    }

    /// The first record within `budget` that `wanted` accepts.
    async fn record_within(
        &mut self,
        budget: Duration,
        mut wanted: impl FnMut(&PositionRecord) -> bool,
    ) -> Option<PositionRecord> {
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            while self.buf.len() >= PositionRecord::SIZE {
                let bytes = self.buf.split_to(PositionRecord::SIZE);
                let record = PositionRecord {
                    id: i32::from_le_bytes(bytes[..4].try_into().unwrap()),
                    x: i16::from_le_bytes(bytes[4..6].try_into().unwrap()),
                    y: i16::from_le_bytes(bytes[6..].try_into().unwrap()),
                };
                if wanted(&record) {
                    return Some(record);
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) => panic!("player {} was disconnected", self.id),
                Ok(Ok(_)) => {}
                Ok(Err(err)) => panic!("read: {err}"),
            }
        }
    }

    async fn expect(
        &mut self,
        budget: Duration,
        what: &str,
        wanted: impl FnMut(&PositionRecord) -> bool,
    ) -> PositionRecord {
        self.record_within(budget, wanted)
            .await
            .unwrap_or_else(|| panic!("player {} never got {what} within {budget:?}", self.id))
    }

    /// Moves to (x, y) until `watcher` sees it there (the first moves may go
    /// out before the nodes have found each other).
    async fn move_until_seen_by(
        &mut self,
        watcher: &mut Legacy,
        (x, y): (i16, i16),
        budget: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + budget;
        let id = self.id;
        loop {
            self.send(x, y).await;
            let seen = watcher
                .record_within(Duration::from_millis(300), |r| {
                    r.id == id && (r.x, r.y) == (x, y)
                })
                .await;
            if seen.is_some() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "player {id} at ({x}, {y}) never reached player {}",
                watcher.id
            );
        }
    }
}

#[tokio::test]
async fn legacy_clients_on_two_nodes_see_each_other_with_node_ids() {
    let nats = Nats::start();
    let a = node(&nats, 1).await;
    let b = node(&nats, 2).await;
    let mut on_a = Legacy::connect(a.addrs.positions).await;
    let mut on_b = Legacy::connect(b.addrs.positions).await;
    assert_eq!(on_a.id >> 24, 1, "node 1's ids carry its number");
    assert_eq!(on_b.id >> 24, 2);
    on_a.move_until_seen_by(&mut on_b, (10, 20), PATIENCE).await;
    on_b.move_until_seen_by(&mut on_a, (-30, 40), PATIENCE)
        .await;
    // Each player's own echo still comes from its own node.
    on_a.send(11, 21).await;
    let id_a = on_a.id;
    let echo = on_a
        .expect(PATIENCE, "its echo", |r| r.id == id_a && r.x == 11)
        .await;
    assert_eq!((echo.x, echo.y), (11, 21));
    let id_b = on_b.id;
    drop(on_b);
    on_a.expect(PATIENCE, "a leave marker across nodes", |r| {
        r.id == id_b && r.is_leave()
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_native_client_on_one_node_sees_a_legacy_player_on_another() {
    let nats = Nats::start();
    let a = node(&nats, 1).await;
    let b = node(&nats, 2).await;
    let mut native = NativeClient::join(a.addrs.game, "watcher").await;
    assert_eq!(native.id >> 24, 1);
    let mut walker = Legacy::connect(b.addrs.positions).await;
    let walker_id = walker.id;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut x = 0;
    let seen = loop {
        x += 1;
        walker.send(x, 5).await;
        let found = tokio::time::timeout(
            Duration::from_millis(300),
            native.until(|m| match m {
                ServerMessage::Positions(list) => list
                    .iter()
                    .find(|p| p.id == walker_id)
                    .map(|p| (p.position.x, p.position.y)),
                _ => None,
            }),
        )
        .await;
        if let Ok(position) = found {
            break position;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw the walker"
        );
    };
    assert_eq!(seen.1, 5);
    native.send(ClientMessage::Bye).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_killed_node_s_players_leave_within_five_seconds() {
    let nats = Nats::start();
    let a = node(&nats, 1).await;
    let mut doomed = NodeProcess::start(&nats, 2);
    let mut on_a = Legacy::connect(a.addrs.positions).await;
    let mut victim = doomed.connect_legacy().await;
    let victim_id = victim.id;
    assert_eq!(victim_id >> 24, 2);
    victim.move_until_seen_by(&mut on_a, (7, 7), PATIENCE).await;
    doomed.kill();
    let killed = std::time::Instant::now();
    on_a.expect(
        NODE_LOSS_BUDGET,
        "the dead node's player's leave marker",
        |r| r.id == victim_id && r.is_leave(),
    )
    .await;
    eprintln!("dead node noticed after {:?}", killed.elapsed());
    assert_eq!(
        a.shared.world.player_count(),
        1,
        "only the local player is left"
    );
    a.stop().await;
}

#[tokio::test]
async fn a_rejoining_node_gets_the_world_and_is_seen_again() {
    let nats = Nats::start();
    let a = node(&nats, 1).await;
    let mut on_a = Legacy::connect(a.addrs.positions).await;
    let id_a = on_a.id;
    on_a.send(3, 4).await;
    on_a.expect(PATIENCE, "its echo", |r| r.id == id_a && r.x == 3)
        .await;

    let mut first = NodeProcess::start(&nats, 2);
    let mut old = first.connect_legacy().await;
    old.move_until_seen_by(&mut on_a, (1, 1), PATIENCE).await;
    let old_id = old.id;
    first.kill();
    on_a.expect(PATIENCE, "the old life's leave", |r| {
        r.id == old_id && r.is_leave()
    })
    .await;

    // The node comes back (a new life): its first client's snapshot already
    // holds node 1's player, and node 1 sees the newcomer.
    let second = NodeProcess::start(&nats, 2);
    let mut new = second.connect_legacy().await;
    let snapshot = new
        .expect(PATIENCE, "node 1's player", |r| r.id == id_a)
        .await;
    assert_eq!(
        (snapshot.x, snapshot.y),
        (3, 4),
        "the rejoined node had the world"
    );
    new.move_until_seen_by(&mut on_a, (9, 9), PATIENCE).await;
    a.stop().await;
}

#[tokio::test]
async fn nodes_keep_serving_through_a_nats_outage_and_resynchronise_after() {
    let mut nats = Nats::start();
    let port = nats.port;
    let a = node(&nats, 1).await;
    let b = node(&nats, 2).await;
    let mut on_a = Legacy::connect(a.addrs.positions).await;
    let mut on_b = Legacy::connect(b.addrs.positions).await;
    let id_a = on_a.id;
    on_a.move_until_seen_by(&mut on_b, (1, 1), PATIENCE).await;

    nats.kill();
    // Each node still serves its own players: an echo comes back.
    on_a.send(50, 60).await;
    let echo = on_a
        .expect(PATIENCE, "its echo", |r| r.id == id_a && r.x == 50)
        .await;
    assert_eq!(echo.y, 60);
    // The other node lets the unreachable players go.
    on_b.expect(PATIENCE, "a leave for the unreachable player", |r| {
        r.id == id_a && r.is_leave()
    })
    .await;

    let _nats = Nats::start_on(port);
    let back = std::time::Instant::now();
    // The move made during the outage reaches node 2 without being resent.
    let seen = on_b
        .expect(RECOVERY_BUDGET, "node 1's player back", |r| {
            r.id == id_a && !r.is_leave()
        })
        .await;
    assert_eq!((seen.x, seen.y), (50, 60));
    eprintln!("resynchronised {:?} after NATS came back", back.elapsed());
    // And traffic flows both ways again.
    on_b.move_until_seen_by(&mut on_a, (70, 80), RECOVERY_BUDGET)
        .await;
    a.stop().await;
    b.stop().await;
}
