//! The legacy "math" service over real sockets.

mod common;

use bytes::BufMut;
use common::*;
use shared::legacy::MathRequest;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn read_reply(stream: &mut TcpStream) -> (i32, f64) {
    let bytes = read_exact(stream, 12).await;
    (
        i32::from_le_bytes(bytes[..4].try_into().unwrap()),
        f64::from_le_bytes(bytes[4..].try_into().unwrap()),
    )
}

async fn ask(stream: &mut TcpStream, command: &str, a: i16, b: i16) -> (i32, f64) {
    stream
        .write_all(&MathRequest::new(command, a, b).to_bytes())
        .await
        .unwrap();
    read_reply(stream).await
}

#[tokio::test]
async fn four_operations_in_upper_and_lower_case() {
    let server = TestServer::start().await;
    let (mut client, _) = connect_legacy(server.addrs.math).await;
    assert_eq!(ask(&mut client, "SUMA", 3, 4).await, (0, 7.0));
    assert_eq!(ask(&mut client, "RESTA", 3, 4).await, (0, -1.0));
    assert_eq!(
        ask(&mut client, "MULTIPLICACION", -300, 300).await,
        (0, -90000.0)
    );
    assert_eq!(ask(&mut client, "DIVISION", 7, 2).await, (0, 3.5));
    assert_eq!(
        ask(&mut client, "suma", i16::MAX, i16::MAX).await,
        (0, 65534.0)
    );
    assert_eq!(ask(&mut client, "division", 1, 3).await, (0, 1.0 / 3.0));
    server.stop().await;
}

#[tokio::test]
async fn math_division_by_zero_keeps_connection_open() {
    let server = TestServer::start().await;
    let (mut client, _) = connect_legacy(server.addrs.math).await;
    assert_eq!(ask(&mut client, "DIVISION", 5, 0).await, (1, 0.0));
    assert_eq!(ask(&mut client, "SUMA", 1, 1).await, (0, 2.0));
    server.stop().await;
}

#[tokio::test]
async fn unknown_command_keeps_connection_open() {
    let server = TestServer::start().await;
    let (mut client, _) = connect_legacy(server.addrs.math).await;
    assert_eq!(ask(&mut client, "POTENCIA", 2, 3).await, (2, 0.0));
    assert_eq!(ask(&mut client, "RESTA", 1, 1).await, (0, 0.0));
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start().await;
    let (mut client, _) = connect_legacy(server.addrs.math).await;
    let mut batch = Vec::new();
    for i in 0..500i16 {
        batch.extend(MathRequest::new("SUMA", i, 1).to_bytes());
        batch.extend(MathRequest::new("DIVISION", i, 0).to_bytes());
    }
    client.write_all(&batch).await.unwrap();
    for i in 0..500i16 {
        assert_eq!(read_reply(&mut client).await, (0, f64::from(i + 1)));
        assert_eq!(read_reply(&mut client).await, (1, 0.0));
    }
    server.stop().await;
}

#[tokio::test]
async fn requests_split_into_single_bytes_are_reassembled() {
    let server = TestServer::start().await;
    let (mut client, _) = connect_legacy(server.addrs.math).await;
    let bytes = MathRequest::new("MULTIPLICACION", 6, 7).to_bytes();
    for byte in bytes {
        client.write_all(&[byte]).await.unwrap();
        client.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(read_reply(&mut client).await, (0, 42.0));
    server.stop().await;
}

async fn malformed_gets_status_3_then_close(raw: Vec<u8>) {
    let server = TestServer::start().await;
    let (mut other, _) = connect_legacy(server.addrs.math).await;
    let (mut client, id) = connect_legacy(server.addrs.math).await;
    // One good request first: its reply must still come, in order.
    let mut bytes = MathRequest::new("SUMA", 1, 2).to_bytes();
    bytes.extend(raw);
    client.write_all(&bytes).await.unwrap();
    assert_eq!(read_reply(&mut client).await, (0, 3.0));
    assert_eq!(read_reply(&mut client).await, (3, 0.0));
    assert!(expect_closed(&mut client).await.is_empty());
    eventually("malformed client unregistered", || {
        server.shared.registry.get(id).is_none()
    })
    .await;
    assert_eq!(
        ask(&mut other, "SUMA", 2, 2).await,
        (0, 4.0),
        "other clients are not disturbed"
    );
    server.stop().await;
}

fn header(len: i32) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_i32_le(len);
    out.put_i16_le(1);
    out.put_i16_le(2);
    out
}

#[tokio::test]
async fn zero_length_command_is_malformed() {
    malformed_gets_status_3_then_close(header(0)).await;
}

#[tokio::test]
async fn negative_length_command_is_malformed() {
    malformed_gets_status_3_then_close(header(-5)).await;
}

#[tokio::test]
async fn over_long_command_is_malformed_without_waiting_for_its_body() {
    // Only the header of a 65-byte command: the reply must not wait for the body.
    malformed_gets_status_3_then_close(header(65)).await;
}

#[tokio::test]
async fn non_ascii_command_is_malformed() {
    let mut raw = header(4);
    raw.extend_from_slice(b"SU\xd1\x91");
    malformed_gets_status_3_then_close(raw).await;
}

#[tokio::test]
async fn longest_valid_command_is_unknown_not_malformed() {
    let server = TestServer::start().await;
    let (mut client, _) = connect_legacy(server.addrs.math).await;
    assert_eq!(ask(&mut client, &"X".repeat(64), 1, 1).await, (2, 0.0));
    assert_eq!(ask(&mut client, "S", 1, 1).await, (2, 0.0));
    server.stop().await;
}
