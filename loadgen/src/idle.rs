//! `loadgen idle`: open many connections that only read, and hold them.
//!
//! Once every connection attempt has finished, one line
//! `ready connected=N failed=F` goes to stderr: from then on the connections
//! are held for `seconds`, so a script can measure the server (e.g. its RSS).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::RunError;
use crate::connect::connect_legacy;

#[derive(Debug, Clone)]
pub struct IdleConfig {
    pub addr: String,
    pub connections: usize,
    pub duration: Duration,
    pub connect_concurrency: usize,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IdleReport {
    pub mode: &'static str,
    pub label: Option<String>,
    pub addr: String,
    pub connections: usize,
    pub connected: usize,
    pub connect_failed: usize,
    /// Connections the server closed while they were held.
    pub closed_while_held: usize,
    pub connect_seconds: f64,
    pub held_seconds: f64,
    /// Bytes received on all connections after the greetings.
    pub bytes_received: u64,
    /// `pass`: every connection opened and held; `fail` otherwise.
    pub verdict: &'static str,
    /// Why the verdict is not `pass` (empty when it is).
    pub failures: Vec<String>,
}

pub async fn run(config: IdleConfig) -> Result<IdleReport, RunError> {
    let limit = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<bool>();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..config.connections {
        let (addr, limit, ready_tx) = (config.addr.clone(), limit.clone(), ready_tx.clone());
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let (mut stream, _id, _buf) = match connect_legacy(&addr, &limit).await {
                Ok(connected) => connected,
                Err(e) => {
                    crate::connect::warn_failure(&addr, &e);
                    let _ = ready_tx.send(false);
                    return (false, false, 0u64);
                }
            };
            drop(limit);
            let _ = ready_tx.send(true);
            let mut scratch = [0u8; 256];
            let mut received = 0u64;
            loop {
                tokio::select! {
                    _ = stop.changed() => return (true, false, received),
                    read = stream.read(&mut scratch) => match read {
                        Ok(0) | Err(_) => return (true, true, received),
                        Ok(n) => received += n as u64,
                    },
                }
            }
        });
    }
    drop(ready_tx);
    let mut report = IdleReport {
        mode: "idle",
        label: config.label.clone(),
        addr: config.addr.clone(),
        connections: config.connections,
        ..IdleReport::default()
    };
    for _ in 0..config.connections {
        let Some(ok) = ready_rx.recv().await else {
            break;
        };
        if ok {
            report.connected += 1;
        } else {
            report.connect_failed += 1;
        }
    }
    report.connect_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "ready connected={} failed={}",
        report.connected, report.connect_failed
    );
    let _ = std::io::stderr().flush();
    let held = Instant::now();
    tokio::time::sleep(config.duration).await;
    let _ = stop_tx.send(true);
    report.held_seconds = held.elapsed().as_secs_f64();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((_connected, closed, received)) = joined {
            report.closed_while_held += usize::from(closed);
            report.bytes_received += received;
        }
    }
    report.failures = failures(&report);
    report.verdict = if report.failures.is_empty() {
        "pass"
    } else {
        "fail"
    };
    Ok(report)
}

/// Everything that keeps an idle run from passing, in words.
fn failures(report: &IdleReport) -> Vec<String> {
    let mut why = Vec::new();
    if report.connected < report.connections {
        why.push(format!(
            "connected {} of {} ({} failed)",
            report.connected, report.connections, report.connect_failed
        ));
    }
    if report.closed_while_held > 0 {
        why.push(format!(
            "{} closed by the server while held",
            report.closed_while_held
        ));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_run_fails_on_a_missing_or_closed_connection() {
        let held = IdleReport {
            connections: 10,
            connected: 10,
            ..IdleReport::default()
        };
        assert!(failures(&held).is_empty());
        let short = IdleReport {
            connected: 9,
            connect_failed: 1,
            ..held.clone()
        };
        assert_eq!(failures(&short).len(), 1);
        let closed = IdleReport {
            closed_while_held: 1,
            ..held
        };
        assert_eq!(failures(&closed).len(), 1);
    }
}
