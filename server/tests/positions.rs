//! The legacy "positions" service and the shared world, over real sockets.

mod common;

use common::*;
use shared::legacy::PositionRecord;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn sender_sees_its_own_echo() {
    let server = TestServer::start().await;
    let (mut client, id) = connect_legacy(server.addrs.positions).await;
    send_position(&mut client, 10, -20).await;
    assert_eq!(
        read_record(&mut client).await,
        PositionRecord { id, x: 10, y: -20 }
    );
    server.stop().await;
}

#[tokio::test]
async fn every_position_reaches_every_client_in_order() {
    let server = TestServer::start().await;
    let (mut a, a_id) = connect_legacy(server.addrs.positions).await;
    let (mut b, _) = connect_legacy(server.addrs.positions).await;
    // Several positions in one write, and one split over two writes.
    let mut burst = Vec::new();
    for x in 1..=5i16 {
        burst.extend(shared::legacy::Position::new(x, x).to_bytes());
    }
    let before = received_bytes(&server.shared, "positions");
    a.write_all(&burst).await.unwrap();
    let split = shared::legacy::Position::new(6, 6).to_bytes();
    a.write_all(&split[..1]).await.unwrap();
    a.flush().await.unwrap();
    // The server has read the lone first byte before the rest is sent: the
    // write really reached it split.
    let expected = before + burst.len() as u64 + 1;
    eventually("the server read the burst and half a position", || {
        received_bytes(&server.shared, "positions") == expected
    })
    .await;
    a.write_all(&split[1..]).await.unwrap();
    for reader in [&mut a, &mut b] {
        for x in 1..=6i16 {
            let record = read_record_until(reader, |r| r.id == a_id).await;
            assert_eq!(record, PositionRecord { id: a_id, x, y: x });
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn newcomer_gets_a_record_for_every_player_with_a_position() {
    let server = TestServer::start().await;
    let (mut a, a_id) = connect_legacy(server.addrs.positions).await;
    let (mut b, b_id) = connect_legacy(server.addrs.positions).await;
    let (_silent, _) = connect_legacy(server.addrs.positions).await; // no position: no record
    send_position(&mut a, 1, 2).await;
    send_position(&mut b, 3, 4).await;
    read_record_until(&mut a, |r| r.id == b_id).await;
    let (mut newcomer, newcomer_id) = connect_legacy(server.addrs.positions).await;
    let mut snapshot = vec![
        read_record(&mut newcomer).await,
        read_record(&mut newcomer).await,
    ];
    snapshot.sort_by_key(|r| r.id);
    assert_eq!(
        snapshot,
        vec![
            PositionRecord {
                id: a_id,
                x: 1,
                y: 2
            },
            PositionRecord {
                id: b_id,
                x: 3,
                y: 4
            }
        ]
    );
    expect_nothing_before_sentinel(&mut newcomer, None, newcomer_id).await;
    assert!(newcomer_id > b_id);
    server.stop().await;
}

#[tokio::test]
async fn leaving_player_with_a_position_sends_the_leave_marker() {
    let server = TestServer::start().await;
    let (mut watcher, watcher_id) = connect_legacy(server.addrs.positions).await;
    let (mut leaver, leaver_id) = connect_legacy(server.addrs.positions).await;
    let (silent, _) = connect_legacy(server.addrs.positions).await;
    drop(silent); // never had a position: no marker
    send_position(&mut leaver, 7, 7).await;
    read_record_until(&mut watcher, |r| r.id == leaver_id).await;
    drop(leaver);
    let marker = read_record(&mut watcher).await;
    assert_eq!(
        marker,
        PositionRecord {
            id: leaver_id,
            x: -32768,
            y: -32768
        }
    );
    assert!(marker.is_leave());
    expect_nothing_before_sentinel(&mut watcher, None, watcher_id).await;
    eventually("world empty of the leaver", || {
        server.shared.world.player_count() == 1
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn reserved_position_is_stored_as_minus_32767() {
    let server = TestServer::start().await;
    let (mut client, id) = connect_legacy(server.addrs.positions).await;
    send_position(&mut client, -32768, -32768).await;
    assert_eq!(
        read_record(&mut client).await,
        PositionRecord {
            id,
            x: -32767,
            y: -32767
        }
    );
    let (mut newcomer, _) = connect_legacy(server.addrs.positions).await;
    assert_eq!(
        read_record(&mut newcomer).await,
        PositionRecord {
            id,
            x: -32767,
            y: -32767
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_stall_the_others() {
    let server = TestServer::with(|c| c.write_timeout_ms = 60_000).await;
    let (_stuck, stuck_id) = connect_legacy(server.addrs.positions).await;
    let (mut mover, mover_id) = connect_legacy(server.addrs.positions).await;
    let (mut watcher, _) = connect_legacy(server.addrs.positions).await;
    // Far more than socket buffers hold for the stuck client: ~24 MB of records.
    let mut last = (0, 0);
    for round in 0..3_000i32 {
        let mut burst = Vec::new();
        for i in 0..1000i32 {
            let n = round * 1000 + i;
            last = ((n % 30_000) as i16, (n / 30_000) as i16);
            burst.extend(shared::legacy::Position::new(last.0, last.1).to_bytes());
        }
        mover.write_all(&burst).await.unwrap();
        // Keep the mover's and the watcher's sockets drained so only the stuck client backs up.
        discard_available(&mover);
        if round < 2_990 {
            discard_available(&watcher);
        }
    }
    let latest = read_record_until(&mut watcher, |r| r.id == mover_id && (r.x, r.y) == last).await;
    assert_eq!((latest.x, latest.y), last);
    // The stuck client is still connected (write timeout not reached) and its
    // backlog is bounded (coalesced, latest wins) rather than queued.
    assert!(server.shared.registry.get(stuck_id).is_some());
    let queued = server
        .shared
        .world
        .queued_bytes(stuck_id)
        .expect("stuck client subscribed");
    assert!(
        queued <= server.shared.world.queue_limit(),
        "backlog of {queued} bytes is bounded"
    );
    server.stop().await;
}

#[tokio::test]
async fn garbage_free_stream_of_odd_bytes_keeps_the_partial_position() {
    // 4 bytes are always a position; 3 bytes wait for the 4th.
    let server = TestServer::start().await;
    let (mut client, id) = connect_legacy(server.addrs.positions).await;
    let (mut other, other_id) = connect_legacy(server.addrs.positions).await;
    client.write_all(&[5, 0, 6]).await.unwrap();
    eventually("the server read the 3 bytes", || {
        received_bytes(&server.shared, "positions") == 3
    })
    .await;
    // Broadcast to every client: had 3 bytes made a record, it would be first.
    expect_nothing_before_sentinel(&mut client, Some(&mut other), other_id).await;
    client.write_all(&[0]).await.unwrap();
    assert_eq!(
        read_record(&mut client).await,
        PositionRecord { id, x: 5, y: 6 }
    );
    server.stop().await;
}

fn lane_players(shared: &server::Shared) -> u64 {
    shared
        .metrics
        .render()
        .lines()
        .find_map(|line| {
            line.strip_prefix("gameserver_lane_connections ")?
                .parse()
                .ok()
        })
        .expect("no lane gauge on /metrics")
}

async fn connect_into(server: &TestServer, world: usize) -> (tokio::net::TcpStream, i32) {
    let client = connect_legacy(server.addrs.positions).await;
    eventually("the player joined", || {
        server.shared.world.subscriber_count() == world
    })
    .await;
    client
}

/// A small world's players are served on the lane; the player that makes
/// the world as big as the lane's capacity closes it, and the lane's
/// players move to the worker threads without losing a byte: every move
/// still reaches everyone, in order. Once the world is small again, the
/// lane takes players again.
#[tokio::test]
async fn the_lane_serves_a_small_world_and_hands_its_players_over_when_it_grows() {
    let server = TestServer::with(|config| config.lane_connections = 3).await;
    let mut clients = Vec::new();
    for world in 1..=3 {
        clients.push(connect_into(&server, world).await);
    }
    assert_eq!(lane_players(&server.shared), 3);
    let (x, id) = (7, clients[0].1);
    send_position(&mut clients[0].0, x, 1).await;
    for (stream, _) in &mut clients {
        assert_eq!(
            read_record_until(stream, |r| r.id == id).await,
            PositionRecord { id, x, y: 1 }
        );
    }

    // A burst from a lane player, the last position cut in two: its first
    // byte is read on the lane, the rest after the move.
    let mut burst = Vec::new();
    for y in 1..=21i16 {
        burst.extend(shared::legacy::Position::new(x, y).to_bytes());
    }
    let (sent, rest) = burst.split_at(burst.len() - 3);
    let before = received_bytes(&server.shared, "positions");
    clients[0].0.write_all(sent).await.unwrap();
    eventually("the lane read the burst and a byte", || {
        received_bytes(&server.shared, "positions") == before + sent.len() as u64
    })
    .await;
    let fourth = connect_into(&server, 4).await;
    clients.push(fourth);
    eventually("the lane's players moved to the worker threads", || {
        lane_players(&server.shared) == 0
    })
    .await;
    clients[0].0.write_all(rest).await.unwrap();
    for (stream, _) in &mut clients[..3] {
        for y in 1..=21i16 {
            let record = read_record_until(stream, |r| r.id == id).await;
            assert_eq!(record, PositionRecord { id, x, y });
        }
    }
    // Moves of a player that moved and of the newcomer reach everyone.
    for mover in [1, 3] {
        let id = clients[mover].1;
        send_position(&mut clients[mover].0, 100, mover as i16).await;
        for (stream, _) in &mut clients {
            let record = read_record_until(stream, |r| r.id == id).await;
            assert_eq!(
                record,
                PositionRecord {
                    id,
                    x: 100,
                    y: mover as i16
                }
            );
        }
    }

    clients.clear();
    eventually("everyone left", || {
        server.shared.world.subscriber_count() == 0
    })
    .await;
    let _again = connect_into(&server, 1).await;
    assert_eq!(
        lane_players(&server.shared),
        1,
        "the lane did not open again"
    );
    server.stop().await;
}

#[tokio::test]
async fn with_a_broadcast_interval_moves_still_arrive_batched_no_sooner_than_the_interval() {
    use std::time::{Duration, Instant};
    const INTERVAL: Duration = Duration::from_millis(300);
    let server = TestServer::with(|c| c.broadcast_interval_ms = INTERVAL.as_millis() as u64).await;
    let (mut mover, mover_id) = connect_legacy(server.addrs.positions).await;
    let (mut watcher, _) = connect_legacy(server.addrs.positions).await;
    // Once the watcher has the first move, a broadcast has just gone out.
    send_position(&mut mover, 1, 1).await;
    read_record_until(&mut watcher, |r| r.id == mover_id && r.x == 1).await;
    let sent = Instant::now();
    // Three more moves at once wait for the next broadcast, a whole interval
    // after that one; they arrive in order, the latest last.
    for x in 2..=4 {
        send_position(&mut mover, x, x).await;
    }
    let mut seen = Vec::new();
    let arrived = loop {
        let record = read_record_until(&mut watcher, |r| r.id == mover_id).await;
        seen.push(record.x);
        if record.x == 4 {
            break sent.elapsed();
        }
    };
    assert!(seen.is_sorted(), "out of order: {seen:?}");
    // Delivery of the first move took a little of the interval already;
    // half of it is a floor no broadcast without a pause can reach.
    assert!(
        arrived >= INTERVAL / 2,
        "moves went out {arrived:?} after the last broadcast, interval {INTERVAL:?}"
    );
    assert_eq!(
        server.shared.world.position_of(mover_id),
        Some(shared::legacy::Position::new(4, 4))
    );
    server.stop().await;
}
