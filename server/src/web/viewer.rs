//! One live viewer on `/ws`: a subscriber of the world in the web format
//! that is not a player. It is sent a snapshot, then every broadcast, one
//! WebSocket binary message per chunk the fan-out hands it. Read-only: a
//! data message from the viewer closes it with code 1008.
//!
//! A viewer is treated like any other subscriber: if it falls behind, the
//! fan-out drops its backlog and sends it a fresh snapshot, so it never
//! slows players down. A viewer whose socket stays unwritable for
//! `--write-timeout-ms`, or that answers no ping for `--http-idle-timeout-ms`,
//! is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::Bytes;
use tokio::time::{Instant, timeout};
use tracing::{debug, info};

use super::format::WEB_RECORDS;
use crate::Shared;

/// Largest message or frame a viewer may send, in bytes: it has nothing to
/// say beyond pongs and a close.
pub const MAX_VIEWER_MESSAGE_BYTES: usize = 1024;

/// Why a viewer's session ended (logged).
#[derive(Debug)]
enum End {
    Shutdown,
    ClosedByViewer,
    SentData,
    Unresponsive,
    WriteTimeout,
    Socket(axum::Error),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Shutdown => f.write_str("server shutting down"),
            End::ClosedByViewer => f.write_str("closed by the viewer"),
            End::SentData => f.write_str("sent data on a read-only stream"),
            End::Unresponsive => f.write_str("answered no ping"),
            End::WriteTimeout => f.write_str("socket stayed unwritable (slow viewer)"),
            End::Socket(err) => write!(f, "socket error: {err}"),
        }
    }
}

/// Serves one viewer until it leaves, misbehaves or the server stops.
pub async fn serve(mut socket: WebSocket, peer: SocketAddr, shared: Arc<Shared>) {
    info!(%peer, "web viewer connected");
    let started = Instant::now();
    let end = session(&mut socket, &shared).await;
    let close = match &end {
        End::Shutdown => Some((close_code::AWAY, "server shutting down")),
        End::SentData => Some((close_code::POLICY, "read-only")),
        End::Unresponsive => Some((close_code::POLICY, "no pong")),
        _ => None,
    };
    if let Some((code, reason)) = close {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = timeout(shared.config.write_timeout(), socket.send(frame)).await;
    }
    info!(%peer, reason = %end, seconds = started.elapsed().as_secs(), "web viewer disconnected");
}

async fn session(socket: &mut WebSocket, shared: &Shared) -> End {
    let subscription = shared.world.subscribe(&WEB_RECORDS);
    let idle = shared.config.web_limits().idle_timeout;
    let mut ping = tokio::time::interval(idle / 3);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let write_timeout = shared.config.write_timeout();
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return End::Shutdown,
            _ = subscription.changed() => {
                for chunk in subscription.take_outgoing().chunks {
                    if let Err(end) = send(socket, Message::Binary(chunk), write_timeout).await {
                        return end;
                    }
                }
            }
            received = socket.recv() => match received {
                None | Some(Ok(Message::Close(_))) => return End::ClosedByViewer,
                Some(Err(err)) => return End::Socket(err),
                Some(Ok(Message::Pong(_) | Message::Ping(_))) => heard = Instant::now(),
                Some(Ok(Message::Text(_) | Message::Binary(_))) => return End::SentData,
            },
            _ = ping.tick() => {
                if heard.elapsed() >= idle {
                    return End::Unresponsive;
                }
                if let Err(end) = send(socket, Message::Ping(Bytes::new()), write_timeout).await {
                    return end;
                }
            }
        }
    }
}

async fn send(socket: &mut WebSocket, message: Message, limit: Duration) -> Result<(), End> {
    match timeout(limit, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => {
            debug!(cause = %err, "web viewer write failed");
            Err(End::Socket(err))
        }
        Err(_) => Err(End::WriteTimeout),
    }
}
