//! Latency recording and summaries.
//!
//! Latencies are recorded in microseconds in an HDR histogram (2 significant
//! digits: about 1 % precision, ~10 KiB each, cheap enough for one per client)
//! and summarised in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency recorded exactly; longer ones are clamped to it.
const MAX_RECORDED_US: u64 = 600_000_000;
const SIGNIFICANT_DIGITS: u8 = 2;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u32>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, MAX_RECORDED_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Latencies { histogram }
    }

    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(MAX_RECORDED_US));
    }

    pub fn record_us(&mut self, micros: u64) {
        // Saturates at the top bound instead of failing; a u32 count only
        // saturates after 4 billion samples of one value.
        self.histogram
            .saturating_record(micros.clamp(1, MAX_RECORDED_US));
    }

    /// Records `count` samples of the same latency at once.
    pub fn record_n(&mut self, latency: Duration, count: u32) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_RECORDED_US);
        // Only fails when the value is out of bounds, which the clamp prevents.
        let _ = self
            .histogram
            .record_n(micros.clamp(1, MAX_RECORDED_US), count);
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so this cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            samples: self.histogram.len(),
            p50_ms: ms(self.histogram.value_at_quantile(0.50)),
            p90_ms: ms(self.histogram.value_at_quantile(0.90)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            max_ms: ms(self.histogram.max()),
            mean_ms: self.histogram.mean() / 1000.0,
        }
    }
}

/// Percentiles of a set of latencies, in milliseconds (all 0 when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// CPU time (user + system) this process used so far, from `/proc/self/stat`
/// (Linux; `None` elsewhere). Assumes the usual 100 clock ticks a second.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// `count / seconds`, 0 for an empty interval.
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.01 + 0.001
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latencies::new().summary(), LatencySummary::default());
    }

    #[test]
    fn percentiles_of_1_to_1000_ms() {
        let mut latencies = Latencies::new();
        for ms in 1..=1000 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        assert_eq!(summary.samples, 1000);
        assert!(close(summary.p50_ms, 500.0), "{summary:?}");
        assert!(close(summary.p90_ms, 900.0), "{summary:?}");
        assert!(close(summary.p99_ms, 990.0), "{summary:?}");
        assert!(close(summary.max_ms, 1000.0), "{summary:?}");
        assert!(close(summary.mean_ms, 500.5), "{summary:?}");
    }

    #[test]
    fn one_slow_sample_in_a_hundred_sets_the_max_not_the_p99() {
        let mut latencies = Latencies::new();
        latencies.record_n(Duration::from_micros(200), 99);
        latencies.record(Duration::from_secs(3));
        let summary = latencies.summary();
        assert!(close(summary.p50_ms, 0.2), "{summary:?}");
        assert!(close(summary.p99_ms, 0.2), "{summary:?}");
        assert!(close(summary.max_ms, 3000.0), "{summary:?}");
    }

    #[test]
    fn merge_adds_samples_and_extremes_clamp() {
        let mut a = Latencies::new();
        a.record(Duration::ZERO);
        let mut b = Latencies::new();
        b.record(Duration::from_secs(10_000));
        a.merge(&b);
        let summary = a.summary();
        assert_eq!(summary.samples, 2);
        assert!(close(summary.max_ms, MAX_RECORDED_US as f64 / 1000.0));
    }

    #[test]
    fn cpu_time_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu_seconds().is_some_and(|s| s >= 0.0));
        }
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(10, 0.0), 0.0);
        assert_eq!(per_second(30, 2.0), 15.0);
    }
}
