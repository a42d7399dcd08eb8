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

/// A request head cut short after `len` bytes: it never ends (no blank
/// line), and stays under the server's largest head.
fn half_request(len: usize) -> Vec<u8> {
    let mut head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    head.resize(len.max(head.len()), b'a');
    head.truncate(len);
    head
}

/// Whether the server has closed `stream`, without waiting.
fn closed_by_server(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// `/healthz` on a fresh connection: its status and how long it took.
async fn time_healthz(addr: SocketAddr) -> (u16, Duration) {
    let started = Instant::now();
    let response = request(addr, "GET", "/healthz").await;
    (response.status().as_u16(), started.elapsed())
}

#[tokio::test]
async fn healthz_answers_within_a_second_while_a_thousand_half_sent_requests_are_held() {
    // A header timeout far beyond the test: only the cap can close them.
    let server = TestServer::with(|c| {
        limited(c);
        c.http_header_timeout_ms = 60_000;
    })
    .await;
    let metrics = server.addrs.metrics.unwrap();

    // 1,000 connections that each send part of a request head, from one
    // byte to 15 KiB (the server buffers up to 16 KiB), and stall; the test
    // holds every one open. `/healthz` is asked every 100.
    const SIZES: [usize; 6] = [1, 40, 500, 4_000, 9_000, 15_000];
    let mut attackers = Vec::with_capacity(ATTACKERS);
    let mut health = Vec::new();
    for i in 0..ATTACKERS {
        let mut stream = TcpStream::connect(metrics).await.expect("connect");
        stream
            .write_all(&half_request(SIZES[i % SIZES.len()]))
            .await
            .unwrap();
        attackers.push(stream);
        if (i + 1) % 100 == 0 {
            health.push(time_healthz(metrics).await);
        }
    }

    // Players still get in, on both protocols, while the attack is on.
    let (_legacy, legacy_id) = connect_legacy(server.addrs.positions).await;
    let native = NativeClient::join(server.addrs.game, "still-welcome").await;
    assert!(legacy_id > 0 && native.id > 0);
    let scrape = request(metrics, "GET", "/metrics").await;
    assert_eq!(scrape.status(), 200, "/metrics during the flood");

    // The cap closed the oldest half-requests to admit the new ones: at most
    // a cap's worth is still open, and those are the newest.
    let deadline = Instant::now() + PATIENCE;
    let open = loop {
        let open: Vec<usize> = (0..ATTACKERS)
            .filter(|&i| !closed_by_server(&attackers[i]))
            .collect();
        if open.len() <= METRICS_CAP as usize || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let worst = health.iter().map(|(_, t)| *t).max().unwrap();
    eprintln!(
        "/healthz under {ATTACKERS} half-sent requests: statuses {:?}, slowest {worst:?}; \
         {} attackers still open (cap {METRICS_CAP}), oldest of them #{:?}",
        health.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        open.len(),
        open.first()
    );
    assert!(
        health.iter().all(|(status, _)| *status == 200),
        "/healthz refused during the flood: {health:?}"
    );
    assert!(worst < Duration::from_secs(1), "/healthz took {worst:?}");
    assert!(
        open.len() <= METRICS_CAP as usize,
        "{} half-requests held, cap {METRICS_CAP}",
        open.len()
    );
    assert!(
        open.iter()
            .all(|&i| i >= ATTACKERS - 2 * METRICS_CAP as usize),
        "an old half-request outlived newer ones: {open:?}"
    );
    drop(attackers);
    server.stop().await;
}

#[tokio::test]
async fn half_sent_requests_within_the_cap_are_closed_by_the_header_timeout() {
    let server = TestServer::with(limited).await;
    let metrics = server.addrs.metrics.unwrap();
    // Each connection is timed from its own connect, all at once, so a close
    // seen late cannot hide one that came early.
    let held = (0..METRICS_CAP).map(|i| async move {
        let mut stream = TcpStream::connect(metrics).await.expect("connect");
        let connected = Instant::now();
        stream
            .write_all(&half_request(10 + 1000 * i as usize))
            .await
            .unwrap();
        let got = read_until_closed(&mut stream, HEADER_TIMEOUT * 4)
            .await
            .expect("every half-sent request is closed");
        (connected.elapsed(), got)
    });
    let closed = futures::future::join_all(held).await;
    let times: Vec<Duration> = closed.iter().map(|(t, _)| *t).collect();
    eprintln!(
        "{} half-requests closed after {:?}..{:?} (header timeout {HEADER_TIMEOUT:?})",
        times.len(),
        times.iter().min(),
        times.iter().max()
    );
    assert!(
        times.iter().all(|t| *t >= HEADER_TIMEOUT),
        "closed before the header timeout: {times:?}"
    );
    assert!(
        closed
            .iter()
            .all(|(_, got)| !String::from_utf8_lossy(got).starts_with("HTTP/1.1 503")),
        "a connection within the cap was refused"
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

#[cfg(target_os = "linux")]
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
    // Nothing is read (reading would move bytes and keep it alive): the
    // server's side of the socket is watched in the kernel's table instead.
    let (local, peer) = (stream.local_addr().unwrap(), web);
    let deadline = started + IDLE_TIMEOUT + PATIENCE;
    while server_side_established(peer, local) {
        assert!(
            Instant::now() < deadline,
            "the stalled connection was never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let closed_after = started.elapsed();
    eprintln!("stalled connection closed after {closed_after:?} (idle timeout {IDLE_TIMEOUT:?})");
    assert!(
        closed_after >= IDLE_TIMEOUT * 9 / 10,
        "closed after {closed_after:?}, before the idle timeout"
    );
    let got = read_until_closed(&mut stream, PATIENCE)
        .await
        .expect("the stalled connection is closed");
    let answers = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    assert!(answers < 200, "the server stopped before answering all 200");
    server.stop().await;
}

/// Whether the kernel holds the connection from `server` to `client` as
/// established (Linux's `/proc/net/tcp`, loopback IPv4): once the server
/// closes its socket it is in FIN-WAIT or gone.
#[cfg(target_os = "linux")]
fn server_side_established(server: SocketAddr, client: SocketAddr) -> bool {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => panic!("IPv4 loopback only"),
    };
    let (local, remote) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && fields[1] == local && fields[2] == remote && fields[3] == "01"
    })
}
