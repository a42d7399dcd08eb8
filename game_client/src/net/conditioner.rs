//! The link conditioner: makes loopback feel like a real network.
//!
//! It runs on the network thread, on both directions of the connection: every
//! message waits `lag` plus a random `0..=jitter` before it is handed on, and a
//! position update is dropped with probability `loss`. Messages keep their
//! order, as they would on the TCP stream we simulate: a message never
//! overtakes the one before it, so jitter shows up as bunching, not as
//! reordering. With `lag = 100 ms` the round trip grows by about 200 ms.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

/// Longest lag or jitter a user can ask for (both directions add it).
pub const MAX_LAG: Duration = Duration::from_secs(2);

/// What the conditioner does to each direction of the link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkConditions {
    /// Fixed delay added to every message.
    pub lag: Duration,
    /// Extra random delay, uniform in `0..=jitter`.
    pub jitter: Duration,
    /// Probability (0..=1) that a position update is dropped.
    pub loss: f32,
}

impl LinkConditions {
    /// Clamps to the supported ranges (so a panel or a flag cannot wedge the link).
    pub fn clamped(self) -> LinkConditions {
        LinkConditions {
            lag: self.lag.min(MAX_LAG),
            jitter: self.jitter.min(MAX_LAG),
            loss: if self.loss.is_nan() {
                0.0
            } else {
                self.loss.clamp(0.0, 1.0)
            },
        }
    }

    /// No delay and no loss: messages pass straight through.
    pub fn is_clear(&self) -> bool {
        self.lag.is_zero() && self.jitter.is_zero() && self.loss <= 0.0
    }

    /// Whether to drop this position update.
    pub fn drops(&self, rng: &mut impl Rng) -> bool {
        self.loss > 0.0 && rng.random::<f32>() < self.loss
    }

    /// The delay of one message: `lag + U(0..=jitter)`.
    pub fn sample_delay(&self, rng: &mut impl Rng) -> Duration {
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rng.random_range(0..=self.jitter.as_nanos() as u64))
        };
        self.lag + jitter
    }

    /// "+100 ms ±20 ms, 5 % loss" or "off".
    pub fn describe(&self) -> String {
        if self.is_clear() {
            return "off".into();
        }
        format!(
            "+{} ms ±{} ms, {:.0} % loss",
            self.lag.as_millis(),
            self.jitter.as_millis(),
            self.loss * 100.0
        )
    }
}

/// Messages waiting for their release time, in order.
#[derive(Debug)]
pub struct DelayLine<T> {
    queue: VecDeque<(Instant, T)>,
}

impl<T> Default for DelayLine<T> {
    fn default() -> Self {
        DelayLine {
            queue: VecDeque::new(),
        }
    }
}

impl<T> DelayLine<T> {
    /// Queues `item` to be released `delay` after `now`, but never before
    /// the message queued ahead of it.
    pub fn push(&mut self, item: T, now: Instant, delay: Duration) {
        let mut release = now + delay;
        if let Some(&(last, _)) = self.queue.back() {
            release = release.max(last);
        }
        self.queue.push_back((release, item));
    }

    /// When the next message is due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// The next message whose time has come.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        match self.queue.front() {
            Some((at, _)) if *at <= now => self.queue.pop_front().map(|(_, item)| item),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_wait_their_lag_and_keep_their_order() {
        let start = Instant::now();
        let mut line = DelayLine::default();
        line.push(1, start, Duration::from_millis(100));
        // Shorter delay, queued later: must still come out second.
        line.push(
            2,
            start + Duration::from_millis(10),
            Duration::from_millis(20),
        );
        assert_eq!(line.pop_due(start + Duration::from_millis(99)), None);
        assert_eq!(line.pop_due(start + Duration::from_millis(100)), Some(1));
        assert_eq!(line.pop_due(start + Duration::from_millis(100)), Some(2));
        assert!(line.is_empty());
    }

    #[test]
    fn delays_stay_within_lag_plus_jitter_and_loss_is_near_its_probability() {
        let conditions = LinkConditions {
            lag: Duration::from_millis(50),
            jitter: Duration::from_millis(30),
            loss: 0.25,
        };
        let mut rng = rand::rng();
        let mut dropped = 0;
        for _ in 0..4000 {
            let delay = conditions.sample_delay(&mut rng);
            assert!(delay >= Duration::from_millis(50) && delay <= Duration::from_millis(80));
            dropped += usize::from(conditions.drops(&mut rng));
        }
        assert!((800..1200).contains(&dropped), "{dropped} of 4000 dropped");
        assert!(!LinkConditions::default().drops(&mut rng));
    }

    #[test]
    fn silly_values_are_clamped() {
        let wild = LinkConditions {
            lag: Duration::from_secs(60),
            jitter: Duration::ZERO,
            loss: f32::NAN,
        }
        .clamped();
        assert_eq!(wild.lag, MAX_LAG);
        assert_eq!(wild.loss, 0.0);
    }
}
