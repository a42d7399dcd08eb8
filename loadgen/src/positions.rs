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
mod frames;
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
    /// Protocol version the native clients announce in their `Hello`.
    pub native_protocol_version: u32,
    /// Area-of-interest mode: how many native clients decode everything and
    /// time their own echoes; the others only walk frames and count records
    /// (see `frames`). Latency and `visible_max` come from these alone.
    /// Likewise legacy clients, when there are more of them than this: the
    /// others drain their sockets unread in the load phase and count the
    /// records (all of them still check delivery and convergence).
    pub sample_clients: usize,
    /// Send lateness p99 (ms) over which the run is generator-bound.
    pub max_send_late_p99_ms: f64,
    /// Share of its CPUs (0..1) this process may use during the load phase
    /// before the run counts as generator-bound.
    pub max_cpu_share: f64,
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
            native_protocol_version: shared::native::PROTOCOL_VERSION,
            sample_clients: 500,
            max_send_late_p99_ms: 5.0,
            max_cpu_share: 0.9,
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
    /// Native clients that decoded everything and timed their own echoes:
    /// in area-of-interest mode the native latency, `echoes_missed` and
    /// `visible_max` are theirs alone (the others count records and check
    /// the frame stream). Every native client otherwise.
    pub native_sampled: usize,
    /// Legacy clients that read everything as it comes and timed their own
    /// echoes: the legacy own-echo latency is theirs alone. Every legacy
    /// client when there are at most `--sample-clients` of them; beyond
    /// that the others are counters, which drain their socket every
    /// [`client::LEGACY_COUNTER_DRAIN`] of the load phase and count its
    /// records unread (see `Client::sampled`).
    pub legacy_sampled: usize,
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
    /// tick → own record seen): the headline figure. `None` when the run is
    /// generator-bound: the latency then measures the generator, not the
    /// server.
    pub echo_p99_ms: Option<f64>,
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
    /// `pass` (no errors, converged, echo p99 ≤ SLO), `fail`, `collapsed`
    /// (errors, not converged, missing clients or p99 over the collapse
    /// limit), or `generator-bound` (this process was late or out of CPU:
    /// no figure of this run is the server's).
    pub verdict: &'static str,
    /// Whether this generator kept up, measured over the load phase.
    pub generator: Generator,
    pub slo_p99_ms: f64,
    pub wall_seconds: f64,
    /// CPU time this load generator used (it shares the machine with the server).
    pub loadgen_cpu_seconds: Option<f64>,
}

/// Whether the generator itself kept up during the load phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Generator {
    /// CPU time this process used during the load phase.
    pub load_cpu_seconds: Option<f64>,
    /// CPUs this process may run on (its affinity mask).
    pub cpus: usize,
    /// `load_cpu_seconds / (load seconds × cpus)`: 1 is every CPU it has.
    pub cpu_share: Option<f64>,
    pub max_cpu_share: f64,
    pub max_send_late_p99_ms: f64,
    /// Late sends or saturated CPU: the run measured the generator.
    pub bound: bool,
    /// Why it is bound, in words (empty when it is not).
    pub reasons: Vec<String>,
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
    /// Decoded everything and timed its echoes (see `Client::sampled`).
    pub(crate) sampled: bool,
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
        // In area-of-interest mode, `sample_clients` natives spread evenly
        // over the schedule decode in full; the rest count. Likewise
        // legacy clients, when there are more than `sample_clients`.
        let native_index = index.saturating_sub(config.clients);
        let spread = |index: usize, of: usize| {
            of <= config.sample_clients
                || (index * config.sample_clients) % of < config.sample_clients
        };
        let sampled = match kind {
            Kind::Legacy => spread(index, config.clients),
            Kind::Native => {
                config.world_size.is_none() || spread(native_index, config.native_clients)
            }
        };
        let client = Client {
            sampled,
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
            protocol_version: config.native_protocol_version,
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
    // On stderr, for whoever watches the server meanwhile (bench/point.py
    // reads the server's CPU from here to the end of the load).
    eprintln!(
        "load: {connected} of {total} clients connected in {:.1} s; sending for {} s from 200 ms on",
        wall.elapsed().as_secs_f64(),
        config.duration.as_secs_f64()
    );
    let pacer = pacer.start(start, end);
    sleep_until(start.into()).await;
    let cpu_at_load_start = process_cpu_seconds();
    sleep_until(end.into()).await;
    let load_cpu_seconds = process_cpu_seconds()
        .zip(cpu_at_load_start)
        .map(|(end, start)| end - start);
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
            (Some(Kind::Legacy), true) => {
                report.clients_connected += 1;
                report.legacy_sampled += usize::from(outcome.sampled);
            }
            (Some(Kind::Native), true) => {
                report.native_connected += 1;
                report.native_sampled += usize::from(outcome.sampled);
            }
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
    let echo_p99_ms = all_echoes.summary().p99_ms;
    report.records_per_s = report.records_received_per_s;
    report.error_count = report.errors.total;
    report.records_expected = report.positions_sent * connected as u64;
    report.send_lateness = lateness.summary();
    report.convergence = convergence;
    report.generator = generator(&config, load_cpu_seconds, &report.send_lateness);
    report.failures = failures(&report, echo_p99_ms, aoi);
    report.verdict = verdict(&report, echo_p99_ms, config.collapse_p99_ms, aoi);
    report.echo_p99_ms = (!report.generator.bound).then_some(echo_p99_ms);
    report.wall_seconds = wall.elapsed().as_secs_f64();
    report.loadgen_cpu_seconds = process_cpu_seconds()
        .zip(cpu_at_start)
        .map(|(end, start)| end - start);
    Ok(report)
}

/// CPUs this process may run on.
fn cpus() -> usize {
    // Follows the affinity mask (taskset) and cgroup quotas.
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether the generator was late or out of CPU during the load phase.
fn generator(
    config: &PositionsConfig,
    load_cpu_seconds: Option<f64>,
    send_lateness: &LatencySummary,
) -> Generator {
    let cpus = cpus();
    let load_seconds = config.duration.as_secs_f64();
    let cpu_share = load_cpu_seconds
        .filter(|_| load_seconds > 0.0)
        .map(|cpu| cpu / (load_seconds * cpus as f64));
    let mut reasons = Vec::new();
    if send_lateness.p99_ms > config.max_send_late_p99_ms {
        reasons.push(format!(
            "generator-bound: send lateness p99 {:.2} ms over {} ms",
            send_lateness.p99_ms, config.max_send_late_p99_ms
        ));
    }
    if let Some(share) = cpu_share.filter(|&share| share > config.max_cpu_share) {
        reasons.push(format!(
            "generator-bound: CPU {:.0} % of its {cpus} CPU(s) over {:.0} %",
            share * 100.0,
            config.max_cpu_share * 100.0
        ));
    }
    Generator {
        load_cpu_seconds,
        cpus,
        cpu_share,
        max_cpu_share: config.max_cpu_share,
        max_send_late_p99_ms: config.max_send_late_p99_ms,
        bound: !reasons.is_empty(),
        reasons,
    }
}

/// Everything that keeps a run from passing, in words.
fn failures(report: &PositionsReport, echo_p99_ms: f64, aoi: bool) -> Vec<String> {
    let mut why = report.generator.reasons.clone();
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
    if report.anomalies.echo_reordered > 0 {
        why.push(format!(
            "{} own echoes out of order",
            report.anomalies.echo_reordered
        ));
    }
    if report.anomalies.echo_unknown > 0 {
        why.push(format!(
            "{} own records this client never sent",
            report.anomalies.echo_unknown
        ));
    }
    if report.anomalies.final_regressed > 0 {
        why.push(format!(
            "{} moves after a player's final one",
            report.anomalies.final_regressed
        ));
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
    if echo_p99_ms > report.slo_p99_ms {
        why.push(format!(
            "own-echo p99 {echo_p99_ms:.2} ms over {} ms",
            report.slo_p99_ms
        ));
    }
    why
}

/// `generator-bound` before anything else: then no figure is the server's.
fn verdict(
    report: &PositionsReport,
    echo_p99_ms: f64,
    collapse_p99_ms: f64,
    aoi: bool,
) -> &'static str {
    let all_connected = report.clients_connected == report.clients
        && report.native_connected == report.native_clients;
    if report.generator.bound {
        "generator-bound"
    } else if report.errors.total > 0
        || !all_connected
        || (!aoi && !report.convergence.converged)
        || echo_p99_ms > collapse_p99_ms
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

    /// A report of a healthy 10-client run, and its own-echo p99.
    fn passing() -> (PositionsReport, f64) {
        let echo = LatencySummary {
            samples: 100,
            p99_ms: 2.0,
            ..LatencySummary::default()
        };
        let report = PositionsReport {
            clients: 10,
            clients_connected: 10,
            positions_sent: 100,
            records_delivered: 1000,
            records_expected: 1000,
            echo,
            drain_ms: Some(1.0),
            convergence: Convergence {
                converged: true,
                ms: Some(1.0),
                ..Convergence::default()
            },
            slo_p99_ms: 50.0,
            ..PositionsReport::default()
        };
        (report, 2.0)
    }

    /// The verdict and failures of `report`, as `run` sets them.
    fn judge(mut report: PositionsReport, p99: f64, aoi: bool) -> (&'static str, Vec<String>) {
        report.failures = failures(&report, p99, aoi);
        (verdict(&report, p99, 5000.0, aoi), report.failures)
    }

    #[test]
    fn a_healthy_run_passes() {
        let (report, p99) = passing();
        assert_eq!(judge(report, p99, false), ("pass", vec![]));
    }

    #[test]
    fn every_failure_reason_keeps_a_run_from_passing() {
        type Breaks = fn(&mut PositionsReport);
        let cases: Vec<(&str, Breaks, &str)> = vec![
            ("errors", |r| r.errors.total = 1, "collapsed"),
            ("missing client", |r| r.clients_connected = 9, "collapsed"),
            ("missed echo", |r| r.echoes_missed = 1, "fail"),
            ("reordered echo", |r| r.anomalies.echo_reordered = 1, "fail"),
            ("unknown echo", |r| r.anomalies.echo_unknown = 1, "fail"),
            (
                "final regressed",
                |r| r.anomalies.final_regressed = 1,
                "fail",
            ),
            ("drain timeout", |r| r.drain_ms = None, "collapsed"),
            ("lost records", |r| r.records_delivered = 999, "fail"),
            (
                "not converged",
                |r| r.convergence.converged = false,
                "collapsed",
            ),
            ("no echo", |r| r.echo.samples = 0, "fail"),
        ];
        for (what, breaks, expected) in cases {
            let (mut report, p99) = passing();
            breaks(&mut report);
            let (verdict, why) = judge(report, p99, false);
            assert_eq!(verdict, expected, "{what}: {why:?}");
            assert_eq!(why.len(), 1, "{what}: one reason, {why:?}");
        }
    }

    #[test]
    fn a_slow_echo_fails_and_a_very_slow_one_collapses() {
        let (report, _) = passing();
        let (verdict, why) = judge(report.clone(), 60.0, false);
        assert_eq!((verdict, why.len()), ("fail", 1), "{why:?}");
        let (verdict, _) = judge(report, 6000.0, false);
        assert_eq!(verdict, "collapsed");
    }

    #[test]
    fn area_of_interest_runs_skip_delivery_and_convergence_only() {
        let (mut report, p99) = passing();
        report.records_delivered = 0;
        report.convergence.converged = false;
        assert_eq!(judge(report.clone(), p99, true).0, "pass");
        report.anomalies.echo_unknown = 1;
        assert_eq!(judge(report, p99, true).0, "fail");
    }

    fn config() -> PositionsConfig {
        PositionsConfig::new("127.0.0.1:1", 10, 10.0, Duration::from_secs(20))
    }

    #[test]
    fn late_sends_make_a_run_generator_bound_and_hide_its_latency() {
        let late = LatencySummary {
            samples: 100,
            p99_ms: 5.5,
            ..LatencySummary::default()
        };
        let on_time = LatencySummary {
            p99_ms: 4.9,
            ..late
        };
        assert!(!generator(&config(), Some(1.0), &on_time).bound);
        let bound = generator(&config(), Some(1.0), &late);
        assert!(bound.bound, "{bound:?}");
        let (mut report, p99) = passing();
        report.generator = bound;
        let (verdict, why) = judge(report, p99, false);
        assert_eq!(verdict, "generator-bound");
        assert!(why[0].contains("send lateness"), "{why:?}");
    }

    #[test]
    fn a_saturated_cpu_makes_a_run_generator_bound() {
        let quiet = LatencySummary::default();
        let cpus = cpus() as f64;
        // 20 s of load on every CPU this process has: 95 % and 50 %.
        let busy = generator(&config(), Some(0.95 * 20.0 * cpus), &quiet);
        assert!(busy.bound, "{busy:?}");
        assert!(busy.reasons[0].contains("CPU"), "{busy:?}");
        let half = generator(&config(), Some(0.5 * 20.0 * cpus), &quiet);
        assert!(!half.bound, "{half:?}");
        let (mut report, p99) = passing();
        report.generator = busy;
        // Generator-bound before any other verdict: no figure is the server's.
        report.errors.total = 1;
        assert_eq!(judge(report, p99, false).0, "generator-bound");
    }
}
