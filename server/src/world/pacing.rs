//! When the next broadcast may start: at once while broadcasting is cheap,
//! later as it gets costly, so that under load broadcasts grow instead of
//! multiplying.
//!
//! What a broadcast costs is mostly one write per subscriber (a system call
//! and the kernel's TCP path), whatever the write holds: 2,000 subscribers
//! written to 500 times a second cost the same whether each write holds one
//! record or forty. So the pacer bounds broadcasts per second in two ways,
//! each a token bucket that a light load never empties (a lone change goes
//! out at once, as before):
//!
//! 1. **CPU share.** Each broadcast is charged the CPU time the server used
//!    since the one before ([`Pacer::charge`], read from the process's CPU
//!    clock: what the previous broadcast's writes cost, plus the reads that
//!    brought the news). The bucket refills at [`BROADCAST_CPU_SHARE`] of a
//!    core, so under load the server takes about that share on average
//!    however fast news comes; what arrives meanwhile gathers into the next
//!    broadcast. A CPU clock, not the wall clock: on a shared machine time
//!    spent preempted costs nothing.
//! 2. **Writes per subscriber.** At most [`WRITES_PER_SECOND`] writes a
//!    second for all subscribers together (and
//!    [`MAX_WRITES_PER_SUBSCRIBER_PER_SECOND`] for each): 20 subscribers may
//!    be written to 2,000 times a second, 2,000 subscribers 60 times.
//!
//! Neither may hold news more than [`MAX_BROADCAST_WAIT`] once the
//! subscribers have taken the last broadcast: the ceiling that keeps the
//! latency target (a change waits at most the last broadcast's delivery
//! plus that, plus its own delivery). It counts from the end of the last
//! delivery, not from its start, so that a delivery which takes longer
//! than the ceiling (thousands of subscribers on a saturated core) is still
//! followed by a gap and the server is never made to broadcast back to
//! back. The curve this gives (broadcasts a second, records per write and
//! CPU against clients) is in docs/bench/pacing.md.

use std::time::Duration;

use tokio::time::Instant;

/// Share of one core that broadcasting may take on average.
pub const BROADCAST_CPU_SHARE: f64 = 0.5;

/// CPU time broadcasts may take back to back before the share applies: a
/// light load never waits.
pub const CPU_BURST: Duration = Duration::from_millis(5);

/// The most CPU time the bucket remembers as owed.
const MOST_OWED: Duration = Duration::from_millis(250);

/// Writes a second, all subscribers together, that broadcasts may make.
pub const WRITES_PER_SECOND: f64 = 120_000.0;

/// Writes a second one subscriber may get, however few subscribers there are.
pub const MAX_WRITES_PER_SUBSCRIBER_PER_SECOND: f64 = 2_000.0;

/// Broadcasts that may go back to back before the write bound applies.
const WRITE_BURST: f64 = 4.0;

/// The longest the pacer holds news once the subscribers have taken the
/// last broadcast.
pub const MAX_BROADCAST_WAIT: Duration = Duration::from_millis(20);

/// The two budgets and when the last broadcast started. Pure: the time is
/// passed in.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// CPU seconds broadcasts may still take (negative: owed).
    cpu: f64,
    /// Broadcasts to every subscriber that the write bound still allows
    /// (a broadcast that writes to half of them uses half of one).
    writes: f64,
    refilled: Option<Instant>,
    last_start: Option<Instant>,
    /// When the subscribers had taken the last broadcast (`None`: not yet).
    drained_at: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            cpu: CPU_BURST.as_secs_f64(),
            writes: WRITE_BURST,
            refilled: None,
            last_start: None,
            drained_at: None,
        }
    }
}

/// Broadcasts a second the write bound allows with `subscribers`.
pub fn write_rate(subscribers: usize) -> f64 {
    (WRITES_PER_SECOND / subscribers.max(1) as f64).min(MAX_WRITES_PER_SUBSCRIBER_PER_SECOND)
}

impl Pacer {
    /// Charges what a broadcast (or part of its delivery) cost.
    pub fn charge(&mut self, cost: Duration) {
        // Owing more would only make the pacer remember an overload long
        // after it ended; owing less would forget part of what one costly
        // broadcast took (2,000 subscribers: over 10 ms).
        self.cpu = (self.cpu - cost.as_secs_f64()).max(-MOST_OWED.as_secs_f64());
    }

    fn refill(&mut self, now: Instant, subscribers: usize) {
        if let Some(then) = self.refilled {
            let elapsed = now.saturating_duration_since(then).as_secs_f64();
            self.cpu = (self.cpu + elapsed * BROADCAST_CPU_SHARE).min(CPU_BURST.as_secs_f64());
            self.writes = (self.writes + elapsed * write_rate(subscribers)).min(WRITE_BURST);
        }
        self.refilled = Some(now);
    }

    /// The earliest a broadcast to `subscribers` may start, as of `now`
    /// (`now` itself when it may start at once).
    pub fn next_start(&mut self, now: Instant, subscribers: usize) -> Instant {
        self.refill(now, subscribers);
        let cpu_wait = (-self.cpu).max(0.0) / BROADCAST_CPU_SHARE;
        let write_wait = (1.0 - self.writes).max(0.0) / write_rate(subscribers);
        let wait = Duration::from_secs_f64(cpu_wait.max(write_wait));
        let at = now + wait;
        // Not drained: the broadcaster stopped waiting for stragglers, now.
        let drained = self.drained_at.unwrap_or(now);
        at.min((drained + MAX_BROADCAST_WAIT).max(now))
    }

    /// Whether a broadcast may start at `now`.
    pub fn may_start(&mut self, now: Instant, subscribers: usize) -> bool {
        self.next_start(now, subscribers) <= now
    }

    /// Notes that a broadcast started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
        self.drained_at = None;
    }

    /// Notes that the subscribers have taken the last broadcast at `now`
    /// (the first call after [`Pacer::started`] counts).
    pub fn drained(&mut self, now: Instant) {
        self.drained_at.get_or_insert(now);
    }

    /// Notes that a broadcast wrote to `writes` of its `subscribers` (a
    /// join that legacy clients are not told of writes to nobody).
    pub fn wrote(&mut self, writes: usize, subscribers: usize) {
        let used = writes as f64 / subscribers.max(1) as f64;
        self.writes = (self.writes - used).max(-1.0);
    }

    /// When the last broadcast started.
    pub fn last_start(&self) -> Option<Instant> {
        self.last_start
    }
}

/// CPU time the whole process has used (every thread), or `None` where the
/// clock cannot be read (the pacer then paces by writes alone).
pub fn process_cpu_time() -> Option<Duration> {
    use nix::time::{ClockId, clock_gettime};
    let now = clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).ok()?;
    Some(Duration::from(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_process_cpu_clock_moves_with_work() {
        let before = process_cpu_time().expect("readable");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_time().expect("readable") > before);
    }

    #[test]
    fn a_light_load_never_waits() {
        let mut pacer = Pacer::default();
        let mut now = Instant::now();
        // 50 subscribers, 500 lone changes a second, each broadcast 250 µs.
        for _ in 0..5_000 {
            assert!(pacer.may_start(now, 50));
            pacer.started(now);
            pacer.wrote(50, 50);
            pacer.charge(Duration::from_micros(250));
            now += 2 * MS;
        }
    }

    #[test]
    fn costly_broadcasts_are_spaced_to_the_cpu_share() {
        let mut pacer = Pacer::default();
        let mut now = Instant::now();
        let cost = 4 * MS;
        let mut started = 0;
        let until = now + Duration::from_secs(10);
        while now < until {
            now = pacer.next_start(now, 10);
            pacer.started(now);
            pacer.wrote(10, 10);
            pacer.charge(cost);
            started += 1;
        }
        // 10 s at half a core of 4 ms broadcasts: about 1,250 of them.
        let share = f64::from(started) * cost.as_secs_f64() / 10.0;
        assert!((share - BROADCAST_CPU_SHARE).abs() < 0.01, "share {share}");
    }

    #[test]
    fn many_subscribers_bound_the_writes_each_gets() {
        let mut pacer = Pacer::default();
        let mut now = Instant::now();
        let subscribers = 2_000;
        let mut started = 0;
        let until = now + Duration::from_secs(10);
        while now < until {
            now = pacer.next_start(now, subscribers);
            pacer.started(now);
            pacer.wrote(subscribers, subscribers);
            started += 1;
        }
        let per_second = f64::from(started) / 10.0;
        let expected = WRITES_PER_SECOND / subscribers as f64;
        assert!((per_second - expected).abs() <= 1.0, "{per_second}/s");
    }

    #[test]
    fn broadcasts_that_write_to_nobody_use_no_write_budget() {
        let mut pacer = Pacer::default();
        let now = Instant::now();
        for _ in 0..1_000 {
            assert!(pacer.may_start(now, 2_000));
            pacer.started(now);
            pacer.wrote(0, 2_000);
        }
        pacer.wrote(2_000 * WRITE_BURST as usize, 2_000);
        assert!(
            !pacer.may_start(now, 2_000),
            "a burst of full broadcasts used it up"
        );
    }

    #[test]
    fn the_ceiling_counts_from_the_end_of_the_last_delivery() {
        let mut pacer = Pacer::default();
        let start = Instant::now();
        pacer.started(start);
        pacer.wrote(10_000, 10_000);
        pacer.charge(Duration::from_secs(1));
        // A delivery that took 40 ms, longer than the ceiling: still a gap.
        let drained = start + 40 * MS;
        pacer.drained(drained);
        pacer.drained(drained + 5 * MS); // only the first counts
        let next = pacer.next_start(drained, 10_000);
        assert_eq!(next, drained + MAX_BROADCAST_WAIT);
        // Past the ceiling: at once.
        let late = drained + 3 * MAX_BROADCAST_WAIT;
        assert_eq!(pacer.next_start(late, 10_000), late);
    }
}
