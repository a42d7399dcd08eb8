//! `gameserver replay PATH --web HOST:PORT`: the live web view's page, fed
//! from a recording instead of the world. Read-only, and no game port is
//! opened.
//!
//! Each viewer plays the recording on its own. The page steers it through
//! the query of its `/ws` URL (`?at=MS&speed=S&paused=0|1`): a seek, a new
//! speed or a pause reconnects with a new query, so the stream stays
//! one-way, as the live one (a data message from the viewer still closes
//! it). Every message ends with a CLOCK record (see [`crate::web::format`])
//! saying where the replay is, which the page shows on its timeline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::BytesMut;
use shared::recording::{OpenError, Playback, Record, Recording};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::web::format::{Clock, TAG_RESET, put_clock, put_join, put_leave, put_move};
use crate::web::viewer::MAX_VIEWER_MESSAGE_BYTES;

/// How often a playing replay sends what happened meanwhile.
pub const TICK: Duration = Duration::from_millis(50);
/// How often a paused (or finished) replay still says where it is, so the
/// connection is never idle.
pub const IDLE_CLOCK: Duration = Duration::from_secs(1);
/// Slowest and fastest speeds a viewer may ask for.
pub const MIN_SPEED: f64 = 0.25;
pub const MAX_SPEED: f64 = 16.0;

/// What every replay viewer shares.
#[derive(Debug)]
pub struct ReplayState {
    pub recording: Recording,
    pub shutdown: CancellationToken,
    pub write_timeout: Duration,
}

/// The routes: the live view's page and a `/ws` that plays the recording.
pub fn router(state: Arc<ReplayState>) -> Router {
    crate::web::with_page(Router::new().route("/ws", get(upgrade))).with_state(state)
}

/// Where a viewer asked to start (the `/ws` query).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Start {
    pub at_ms: u64,
    pub speed: f64,
    pub paused: bool,
}

impl Start {
    /// Reads `at`, `speed` and `paused` from a query; anything missing or
    /// unreadable keeps its default (start, ×1, playing), speeds are
    /// clamped.
    pub fn parse(query: Option<&str>) -> Start {
        let mut start = Start {
            at_ms: 0,
            speed: 1.0,
            paused: false,
        };
        for pair in query.unwrap_or("").split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            match key {
                "at" => start.at_ms = value.parse().unwrap_or(0),
                "speed" => {
                    if let Ok(speed) = value.parse::<f64>()
                        && speed.is_finite()
                    {
                        start.speed = speed.clamp(MIN_SPEED, MAX_SPEED);
                    }
                }
                "paused" => start.paused = value == "1",
                _ => {}
            }
        }
        start
    }
}

async fn upgrade(
    upgrade: WebSocketUpgrade,
    uri: Uri,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<Arc<ReplayState>>,
) -> impl IntoResponse {
    let start = Start::parse(uri.query());
    upgrade
        .max_message_size(MAX_VIEWER_MESSAGE_BYTES)
        .max_frame_size(MAX_VIEWER_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, peer, state, start))
}

async fn serve(mut socket: WebSocket, peer: SocketAddr, state: Arc<ReplayState>, start: Start) {
    info!(%peer, at_ms = start.at_ms, speed = start.speed, paused = start.paused, "replay viewer connected");
    let end = session(&mut socket, &state, start).await;
    info!(%peer, reason = end, "replay viewer disconnected");
}

/// Plays the recording to one viewer; returns why it stopped.
async fn session(socket: &mut WebSocket, state: &ReplayState, start: Start) -> &'static str {
    let recording = &state.recording;
    let mut playback = Playback::new(recording.clone());
    let mut clock = Clock {
        now_ms: start.at_ms.min(recording.duration_ms()),
        duration_ms: recording.duration_ms(),
        start_unix_ms: recording.start_unix_ms(),
        speed: start.speed,
        paused: start.paused,
    };
    let mut out = BytesMut::new();
    // Reading the file blocks: briefly, from the page cache, a snapshot
    // interval of records at most.
    let seeked = tokio::task::block_in_place(|| snapshot(&mut playback, clock.now_ms, &mut out));
    if seeked.is_err() {
        return "cannot read the recording";
    }
    put_clock(&mut out, &clock);
    if send(socket, &mut out, state.write_timeout).await.is_err() {
        return "write failed";
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    let mut last_sent = Instant::now();
    let mut carry_ms = 0.0;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return "server shutting down",
            received = socket.recv() => match received {
                None | Some(Ok(Message::Close(_))) => return "closed by the viewer",
                Some(Err(_)) => return "socket error",
                Some(Ok(Message::Pong(_) | Message::Ping(_))) => {}
                Some(Ok(Message::Text(_) | Message::Binary(_))) => return "sent data on a read-only stream",
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let elapsed = now.duration_since(last);
                last = now;
                let playing = !clock.paused && clock.now_ms < clock.duration_ms;
                if playing {
                    let advance = elapsed.as_secs_f64() * 1000.0 * clock.speed + carry_ms;
                    carry_ms = advance.fract();
                    clock.now_ms = (clock.now_ms + advance as u64).min(clock.duration_ms);
                    let to = clock.now_ms;
                    if tokio::task::block_in_place(|| play(&mut playback, to, &mut out)).is_err() {
                        return "cannot read the recording";
                    }
                } else if now.duration_since(last_sent) < IDLE_CLOCK {
                    continue;
                }
                put_clock(&mut out, &clock);
                if send(socket, &mut out, state.write_timeout).await.is_err() {
                    return "write failed or timed out";
                }
                last_sent = now;
            }
        }
    }
}

/// The world at `at_ms` as a RESET and every player.
fn snapshot(playback: &mut Playback, at_ms: u64, out: &mut BytesMut) -> Result<(), OpenError> {
    let world = playback.seek(at_ms)?;
    put_world(out, world.players());
    Ok(())
}

fn put_world<'a>(
    out: &mut BytesMut,
    players: impl Iterator<Item = &'a shared::native::PlayerState>,
) {
    out.extend_from_slice(&[TAG_RESET]);
    for player in players {
        put_join(out, &player.info);
        if let Some(position) = player.position {
            put_move(out, player.info.id, position);
        }
    }
}

/// The records up to `to_ms`, in the web view's records.
fn play(playback: &mut Playback, to_ms: u64, out: &mut BytesMut) -> Result<(), OpenError> {
    playback.advance(to_ms, |record| match record {
        Record::Join(info) => put_join(out, info),
        Record::Move { id, position } => put_move(out, *id, *position),
        Record::Leave { id } => put_leave(out, *id),
        Record::Snapshot(players) => put_world(out, players.iter()),
        Record::Time { .. } => {}
    })
}

async fn send(socket: &mut WebSocket, out: &mut BytesMut, limit: Duration) -> Result<(), ()> {
    let message = Message::Binary(out.split().freeze());
    match timeout(limit, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_read_from_the_query_with_defaults_and_clamps() {
        assert_eq!(
            Start::parse(Some("at=1500&speed=2&paused=1")),
            Start {
                at_ms: 1500,
                speed: 2.0,
                paused: true
            }
        );
        assert_eq!(
            Start::parse(Some("speed=1000&at=x&junk")),
            Start {
                at_ms: 0,
                speed: MAX_SPEED,
                paused: false
            }
        );
        assert_eq!(
            Start::parse(None),
            Start {
                at_ms: 0,
                speed: 1.0,
                paused: false
            }
        );
        assert_eq!(Start::parse(Some("speed=NaN")).speed, 1.0);
    }
}
