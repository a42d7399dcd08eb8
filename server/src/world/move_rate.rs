//! The move-rate cap: how many moves of one player reach the world per
//! second (`--max-moves-per-second`). A token bucket per player, pure (the
//! time is passed in), so that one client sending positions as fast as it
//! can costs every observer no more than an ordinary player times a small
//! constant.

use std::time::Duration;

use tokio::time::Instant;

/// Positions of one player that a single broadcast carries in full; past
/// that, the player's newest position replaces its last one in the log.
/// Bursts (several positions in one TCP read) are delivered whole; a client
/// sending faster than this is coalesced, latest wins, so one flooder cannot
/// fill everyone's pipe with its own moves.
pub const MAX_MOVES_PER_BROADCAST: u32 = 32;

/// Default of `--max-moves-per-second`: twelve times the 10 Hz the demos
/// send at, so no honest client is ever coalesced.
pub const DEFAULT_MAX_MOVES_PER_SECOND: u32 = 120;

/// Moves a player may make at once above the rate: one TCP read's burst,
/// as much as a single broadcast carries in full.
pub const MOVE_BURST: u32 = MAX_MOVES_PER_BROADCAST;

/// The cap every local player's moves are held to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoveRate {
    per_second: f64,
    burst: f64,
}

impl MoveRate {
    /// `per_second` moves a second, [`MOVE_BURST`] at once; `None` for 0
    /// (no cap).
    pub fn per_second(per_second: u32) -> Option<MoveRate> {
        (per_second > 0).then(|| MoveRate {
            per_second: f64::from(per_second),
            burst: f64::from(MOVE_BURST),
        })
    }
}

/// One player's bucket: moves it may make now, refilled with time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MoveBudget {
    tokens: f64,
    /// When `tokens` was last brought up to date (`None`: never; a new
    /// player starts with a full burst).
    refilled: Option<Instant>,
}

impl MoveBudget {
    /// Takes up to `wanted` moves at `now`; returns how many it may make.
    pub fn take(&mut self, wanted: usize, rate: MoveRate, now: Instant) -> usize {
        self.tokens = match self.refilled {
            None => rate.burst,
            Some(then) => {
                let earned = now.saturating_duration_since(then).as_secs_f64() * rate.per_second;
                (self.tokens + earned).min(rate.burst)
            }
        };
        self.refilled = Some(now);
        let allowed = (self.tokens.floor() as usize).min(wanted);
        self.tokens -= allowed as f64;
        allowed
    }

    /// When one more move will be allowed (as of the last [`MoveBudget::take`]).
    pub fn next_move_at(&self, rate: MoveRate) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        let wait = Duration::from_secs_f64(missing / rate.per_second);
        self.refilled.unwrap_or_else(Instant::now) + wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_player_has_a_burst_then_the_rate() {
        let rate = MoveRate::per_second(100).unwrap();
        let mut budget = MoveBudget::default();
        let start = Instant::now();
        assert_eq!(budget.take(1000, rate, start), MOVE_BURST as usize);
        assert_eq!(budget.take(1, rate, start), 0);
        // 100 a second: one every 10 ms.
        assert_eq!(budget.next_move_at(rate), start + Duration::from_millis(10));
        assert_eq!(budget.take(5, rate, start + Duration::from_millis(25)), 2);
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!(budget.take(1000, rate, later), MOVE_BURST as usize);
    }

    #[test]
    fn zero_means_no_cap() {
        assert_eq!(MoveRate::per_second(0), None);
    }

    #[test]
    fn an_honest_ten_hertz_player_is_never_held_back() {
        let rate = MoveRate::per_second(DEFAULT_MAX_MOVES_PER_SECOND).unwrap();
        let mut budget = MoveBudget::default();
        let start = Instant::now();
        for tick in 0..10_000u64 {
            let now = start + Duration::from_millis(100 * tick);
            assert_eq!(budget.take(1, rate, now), 1);
        }
    }
}
