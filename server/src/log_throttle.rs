//! Summarises a warning that repeats fast: the first few of a kind in each
//! window are logged as they come, the rest are counted and reported as one
//! line ("N more in the last 10 s"). Under a flood of protocol violations or
//! refused connections the log stays readable; the `/metrics` counters are
//! incremented elsewhere, once per event, and stay exact.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Length of one summarising window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Lines of one kind logged in full per window before summarising.
pub const BURST: u32 = 5;

/// One kind of warning within the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// What to do with one occurrence of a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Occurrences of this kind left out of the log in the window that just
    /// closed (0 when none): report them first.
    pub summarise: u64,
    /// Whether to log this occurrence in full.
    pub log: bool,
}

/// Per-kind windows; `kind` is a fixed label such as `"protocol_violation"`.
#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    burst: u32,
    kinds: Mutex<HashMap<&'static str, Window>>,
}

impl Throttle {
    pub fn new(window: Duration, burst: u32) -> Self {
        Throttle {
            window,
            burst,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one occurrence of `kind` at `now`.
    pub fn check(&self, kind: &'static str, now: Instant) -> Verdict {
        let mut kinds = self.lock();
        let entry = kinds.entry(kind).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        let mut summarise = 0;
        if now.saturating_duration_since(entry.start) >= self.window {
            summarise = entry.suppressed;
            *entry = Window {
                start: now,
                logged: 0,
                suppressed: 0,
            };
        }
        let log = entry.logged < self.burst;
        if log {
            entry.logged += 1;
        } else {
            entry.suppressed += 1;
        }
        Verdict { summarise, log }
    }

    /// Closes every window older than the window length at `now` and returns
    /// the occurrences each left out of the log (kinds with none omitted),
    /// so a burst that stopped is still reported.
    pub fn flush(&self, now: Instant) -> Vec<(&'static str, u64)> {
        let mut kinds = self.lock();
        let mut due = Vec::new();
        kinds.retain(|&kind, window| {
            if now.saturating_duration_since(window.start) < self.window {
                return true;
            }
            if window.suppressed > 0 {
                due.push((kind, window.suppressed));
            }
            false
        });
        due.sort_unstable();
        due
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Window>> {
        self.kinds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The process-wide throttle of warnings, like the global tracing subscriber
/// it feeds.
static WARNINGS: LazyLock<Throttle> = LazyLock::new(|| Throttle::new(WINDOW, BURST));

/// Logs a warning of `kind` through `log` unless that kind already filled
/// this window, and reports what was left out of the last one.
pub fn warn(kind: &'static str, log: impl FnOnce()) {
    let verdict = WARNINGS.check(kind, Instant::now());
    if verdict.summarise > 0 {
        report(kind, verdict.summarise);
    }
    if verdict.log {
        log();
    }
}

/// Reports every window closed since the last warning of its kind; call it
/// every [`WINDOW`] so the tail of a burst is not left unreported.
pub fn flush() {
    for (kind, suppressed) in WARNINGS.flush(Instant::now()) {
        report(kind, suppressed);
    }
}

/// Reports what every window left out so far, closed or not: the last
/// words before the process exits.
pub fn flush_all() {
    for (kind, suppressed) in WARNINGS.flush(Instant::now() + WINDOW) {
        report(kind, suppressed);
    }
}

/// Calls [`flush`] every [`WINDOW`] until `shutdown`.
pub async fn flush_periodically(shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => flush(),
        }
    }
}

fn report(kind: &'static str, suppressed: u64) {
    tracing::warn!(
        kind,
        suppressed,
        "{suppressed} more \"{kind}\" warnings in the last {} s (not logged one by one; /metrics counts each)",
        WINDOW.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_logs_its_first_lines_then_summarises() {
        let throttle = Throttle::new(10 * SECOND, 3);
        let t0 = Instant::now();
        let logged = (0..1000)
            .filter(|_| throttle.check("reset", t0).log)
            .count();
        assert_eq!(logged, 3);
        let next = throttle.check("reset", t0 + 10 * SECOND);
        assert_eq!(
            next,
            Verdict {
                summarise: 997,
                log: true
            }
        );
    }

    #[test]
    fn kinds_are_counted_apart() {
        let throttle = Throttle::new(10 * SECOND, 1);
        let t0 = Instant::now();
        assert!(throttle.check("a", t0).log);
        assert!(throttle.check("b", t0).log);
        assert!(!throttle.check("a", t0).log);
        assert!(!throttle.check("a", t0 + SECOND).log);
        assert_eq!(throttle.flush(t0 + 5 * SECOND), vec![]);
        assert_eq!(throttle.flush(t0 + 10 * SECOND), vec![("a", 2)]);
        assert!(throttle.check("a", t0 + 11 * SECOND).log, "a new window");
    }

    #[test]
    fn a_slow_trickle_is_logged_whole() {
        let throttle = Throttle::new(10 * SECOND, 2);
        let t0 = Instant::now();
        for i in 0..50 {
            let verdict = throttle.check("slow", t0 + i * 6 * SECOND);
            assert_eq!(
                verdict,
                Verdict {
                    summarise: 0,
                    log: true
                },
                "event {i}"
            );
        }
    }
}
