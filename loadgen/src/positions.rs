//! `loadgen positions`: many clients moving at a fixed rate in one world.
//!
//! Phases, driven by one coordinator through a `watch` channel:
//!
//! 1. **Connect**: every client connects (legacy: id greeting; native:
//!    `Hello` → `Welcome`) and starts reading at once.
//! 2. **Load**: for `seconds`, each client sends a position every `1/rate` s,
//!    start phases staggered evenly over one period and paced by one thread
//!    with precise sleeps (see `pacer`; a late tick is caught up
//!    at once, so the offered load stays nominal). Every position encodes
//!    the client's send sequence number, so its own echo gives a latency.
//! 3. **Drain**: wait (bounded) until every client saw the echo of its last
//!    position. The contract lets the server coalesce intermediate positions
//!    but never the latest one, so this always completes on a healthy server.
//! 4. **Final**: every client makes one final, distinct move. Convergence is
//!    the time from the last final move sent until every client holds every
//!    other client's final position (bounded by `converge_timeout`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use shared::ClientId;
use shared::legacy::Position;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until};

mod client;
mod pacer;

use crate::RunError;
use crate::stats::{Latencies, LatencySummary, per_second, process_cpu_seconds};
use client::Client;
use pacer::Pacer;

/// The final move: `y = -1` never occurs in a regular position (see [`encode_seq`]).
pub(crate) const FINAL: Position = Position { x: 0, y: -1 };
/// How many send times a client remembers; an echo older than this many
/// sends counts as missed.
pub(crate) const SEND_RING: usize = 1024;
/// How long the clients get to close after the run.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Regular position number `seq` (1-based): 15 low bits in `x`, the next 14 in
/// `y`, so both stay non-negative and `y = -1` is free for [`FINAL`].
pub fn encode_seq(seq: u32) -> Position {
    Position::new((seq & 0x7fff) as i16, ((seq >> 15) & 0x3fff) as i16)
}

/// Inverse of [`encode_seq`]; `None` for anything it cannot have produced.
pub fn decode_seq(position: Position) -> Option<u32> {
    if position.x < 0 || position.y < 0 {
        return None;
    }
    Some(((position.y as u32) << 15) | position.x as u32)
}

#[derive(Debug, Clone)]
pub struct PositionsConfig {
    /// Legacy positions service, `host:port`.
    pub addr: String,
    pub clients: usize,
    pub rate_hz: f64,
    pub duration: Duration,
    /// Native game port, `host:port`, for `native_clients` native clients.
    pub native_addr: Option<String>,
    pub native_clients: usize,
    pub connect_concurrency: usize,
    pub drain_timeout: Duration,
    pub converge_timeout: Duration,
    /// Free text copied into the report (e.g. which server).
    pub label: Option<String>,
    /// Own-echo p99 at or under which a run passes.
    pub slo_p99_ms: f64,
    /// Own-echo p99 over which a run counts as collapsed.
    pub collapse_p99_ms: f64,
    /// Area-of-interest mode: native clients walk randomly in a square world
    /// of this side (position units) and send a `View`. `None`: every
    /// position encodes a sequence number (the full-broadcast benchmark).
    pub world_size: Option<u16>,
    /// Half side of each native client's view, in position units.
    pub view_half_extent: u16,
}

impl PositionsConfig {
    pub fn new(addr: impl Into<String>, clients: usize, rate_hz: f64, duration: Duration) -> Self {
        PositionsConfig {
            addr: addr.into(),
            clients,
            rate_hz,
            duration,
            native_addr: None,
            native_clients: 0,
            connect_concurrency: 256,
            drain_timeout: Duration::from_secs(10),
            converge_timeout: Duration::from_secs(10),
            label: None,
            slo_p99_ms: 50.0,
            collapse_p99_ms: 5000.0,
            world_size: None,
            view_half_extent: 200,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PositionsReport {
    pub mode: &'static str,
    pub label: Option<String>,
    pub addr: String,
    pub native_addr: Option<String>,
    pub clients: usize,
    pub native_clients: usize,
    pub clients_connected: usize,
    pub native_connected: usize,
    pub rate_hz: f64,
    pub seconds: f64,
    /// Regular positions sent during the load phase (all clients).
    pub positions_sent: u64,
    pub positions_sent_per_s: f64,
    /// Records received during the load phase (all clients; native batch
    /// entries count one each).
    pub records_received: u64,
    pub records_received_per_s: f64,
    /// What full delivery would be: every position to every client.
    pub records_expected_per_s: f64,
    /// Own-echo latency of every client, legacy and native (scheduled send
    /// tick → own record seen): the headline figure.
    pub echo_p99_ms: f64,
    /// Same as `records_received_per_s` (short name for scripts).
    pub records_per_s: f64,
    /// `errors.total` (short name for scripts).
    pub error_count: u64,
    /// Most players one native client saw at once (from the Snapshot,
    /// PlayerJoined or Positions naming it until a PlayerLeft for it).
    pub visible_max: usize,
    /// Records of regular positions received from the start of the load
    /// phase until the final moves (own echo included).
    pub records_delivered: u64,
    /// What full delivery is: positions sent × clients connected (not
    /// checked in area-of-interest mode, where a client sees only its view).
    pub records_expected: u64,
    /// How late sends went out after their scheduled tick (this process
    /// starved of CPU); latencies count from the scheduled tick.
    pub send_lateness: LatencySummary,
    /// Why the verdict is not `pass` (empty when it is).
    pub failures: Vec<String>,
    /// Own-echo latency of the legacy clients: from the scheduled send to
    /// the echo's arrival at this machine (the kernel's receive timestamp).
    pub echo: LatencySummary,
    /// The same latency counted to when this generator read the echo: its
    /// own wake-up and scheduling delays included.
    pub echo_as_read: LatencySummary,
    /// Own positions whose echo never came (coalesced away or lost).
    pub echoes_missed: u64,
    /// Own-echo latency of the native clients, if the server echoes to them.
    pub native_echo: LatencySummary,
    /// Time from the end of the load phase until every last echo was in.
    pub drain_ms: Option<f64>,
    pub convergence: Convergence,
    pub errors: Errors,
    pub anomalies: Anomalies,
    /// `pass` (no errors, converged, echo p99 ≤ SLO), `fail`, or `collapsed`
    /// (errors, not converged, missing clients or p99 over the collapse limit).
    pub verdict: &'static str,
    pub slo_p99_ms: f64,
    pub wall_seconds: f64,
    /// CPU time this load generator used (it shares the machine with the server).
    pub loadgen_cpu_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Convergence {
    pub converged: bool,
    /// Last final move sent → every client holds every other's final position.
    pub ms: Option<f64>,
    /// (client, other client) pairs where the client saw the other's final move.
    pub pairs_seen: u64,
    pub pairs_expected: u64,
    /// Clients that hold every other client's final position.
    pub clients_complete: usize,
    pub clients: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Errors {
    pub connect_failed: u64,
    pub unexpected_close: u64,
    pub decode_errors: u64,
    pub io_errors: u64,
    /// Clients that did not stop within the stop timeout.
    pub stuck: u64,
    pub total: u64,
}

/// Things a correct server never does, counted rather than fatal.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Anomalies {
    /// An own echo older than one already seen.
    pub echo_reordered: u64,
    /// An own record that is none of the positions this client sent.
    pub echo_unknown: u64,
    /// A regular position of a player after its final one.
    pub final_regressed: u64,
    /// Leave markers / `PlayerLeft` for one of our clients during the run.
    pub peers_left: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Phase {
    Connect,
    Load { start: Instant, end: Instant },
    Final,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Legacy,
    Native,
}

/// State shared by the coordinator and every client.
pub(crate) struct Shared {
    pub(crate) epoch: Instant,
    /// The wall-clock time of `epoch`, to place the kernel's timestamps.
    pub(crate) epoch_wall: SystemTime,
    /// Ids of all our connected clients, set once before the load phase.
    pub(crate) ids: OnceLock<HashSet<ClientId>>,
    pub(crate) finals_sent: AtomicUsize,
    pub(crate) finals_seen: AtomicU64,
    pub(crate) last_final_sent_us: AtomicU64,
    pub(crate) drained: AtomicUsize,
    pub(crate) dead: AtomicUsize,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            epoch: Instant::now(),
            epoch_wall: SystemTime::now(),
            ids: OnceLock::new(),
            finals_sent: AtomicUsize::new(0),
            finals_seen: AtomicU64::new(0),
            last_final_sent_us: AtomicU64::new(0),
            drained: AtomicUsize::new(0),
            dead: AtomicUsize::new(0),
        }
    }

    pub(crate) fn micros_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// The instant of a wall-clock time (a kernel timestamp).
    pub(crate) fn instant_of(&self, at: SystemTime) -> Instant {
        match at.duration_since(self.epoch_wall) {
            Ok(after) => self.epoch + after,
            Err(before) => self
                .epoch
                .checked_sub(before.duration())
                .unwrap_or(self.epoch),
        }
    }
}

/// What one client reports when it ends.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) kind: Option<Kind>,
    pub(crate) connected: bool,
    pub(crate) sent: u64,
    pub(crate) records_in_load: u64,
    /// Own echoes, to their arrival at this machine (kernel timestamp).
    pub(crate) echoes: Latencies,
    /// The same, to when this generator got to read them.
    pub(crate) echoes_read: Latencies,
    pub(crate) lateness: Latencies,
    pub(crate) records_delivered: u64,
    pub(crate) visible_max: usize,
    pub(crate) echoes_missed: u64,
    pub(crate) finals_complete: bool,
    pub(crate) errors: Errors,
    pub(crate) anomalies: Anomalies,
}

pub async fn run(config: PositionsConfig) -> Result<PositionsReport, RunError> {
    if !(config.rate_hz > 0.0 && config.rate_hz <= 10_000.0) {
        return Err(RunError(format!(
            "rate {} Hz outside (0, 10000]",
            config.rate_hz
        )));
    }
    if config.native_clients > 0 && config.native_addr.is_none() {
        return Err(RunError("--native-clients needs --native-addr".into()));
    }
    let wall = Instant::now();
    let cpu_at_start = process_cpu_seconds();
    let total = config.clients + config.native_clients;
    let shared = Arc::new(Shared::new());
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    let (id_tx, mut id_rx) = mpsc::unbounded_channel::<Option<ClientId>>();
    let limit = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
    let period = Duration::from_secs_f64(1.0 / config.rate_hz);

    let mut tasks = JoinSet::new();
    let mut pacer = Pacer::new(period);
    for index in 0..total {
        // Several comma-separated addresses (cluster nodes) share the
        // clients round-robin; convergence then checks every node sees
        // every other node's players.
        let pick = |list: &str| {
            let addrs: Vec<&str> = list.split(',').map(str::trim).collect();
            addrs[index % addrs.len()].to_owned()
        };
        let (kind, addr) = if index < config.clients {
            (Kind::Legacy, pick(&config.addr))
        } else {
            (
                Kind::Native,
                pick(config.native_addr.as_deref().unwrap_or_default()),
            )
        };
        let offset = period.mul_f64(index as f64 / total.max(1) as f64);
        // Legacy sends are a fixed 4 bytes per sequence number: the pacer
        // writes them itself. Native ones (frames, views) go through the task.
        let (ticks, direct) = match kind {
            Kind::Legacy => {
                let (ticks, socket) = pacer.add_direct(offset);
                (ticks, Some(socket))
            }
            Kind::Native => (pacer.add(offset), None),
        };
        let client = Client {
            kind,
            index,
            addr,
            ticks,
            direct,
            shared: shared.clone(),
            phase: phase_rx.clone(),
            id_tx: id_tx.clone(),
            limit: limit.clone(),
            world: config.world_size.map(|size| client::World {
                size,
                view: config.view_half_extent,
            }),
        };
        tasks.spawn(client.run());
    }
    drop(id_tx);

    // 1. Connect: one report per client (its id, or None on failure).
    let mut ids = HashSet::with_capacity(total);
    for _ in 0..total {
        match id_rx.recv().await {
            Some(Some(id)) => {
                ids.insert(id);
            }
            Some(None) => {}
            None => break,
        }
    }
    let connected = ids.len();
    let _ = shared.ids.set(ids);

    // 2. Load.
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + config.duration;
    let _ = phase_tx.send(Phase::Load { start, end });
    let pacer = pacer.start(start, end);
    sleep_until(end.into()).await;
    // The pacer ends with the load phase; a panic there would be a bug.
    let pacer_lateness = match tokio::task::spawn_blocking(move || pacer.join()).await {
        Ok(Ok(lateness)) => lateness,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Latencies::new(), // cancelled: the runtime is shutting down
    };

    // 3. Drain: every live client has seen its last echo.
    let drain_deadline = Instant::now() + config.drain_timeout;
    let mut drain_ms = None;
    loop {
        let settled = shared.drained.load(Ordering::Acquire) + shared.dead.load(Ordering::Acquire);
        if settled >= connected {
            drain_ms = Some(end.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        if Instant::now() >= drain_deadline {
            break;
        }
        sleep(Duration::from_millis(1)).await;
    }

    // 4. Final moves and convergence (not in area-of-interest mode: a client
    // only sees the players in its view, so "everyone sees everyone" is false).
    let aoi = config.world_size.is_some();
    if !aoi {
        let _ = phase_tx.send(Phase::Final);
    }
    let converge_deadline = Instant::now() + config.converge_timeout;
    let mut convergence = Convergence {
        clients: connected,
        ..Convergence::default()
    };
    // In area-of-interest mode nobody sees everyone: no convergence check.
    if !aoi {
        loop {
            let live = connected.saturating_sub(shared.dead.load(Ordering::Acquire));
            let movers = shared.finals_sent.load(Ordering::Acquire);
            let expected = (movers * movers.saturating_sub(1)) as u64;
            let seen = shared.finals_seen.load(Ordering::Acquire);
            if movers >= live && seen >= expected {
                let done = shared.micros_since_epoch(Instant::now());
                let last = shared.last_final_sent_us.load(Ordering::Acquire);
                convergence.converged = live > 0 && live == connected;
                convergence.ms = Some(done.saturating_sub(last) as f64 / 1000.0);
                break;
            }
            if Instant::now() >= converge_deadline {
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
    }
    let movers = shared.finals_sent.load(Ordering::Acquire);
    convergence.pairs_expected = (movers * movers.saturating_sub(1)) as u64;
    convergence.pairs_seen = shared.finals_seen.load(Ordering::Acquire);
    if !convergence.converged {
        convergence.ms = None;
    }

    // Stop and collect.
    let _ = phase_tx.send(Phase::Stop);
    let mut report = PositionsReport {
        mode: "positions",
        label: config.label.clone(),
        addr: config.addr.clone(),
        native_addr: config.native_addr.clone(),
        clients: config.clients,
        native_clients: config.native_clients,
        rate_hz: config.rate_hz,
        seconds: config.duration.as_secs_f64(),
        drain_ms,
        slo_p99_ms: config.slo_p99_ms,
        ..PositionsReport::default()
    };
    let mut echoes = Latencies::new();
    let mut echoes_read = Latencies::new();
    let mut native_echoes = Latencies::new();
    let mut lateness = pacer_lateness;
    let stop_deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    let mut finished = 0;
    while let Ok(Some(joined)) = tokio::time::timeout_at(stop_deadline, tasks.join_next()).await {
        finished += 1;
        let Ok(outcome) = joined else {
            report.errors.stuck += 1; // a panicked task; never expected
            continue;
        };
        match (outcome.kind, outcome.connected) {
            (Some(Kind::Legacy), true) => report.clients_connected += 1,
            (Some(Kind::Native), true) => report.native_connected += 1,
            _ => {}
        }
        report.positions_sent += outcome.sent;
        report.records_received += outcome.records_in_load;
        report.echoes_missed += outcome.echoes_missed;
        report.records_delivered += outcome.records_delivered;
        report.visible_max = report.visible_max.max(outcome.visible_max);
        lateness.merge(&outcome.lateness);
        if outcome.finals_complete {
            convergence.clients_complete += 1;
        }
        match outcome.kind {
            Some(Kind::Native) => native_echoes.merge(&outcome.echoes),
            _ => {
                echoes.merge(&outcome.echoes);
                echoes_read.merge(&outcome.echoes_read);
            }
        }
        add_errors(&mut report.errors, &outcome.errors);
        add_anomalies(&mut report.anomalies, &outcome.anomalies);
    }
    tasks.abort_all();
    report.errors.stuck += (total - finished) as u64;
    report.errors.total = report.errors.connect_failed
        + report.errors.unexpected_close
        + report.errors.decode_errors
        + report.errors.io_errors
        + report.errors.stuck;

    let seconds = report.seconds;
    report.positions_sent_per_s = per_second(report.positions_sent, seconds);
    report.records_received_per_s = per_second(report.records_received, seconds);
    report.records_expected_per_s = report.positions_sent_per_s * connected as f64;
    report.echo = echoes.summary();
    report.echo_as_read = echoes_read.summary();
    report.native_echo = native_echoes.summary();
    let mut all_echoes = echoes;
    all_echoes.merge(&native_echoes);
    report.echo_p99_ms = all_echoes.summary().p99_ms;
    report.records_per_s = report.records_received_per_s;
    report.error_count = report.errors.total;
    report.records_expected = report.positions_sent * connected as u64;
    report.send_lateness = lateness.summary();
    report.convergence = convergence;
    report.failures = failures(&report, aoi);
    report.verdict = verdict(&report, config.collapse_p99_ms, aoi);
    report.wall_seconds = wall.elapsed().as_secs_f64();
    report.loadgen_cpu_seconds = process_cpu_seconds()
        .zip(cpu_at_start)
        .map(|(end, start)| end - start);
    Ok(report)
}

/// Everything that keeps a run from passing, in words.
fn failures(report: &PositionsReport, aoi: bool) -> Vec<String> {
    let mut why = Vec::new();
    if report.errors.total > 0 {
        why.push(format!("{} errors", report.errors.total));
    }
    if report.clients_connected < report.clients || report.native_connected < report.native_clients
    {
        why.push(format!(
            "connected {}+{} of {}+{} clients",
            report.clients_connected,
            report.native_connected,
            report.clients,
            report.native_clients
        ));
    }
    if report.echoes_missed > 0 {
        why.push(format!("{} echoes missed", report.echoes_missed));
    }
    if report.drain_ms.is_none() {
        why.push("drain timed out (last echoes not all in)".into());
    }
    if !aoi && report.records_delivered < report.records_expected {
        why.push(format!(
            "delivered {} of {} records",
            report.records_delivered, report.records_expected
        ));
    }
    if !aoi && !report.convergence.converged {
        why.push("not converged".into());
    }
    if report.clients + report.native_clients > 0 && report.positions_sent > 0 {
        let samples = report.echo.samples + report.native_echo.samples;
        if samples == 0 {
            why.push("no echo at all".into());
        }
    }
    if report.echo_p99_ms > report.slo_p99_ms {
        why.push(format!(
            "own-echo p99 {:.2} ms over {} ms",
            report.echo_p99_ms, report.slo_p99_ms
        ));
    }
    why
}

fn verdict(report: &PositionsReport, collapse_p99_ms: f64, aoi: bool) -> &'static str {
    let all_connected = report.clients_connected == report.clients
        && report.native_connected == report.native_clients;
    if report.errors.total > 0
        || !all_connected
        || (!aoi && !report.convergence.converged)
        || report.echo_p99_ms > collapse_p99_ms
        || report.drain_ms.is_none()
    {
        "collapsed"
    } else if report.failures.is_empty() {
        "pass"
    } else {
        "fail"
    }
}

fn add_errors(total: &mut Errors, e: &Errors) {
    total.connect_failed += e.connect_failed;
    total.unexpected_close += e.unexpected_close;
    total.decode_errors += e.decode_errors;
    total.io_errors += e.io_errors;
    total.stuck += e.stuck;
}

fn add_anomalies(total: &mut Anomalies, a: &Anomalies) {
    total.echo_reordered += a.echo_reordered;
    total.echo_unknown += a.echo_unknown;
    total.final_regressed += a.final_regressed;
    total.peers_left += a.peers_left;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_round_trip_and_never_look_final() {
        for seq in [1u32, 2, 0x7fff, 0x8000, 1_000_000, (1 << 29) - 1] {
            let position = encode_seq(seq);
            assert_ne!(position, FINAL);
            assert_eq!(decode_seq(position), Some(seq), "seq {seq}");
        }
        assert_eq!(decode_seq(FINAL), None);
    }
}
