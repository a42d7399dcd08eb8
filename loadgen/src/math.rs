//! `loadgen math`: pipelined requests on K connections, every reply checked.
//!
//! Each connection keeps `pipeline` requests in flight: after every read it
//! refills the window with one batched write. Requests cycle through a fixed
//! table (the four operations in both cases, one division by zero in every
//! eight) whose bytes and expected outcomes are computed once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use shared::legacy::{MathReplyCodec, MathRequest};
use shared::math::{MathOp, MathOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout_at;
use tokio_util::codec::Decoder;

use crate::RunError;
use crate::connect::connect_legacy;
use crate::stats::{Latencies, LatencySummary, per_second};

/// How long in-flight requests may take to drain after the run.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const TABLE_LEN: usize = 64;

#[derive(Debug, Clone)]
pub struct MathConfig {
    pub addr: String,
    pub connections: usize,
    pub duration: Duration,
    pub pipeline: usize,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MathReport {
    pub mode: &'static str,
    pub label: Option<String>,
    pub addr: String,
    pub connections: usize,
    pub connected: usize,
    pub pipeline: usize,
    pub seconds: f64,
    /// Replies received and checked (correct or not).
    pub replies: u64,
    pub requests_per_s: f64,
    pub latency: LatencySummary,
    /// Replies whose status or value differs from the expected outcome.
    pub wrong_replies: u64,
    pub division_by_zero_replies: u64,
    pub errors: MathErrors,
    /// `pass`: every connection up, replies came, none wrong, no errors.
    /// `fail` otherwise.
    pub verdict: &'static str,
    /// Why the verdict is not `pass` (empty when it is).
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MathErrors {
    pub connect_failed: u64,
    pub unexpected_close: u64,
    pub decode_errors: u64,
    pub io_errors: u64,
    /// Requests still unanswered after the drain timeout.
    pub unanswered: u64,
    pub total: u64,
}

/// The request mix: bytes to send and what each reply must be.
struct Table {
    wire: Vec<Vec<u8>>,
    expected: Vec<MathOutcome>,
}

impl Table {
    fn new() -> Self {
        let mut wire = Vec::with_capacity(TABLE_LEN);
        let mut expected = Vec::with_capacity(TABLE_LEN);
        let mut state: u32 = 0x2545_f491;
        for i in 0..TABLE_LEN {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let a = (state >> 16) as i16;
            let op = MathOp::ALL[i % 4];
            // Every eighth request divides by zero.
            let b = if i % 8 == 3 {
                0
            } else {
                (state & 0xffff) as i16
            };
            let command = if i % 2 == 0 {
                op.as_str().to_owned()
            } else {
                op.as_str().to_ascii_lowercase()
            };
            wire.push(MathRequest::new(command, a, b).to_bytes());
            expected.push(op.evaluate(a, b));
        }
        Table { wire, expected }
    }
}

#[derive(Default)]
struct ConnOutcome {
    connected: bool,
    replies: u64,
    wrong: u64,
    division_by_zero: u64,
    latencies: Latencies,
    errors: MathErrors,
}

pub async fn run(config: MathConfig) -> Result<MathReport, RunError> {
    if config.pipeline == 0 {
        return Err(RunError("--pipeline must be at least 1".into()));
    }
    let table = Arc::new(Table::new());
    let limit = Arc::new(Semaphore::new(256));
    let mut tasks = JoinSet::new();
    for _ in 0..config.connections {
        let (addr, table, limit) = (config.addr.clone(), table.clone(), limit.clone());
        let (duration, pipeline) = (config.duration, config.pipeline);
        tasks.spawn(async move {
            let mut outcome = ConnOutcome::default();
            match connect_legacy(&addr, &limit).await {
                Ok((stream, _id, buf)) => {
                    outcome.connected = true;
                    drive(stream, buf, &table, duration, pipeline, &mut outcome).await;
                }
                Err(e) => {
                    crate::connect::warn_failure(&addr, &e);
                    outcome.errors.connect_failed += 1;
                }
            }
            outcome
        });
    }
    let mut report = MathReport {
        mode: "math",
        label: config.label.clone(),
        addr: config.addr.clone(),
        connections: config.connections,
        pipeline: config.pipeline,
        seconds: config.duration.as_secs_f64(),
        ..MathReport::default()
    };
    let mut latencies = Latencies::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok(outcome) = joined else { continue };
        report.connected += usize::from(outcome.connected);
        report.replies += outcome.replies;
        report.wrong_replies += outcome.wrong;
        report.division_by_zero_replies += outcome.division_by_zero;
        latencies.merge(&outcome.latencies);
        let (e, t) = (outcome.errors, &mut report.errors);
        t.connect_failed += e.connect_failed;
        t.unexpected_close += e.unexpected_close;
        t.decode_errors += e.decode_errors;
        t.io_errors += e.io_errors;
        t.unanswered += e.unanswered;
    }
    let e = &mut report.errors;
    e.total = e.connect_failed + e.unexpected_close + e.decode_errors + e.io_errors + e.unanswered;
    report.requests_per_s = per_second(report.replies, report.seconds);
    report.latency = latencies.summary();
    report.failures = failures(&report);
    report.verdict = if report.failures.is_empty() {
        "pass"
    } else {
        "fail"
    };
    Ok(report)
}

/// Everything that keeps a math run from passing, in words.
fn failures(report: &MathReport) -> Vec<String> {
    let mut why = Vec::new();
    if report.connected < report.connections {
        why.push(format!(
            "connected {} of {}",
            report.connected, report.connections
        ));
    }
    if report.errors.total > 0 {
        why.push(format!("{} errors", report.errors.total));
    }
    if report.wrong_replies > 0 {
        why.push(format!("{} wrong replies", report.wrong_replies));
    }
    if report.connections > 0 && report.replies == 0 {
        why.push("no reply at all".into());
    }
    why
}

async fn drive(
    mut stream: TcpStream,
    mut buf: BytesMut,
    table: &Table,
    duration: Duration,
    pipeline: usize,
    outcome: &mut ConnOutcome,
) {
    let end = Instant::now() + duration;
    let drain_deadline = end + DRAIN_TIMEOUT;
    // (table index, send time) of every request in flight, oldest first.
    let mut in_flight: VecDeque<(usize, Instant)> = VecDeque::with_capacity(pipeline);
    let mut out = BytesMut::with_capacity(pipeline * 24);
    let mut next = 0usize;
    buf.reserve(64 * 1024);
    loop {
        let now = Instant::now();
        let sending = now < end;
        if sending && in_flight.len() < pipeline {
            while in_flight.len() < pipeline {
                out.extend_from_slice(&table.wire[next]);
                in_flight.push_back((next, now));
                next = (next + 1) % TABLE_LEN;
            }
            if stream.write_all(&out).await.is_err() {
                outcome.errors.io_errors += 1;
                return;
            }
            out.clear();
        }
        if !sending && in_flight.is_empty() {
            return;
        }
        let read = if sending {
            timeout_at(
                end.max(now + Duration::from_millis(1)).into(),
                stream.read_buf(&mut buf),
            )
            .await
        } else {
            timeout_at(drain_deadline.into(), stream.read_buf(&mut buf)).await
        };
        match read {
            Ok(Ok(0)) => {
                outcome.errors.unexpected_close += 1;
                return;
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                outcome.errors.io_errors += 1;
                return;
            }
            Err(_) if sending => continue,
            Err(_) => {
                outcome.errors.unanswered += in_flight.len() as u64;
                return;
            }
        }
        let now = Instant::now();
        loop {
            let reply = match MathReplyCodec.decode(&mut buf) {
                Ok(Some(reply)) => reply,
                Ok(None) => break,
                Err(_) => {
                    outcome.errors.decode_errors += 1;
                    return;
                }
            };
            let Some((index, sent)) = in_flight.pop_front() else {
                // A reply to nothing we asked.
                outcome.wrong += 1;
                continue;
            };
            outcome.replies += 1;
            let expected = table.expected[index];
            if reply.status() != expected.status
                || reply.value().to_bits() != expected.value.to_bits()
            {
                outcome.wrong += 1;
            }
            if reply.status() == shared::math::MathStatus::DivisionByZero {
                outcome.division_by_zero += 1;
            }
            outcome
                .latencies
                .record(now.saturating_duration_since(sent));
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::math::MathStatus;

    #[test]
    fn table_mixes_all_ops_and_divides_by_zero() {
        let table = Table::new();
        assert_eq!(table.wire.len(), TABLE_LEN);
        assert!(
            table
                .expected
                .iter()
                .any(|o| o.status == MathStatus::DivisionByZero)
        );
        assert!(
            table
                .expected
                .iter()
                .filter(|o| o.status == MathStatus::Ok)
                .count()
                > TABLE_LEN / 2
        );
        let commands: std::collections::HashSet<_> = table
            .wire
            .iter()
            .map(|w| String::from_utf8_lossy(&w[8..]).into_owned())
            .collect();
        assert!(commands.contains("SUMA") && commands.contains("division"));
    }

    fn passing() -> MathReport {
        MathReport {
            connections: 2,
            connected: 2,
            replies: 100,
            ..MathReport::default()
        }
    }

    #[test]
    fn a_math_run_passes_only_with_every_reply_right() {
        assert!(failures(&passing()).is_empty());
        let broken = [
            MathReport {
                wrong_replies: 1,
                ..passing()
            },
            MathReport {
                connected: 1,
                ..passing()
            },
            MathReport {
                errors: MathErrors {
                    unanswered: 1,
                    total: 1,
                    ..MathErrors::default()
                },
                ..passing()
            },
            MathReport {
                replies: 0,
                ..passing()
            },
        ];
        for report in broken {
            assert_eq!(failures(&report).len(), 1, "{report:?}");
        }
    }
}
