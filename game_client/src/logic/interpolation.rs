//! Drawing remote players between the samples the server sent.
//!
//! Each remote sprite is drawn where its player was `delay` seconds ago,
//! interpolated between the two received samples around that time, as
//! Source's `cl_interp` does. The delay adapts to the link: it is the mean
//! gap between a player's samples (longer when updates are lost) plus twice
//! the network jitter, measured as the mean deviation of the RTT samples (as
//! TCP estimates its RTO). So a steady link gets a small buffer and a jittery
//! one a deeper one. The gaps themselves are not used as jitter: the server
//! only sends a player when it moves, so their irregularity is the players'
//! (a Python walker stepping at random), not the network's; measured that
//! way, a loopback demo got a 400 ms buffer. When samples stop, the sprite extrapolates briefly along
//! its last velocity, then holds; when it is too far from where it should be
//! (a teleport, a long stall) it snaps.

use bevy::prelude::*;

/// Where remote sprites are drawn: kept beside the players it hides.
pub use super::players::{DRAWN_MARGIN, DrawnArea};
use super::players::{
    LatestPosition, PlayerSystems, PositionHistory, REMOTE_Z, RemotePlayer, SampleInterval,
};
use super::players::{PIXELS_PER_UNIT, units_to_px};
use crate::net::{LinkMeasurement, NetSystems};

/// Bounds of the interpolation delay, seconds. The lower bound still covers
/// a 20 Hz sender; the upper bound keeps the view under half a second old.
pub const MIN_DELAY_SECS: f32 = 0.05;
pub const MAX_DELAY_SECS: f32 = 0.5;
/// The delay before anything is measured (two 10 Hz broadcasts).
pub const INITIAL_DELAY_SECS: f32 = 0.1;
/// Jitter (mean deviation of the gaps) is counted this many times in the delay.
pub const JITTER_FACTOR: f32 = 2.0;
/// Weight of a new gap sample in the running mean (per sample).
pub const GAP_SMOOTHING: f64 = 0.02;
/// Weights of a new RTT sample in its mean and mean deviation (TCP's 1/8, 1/4).
pub const RTT_SMOOTHING: f64 = 0.125;
pub const RTT_DEVIATION_SMOOTHING: f64 = 0.25;
/// A gap longer than this is a player standing still (the server only sends
/// moves), not network jitter: it is left out of the estimate.
pub const IDLE_GAP_SECS: f64 = 0.6;
/// How fast the delay follows its target, seconds of delay per second, so a
/// change never makes the sprites jump.
pub const DELAY_SLEW_PER_SEC: f32 = 0.25;
/// Extrapolate at most this long past the newest sample.
pub const MAX_EXTRAPOLATION_SECS: f64 = 0.25;
/// Two consecutive samples further apart than this (world units) are a
/// teleport on the server's side: jump instead of sliding across the map.
pub const SNAP_DISTANCE_UNITS: f32 = 100.0;
/// A sprite this close to where it should be (pixels) is not written, so
/// change detection and transform propagation skip it.
pub const SETTLED_PX: f32 = 0.01;

/// The adaptive interpolation delay and the gap statistics behind it.
#[derive(Resource, Debug, Clone, Copy)]
pub struct InterpolationDelay {
    /// The delay in use, seconds (follows `target_secs` at a bounded rate).
    pub delay_secs: f32,
    /// Where the measurements say the delay should be.
    pub target_secs: f32,
    /// Running mean of the gap between two samples of one player, seconds.
    pub mean_gap_secs: f64,
    /// Running mean deviation of the RTT: the jitter, seconds.
    pub jitter_secs: f64,
    /// Running mean of the RTT, seconds (`None` before the first sample).
    pub mean_rtt_secs: Option<f64>,
    /// Gap samples seen (the first ones seed the mean).
    pub samples: u64,
}

impl Default for InterpolationDelay {
    fn default() -> Self {
        InterpolationDelay {
            delay_secs: INITIAL_DELAY_SECS,
            target_secs: INITIAL_DELAY_SECS,
            mean_gap_secs: f64::from(INITIAL_DELAY_SECS),
            jitter_secs: 0.0,
            mean_rtt_secs: None,
            samples: 0,
        }
    }
}

impl InterpolationDelay {
    /// Adds the gap between two samples of one player.
    pub fn observe_gap(&mut self, gap_secs: f64) {
        if !(0.0..=IDLE_GAP_SECS).contains(&gap_secs) {
            return;
        }
        // The first samples weigh more so the estimate settles within a second.
        let weight = GAP_SMOOTHING.max(1.0 / (self.samples as f64 + 1.0));
        self.samples += 1;
        self.mean_gap_secs += weight * (gap_secs - self.mean_gap_secs);
        self.retarget();
    }

    /// Adds an RTT sample: its deviation from the mean is the jitter.
    pub fn observe_rtt(&mut self, rtt_secs: f64) {
        match self.mean_rtt_secs {
            None => self.mean_rtt_secs = Some(rtt_secs),
            Some(mean) => {
                let deviation = (rtt_secs - mean).abs();
                self.jitter_secs += RTT_DEVIATION_SMOOTHING * (deviation - self.jitter_secs);
                self.mean_rtt_secs = Some(mean + RTT_SMOOTHING * (rtt_secs - mean));
            }
        }
        self.retarget();
    }

    fn retarget(&mut self) {
        let target = self.mean_gap_secs + f64::from(JITTER_FACTOR) * self.jitter_secs;
        self.target_secs = (target as f32).clamp(MIN_DELAY_SECS, MAX_DELAY_SECS);
    }

    /// Moves the delay toward its target by at most `DELAY_SLEW_PER_SEC`.
    pub fn advance(&mut self, dt_secs: f32) {
        let step = DELAY_SLEW_PER_SEC * dt_secs;
        let gap = self.target_secs - self.delay_secs;
        self.delay_secs += gap.clamp(-step, step);
    }
}

/// Interpolation systems, for other plugins to order against (the overlay
/// draws after them).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterpolationSystems;

pub struct InterpolationPlugin;

impl Plugin for InterpolationPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<InterpolationDelay>()
            .init_resource::<DrawnArea>()
            .configure_sets(
                Update,
                InterpolationSystems
                    .after(PlayerSystems::Apply)
                    .after(NetSystems::Apply),
            )
            .add_systems(
                Update,
                (measure_jitter, interpolate_remote_players)
                    .chain()
                    .in_set(InterpolationSystems),
            );
    }
}

/// Feeds this frame's sample gaps and RTT samples into the delay estimate.
pub fn measure_jitter(
    mut gaps: MessageReader<SampleInterval>,
    mut measurements: MessageReader<LinkMeasurement>,
    mut delay: ResMut<InterpolationDelay>,
    time: Res<Time>,
) {
    // Read without writing first, so an idle frame does not mark it changed.
    let mut next = *delay;
    for sample in gaps.read() {
        next.observe_gap(sample.gap_secs);
    }
    for measurement in measurements.read() {
        if let LinkMeasurement::Rtt(rtt) = measurement {
            next.observe_rtt(rtt.as_secs_f64());
        }
    }
    next.advance(time.delta_secs());
    if next.delay_secs != delay.delay_secs
        || next.samples != delay.samples
        || next.mean_rtt_secs != delay.mean_rtt_secs
    {
        *delay = next;
    }
}

/// Where a player with these samples is drawn at `render_secs` (world units).
///
/// Walks back from the newest sample, so a player drawn a sample or two
/// behind reads only the first cache line of its history.
pub fn sample_at(history: &PositionHistory, render_secs: f64) -> Option<Vec2> {
    let (newest, newest_at) = history.latest()?;
    // The newest sample at or before the render time, counted from the newest.
    let Some(back) =
        (0..history.len()).find(|&i| history.back(i).is_some_and(|(_, at)| at <= render_secs))
    else {
        // Older than anything we have (a new player): its first position.
        return history.oldest().map(|(p, _)| p);
    };
    let (from, from_at) = history.back(back)?;
    if let Some((to, to_at)) = back.checked_sub(1).and_then(|i| history.back(i)) {
        if from.distance(to) > SNAP_DISTANCE_UNITS || to_at <= from_at {
            return Some(from);
        }
        let t = ((render_secs - from_at) / (to_at - from_at)) as f32;
        return Some(from.lerp(to, t.clamp(0.0, 1.0)));
    }
    // Past the newest sample: extrapolate briefly along the last velocity,
    // if the player was moving (samples close together).
    let ahead = (render_secs - newest_at).min(MAX_EXTRAPOLATION_SECS);
    if let Some((previous, previous_at)) = history.back(1) {
        let dt = newest_at - previous_at;
        if dt > 0.0 && dt <= IDLE_GAP_SECS && previous.distance(newest) <= SNAP_DISTANCE_UNITS {
            let velocity = (newest - previous) / dt as f32;
            // Taper so the extrapolation comes to rest instead of overshooting on.
            let fade = (1.0 - ahead / MAX_EXTRAPOLATION_SECS).max(0.0) as f32;
            return Some(newest + velocity * ahead as f32 * fade);
        }
    }
    Some(newest)
}

/// Where a player is drawn at `render_secs` (world units): interpolated
/// through its history, or, when the history missed samples (the player was
/// outside the drawn area, the view just moved onto it), held at its newest
/// position until the next sample restarts the history.
pub fn drawn_position(
    latest: &LatestPosition,
    history: &PositionHistory,
    render_secs: f64,
) -> Option<Vec2> {
    if latest.recorded_in(history) {
        sample_at(history, render_secs)
    } else {
        latest.position()
    }
}

/// What interpolation reads and writes of a remote player.
type RemoteSprite = (
    &'static LatestPosition,
    &'static PositionHistory,
    &'static mut Transform,
    &'static mut Visibility,
);

/// Places each remote sprite inside the [`DrawnArea`] where its player was
/// `delay` ago, and hides the others (their last sample is outside the
/// area; the margin covers how far the drawn position trails it).
pub fn interpolate_remote_players(
    time: Res<Time>,
    delay: Res<InterpolationDelay>,
    area: Res<DrawnArea>,
    mut players: Query<RemoteSprite, With<RemotePlayer>>,
) {
    let render_secs = time.elapsed_secs_f64() - f64::from(delay.delay_secs);
    let area = *area;
    players
        .par_iter_mut()
        .for_each(|(latest, history, mut transform, mut visibility)| {
            let Some(newest) = latest.position() else {
                return;
            };
            if !area.contains(units_to_px(newest)) {
                visibility.set_if_neq(Visibility::Hidden);
                return;
            }
            let goal_units = drawn_position(latest, history, render_secs).unwrap_or(newest);
            let goal = units_to_px(goal_units);
            let current = transform.translation.truncate();
            // Settled sprites are not written (no change detection, no propagation).
            if current.distance_squared(goal) >= SETTLED_PX * SETTLED_PX {
                transform.translation = goal.extend(REMOTE_Z);
            }
            visibility.set_if_neq(Visibility::Inherited);
        });
}

/// How far behind (pixels) a sprite is drawn from its newest sample; used by
/// the overlay.
pub fn lag_px(history: &PositionHistory, transform: &Transform) -> f32 {
    history
        .latest()
        .map(|(p, _)| transform.translation.truncate().distance(units_to_px(p)))
        .unwrap_or(0.0)
        / PIXELS_PER_UNIT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(samples: &[(f32, f64)]) -> PositionHistory {
        samples
            .iter()
            .map(|&(x, t)| (Vec2::new(x, 0.0), t))
            .collect()
    }

    #[test]
    fn draws_between_the_samples_around_the_render_time() {
        let h = history(&[(0.0, 1.0), (10.0, 1.1), (20.0, 1.2)]);
        assert_eq!(sample_at(&h, 1.05).unwrap().x, 5.0);
        assert_eq!(sample_at(&h, 0.5).unwrap().x, 0.0);
    }

    #[test]
    fn draws_further_back_than_the_recent_samples() {
        // Six samples: 1.15 lies between the 5th and 4th newest, in the ring.
        let h = history(&[
            (0.0, 1.0),
            (10.0, 1.1),
            (20.0, 1.2),
            (30.0, 1.3),
            (40.0, 1.4),
            (50.0, 1.5),
        ]);
        assert!((sample_at(&h, 1.15).unwrap().x - 15.0).abs() < 1e-3);
        assert!((sample_at(&h, 1.45).unwrap().x - 45.0).abs() < 1e-3);
        assert_eq!(sample_at(&h, 0.9).unwrap().x, 0.0);
    }

    #[test]
    fn extrapolates_briefly_then_holds() {
        let h = history(&[(0.0, 1.0), (10.0, 1.1)]);
        // 100 units/s; 50 ms past the newest sample, tapered by 0.8.
        let x = sample_at(&h, 1.15).unwrap().x;
        assert!((x - 14.0).abs() < 0.01, "{x}");
        // Long after: back at rest on the newest sample, not flying off.
        assert_eq!(sample_at(&h, 5.0).unwrap().x, 10.0);
    }

    #[test]
    fn a_history_that_missed_samples_holds_at_the_newest() {
        let h = history(&[(0.0, 1.0), (10.0, 1.1)]);
        let current = LatestPosition(Some((Vec2::new(10.0, 0.0), 1.1)));
        assert_eq!(drawn_position(&current, &h, 1.05).unwrap().x, 5.0);
        // Two samples arrived while the player was away (not in `h`).
        let ahead = LatestPosition(Some((Vec2::new(30.0, 0.0), 1.3)));
        assert_eq!(drawn_position(&ahead, &h, 1.05).unwrap().x, 30.0);
        assert_eq!(drawn_position(&ahead, &h, 1.25).unwrap().x, 30.0);
        assert_eq!(drawn_position(&LatestPosition(None), &h, 1.05), None);
    }

    #[test]
    fn a_teleport_jumps_instead_of_sliding() {
        let h = history(&[(0.0, 1.0), (1000.0, 1.1)]);
        assert_eq!(sample_at(&h, 1.09).unwrap().x, 0.0);
        assert_eq!(sample_at(&h, 1.1).unwrap().x, 1000.0);
    }

    #[test]
    fn the_delay_grows_with_jitter_and_stays_small_without() {
        let mut steady = InterpolationDelay::default();
        for _ in 0..500 {
            steady.observe_gap(0.1);
        }
        for _ in 0..20 {
            steady.observe_rtt(0.001);
        }
        assert!((steady.target_secs - 0.1).abs() < 0.005, "{steady:?}");
        // Idle gaps are not a send rate.
        steady.observe_gap(5.0);
        assert!((steady.target_secs - 0.1).abs() < 0.005);

        let mut jittery = steady;
        for i in 0..40 {
            jittery.observe_rtt(if i % 2 == 0 { 0.02 } else { 0.12 });
        }
        assert!(jittery.jitter_secs > 0.04, "{jittery:?}");
        assert!(jittery.target_secs > 0.18, "{jittery:?}");
    }
}
