//! Broadcast statistics: players online, RTT, position updates per second and
//! bytes per second, plus a short history for the HUD graph. Headless clients
//! log them periodically instead.

use std::collections::VecDeque;
use std::time::Duration;

use bevy::prelude::*;

use crate::ClientSettings;
use crate::net_thread::NetEvent;
use crate::network::{ConnectionState, LocalPlayerId, NetSystems, ServerEvent};
use crate::players::PlayerIndex;

/// Rates are computed over windows of this length, seconds.
pub const STATS_WINDOW_SECS: f64 = 0.5;
/// Samples kept for the graph (30 s at 0.5 s each).
pub const STATS_HISTORY_LEN: usize = 60;
/// A headless client logs its stats this often, seconds.
pub const HEADLESS_LOG_PERIOD_SECS: f64 = 2.0;

#[derive(Resource, Debug, Default, Clone)]
pub struct NetStats {
    /// Remote players we know plus ourselves (once welcomed).
    pub players_online: usize,
    /// Latest round-trip time sample.
    pub rtt: Option<Duration>,
    /// Position updates received per second (entries of `Positions` batches).
    pub updates_per_sec: f32,
    /// Bytes received per second (whole frames).
    pub bytes_per_sec: f32,
    /// Updates-per-second samples, oldest first, for the graph.
    pub history: VecDeque<f32>,
    pub total_updates: u64,
    pub total_bytes: u64,
    window_updates: u64,
    window_bytes: u64,
    window_started_secs: f64,
}

pub struct NetStatsPlugin;

impl Plugin for NetStatsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<NetStats>()
            .add_systems(
                Update,
                record_network_stats
                    .in_set(NetSystems::Apply)
                    .after(crate::players::apply_roster_events),
            )
            .add_systems(
                Update,
                log_network_stats
                    .after(NetSystems::Apply)
                    .run_if(|settings: Res<ClientSettings>| settings.headless),
            );
    }
}

/// Counts what arrived this frame and rolls the rate windows.
pub fn record_network_stats(
    mut messages: MessageReader<ServerEvent>,
    mut stats: ResMut<NetStats>,
    index: Res<PlayerIndex>,
    local_id: Res<LocalPlayerId>,
    state: Res<State<ConnectionState>>,
    time: Res<Time<Real>>,
) {
    for ServerEvent(event) in messages.read() {
        match event {
            NetEvent::Positions(positions) => {
                stats.window_updates += positions.len() as u64;
                stats.total_updates += positions.len() as u64;
            }
            NetEvent::Traffic { bytes } => {
                stats.window_bytes += bytes;
                stats.total_bytes += bytes;
            }
            NetEvent::Rtt(rtt) => stats.rtt = Some(*rtt),
            _ => {}
        }
    }
    let playing = *state.get() == ConnectionState::Playing;
    let me = usize::from(playing && local_id.0.is_some());
    stats.players_online = index.0.len() + me;

    let now = time.elapsed_secs_f64();
    let elapsed = now - stats.window_started_secs;
    if elapsed >= STATS_WINDOW_SECS {
        stats.updates_per_sec = (stats.window_updates as f64 / elapsed) as f32;
        stats.bytes_per_sec = (stats.window_bytes as f64 / elapsed) as f32;
        stats.window_updates = 0;
        stats.window_bytes = 0;
        stats.window_started_secs = now;
        let sample = stats.updates_per_sec;
        if stats.history.len() >= STATS_HISTORY_LEN {
            stats.history.pop_front();
        }
        stats.history.push_back(sample);
    }
}

/// Headless: a periodic one-line summary.
pub fn log_network_stats(
    stats: Res<NetStats>,
    state: Res<State<ConnectionState>>,
    time: Res<Time<Real>>,
    mut last_log_secs: Local<f64>,
) {
    let now = time.elapsed_secs_f64();
    if now - *last_log_secs < HEADLESS_LOG_PERIOD_SECS {
        return;
    }
    *last_log_secs = now;
    info!(
        "stats: state={:?} players={} rtt={} updates/s={:.1} bytes/s={:.0}",
        state.get(),
        stats.players_online,
        format_rtt(stats.rtt),
        stats.updates_per_sec,
        stats.bytes_per_sec
    );
}

/// "1.2 ms" or "–".
pub fn format_rtt(rtt: Option<Duration>) -> String {
    match rtt {
        Some(rtt) => format!("{:.1} ms", rtt.as_secs_f64() * 1000.0),
        None => "–".into(),
    }
}
