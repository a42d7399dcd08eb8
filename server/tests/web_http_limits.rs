//! Every HTTP listener (metrics, web view) under load it must shrug off:
//! idle and half-sent connections are capped and timed out, and never keep
//! a player out.

mod common;
mod web_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web_support::*;

const HEADER_TIMEOUT: Duration = Duration::from_millis(500);
const IDLE_TIMEOUT: Duration = Duration::from_millis(600);
const METRICS_CAP: u32 = 16;
const ATTACKERS: usize = 1000;

fn limited(config: &mut Config) {
    config.metrics = Some("127.0.0.1:0".parse().unwrap());
    config.web = Some("127.0.0.1:0".parse().unwrap());
    config.metrics_max_connections = METRICS_CAP;
    config.http_header_timeout_ms = HEADER_TIMEOUT.as_millis() as u64;
    config.http_idle_timeout_ms = IDLE_TIMEOUT.as_millis() as u64;
}

/// Reads until the server closes (EOF or reset); returns what came first.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_thousand_half_sent_requests_to_metrics_keep_no_player_out() {
    let server = TestServer::with(limited).await;
    let metrics = server.addrs.metrics.unwrap();

    // 1,000 connections that each send half a request head and stall.
    let started = Instant::now();
    let mut attackers = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        let mut stream = TcpStream::connect(metrics).await.expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        attackers.push(stream);
    }

    // Players still get in, on both protocols, while the attack is on.
    let (_legacy, legacy_id) = connect_legacy(server.addrs.positions).await;
    let native = NativeClient::join(server.addrs.game, "still-welcome").await;
    assert!(legacy_id > 0 && native.id > 0);

    // Past the cap, connections were answered 503 and closed at once; the
    // ones within it are closed by the header timeout.
    let mut refused = 0;
    let mut timed_out = Vec::new();
    for mut stream in attackers {
        let got = read_until_closed(&mut stream, HEADER_TIMEOUT * 4)
            .await
            .expect("every half-sent request is closed");
        let text = String::from_utf8_lossy(&got);
        if text.starts_with("HTTP/1.1 503") {
            refused += 1;
        } else {
            timed_out.push(started.elapsed());
        }
    }
    eprintln!(
        "{refused} refused with 503, {} closed by the header timeout after {:?}..{:?}",
        timed_out.len(),
        timed_out.iter().min(),
        timed_out.iter().max()
    );
    assert!(
        timed_out.len() <= METRICS_CAP as usize,
        "{} connections held, cap {METRICS_CAP}",
        timed_out.len()
    );
    assert!(refused >= ATTACKERS - METRICS_CAP as usize);
    assert!(
        timed_out.iter().all(|t| *t >= HEADER_TIMEOUT),
        "closed before the header timeout: {timed_out:?}"
    );

    // The endpoint still answers once the stalled ones are gone.
    let response = request(metrics, "GET", "/healthz").await;
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::with(limited).await;
    let metrics = server.addrs.metrics.unwrap();
    let mut stream = TcpStream::connect(metrics).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let got = read_until_closed(&mut stream, HEADER_TIMEOUT * 4)
        .await
        .expect("closed while idle");
    let waited = started.elapsed();
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(waited >= HEADER_TIMEOUT * 9 / 10, "closed after {waited:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_responses_is_closed_after_the_idle_timeout() {
    // A long header timeout: only the idle timeout can close it in time.
    let server = TestServer::with(|c| {
        limited(c);
        c.http_header_timeout_ms = 60_000;
    })
    .await;
    let web: SocketAddr = server.addrs.web.unwrap();
    let mut stream = TcpStream::connect(web).await.unwrap();
    // Pipelined requests whose answers (the script, ~20 KB each) fill both
    // socket buffers; the client never reads them.
    let requests = b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    stream.write_all(&requests).await.unwrap();
    let started = Instant::now();
    // Nothing is read until the server gave up on the connection.
    tokio::time::sleep(IDLE_TIMEOUT * 2).await;
    let got = read_until_closed(&mut stream, PATIENCE)
        .await
        .expect("the stalled connection is closed");
    assert!(started.elapsed() >= IDLE_TIMEOUT);
    let answers = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    assert!(answers < 200, "the server stopped before answering all 200");
    server.stop().await;
}
