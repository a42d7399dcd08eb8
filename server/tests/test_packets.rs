//! The legacy "test packets" service over real sockets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shared::legacy::Probe;
use tokio::io::AsyncWriteExt;

fn probe_of(bytes: &[u8]) -> Probe {
    Probe {
        seq: i32::from_le_bytes(bytes[..4].try_into().unwrap()),
        clients: i32::from_le_bytes(bytes[4..].try_into().unwrap()),
    }
}

#[tokio::test]
async fn probes_count_up_from_one_and_count_clients_of_every_service() {
    let server = TestServer::with(|c| c.probe_interval_ms = 50).await;
    let (_math, _) = connect_legacy(server.addrs.math).await;
    let (_positions, _) = connect_legacy(server.addrs.positions).await;
    let (mut client, _) = connect_legacy(server.addrs.test).await;
    for expected_seq in 1..=4 {
        let bytes = read_exact(&mut client, Probe::SIZE).await;
        let probe = probe_of(&bytes);
        assert_eq!(
            probe,
            Probe {
                seq: expected_seq,
                clients: 3
            }
        );
        client.write_all(&bytes).await.unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn echoed_probes_keep_the_client_connected() {
    let server = TestServer::with(|c| {
        c.probe_interval_ms = 40;
        c.probe_timeout_ms = 200;
    })
    .await;
    let (mut client, id) = connect_legacy(server.addrs.test).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(600) {
        let bytes = read_exact(&mut client, Probe::SIZE).await;
        // Echo in two pieces: TCP may split anything.
        client.write_all(&bytes[..3]).await.unwrap();
        client.write_all(&bytes[3..]).await.unwrap();
    }
    assert!(server.shared.registry.get(id).is_some(), "still registered");
    server.stop().await;
}

#[tokio::test]
async fn unanswered_probe_closes_and_unregisters_after_the_timeout() {
    let server = TestServer::with(|c| {
        c.probe_interval_ms = 100;
        c.probe_timeout_ms = 300;
    })
    .await;
    let (mut client, id) = connect_legacy(server.addrs.test).await;
    let started = Instant::now();
    let _first_probe = read_exact(&mut client, Probe::SIZE).await;
    expect_closed(&mut client).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed too early: {elapsed:?}"
    );
    eventually("client removed from the registry", || {
        server.shared.registry.get(id).is_none()
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn wrong_echo_closes_only_that_client() {
    let server = TestServer::with(|c| c.probe_interval_ms = 50).await;
    let (mut good, good_id) = connect_legacy(server.addrs.test).await;
    let (mut bad, bad_id) = connect_legacy(server.addrs.test).await;
    let bytes = read_exact(&mut bad, Probe::SIZE).await;
    let mut wrong = bytes.clone();
    wrong[0] ^= 0xff;
    bad.write_all(&wrong).await.unwrap();
    expect_closed(&mut bad).await;
    eventually("bad client unregistered", || {
        server.shared.registry.get(bad_id).is_none()
    })
    .await;
    for _ in 0..3 {
        let bytes = read_exact(&mut good, Probe::SIZE).await;
        good.write_all(&bytes).await.unwrap();
    }
    assert!(server.shared.registry.get(good_id).is_some());
    server.stop().await;
}

#[tokio::test]
async fn bytes_before_any_probe_are_a_violation() {
    let server = TestServer::with(|c| c.probe_interval_ms = 10_000).await;
    let (mut client, _) = connect_legacy(server.addrs.test).await;
    client.write_all(&[1, 0, 0, 0]).await.unwrap();
    expect_closed(&mut client).await;
    server.stop().await;
}
