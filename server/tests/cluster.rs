//! Several nodes sharing one world over a real `nats-server` (started by each
//! test on a loopback port of its choice), with real clients on real sockets.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::{Legacy, Nats, NodeProcess};
use common::*;
use shared::native::{ClientMessage, ServerMessage};

/// Players of a killed node must be gone from the others within this.
const NODE_LOSS_BUDGET: Duration = Duration::from_secs(5);
/// After NATS comes back, the nodes must agree again within this.
const RECOVERY_BUDGET: Duration = Duration::from_secs(10);

async fn node(nats: &Nats, id: u16) -> TestServer {
    node_in(nats, id, "gameworld").await
}

async fn node_in(nats: &Nats, id: u16, world: &str) -> TestServer {
    let url = nats.url();
    let world = world.to_owned();
    TestServer::with(move |c| {
        c.cluster = Some(url);
        c.node_id = id;
        c.world = world;
    })
    .await
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
    let mut doomed = NodeProcess::start(&nats.url(), 2, "gameworld").await;
    let mut on_a = Legacy::connect(a.addrs.positions).await;
    let mut victim = Legacy::connect(doomed.positions()).await;
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

    let mut first = NodeProcess::start(&nats.url(), 2, "gameworld").await;
    let mut old = Legacy::connect(first.positions()).await;
    old.move_until_seen_by(&mut on_a, (1, 1), PATIENCE).await;
    let old_id = old.id;
    first.kill();
    on_a.expect(PATIENCE, "the old life's leave", |r| {
        r.id == old_id && r.is_leave()
    })
    .await;

    // The node comes back (a new life): its first client's snapshot already
    // holds node 1's player, and node 1 sees the newcomer.
    let second = NodeProcess::start(&nats.url(), 2, "gameworld").await;
    let mut new = Legacy::connect(second.positions()).await;
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

    let _nats = Nats::start_on(Some(port));
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

#[tokio::test]
async fn two_worlds_on_one_nats_never_see_each_other() {
    let nats = Nats::start();
    let red_1 = node_in(&nats, 1, "red").await;
    let red_2 = node_in(&nats, 2, "red").await;
    let blue_3 = node_in(&nats, 3, "blue").await;
    let blue_4 = node_in(&nats, 4, "blue").await;
    // Blue's traffic flows on this NATS: a blue player reaches the other
    // blue node...
    let mut blue = Legacy::connect(blue_3.addrs.positions).await;
    let mut blue_watcher = Legacy::connect(blue_4.addrs.positions).await;
    blue.move_until_seen_by(&mut blue_watcher, (5, 5), PATIENCE)
        .await;
    // ...and red's too, after it.
    let mut red = Legacy::connect(red_1.addrs.positions).await;
    let mut red_watcher = Legacy::connect(red_2.addrs.positions).await;
    red.move_until_seen_by(&mut red_watcher, (6, 6), PATIENCE)
        .await;
    // Each world holds its own two players (the watchers' joins may still
    // be on their way) and knows only its own peer.
    for (name, server, own) in [
        ("red 1", &red_1, 1),
        ("red 2", &red_2, 2),
        ("blue 3", &blue_3, 3),
        ("blue 4", &blue_4, 4),
    ] {
        let world = &server.shared.world;
        eventually(&format!("exactly two players on {name}"), || {
            world.player_count() == 2 && world.remote_player_count(own) == 1
        })
        .await;
    }
    assert_eq!(metric(&red_2, "gameserver_cluster_nodes_seen"), Some(1));
    assert_eq!(metric(&blue_4, "gameserver_cluster_nodes_seen"), Some(1));
    // The red watcher never heard of the blue player: its next record is
    // red's sentinel move (one publisher, so NATS keeps the order).
    red.send(SENTINEL.0, SENTINEL.1).await;
    let blue_id = blue.id;
    let next = red_watcher
        .expect(PATIENCE, "red's sentinel", |r| {
            r.id == blue_id || (r.x, r.y) == SENTINEL
        })
        .await;
    assert_eq!(next.id, red.id, "a blue player reached the red world");
    for server in [red_1, red_2, blue_3, blue_4] {
        server.stop().await;
    }
}

/// A series of the server's Prometheus text, if present.
fn metric(server: &TestServer, name: &str) -> Option<i64> {
    server.shared.metrics.render().lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn a_sequence_gap_fetches_the_peer_s_state_while_nats_stays_up() {
    use server::cluster::Wire;
    use server::world::Event;
    use shared::legacy::Position;
    use shared::native::{PlayerInfo, PlayerKind, PlayerState};

    const PEER: u16 = 9;
    const EPOCH: u64 = 4242;
    let nats = Nats::start();
    let a = node_in(&nats, 1, "gap").await;
    // A listening client: node 1 is subscribed once it serves.
    let mut watcher = Legacy::connect(a.addrs.positions).await;
    // Node 9 is this test, speaking the cluster's messages on real NATS.
    let mut peer = RawNats::connect(nats.port).await;
    peer.subscribe("gap.sync.9").await;
    let info = |n: i32, name: &str| PlayerInfo {
        id: (i32::from(PEER) << 24) | n,
        name: name.into(),
        kind: PlayerKind::Legacy,
    };
    let (first, second) = (info(1, "first"), info(2, "second"));
    let batch = |seq, events| Wire::Events {
        node: PEER,
        epoch: EPOCH,
        seq,
        events,
    };
    peer.publish(
        "gap.bus",
        &batch(
            1,
            vec![
                Event::Joined(first.clone()),
                Event::Moved(first.id, Position::new(1, 1)),
            ],
        ),
    )
    .await;
    watcher
        .expect(PATIENCE, "batch 1 applied", |r| {
            r.id == first.id && (r.x, r.y) == (1, 1)
        })
        .await;
    // Batch 2 (the second player's arrival) is lost; batch 3 comes.
    peer.publish(
        "gap.bus",
        &batch(3, vec![Event::Moved(first.id, Position::new(3, 3))]),
    )
    .await;
    // Node 1 asks for the state instead of applying 3 over the hole.
    let reply = peer.request_on("gap.sync.9").await;
    let state = Wire::State {
        node: PEER,
        epoch: EPOCH,
        seq: 2,
        players: vec![
            PlayerState {
                info: first.clone(),
                position: Some(Position::new(1, 1)),
            },
            PlayerState {
                info: second.clone(),
                position: Some(Position::new(2, 2)),
            },
        ],
    };
    peer.publish(&reply, &state).await;
    // The state brings the second player; batch 3, held, follows it.
    let mut seen = std::collections::HashMap::new();
    while seen.get(&second.id) != Some(&(2, 2)) || seen.get(&first.id) != Some(&(3, 3)) {
        let record = watcher
            .next_within(PATIENCE)
            .await
            .unwrap_or_else(|| panic!("after the state, only saw {seen:?}"));
        seen.insert(record.id, (record.x, record.y));
    }
    assert_eq!(metric(&a, "gameserver_cluster_resyncs_total"), Some(1));
    a.stop().await;
}

#[tokio::test]
async fn a_node_shut_down_gracefully_has_its_players_leave_at_once_on_the_others() {
    /// Well under the 2.5 s after which a silent node counts as dead.
    const GOODBYE_BUDGET: Duration = Duration::from_secs(1);
    let nats = Nats::start();
    let a = node(&nats, 1).await;
    let mut leaving = NodeProcess::start(&nats.url(), 2, "gameworld").await;
    let mut on_a = Legacy::connect(a.addrs.positions).await;
    let mut player = Legacy::connect(leaving.positions()).await;
    player.move_until_seen_by(&mut on_a, (4, 4), PATIENCE).await;
    let id = player.id;
    let asked = std::time::Instant::now();
    leaving.terminate();
    on_a.expect(PATIENCE, "the leave of the stopped node's player", |r| {
        r.id == id && r.is_leave()
    })
    .await;
    let after = asked.elapsed();
    eprintln!("leave seen {after:?} after SIGTERM");
    assert!(
        after < GOODBYE_BUDGET,
        "the leave took {after:?}: the peer waited for the node to fall silent"
    );
    assert_eq!(a.shared.world.player_count(), 1, "only the local player");
    assert!(
        leaving.wait_exit(PATIENCE),
        "the node did not exit on SIGTERM"
    );
    a.stop().await;
}

#[tokio::test]
async fn a_node_stops_promptly_while_nats_is_down() {
    /// The goodbye is bounded by 500 ms; the rest is closing clients.
    const STOP_BUDGET: Duration = Duration::from_millis(1500);
    let mut nats = Nats::start();
    let a = node(&nats, 1).await;
    let mut player = Legacy::connect(a.addrs.positions).await;
    let id = player.id;
    player.send(1, 2).await;
    player
        .expect(PATIENCE, "its echo", |r| r.id == id && r.x == 1)
        .await;
    nats.kill();
    // The node has noticed: its heartbeats fail to go out.
    eventually("the node sees NATS gone", || {
        metric(&a, "gameserver_cluster_connected") == Some(0)
    })
    .await;
    let took = a.stop().await;
    assert!(took < STOP_BUDGET, "stopping took {took:?} without NATS");
}

/// Just enough of the NATS client protocol to play a node by hand.
struct RawNats {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    sids: u32,
}

impl RawNats {
    async fn connect(port: u16) -> RawNats {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to NATS");
        let (reader, writer) = stream.into_split();
        let mut nats = RawNats {
            reader: tokio::io::BufReader::new(reader),
            writer,
            sids: 0,
        };
        let info = nats.line().await;
        assert!(info.starts_with("INFO"), "NATS greets with INFO: {info}");
        nats.write(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
            .await;
        nats
    }

    async fn write(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.writer.write_all(bytes).await.expect("write to NATS");
    }

    async fn line(&mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        tokio::time::timeout(PATIENCE, self.reader.read_line(&mut line))
            .await
            .expect("NATS said something in time")
            .expect("read from NATS");
        line.trim_end().to_owned()
    }

    /// Subscribes and waits for NATS to have it (a PING's PONG).
    async fn subscribe(&mut self, subject: &str) {
        self.sids += 1;
        let sub = format!("SUB {subject} {}\r\nPING\r\n", self.sids);
        self.write(sub.as_bytes()).await;
        while self.line().await != "PONG" {}
    }

    async fn publish(&mut self, subject: &str, wire: &server::cluster::Wire) {
        let payload = wire.to_bytes();
        let head = format!("PUB {subject} {}\r\n", payload.len());
        self.write(head.as_bytes()).await;
        self.write(&payload).await;
        self.write(b"\r\n").await;
    }

    /// Waits for a request on `subject`; returns its reply subject.
    async fn request_on(&mut self, subject: &str) -> String {
        use tokio::io::AsyncReadExt;
        loop {
            let line = self.line().await;
            if line == "PING" {
                self.write(b"PONG\r\n").await;
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            // MSG <subject> <sid> [reply-to] <#bytes>
            if words.first() != Some(&"MSG") {
                continue;
            }
            let len: usize = words.last().unwrap().parse().expect("a payload length");
            let mut payload = vec![0; len + 2];
            self.reader
                .read_exact(&mut payload)
                .await
                .expect("the payload");
            if words[1] == subject && words.len() == 5 {
                return words[3].to_owned();
            }
        }
    }
}
