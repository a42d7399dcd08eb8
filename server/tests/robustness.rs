//! Hostile and unlucky clients: garbage, limits, slow consumers, churn, and
//! shutdown under load.

mod common;

use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use shared::legacy::PositionRecord;
use shared::native::ServerMessage;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn garbage_on_any_port_closes_only_that_connection() {
    let server = TestServer::with(|c| c.probe_interval_ms = 50).await;
    let (mut watcher, _) = connect_legacy(server.addrs.positions).await;
    let mut native = NativeClient::join(server.addrs.game, "bystander").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);

    // Game: a frame that is not a Hello (garbage payload).
    let mut game = TcpStream::connect(server.addrs.game).await.unwrap();
    game.write_all(&[3, 0, 0, 0, 0xff, 0xfe, 0xfd])
        .await
        .unwrap();
    expect_closed(&mut game).await;

    // Test packets: bytes that echo nothing.
    let (mut test, _) = connect_legacy(server.addrs.test).await;
    test.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4])
        .await
        .unwrap();
    expect_closed(&mut test).await;

    // Math: random garbage with a huge announced length.
    let (mut math, _) = connect_legacy(server.addrs.math).await;
    let mut junk = vec![0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0];
    junk.extend((0..100).map(|_| rng.random::<u8>()));
    math.write_all(&junk).await.unwrap();
    let reply = expect_closed(&mut math).await;
    assert_eq!(&reply[..4], &3i32.to_le_bytes(), "status 3 before closing");

    // Positions: any 4 bytes are a position, so garbage moves a player rather
    // than breaking anything; the others keep working.
    let (mut positions, positions_id) = connect_legacy(server.addrs.positions).await;
    positions
        .write_all(&(0..4000).map(|_| rng.random::<u8>()).collect::<Vec<_>>())
        .await
        .unwrap();
    read_record_until(&mut watcher, |r| r.id == positions_id).await;

    native
        .send(shared::native::ClientMessage::Ping { nonce: 9 })
        .await;
    assert_eq!(
        native
            .until(|m| match m {
                ServerMessage::Pong { nonce } => Some(*nonce),
                _ => None,
            })
            .await,
        9
    );
    send_position(&mut watcher, 1, 1).await;
    let me = read_record_until(&mut watcher, |r| r.x == 1 && r.y == 1).await;
    assert!(me.id > 0);
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limits_are_refused() {
    let server = TestServer::with(|c| {
        c.max_connections = 3;
        c.max_connections_per_ip = 2;
        c.limit_loopback = true;
    })
    .await;
    let (_a, _) = connect_legacy(server.addrs.math).await;
    let (_b, _) = connect_legacy(server.addrs.positions).await;
    // Third from 127.0.0.1: over the per-IP limit, closed without an id.
    let mut refused = TcpStream::connect(server.addrs.math).await.unwrap();
    assert!(expect_closed(&mut refused).await.is_empty());
    assert_eq!(server.shared.registry.len(), 2);
    server.stop().await;

    let server = TestServer::with(|c| c.max_connections = 2).await;
    let (_a, _) = connect_legacy(server.addrs.math).await;
    let (b, _) = connect_legacy(server.addrs.test).await;
    let mut refused = TcpStream::connect(server.addrs.positions).await.unwrap();
    assert!(expect_closed(&mut refused).await.is_empty());
    drop(b);
    eventually("slot freed", || server.shared.registry.len() == 1).await;
    let (_c, _) = connect_legacy(server.addrs.positions).await;
    server.stop().await;
}

#[tokio::test]
async fn slow_consumer_is_dropped_after_the_write_timeout_and_others_keep_up() {
    // No move-rate cap: the mover's bursts are what fills the stuck socket.
    let server = TestServer::with(|c| {
        c.write_timeout_ms = 500;
        c.max_moves_per_second = 0;
    })
    .await;
    let stuck = TcpStream::connect(server.addrs.positions).await.unwrap();
    // Shrink what the stuck client can absorb so the server's writes block soon.
    let stuck = {
        let std = stuck.into_std().unwrap();
        let socket = socket2::SockRef::from(&std);
        socket.set_recv_buffer_size(4096).unwrap();
        TcpStream::from_std(std).unwrap()
    };
    let (mut mover, mover_id) = connect_legacy(server.addrs.positions).await;
    let (mut watcher, _) = connect_legacy(server.addrs.positions).await;
    let started = std::time::Instant::now();
    let mut n: i32 = 0;
    // Budget: the stuck socket absorbs the server's send buffer
    // (SEND_BUFFER_BYTES, 64 KiB) plus the 4 KiB receive buffer above, about
    // 8,700 records of 8 bytes. A broadcast carries at most 32 of one
    // player's moves (newer ones replace the 32nd), so that takes a few
    // hundred broadcasts; then one write stays blocked for the 500 ms write
    // timeout. 8 s leaves a wide margin for a slow machine.
    while started.elapsed() < Duration::from_secs(8) && server.shared.registry.len() == 3 {
        let mut burst = Vec::with_capacity(4 * 500);
        for _ in 0..500 {
            n += 1;
            burst.extend(shared::legacy::Position::new((n % 30_000) as i16, 1).to_bytes());
        }
        mover.write_all(&burst).await.unwrap();
        discard_available(&mover);
        discard_available(&watcher);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        server.shared.registry.len(),
        2,
        "the stuck client was dropped"
    );
    drop(stuck);
    send_position(&mut mover, 12345, 2).await;
    let seen = read_record_until(&mut watcher, |r| r.id == mover_id && r.y == 2).await;
    assert_eq!(
        seen,
        PositionRecord {
            id: mover_id,
            x: 12345,
            y: 2
        }
    );
    let metrics = server.shared.metrics.render();
    assert!(
        metrics.contains("gameserver_slow_consumers_dropped_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn churn_across_all_services_leaves_nothing_behind() {
    let server = TestServer::start().await;
    let addrs = server.addrs;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        tasks.push(tokio::spawn(async move {
            for round in 0..250 {
                match (worker + round) % 4 {
                    0 => {
                        let (mut s, _) = connect_legacy(addrs.positions).await;
                        send_position(&mut s, round as i16, worker as i16).await;
                    }
                    1 => {
                        let _ = connect_legacy(addrs.math).await;
                    }
                    2 => {
                        let _ = connect_legacy(addrs.test).await;
                    }
                    _ => {
                        let mut c = NativeClient::join(addrs.game, "churn").await;
                        c.send(shared::native::ClientMessage::MyPosition(
                            shared::legacy::Position::new(1, 2),
                        ))
                        .await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    eventually("registry empty", || server.shared.registry.is_empty()).await;
    eventually("world empty", || server.shared.world.player_count() == 0).await;
    assert_eq!(server.shared.world.subscriber_count(), 0);
    let metrics = server.shared.metrics.render();
    assert!(
        metrics.contains("gameserver_connections_total{service=\"positions\"} 500"),
        "{metrics}"
    );
    // Every connection task has ended: shutdown finds nothing left to wait for.
    let took = server.stop().await;
    assert!(
        took < Duration::from_secs(1),
        "tasks left behind: shutdown took {took:?}"
    );
}

#[tokio::test]
async fn shutdown_under_load_is_quick_and_says_goodbye() {
    let server = TestServer::with(|c| c.write_timeout_ms = 60_000).await;
    // Native players keep reading, as a real client does, until the goodbye.
    let mut natives = Vec::new();
    for i in 0..20 {
        let mut native = NativeClient::join(server.addrs.game, &format!("n{i}")).await;
        natives.push(tokio::spawn(async move {
            native
                .until(|m| matches!(m, ServerMessage::Goodbye { .. }).then_some(()))
                .await
        }));
    }
    let mut legacy = Vec::new();
    for _ in 0..50 {
        legacy.push(connect_legacy(server.addrs.positions).await.0);
    }
    // A stuck reader and a flood of positions while shutting down.
    let _stuck = connect_legacy(server.addrs.positions).await;
    let mut flooder = legacy.pop().unwrap();
    let flood = tokio::spawn(async move {
        for i in 0..100_000i32 {
            if flooder
                .write_all(&shared::legacy::Position::new(i as i16, 0).to_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = server.stop().await;
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    for native in natives {
        native.await.expect("every native client got its goodbye");
    }
    for stream in &mut legacy {
        expect_closed(stream).await;
    }
    flood.abort();
}

#[tokio::test]
async fn metrics_endpoint_serves_prometheus_text_and_health() {
    let server = TestServer::with(|c| c.metrics = Some("127.0.0.1:0".parse().unwrap())).await;
    let metrics_addr = server.addrs.metrics.expect("metrics bound");
    let (mut math, _) = connect_legacy(server.addrs.math).await;
    math.write_all(&shared::legacy::MathRequest::new("DIVISION", 1, 0).to_bytes())
        .await
        .unwrap();
    read_exact(&mut math, 12).await;
    let body = http_get(metrics_addr, "/metrics").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("gameserver_connected_clients{service=\"math\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("gameserver_math_requests_total{status=\"division_by_zero\"} 1"),
        "{body}"
    );
    let health = http_get(metrics_addr, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    server.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    body
}

#[tokio::test]
async fn ids_come_from_one_space_shared_by_every_service() {
    let server = TestServer::start().await;
    let (_a, a) = connect_legacy(server.addrs.test).await;
    let (_b, b) = connect_legacy(server.addrs.math).await;
    let native = NativeClient::join(server.addrs.game, "n").await;
    let (_d, d) = connect_legacy(server.addrs.positions).await;
    let ids = [a, b, native.id, d];
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase and never repeat: {ids:?}"
    );
    assert!(ids.iter().all(|&id| id > 0));
    assert_eq!(server.shared.registry.len(), 4);
    server.stop().await;
}

/// What the quiet client of [`a_flooding_client_does_not_starve_the_others`]
/// lets its kernel buffer (the kernel doubles it).
const QUIET_RECV_BUFFER: usize = 16 * 1024;

/// Sends a position and reads until its echo; returns how many bytes of
/// other records came first and how long it took.
async fn echo_behind(stream: &mut TcpStream, id: i32, x: i16) -> (usize, Duration) {
    let started = std::time::Instant::now();
    send_position(stream, x, 500).await;
    let mut before = 0;
    loop {
        let record = read_record(stream).await;
        if record == (PositionRecord { id, x, y: 500 }) {
            return (before, started.elapsed());
        }
        before += PositionRecord::SIZE;
    }
}

#[tokio::test]
async fn a_flooding_client_does_not_starve_the_others() {
    let server = TestServer::start().await;
    let (flooder, flooder_id) = connect_legacy(server.addrs.positions).await;
    // The quiet client's kernel buffer is kept small, so what can wait for it
    // is the server's bound, not the loopback's autotuned megabytes.
    let quiet = TcpStream::connect(server.addrs.positions).await.unwrap();
    let mut quiet = {
        let std = quiet.into_std().unwrap();
        socket2::SockRef::from(&std)
            .set_recv_buffer_size(QUIET_RECV_BUFFER)
            .unwrap();
        TcpStream::from_std(std).unwrap()
    };
    let quiet_id = read_i32(&mut quiet).await;
    let (mut reader, mut writer) = flooder.into_split();
    // Before the flood: the quiet client's own round trip, for the figures.
    let mut calm = Vec::new();
    for x in 1..=20i16 {
        calm.push(echo_behind(&mut quiet, quiet_id, x).await.1);
    }
    // The flooder writes positions as fast as the socket takes them, and
    // reads (and drops) everything so only its input is excessive.
    let stop = tokio_util::sync::CancellationToken::new();
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let burst: Vec<u8> = (0..4096i16)
                .flat_map(|i| shared::legacy::Position::new(i, -i).to_bytes())
                .collect();
            while !stop.is_cancelled() {
                if writer.write_all(&burst).await.is_err() {
                    break;
                }
            }
        })
    };
    let drain = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut sink = vec![0u8; 65536];
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    // Once the flood is on (the quiet client sees the flooder move) ...
    read_record_until(&mut quiet, |r| r.id == flooder_id).await;
    let flood_bytes_before = received_bytes(&server.shared, "positions");
    // ... the quiet client's positions still come back, each behind no more
    // than the server lets queue for a client (its queue limit, then the
    // socket's buffers), even after it has not read for a while: a backlog
    // that grows with the flood goes past it.
    let bound = server::fanout::BASE_QUEUE_BYTES
        + 2 * server::fanout::QUEUE_BYTES_PER_PLAYER
        + 2 * server::SEND_BUFFER_BYTES
        + 2 * QUIET_RECV_BUFFER
        + 2 * PositionRecord::SIZE;
    let mut most_behind = 0;
    for x in 100..105i16 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        most_behind = most_behind.max(echo_behind(&mut quiet, quiet_id, x).await.0);
    }
    // And while it reads, its echoes come back about as fast as a round
    // trip under load can: far from the seconds a starved client waits.
    let mut stormy = Vec::new();
    for x in 200..220i16 {
        stormy.push(echo_behind(&mut quiet, quiet_id, x).await.1);
    }
    let flooded = received_bytes(&server.shared, "positions") - flood_bytes_before;
    stormy.sort();
    calm.sort();
    let median = stormy[stormy.len() / 2];
    eprintln!(
        "quiet echo: calm median {:?}; under flood median {median:?}, slowest {:?}; \
         after 300 ms unread at most {most_behind} bytes ahead (bound {bound}); \
         {flooded} flood bytes read meanwhile",
        calm[calm.len() / 2],
        stormy.last().unwrap()
    );
    assert!(
        most_behind <= bound,
        "an echo waited behind {most_behind} bytes, more than the {bound} a client may have queued"
    );
    // The flood was really on while the quiet client was served.
    assert!(
        flooded > 20 * 8 * 1000,
        "the flooder was not flooding ({flooded} bytes)"
    );
    assert!(
        median < Duration::from_millis(100),
        "the quiet client's median echo took {median:?} under the flood"
    );
    assert!(
        server.shared.registry.get(flooder_id).is_some(),
        "flooding is allowed, not a reason to drop"
    );
    stop.cancel();
    flood.abort();
    drain.abort();
    server.stop().await;
}

#[tokio::test]
async fn loopback_is_exempt_from_the_default_per_ip_limit() {
    let server = TestServer::start().await;
    let limit = server.shared.config.max_connections_per_ip;
    assert!(limit > 0, "a per-IP limit is on by default");
    let mut clients = Vec::new();
    for _ in 0..limit + 6 {
        clients.push(connect_legacy(server.addrs.math).await);
    }
    assert_eq!(server.shared.registry.len(), limit + 6);
    server.stop().await;
}
