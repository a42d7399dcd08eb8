//! The native protocol, and native and legacy players sharing one world.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use shared::legacy::{Position, PositionRecord};
use shared::math::{MathOp, MathStatus};
use shared::native::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn handshake_then_snapshot_including_myself() {
    let server = TestServer::start().await;
    let mut alice = NativeClient::join(server.addrs.game, "alice").await;
    let players = alice
        .until(|m| match m {
            ServerMessage::Snapshot { players } => Some(players.clone()),
            _ => None,
        })
        .await;
    assert_eq!(players.len(), 1);
    assert_eq!(
        players[0].info,
        PlayerInfo {
            id: alice.id,
            name: "alice".into(),
            kind: PlayerKind::Native
        }
    );
    assert_eq!(players[0].position, None);
    server.stop().await;
}

#[tokio::test]
async fn wrong_protocol_version_is_rejected_with_a_reason() {
    let server = TestServer::start().await;
    let stream = TcpStream::connect(server.addrs.game).await.unwrap();
    let mut framed = tokio_util::codec::Framed::new(stream, FrameCodec::<ServerMessage>::default());
    framed
        .send(ClientMessage::Hello {
            protocol_version: 99,
            name: "future".into(),
        })
        .await
        .unwrap();
    let mut client = NativeClient { framed, id: 0 };
    assert_eq!(
        client.next().await,
        ServerMessage::Rejected {
            reason: RejectReason::UnsupportedVersion {
                client: 99,
                server: PROTOCOL_VERSION
            },
            server_protocol_version: PROTOCOL_VERSION,
        }
    );
    expect_closed(client.framed.get_mut()).await;
    server.stop().await;
}

#[tokio::test]
async fn native_and_legacy_players_see_each_other_move_join_and_leave() {
    let server = TestServer::start().await;
    let mut native = NativeClient::join(server.addrs.game, "bevy").await;
    let (mut legacy, legacy_id) = connect_legacy(server.addrs.positions).await;
    let joined = native
        .until(|m| match m {
            ServerMessage::PlayerJoined(info) if info.id == legacy_id => Some(info.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        joined,
        PlayerInfo {
            id: legacy_id,
            name: format!("py-{legacy_id}"),
            kind: PlayerKind::Legacy
        }
    );

    native
        .send(ClientMessage::MyPosition(Position::new(100, 200)))
        .await;
    let seen = read_record_until(&mut legacy, |r| r.id == native.id).await;
    assert_eq!(
        seen,
        PositionRecord {
            id: native.id,
            x: 100,
            y: 200
        }
    );

    send_position(&mut legacy, -3, 4).await;
    let moved = native
        .until(|m| match m {
            ServerMessage::Positions(list) => list.iter().find(|p| p.id == legacy_id).copied(),
            _ => None,
        })
        .await;
    assert_eq!(moved.position, Position::new(-3, 4));

    drop(legacy);
    let left = native
        .until(|m| match m {
            ServerMessage::PlayerLeft { id } => Some(*id),
            _ => None,
        })
        .await;
    assert_eq!(left, legacy_id);

    let (mut late, _) = connect_legacy(server.addrs.positions).await;
    let native_id = native.id;
    drop(native);
    let marker = read_record_until(&mut late, |r| r.is_leave()).await;
    assert_eq!(marker, PositionRecord::leave(native_id));
    server.stop().await;
}

#[tokio::test]
async fn math_queries_and_ping_are_answered() {
    let server = TestServer::start().await;
    let mut client = NativeClient::join(server.addrs.game, "m").await;
    client
        .send(ClientMessage::MathQuery {
            request_id: 1,
            op: MathOp::Division,
            a: 7,
            b: 2,
        })
        .await;
    client
        .send(ClientMessage::MathQuery {
            request_id: 2,
            op: MathOp::Division,
            a: 7,
            b: 0,
        })
        .await;
    client.send(ClientMessage::Ping { nonce: 77 }).await;
    let mut answers = Vec::new();
    let mut pong = None;
    while answers.len() < 2 || pong.is_none() {
        match client.next().await {
            ServerMessage::MathAnswer {
                request_id,
                status,
                value,
            } => answers.push((request_id, status, value)),
            ServerMessage::Pong { nonce } => pong = Some(nonce),
            _ => {}
        }
    }
    assert_eq!(
        answers,
        vec![
            (1, MathStatus::Ok, 3.5),
            (2, MathStatus::DivisionByZero, 0.0)
        ]
    );
    assert_eq!(pong, Some(77));
    server.stop().await;
}

#[tokio::test]
async fn shutdown_sends_goodbye_to_native_clients() {
    let server = TestServer::start().await;
    let mut client = NativeClient::join(server.addrs.game, "g").await;
    let (mut legacy, _) = connect_legacy(server.addrs.positions).await;
    let took = server.stop().await;
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    let reason = client.goodbye().await;
    assert!(reason.contains("shutting down"), "{reason}");
    expect_closed(&mut legacy).await;
}

#[tokio::test]
async fn handshake_timeout_closes_a_silent_client() {
    let server = TestServer::with(|c| c.handshake_timeout_ms = 200).await;
    let mut stream = TcpStream::connect(server.addrs.game).await.unwrap();
    expect_closed(&mut stream).await;
    eventually("registry empty", || server.shared.registry.is_empty()).await;
    server.stop().await;
}

#[tokio::test]
async fn idle_native_client_is_pinged_then_dropped() {
    let server = TestServer::with(|c| c.idle_timeout_ms = 300).await;
    let mut client = NativeClient::join(server.addrs.game, "idle").await;
    client
        .until(|m| matches!(m, ServerMessage::Ping { .. }).then_some(()))
        .await;
    let reason = client.goodbye().await;
    assert!(reason.contains("no message"), "{reason}");
    server.stop().await;
}

#[tokio::test]
async fn oversized_frame_closes_only_that_client() {
    let server = TestServer::with(|c| c.max_frame_bytes = 1024).await;
    let mut good = NativeClient::join(server.addrs.game, "good").await;
    let mut bad = TcpStream::connect(server.addrs.game).await.unwrap();
    bad.write_all(&native_frame(&ClientMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        name: "bad".into(),
    }))
    .await
    .unwrap();
    bad.write_all(&(10_000_000u32).to_le_bytes()).await.unwrap();
    expect_closed(&mut bad).await;
    good.send(ClientMessage::Ping { nonce: 5 }).await;
    assert_eq!(
        good.until(|m| match m {
            ServerMessage::Pong { nonce } => Some(*nonce),
            _ => None,
        })
        .await,
        5
    );
    server.stop().await;
}

/// Connects, says Hello, then trickles one byte every 100 ms into a frame
/// that claims 1,000 bytes and never completes. Returns the reader side and
/// the trickling task.
async fn start_trickler(
    addr: std::net::SocketAddr,
) -> (
    tokio_util::codec::FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec<ServerMessage>>,
    tokio::task::JoinHandle<()>,
) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&native_frame(&ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            name: "trickler".into(),
        }))
        .await
        .unwrap();
    let (reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        let _ = writer.write_all(&1000u32.to_le_bytes()).await;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(&[0]).await.is_err() {
                return;
            }
        }
    });
    (
        tokio_util::codec::FramedRead::new(reader, FrameCodec::<ServerMessage>::default()),
        trickle,
    )
}

/// The server's Goodbye reason, skipping everything before it.
async fn goodbye_of(
    reader: &mut tokio_util::codec::FramedRead<
        tokio::net::tcp::OwnedReadHalf,
        FrameCodec<ServerMessage>,
    >,
) -> String {
    loop {
        let message = tokio::time::timeout(PATIENCE, reader.next())
            .await
            .expect("a goodbye in time")
            .expect("connection open")
            .expect("decodable frame");
        if let ServerMessage::Goodbye { reason } = message {
            return reason;
        }
    }
}

#[tokio::test]
async fn trickled_bytes_do_not_keep_an_idle_client_alive() {
    let server = TestServer::with(|c| {
        c.idle_timeout_ms = 900;
        c.message_timeout_ms = 60_000;
    })
    .await;
    let (mut reader, trickle) = start_trickler(server.addrs.game).await;
    let reason = goodbye_of(&mut reader).await;
    assert!(reason.contains("no message"), "{reason}");
    trickle.abort();
    server.stop().await;
}

#[tokio::test]
async fn a_message_started_but_never_finished_is_dropped_at_its_deadline() {
    let server = TestServer::with(|c| {
        c.idle_timeout_ms = 60_000;
        c.message_timeout_ms = 800;
    })
    .await;
    let started = std::time::Instant::now();
    let (mut reader, trickle) = start_trickler(server.addrs.game).await;
    let reason = goodbye_of(&mut reader).await;
    assert!(reason.contains("not completed"), "{reason}");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "not before the deadline"
    );
    trickle.abort();
    server.stop().await;
}
