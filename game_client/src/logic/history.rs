//! A remote player's recent raw positions, kept inline in its component: a
//! fixed ring of the last [`POSITION_HISTORY_LEN`] samples, so recording one
//! is a write into the entity's own table row (no heap buffer per player, no
//! allocation). The newest [`RECENT_LEN`] are also kept newest first at the
//! start of the component, with the ring's cursor, in one cache line: that is
//! all interpolation reads of a player unless it draws further back.

use bevy::prelude::*;

/// Raw samples kept per remote player: the interpolation buffer (at most
/// 0.5 s deep, see `MAX_DELAY_SECS`) and the overlay's trail. 24 covers
/// 2.4 s at 10 Hz.
pub const POSITION_HISTORY_LEN: usize = 24;
const _: () = assert!(POSITION_HISTORY_LEN <= u8::MAX as usize);
/// Samples kept newest first in the component's first cache line.
pub const RECENT_LEN: usize = 3;

/// One received position: world units, and the `Time` seconds it arrived.
pub type Sample = (Vec2, f64);

/// The raw positions received lately, oldest first. Empty until the server
/// says where the player is; when full, a new sample replaces the oldest.
///
/// Aligned to a cache line so `recent` and the cursor share one.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
pub struct PositionHistory {
    /// The newest samples, newest first (a copy of the ring's last ones).
    recent: [Sample; RECENT_LEN],
    /// Where the next sample goes.
    next: u8,
    len: u8,
    samples: [Sample; POSITION_HISTORY_LEN],
}

impl Default for PositionHistory {
    fn default() -> Self {
        PositionHistory {
            recent: [(Vec2::ZERO, 0.0); RECENT_LEN],
            next: 0,
            len: 0,
            samples: [(Vec2::ZERO, 0.0); POSITION_HISTORY_LEN],
        }
    }
}

impl PositionHistory {
    /// Appends a sample, dropping the oldest one if full.
    pub fn push(&mut self, sample: Sample) {
        self.recent.copy_within(0..RECENT_LEN - 1, 1);
        self.recent[0] = sample;
        self.samples[usize::from(self.next)] = sample;
        self.next = if usize::from(self.next) + 1 == POSITION_HISTORY_LEN {
            0
        } else {
            self.next + 1
        };
        if usize::from(self.len) < POSITION_HISTORY_LEN {
            self.len += 1;
        }
    }

    /// Forgets every sample (touches only the first cache line).
    pub fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th sample, oldest first.
    pub fn get(&self, i: usize) -> Option<Sample> {
        if i >= self.len() {
            return None;
        }
        // The oldest sample sits `len` slots behind `next`.
        let slot =
            (usize::from(self.next) + POSITION_HISTORY_LEN - self.len() + i) % POSITION_HISTORY_LEN;
        Some(self.samples[slot])
    }

    /// The `i`-th newest sample (0: the newest).
    pub fn back(&self, i: usize) -> Option<Sample> {
        if i >= self.len() {
            return None;
        }
        if i < RECENT_LEN {
            return Some(self.recent[i]);
        }
        self.get(self.len() - 1 - i)
    }

    /// The newest received position and when it arrived.
    pub fn latest(&self) -> Option<Sample> {
        self.back(0)
    }

    /// The oldest sample still kept.
    pub fn oldest(&self) -> Option<Sample> {
        self.get(0)
    }

    /// The samples, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Sample> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl FromIterator<Sample> for PositionHistory {
    /// Keeps the last [`POSITION_HISTORY_LEN`] samples.
    fn from_iter<I: IntoIterator<Item = Sample>>(samples: I) -> Self {
        let mut history = PositionHistory::default();
        for sample in samples {
            history.push(sample);
        }
        history
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: usize) -> Sample {
        (Vec2::new(i as f32, -(i as f32)), i as f64 * 0.1)
    }

    #[test]
    fn starts_empty() {
        let history = PositionHistory::default();
        assert!(history.is_empty());
        assert_eq!(history.latest(), None);
        assert_eq!(history.oldest(), None);
        assert_eq!(history.get(0), None);
        assert_eq!(history.iter().count(), 0);
    }

    #[test]
    fn keeps_samples_oldest_first_until_full() {
        let history: PositionHistory = (0..5).map(sample).collect();
        assert_eq!(history.len(), 5);
        assert_eq!(history.oldest(), Some(sample(0)));
        assert_eq!(history.latest(), Some(sample(4)));
        assert_eq!(history.get(5), None);
        let kept: Vec<Sample> = history.iter().collect();
        assert_eq!(kept, (0..5).map(sample).collect::<Vec<_>>());
        let newest_first: Vec<Sample> = history.iter().rev().collect();
        assert_eq!(newest_first, (0..5).rev().map(sample).collect::<Vec<_>>());
    }

    #[test]
    fn drops_the_oldest_once_full_at_every_wrap_position() {
        let mut history = PositionHistory::default();
        for n in 0..3 * POSITION_HISTORY_LEN + 1 {
            history.push(sample(n));
            let first = (n + 1).saturating_sub(POSITION_HISTORY_LEN);
            assert_eq!(history.len(), n + 1 - first, "after {n}");
            let kept: Vec<Sample> = history.iter().collect();
            assert_eq!(
                kept,
                (first..=n).map(sample).collect::<Vec<_>>(),
                "after {n}"
            );
            assert_eq!(history.latest(), Some(sample(n)));
            assert_eq!(history.oldest(), Some(sample(first)));
            for back in 0..=history.len() {
                let expected = n.checked_sub(back).filter(|&i| i >= first).map(sample);
                assert_eq!(history.back(back), expected, "after {n}, back {back}");
            }
        }
    }

    #[test]
    fn collecting_more_than_it_holds_keeps_the_newest() {
        let history: PositionHistory = (0..POSITION_HISTORY_LEN + 7).map(sample).collect();
        assert_eq!(history.len(), POSITION_HISTORY_LEN);
        assert_eq!(history.oldest(), Some(sample(7)));
        assert_eq!(history.latest(), Some(sample(POSITION_HISTORY_LEN + 6)));
    }
}
