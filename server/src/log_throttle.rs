//! Warnings that stay readable under attack: the first few of a kind in a
//! window are logged one by one, the rest are counted and summarised once
//! ("N more ... in the last 10 s"). Metrics keep exact counts; this only
//! spares the log.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Length of one summary window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Warnings of one kind logged in full per window.
pub const BURST: u32 = 5;

/// The process's throttle for connection warnings.
pub static WARNINGS: LazyLock<Throttle> = LazyLock::new(|| Throttle::new(WINDOW, BURST));

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// Counts warnings per kind and window.
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

    /// Whether this warning of `kind` should be logged in full; if not, it
    /// is counted for the summary.
    pub fn admit(&self, kind: &'static str) -> bool {
        let now = Instant::now();
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let window = kinds.entry(kind).or_insert(Window {
            started: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(window.started) >= self.window {
            if window.suppressed > 0 {
                summarise(kind, window.suppressed, self.window);
            }
            *window = Window {
                started: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if window.logged < self.burst {
            window.logged += 1;
            true
        } else {
            window.suppressed += 1;
            false
        }
    }

    /// Logs the summaries of windows that are over; returns how many
    /// warnings they counted.
    pub fn flush(&self) -> u64 {
        self.summarise_windows(false)
    }

    /// Logs every summary now, windows over or not (at shutdown).
    pub fn flush_all(&self) -> u64 {
        self.summarise_windows(true)
    }

    fn summarise_windows(&self, all: bool) -> u64 {
        let now = Instant::now();
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = 0;
        kinds.retain(|kind, window| {
            if !all && now.duration_since(window.started) < self.window {
                return true;
            }
            if window.suppressed > 0 {
                summarise(kind, window.suppressed, self.window);
                total += window.suppressed;
            }
            false
        });
        total
    }

    /// Flushes every window, until `shutdown`.
    pub async fn flush_every_window(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.window);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.flush_all();
                    return;
                }
                _ = tick.tick() => {
                    self.flush();
                }
            }
        }
    }
}

fn summarise(kind: &str, count: u64, window: Duration) {
    tracing::warn!(
        kind,
        count,
        "{count} more {kind} warnings in the last {}s (not logged one by one)",
        window.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_logged_then_counted_per_kind_and_window() {
        let throttle = Throttle::new(Duration::from_secs(10), 3);
        let admitted = (0..100).filter(|_| throttle.admit("violation")).count();
        assert_eq!(admitted, 3);
        assert!(throttle.admit("other kind"), "kinds are counted apart");
        assert_eq!(throttle.flush(), 0, "the window is not over yet");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            throttle.flush(),
            97,
            "the summary counts every one left out"
        );
        assert!(throttle.admit("violation"), "a new window logs again");
        for _ in 0..4 {
            throttle.admit("violation");
        }
        assert_eq!(throttle.flush_all(), 2, "at shutdown, windows not over too");
    }
}
