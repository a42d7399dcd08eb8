//! Broadcast statistics: players online, RTT, position updates per second and
//! bytes per second, plus a short history for the HUD graph. Headless clients
//! log a status line every second instead, for operators and tests:
//! `status players=N rtt_ms=R updates_per_s=U interp_ms=D`.

use std::collections::VecDeque;
use std::time::Duration;

use bevy::prelude::*;

use super::interpolation::{InterpolationDelay, InterpolationSystems};
use super::players::{PlayerIndex, PlayerSystems};
use crate::ClientSettings;
use crate::net::{ConnectionState, LinkMeasurement, LocalPlayerId, NetSystems, PositionsReceived};

/// Rates are computed over windows of this length, seconds.
pub const STATS_WINDOW_SECS: f64 = 0.5;
/// Samples kept for the graph (30 s at 0.5 s each).
pub const STATS_HISTORY_LEN: usize = 60;
/// A headless client logs its status line this often, seconds.
pub const HEADLESS_LOG_PERIOD_SECS: f64 = 1.0;

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
                    .after(PlayerSystems::Apply),
            )
            .add_systems(
                Update,
                log_status_line
                    .after(NetSystems::Apply)
                    .after(InterpolationSystems)
                    .run_if(|settings: Res<ClientSettings>| settings.headless),
            );
    }
}

/// Counts what arrived this frame and rolls the rate windows. Writes the
/// resource only when something changed, so the HUD's `is_changed` guard
/// skips the frames in between.
pub fn record_network_stats(
    mut positions: MessageReader<PositionsReceived>,
    mut measurements: MessageReader<LinkMeasurement>,
    mut stats: ResMut<NetStats>,
    index: Res<PlayerIndex>,
    local_id: Res<LocalPlayerId>,
    state: Res<State<ConnectionState>>,
    time: Res<Time<Real>>,
) {
    for PositionsReceived(batch) in positions.read() {
        let stats = stats.bypass_change_detection();
        stats.window_updates += batch.len() as u64;
        stats.total_updates += batch.len() as u64;
    }
    for measurement in measurements.read() {
        match measurement {
            LinkMeasurement::Traffic { bytes } => {
                let stats = stats.bypass_change_detection();
                stats.window_bytes += bytes;
                stats.total_bytes += bytes;
            }
            LinkMeasurement::Rtt(rtt) => stats.rtt = Some(*rtt),
        }
    }
    let playing = *state.get() == ConnectionState::Playing;
    let me = usize::from(playing && local_id.0.is_some());
    let online = index.len() + me;
    if stats.players_online != online {
        stats.players_online = online;
    }

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

/// The headless status line (a stable format: tests and operators parse it).
pub fn status_line(stats: &NetStats, delay: &InterpolationDelay) -> String {
    let rtt_ms = match stats.rtt {
        Some(rtt) => format!("{:.1}", rtt.as_secs_f64() * 1000.0),
        None => "-".into(),
    };
    format!(
        "status players={} rtt_ms={rtt_ms} updates_per_s={:.0} interp_ms={:.0}",
        stats.players_online,
        stats.updates_per_sec,
        delay.delay_secs * 1000.0
    )
}

/// Headless: the status line every second (and the connection state, which
/// the line leaves out, when it is not `Playing`).
pub fn log_status_line(
    stats: Res<NetStats>,
    delay: Res<InterpolationDelay>,
    state: Res<State<ConnectionState>>,
    time: Res<Time<Real>>,
    mut last_log_secs: Local<f64>,
) {
    let now = time.elapsed_secs_f64();
    if now - *last_log_secs < HEADLESS_LOG_PERIOD_SECS {
        return;
    }
    *last_log_secs = now;
    let line = status_line(&stats, &delay);
    match state.get() {
        ConnectionState::Playing => info!("{line}"),
        other => info!("{line} state={other:?}"),
    }
}

/// "1.2 ms" or "–".
pub fn format_rtt(rtt: Option<Duration>) -> String {
    match rtt {
        Some(rtt) => format!("{:.1} ms", rtt.as_secs_f64() * 1000.0),
        None => "–".into(),
    }
}
