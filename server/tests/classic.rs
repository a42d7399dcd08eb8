//! The classic compatibility switches (`--legacy-welcome off`,
//! `--positions-records hh`), over real sockets: what a script from the
//! original demos sees, and that native players see it unchanged.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use server::config::{LegacyWelcome, PositionsRecords};
use shared::legacy::Position;
use shared::native::{ClientMessage, PlayerKind, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::process::Command;

/// A server with both classic switches on.
async fn classic_server() -> TestServer {
    TestServer::with(|c| {
        c.legacy_welcome = LegacyWelcome::Off;
        c.positions_records = PositionsRecords::Hh;
    })
    .await
}

/// `struct.pack('<hh', x, y)`, written out by hand so the test does not
/// trust the codec it checks.
fn hh(x: i16, y: i16) -> Vec<u8> {
    [x.to_le_bytes(), y.to_le_bytes()].concat()
}

/// `struct.pack('<ihh', 4, a, b) + b'SUMA'`, by hand.
fn suma(a: i16, b: i16) -> Vec<u8> {
    [
        4i32.to_le_bytes().as_slice(),
        &a.to_le_bytes(),
        &b.to_le_bytes(),
        b"SUMA",
    ]
    .concat()
}

/// The math service's `<id` reply: status 0 and `value`.
fn suma_reply(value: f64) -> Vec<u8> {
    [0i32.to_le_bytes().as_slice(), &value.to_le_bytes()].concat()
}

/// Connects a classic positions client and waits until the world counts
/// it, since no greeting says it is in.
async fn connect_classic(server: &TestServer) -> TcpStream {
    let before = server.shared.world.player_count();
    let stream = TcpStream::connect(server.addrs.positions)
        .await
        .expect("connect");
    let world = &server.shared.world;
    eventually("the classic client joins the world", || {
        world.player_count() > before
    })
    .await;
    stream
}

/// A native player that has had its first snapshot, so every later change
/// reaches it as a message of its own.
async fn join_native(server: &TestServer, name: &str) -> NativeClient {
    let mut native = NativeClient::join(server.addrs.game, name).await;
    native
        .until(|m| matches!(m, ServerMessage::Snapshot { .. }).then_some(()))
        .await;
    native
}

/// Reads 4-byte packets until each of `wanted` has arrived; any other
/// packet fails. (A snapshot may repeat a move that follows it.)
async fn read_until_seen(stream: &mut TcpStream, wanted: &[Vec<u8>]) {
    let mut missing: Vec<&Vec<u8>> = wanted.iter().collect();
    while !missing.is_empty() {
        let packet = read_exact(stream, 4).await;
        assert!(wanted.contains(&packet), "unexpected packet {packet:02x?}");
        missing.retain(|w| **w != packet);
    }
}

#[tokio::test]
async fn welcome_off_sends_no_byte_before_the_client_speaks() {
    let server = TestServer::with(|c| {
        c.legacy_welcome = LegacyWelcome::Off;
        c.probe_interval_ms = 1000;
    })
    .await;
    let mut positions = TcpStream::connect(server.addrs.positions).await.unwrap();
    let mut math = TcpStream::connect(server.addrs.math).await.unwrap();
    let mut test = TcpStream::connect(server.addrs.test).await.unwrap();
    // Each still has an id in the registry.
    let registry = &server.shared.registry;
    eventually("all three registered", || registry.len() == 3).await;
    // On each, the first bytes are the answer to what the client says (or
    // the first probe), never a greeting: a 4-byte id before it would shift
    // every field read below. The first thing the test-packets service
    // sends is probe 1, counting all three clients.
    let probe = read_exact(&mut test, 8).await;
    assert_eq!(probe, [1i32.to_le_bytes(), 3i32.to_le_bytes()].concat());
    // With the default `ihh`, the position echo is an `<ihh` record whose
    // id is the one the client was never told.
    send_position(&mut positions, 3, 4).await;
    let record = read_record(&mut positions).await;
    assert!(record.id > 0);
    assert_eq!((record.x, record.y), (3, 4));
    math.write_all(&suma(3, 4)).await.unwrap();
    assert_eq!(read_exact(&mut math, 12).await, suma_reply(7.0));
    server.stop().await;
}

#[tokio::test]
async fn math_answers_id_with_the_welcome_off() {
    let server = TestServer::with(|c| c.legacy_welcome = LegacyWelcome::Off).await;
    let mut math = TcpStream::connect(server.addrs.math).await.unwrap();
    math.write_all(&suma(3, 4)).await.unwrap();
    // The first 12 bytes are the `<id` reply, not a greeting.
    assert_eq!(read_exact(&mut math, 12).await, suma_reply(7.0));
    // And nothing follows it: the next bytes are the next reply.
    math.write_all(&suma(10, 20)).await.unwrap();
    assert_eq!(read_exact(&mut math, 12).await, suma_reply(30.0));
    server.stop().await;
}

#[tokio::test]
async fn hh_relays_each_move_as_the_4_bytes_sent_to_everyone_the_mover_included() {
    let server = classic_server().await;
    let mut a = connect_classic(&server).await;
    let mut b = connect_classic(&server).await;
    // One move alone, then two in one write.
    a.write_all(&hh(10, -20)).await.unwrap();
    assert_eq!(read_exact(&mut b, 4).await, hh(10, -20));
    a.write_all(&[hh(11, -21), hh(-300, 4000)].concat())
        .await
        .unwrap();
    assert_eq!(
        read_exact(&mut b, 8).await,
        [hh(11, -21), hh(-300, 4000)].concat()
    );
    // The mover gets its own echo, the same bytes.
    assert_eq!(
        read_exact(&mut a, 12).await,
        [hh(10, -20), hh(11, -21), hh(-300, 4000)].concat()
    );
    // B moves: A sees it, B sees itself.
    b.write_all(&hh(1, 2)).await.unwrap();
    assert_eq!(read_exact(&mut a, 4).await, hh(1, 2));
    assert_eq!(read_exact(&mut b, 4).await, hh(1, 2));
    // No leave marker: when A goes, B receives nothing before its own next
    // echo.
    drop(a);
    let world = &server.shared.world;
    eventually("A leaves the world", || world.player_count() == 1).await;
    b.write_all(&hh(SENTINEL.0, SENTINEL.1)).await.unwrap();
    assert_eq!(
        read_exact(&mut b, 4).await,
        hh(SENTINEL.0, SENTINEL.1),
        "something arrived before the sentinel"
    );
    server.stop().await;
}

#[tokio::test]
async fn hh_newcomer_first_gets_one_packet_per_current_player() {
    let server = classic_server().await;
    let mut a = connect_classic(&server).await;
    let mut native = join_native(&server, "rusty").await;
    let _silent = connect_classic(&server).await; // no position: no packet
    a.write_all(&hh(1, 2)).await.unwrap();
    native
        .send(ClientMessage::MyPosition(Position::new(3, 4)))
        .await;
    // Both moves are in the world once A has seen them.
    let mut expected = vec![hh(1, 2), hh(3, 4)];
    read_until_seen(&mut a, &expected).await;
    expected.sort();

    let mut newcomer = connect_classic(&server).await;
    let mut snapshot = vec![
        read_exact(&mut newcomer, 4).await,
        read_exact(&mut newcomer, 4).await,
    ];
    snapshot.sort();
    assert_eq!(snapshot, expected, "one <hh per player with a position");
    // Nothing more: the next packet is the newcomer's own echo.
    newcomer
        .write_all(&hh(SENTINEL.0, SENTINEL.1))
        .await
        .unwrap();
    assert_eq!(
        read_exact(&mut newcomer, 4).await,
        hh(SENTINEL.0, SENTINEL.1),
        "something arrived before the sentinel"
    );
    server.stop().await;
}

#[tokio::test]
async fn hh_relays_the_reserved_pair_one_step_inside_like_every_view() {
    let server = classic_server().await;
    let mut a = connect_classic(&server).await;
    let mut native = join_native(&server, "watcher").await;
    a.write_all(&hh(i16::MIN, i16::MIN)).await.unwrap();
    assert_eq!(read_exact(&mut a, 4).await, hh(-32767, -32767));
    let seen = native
        .until(|m| match m {
            ServerMessage::Positions(list) => list.first().map(|p| p.position),
            _ => None,
        })
        .await;
    assert_eq!(
        seen,
        Position::new(-32767, -32767),
        "the same for native players"
    );
    // A single -32768 coordinate is an ordinary value, relayed as sent.
    a.write_all(&hh(i16::MIN, 5)).await.unwrap();
    assert_eq!(read_exact(&mut a, 4).await, hh(i16::MIN, 5));
    server.stop().await;
}

#[tokio::test]
async fn native_client_sees_classic_players_join_move_and_leave_with_their_ids() {
    let server = classic_server().await;
    let mut native = join_native(&server, "rusty").await;
    let mut classic = connect_classic(&server).await;
    let native_id = native.id;
    let joined = native
        .until(|m| match m {
            ServerMessage::PlayerJoined(info) if info.id != native_id => Some(info.clone()),
            _ => None,
        })
        .await;
    assert_eq!(joined.kind, PlayerKind::Legacy);
    assert!(joined.id > native_id, "a fresh id from the shared space");
    assert_eq!(joined.name, format!("py-{}", joined.id));

    classic.write_all(&hh(5, 6)).await.unwrap();
    let moved = native
        .until(|m| match m {
            ServerMessage::Positions(list) => list.iter().find(|p| p.id == joined.id).copied(),
            _ => None,
        })
        .await;
    assert_eq!(moved.position, Position::new(5, 6));
    assert_eq!(
        server.shared.world.position_of(joined.id),
        Some(Position::new(5, 6))
    );

    // The native player's moves reach the classic client as bare `<hh`.
    native
        .send(ClientMessage::MyPosition(Position::new(-7, 8)))
        .await;
    loop {
        let packet = read_exact(&mut classic, 4).await;
        if packet == hh(-7, 8) {
            break;
        }
        assert_eq!(packet, hh(5, 6), "only its own echo may come first");
    }

    drop(classic);
    let left = native
        .until(|m| match m {
            ServerMessage::PlayerLeft { id } => Some(*id),
            _ => None,
        })
        .await;
    assert_eq!(left, joined.id);
    server.stop().await;
}

#[tokio::test]
async fn hh_with_the_welcome_on_sends_the_id_then_bare_packets() {
    let server = TestServer::with(|c| c.positions_records = PositionsRecords::Hh).await;
    let (mut a, _) = connect_legacy(server.addrs.positions).await;
    send_position(&mut a, 9, -9).await;
    assert_eq!(read_exact(&mut a, 4).await, hh(9, -9));
    server.stop().await;
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../clients/python")
        .join(name)
}

/// Starts the real binary with the welcome switched off through the
/// environment and `hh` through the flag (both ways of setting a switch),
/// every port 0; returns it, the addresses it logged, and whether it logged
/// that the classic switches are on.
async fn start_classic_binary() -> (tokio::process::Child, HashMap<String, SocketAddr>, bool) {
    let mut command = Command::new(server_binary());
    command.env("GAMESERVER_LEGACY_WELCOME", "off");
    let (child, addrs, log) = spawn_server(command, &["--positions-records", "hh"]).await;
    let classic_logged = log.lock().unwrap().iter().any(|line| {
        line.contains("classic compatibility switches on")
            && line.contains("legacy_welcome=off")
            && line.contains("positions_records=hh")
    });
    (child, addrs, classic_logged)
}

#[tokio::test]
async fn python_classic_client_speaks_to_a_server_started_with_both_switches() {
    let (mut server, addrs, classic_logged) = start_classic_binary().await;
    assert!(classic_logged, "the start-up log names both switches");
    let positions = addrs["positions"];

    // A raw classic mover already in the world.
    let mut mover = TcpStream::connect(positions).await.unwrap();
    mover.write_all(&hh(100, 200)).await.unwrap();
    assert_eq!(
        read_exact(&mut mover, 4).await,
        hh(100, 200),
        "no greeting first"
    );

    let python = Command::new("python3")
        .arg(script("positions_client.py"))
        .args(["--classic", "--host", "127.0.0.1", "--port"])
        .arg(positions.port().to_string())
        .args(["--start", "7", "8", "--no-move", "--duration", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    // The Python client's position reaches the mover (after, maybe, a
    // second copy of its own: its snapshot may have caught its first move)...
    loop {
        let packet = read_exact(&mut mover, 4).await;
        if packet == hh(7, 8) {
            break;
        }
        assert_eq!(packet, hh(100, 200));
    }
    // ...and the mover's next one reaches the Python client.
    mover.write_all(&hh(101, 201)).await.unwrap();

    let output = tokio::time::timeout(Duration::from_secs(20), python.wait_with_output())
        .await
        .expect("python client finished in time")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("connected")),
        "{stdout}"
    );
    let packets = &lines[1..];
    // A snapshot may repeat a position it also gets as a move, so check
    // what arrived and in which order, not how often.
    assert!(
        packets
            .iter()
            .all(|l| ["POS x=100 y=200", "POS x=7 y=8", "POS x=101 y=201"].contains(l)),
        "only the three positions sent, as <hh:\n{stdout}"
    );
    let first = |wanted: &str| packets.iter().position(|l| *l == wanted);
    let (old, mine, new) = (
        first("POS x=100 y=200"),
        first("POS x=7 y=8"),
        first("POS x=101 y=201"),
    );
    assert!(old.is_some() && mine.is_some() && new.is_some(), "{stdout}");
    assert!(old < new && mine < new, "{stdout}");
    assert_eq!(packets.last(), Some(&"POS x=101 y=201"), "{stdout}");

    server.start_kill().ok();
    server.wait().await.ok();
}
