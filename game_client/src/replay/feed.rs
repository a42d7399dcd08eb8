//! The replay's clock and the system that turns the records due this frame
//! into the messages the network drain writes ([`RosterEvent`],
//! [`PositionsReceived`]), in the drain's place.
//!
//! The messages are written directly rather than through the network
//! thread's channel: sent and drained by the same thread in one frame, a
//! bounded channel (and the big roster of a recording's first frame) could
//! otherwise fill it and stall the frame that was to drain it.

use bevy::prelude::*;
use shared::native::PlayerPosition;
use shared::recording::{Playback, Record, Recording};

use crate::net::{
    ConnectionInfo, ConnectionState, NetSystems, PositionsReceived, RosterEvent, channel_pair,
};

/// Slowest and fastest playback speeds.
pub const MIN_SPEED: f64 = 0.25;
pub const MAX_SPEED: f64 = 16.0;

/// Where the replay is and how it moves; the timeline reads and steers it.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct ReplayClock {
    /// The moment shown, in ms since the recording started.
    pub now_ms: u64,
    /// The recording's length, in ms.
    pub duration_ms: u64,
    /// When the recording started (ms since the Unix epoch).
    pub start_unix_ms: u64,
    /// Recording time per real time: 1.0 plays as it happened.
    pub speed: f64,
    pub paused: bool,
    /// A jump asked for (keys, a click on the timeline), done next frame.
    pub seek_to: Option<u64>,
    /// Exit when the end is reached (headless); otherwise pause there.
    pub exit_at_end: bool,
    /// Recording time not yet played, below a millisecond.
    carry_ms: f64,
}

impl ReplayClock {
    /// Changes the speed by `factor`, within [`MIN_SPEED`]..=[`MAX_SPEED`].
    pub fn scale_speed(&mut self, factor: f64) {
        self.speed = (self.speed * factor).clamp(MIN_SPEED, MAX_SPEED);
    }

    /// Jumps by `delta_ms` (negative: back), within the recording.
    pub fn seek_by(&mut self, delta_ms: i64) {
        let from = self.seek_to.unwrap_or(self.now_ms) as i64;
        self.seek_to = Some((from + delta_ms).clamp(0, self.duration_ms as i64) as u64);
    }
}

/// The recording being played.
#[derive(Resource)]
struct ReplaySource {
    playback: Playback,
    started: bool,
}

/// The replay's systems run with the network drain, before the sets that
/// apply what it received.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplaySystems;

/// Plays `recording` as the network would (add it instead of
/// `NetworkThreadPlugin`).
pub struct ReplayFeedPlugin {
    pub recording: Recording,
    pub label: String,
    pub exit_at_end: bool,
}

impl Plugin for ReplayFeedPlugin {
    fn build(&self, app: &mut App) {
        // Channels nothing is sent on, for the systems that expect them:
        // the drain finds no event, commands go nowhere.
        let (events, commands, _, _) = channel_pair();
        let recording = self.recording.clone();
        app.insert_resource(events)
            .insert_resource(commands)
            .insert_resource(ConnectionInfo {
                target: self.label.clone(),
                server: format!("recording {}", self.label),
                ..default()
            })
            .insert_resource(ReplayClock {
                now_ms: 0,
                duration_ms: recording.duration_ms(),
                start_unix_ms: recording.start_unix_ms(),
                speed: 1.0,
                paused: false,
                seek_to: None,
                exit_at_end: self.exit_at_end,
                carry_ms: 0.0,
            })
            .insert_resource(ReplaySource {
                playback: Playback::new(recording),
                started: false,
            })
            .configure_sets(Update, ReplaySystems.in_set(NetSystems::Receive))
            .add_systems(Update, play_recording.in_set(ReplaySystems));
    }
}

/// Moves the clock by this frame's real time × speed (or to a seek
/// target) and writes what happened meanwhile as the network's messages.
fn play_recording(
    time: Res<Time<Real>>,
    mut clock: ResMut<ReplayClock>,
    mut source: ResMut<ReplaySource>,
    mut next_state: ResMut<NextState<ConnectionState>>,
    mut roster: MessageWriter<RosterEvent>,
    mut positions: MessageWriter<PositionsReceived>,
    mut exit: MessageWriter<AppExit>,
) {
    let source = &mut *source;
    if !source.started {
        // What a Welcome does, without a player of our own.
        source.started = true;
        next_state.set(ConnectionState::Playing);
    }
    let result = if let Some(target) = clock.seek_to.take() {
        clock.now_ms = target;
        clock.carry_ms = 0.0;
        source.playback.seek(target).map(|world| {
            roster.write(RosterEvent::Snapshot(world.players().cloned().collect()));
        })
    } else if clock.paused || clock.now_ms >= clock.duration_ms {
        Ok(())
    } else {
        let advance = time.delta_secs_f64() * 1000.0 * clock.speed + clock.carry_ms;
        clock.carry_ms = advance.fract();
        clock.now_ms = (clock.now_ms + advance as u64).min(clock.duration_ms);
        play_records(
            &mut source.playback,
            clock.now_ms,
            &mut roster,
            &mut positions,
        )
    };
    if let Err(err) = result {
        error!("cannot replay: {err}");
        exit.write(AppExit::error());
        return;
    }
    if clock.now_ms >= clock.duration_ms && !clock.paused {
        if clock.exit_at_end {
            info!(
                "end of the recording ({:.1} s)",
                clock.duration_ms as f64 / 1000.0
            );
            exit.write(AppExit::Success);
        } else {
            clock.paused = true;
        }
    }
}

/// Plays up to `to_ms`, writing messages in the order of the records:
/// moves gather into one position batch until a join, leave or snapshot.
fn play_records(
    playback: &mut Playback,
    to_ms: u64,
    roster: &mut MessageWriter<RosterEvent>,
    positions: &mut MessageWriter<PositionsReceived>,
) -> Result<(), shared::recording::OpenError> {
    let mut batch = Vec::new();
    let mut flush = |batch: &mut Vec<PlayerPosition>| {
        if !batch.is_empty() {
            positions.write(PositionsReceived(std::mem::take(batch)));
        }
    };
    playback.advance(to_ms, |record| {
        let event = match record {
            Record::Move { id, position } => {
                batch.push(PlayerPosition {
                    id: *id,
                    position: *position,
                });
                return;
            }
            Record::Join(info) => RosterEvent::Joined(info.clone()),
            Record::Leave { id } => RosterEvent::Left(*id),
            Record::Snapshot(players) => RosterEvent::Snapshot(players.clone()),
            Record::Time { .. } => return,
        };
        flush(&mut batch);
        roster.write(event);
    })?;
    flush(&mut batch);
    Ok(())
}
