//! Helpers for the web view's tests: a plain HTTP/1 request over a real
//! socket (hyper's client), and a decoder of the `/ws` records that keeps
//! the world a viewer would see.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::common::PATIENCE;

/// One request on a fresh connection; the whole answer.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> Response<Bytes> {
    try_request(addr, method, path, Bytes::new())
        .await
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"))
}

/// Like [`request`], with a body, and errors returned.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Bytes,
) -> Result<Response<Bytes>, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Response::from_parts(parts, bytes))
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .map_err(|_| format!("no answer within {PATIENCE:?}"))?
}

/// A player as the web stream describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub legacy: bool,
    pub position: Option<(i16, i16)>,
}

/// One record of the web format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Reset,
    Join { id: i32, legacy: bool, name: String },
    Move { id: i32, x: i16, y: i16 },
    Leave { id: i32 },
}

/// Every record of one message, as documented in PROTOCOL.md; panics on
/// anything else (the server must never send it).
pub fn records(mut bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    while bytes.has_remaining() {
        let tag = bytes.get_u8();
        let record = match tag {
            1 => Record::Reset,
            2 => {
                let id = bytes.get_i32_le();
                let kind = bytes.get_u8();
                assert!(kind <= 1, "kind {kind}");
                let len = bytes.get_u8() as usize;
                let name = std::str::from_utf8(&bytes[..len]).expect("UTF-8 name");
                let record = Record::Join {
                    id,
                    legacy: kind == 1,
                    name: name.to_owned(),
                };
                bytes.advance(len);
                record
            }
            3 => Record::Move {
                id: bytes.get_i32_le(),
                x: bytes.get_i16_le(),
                y: bytes.get_i16_le(),
            },
            4 => Record::Leave {
                id: bytes.get_i32_le(),
            },
            other => panic!("unknown tag {other}"),
        };
        out.push(record);
    }
    out
}

/// The world a viewer would draw, built from records.
#[derive(Debug, Default)]
pub struct View {
    pub players: BTreeMap<i32, Seen>,
    pub resets: usize,
}

impl View {
    pub fn apply(&mut self, records: &[Record]) {
        for record in records {
            match record {
                Record::Reset => {
                    self.players.clear();
                    self.resets += 1;
                }
                Record::Join { id, legacy, name } => {
                    let seen = self.players.entry(*id).or_insert(Seen {
                        name: String::new(),
                        legacy: *legacy,
                        position: None,
                    });
                    seen.name = name.clone();
                    seen.legacy = *legacy;
                }
                Record::Move { id, x, y } => {
                    if let Some(seen) = self.players.get_mut(id) {
                        seen.position = Some((*x, *y));
                    }
                }
                Record::Leave { id } => {
                    self.players.remove(id);
                }
            }
        }
    }
}
