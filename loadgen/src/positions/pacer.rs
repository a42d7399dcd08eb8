//! Send ticks from one OS thread with precise sleeps.
//!
//! Tokio's timer wheel has a resolution of one millisecond and rounds every
//! deadline up to the next tick: measured here, a client task woken by a
//! `tokio::time::Interval` sent its position 1.5 ms (p50) after the scheduled
//! instant. Latency counts from the scheduled instant, so that lateness was
//! added to every echo and hid sub-millisecond servers behind a 1.5 ms floor.
//!
//! One pacer thread walks the clients' schedule in time order, sleeps with
//! `std::thread::sleep` (nanosleep: tens of microseconds late, not a whole
//! millisecond) until each deadline, and hands the client task its scheduled
//! instant through a channel. A pacer that falls behind sends the overdue
//! ticks at once (the offered load stays nominal, like `MissedTickBehavior::Burst`),
//! and the lateness still shows in the report.

use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// The ticks of every client, in client order; client `i`'s ticks fall at
/// `start + offsets[i] + k * period`.
pub(crate) struct Pacer {
    senders: Vec<UnboundedSender<Instant>>,
    offsets: Vec<Duration>,
    period: Duration,
}

impl Pacer {
    pub(crate) fn new(period: Duration) -> Self {
        Pacer {
            senders: Vec::new(),
            offsets: Vec::new(),
            period,
        }
    }

    /// Adds a client whose ticks fall `offset` after each period's start;
    /// returns where they arrive. Offsets must not decrease from one client
    /// to the next (the schedule is walked in this order).
    pub(crate) fn add(&mut self, offset: Duration) -> UnboundedReceiver<Instant> {
        debug_assert!(self.offsets.last().is_none_or(|&last| last <= offset));
        let (tx, rx) = unbounded_channel();
        self.senders.push(tx);
        self.offsets.push(offset);
        rx
    }

    /// Sends every tick in `[start, end)` from a new thread, then ends (which
    /// closes every client's channel).
    pub(crate) fn start(self, start: Instant, end: Instant) -> thread::JoinHandle<()> {
        thread::Builder::new()
            .name("pacer".into())
            .spawn(move || self.run(start, end))
            .expect("spawning the pacer thread")
    }

    fn run(self, start: Instant, end: Instant) {
        let mut period_start = start;
        while period_start < end {
            for (tx, &offset) in self.senders.iter().zip(&self.offsets) {
                let deadline = period_start + offset;
                if deadline >= end {
                    break;
                }
                let now = Instant::now();
                if deadline > now {
                    thread::sleep(deadline - now);
                }
                // A client that died dropped its receiver: nothing to do.
                let _ = tx.send(deadline);
            }
            period_start += self.period;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_gets_its_ticks_in_order_and_none_past_the_end() {
        let period = Duration::from_millis(10);
        let mut pacer = Pacer::new(period);
        let offsets = [0, 3, 6].map(Duration::from_millis);
        let mut receivers: Vec<_> = offsets.iter().map(|&o| pacer.add(o)).collect();
        let start = Instant::now() + Duration::from_millis(5);
        let end = start + Duration::from_millis(35);
        pacer.start(start, end).join().unwrap();
        for (rx, offset) in receivers.iter_mut().zip(offsets) {
            let mut ticks = Vec::new();
            while let Ok(tick) = rx.try_recv() {
                ticks.push(tick);
            }
            let expected: Vec<Instant> = (0..4)
                .map(|k| start + offset + period * k)
                .filter(|&t| t < end)
                .collect();
            assert_eq!(ticks, expected);
            assert!(rx.is_closed(), "the pacer closes the channel when done");
        }
    }
}
