//! Human-readable output of one run, and the markdown report of a whole bench.
//!
//! The bench (`bench/run.py`) writes one JSON object per run:
//! `{"section": S, "server": NAME, "run": I, ..., "report": <loadgen --json>}`
//! with sections `ladder`, `capacity` (probe runs), `math` and `idle`; beside
//! the report, the fields of [`Entry`] (server CPU, the machine's other CPU
//! use, steal, load, RSS). One `capacity_result` line per server closes its
//! search: `{"capacity": N, "first_fail": M, "resolution": M - N, "probes":
//! [{"clients", "passed", "runs", "from": "ladder" | "capacity"}]}`.

use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

use crate::idle::IdleReport;
use crate::math::MathReport;
use crate::positions::PositionsReport;
use crate::stats::LatencySummary;

/// ` [label]` after a table's title, or nothing.
fn label_suffix(label: Option<&str>) -> String {
    label.map(|l| format!(" [{l}]")).unwrap_or_default()
}

pub fn positions_table(r: &PositionsReport) -> String {
    let mut s = String::new();
    let label = label_suffix(r.label.as_deref());
    let _ = writeln!(
        s,
        "positions{label}: {} at {} Hz for {} s",
        r.addr, r.rate_hz, r.seconds
    );
    let rows: Vec<(&str, String)> = vec![
        (
            "clients connected",
            format!(
                "{}/{} legacy ({} sampled), {}/{} native ({} sampled): latency and \
                 visible_max are the sampled clients'; the others count records",
                r.clients_connected,
                r.clients,
                r.legacy_sampled,
                r.native_connected,
                r.native_clients,
                r.native_sampled
            ),
        ),
        (
            "positions sent/s",
            format!("{:.0} ({} total)", r.positions_sent_per_s, r.positions_sent),
        ),
        (
            "records received/s",
            format!(
                "{:.0} (full delivery: {:.0})",
                r.records_received_per_s, r.records_expected_per_s
            ),
        ),
        ("own-echo latency", echo_line(r, &r.echo)),
        ("  as read", echo_line(r, &r.echo_as_read)),
        (
            "echoes missed",
            format!(
                "{} (coalesced away, or never back before the drain timeout)",
                r.echoes_missed
            ),
        ),
        ("native own-echo", echo_line(r, &r.native_echo)),
        (
            "send lateness",
            format!(
                "{} (generator-bound over p99 {} ms)",
                latency_line(&r.send_lateness),
                r.generator.max_send_late_p99_ms
            ),
        ),
        (
            "generator CPU",
            format!(
                "{} in the load phase, {} of its {} CPU(s) (generator-bound over {:.0} %)",
                r.generator
                    .load_cpu_seconds
                    .map_or("-".into(), |s| format!("{s:.1} s")),
                r.generator
                    .cpu_share
                    .map_or("-".into(), |s| format!("{:.0} %", s * 100.0)),
                r.generator.cpus,
                r.generator.max_cpu_share * 100.0
            ),
        ),
        (
            "drain after load",
            r.drain_ms
                .map(|ms| format!("{ms:.1} ms"))
                .unwrap_or_else(|| "timed out".into()),
        ),
        ("convergence", convergence_line(r)),
        (
            "errors",
            format!(
                "{} (connect {}, unexpected close {}, decode {}, io {}, stuck {})",
                r.errors.total,
                r.errors.connect_failed,
                r.errors.unexpected_close,
                r.errors.decode_errors,
                r.errors.io_errors,
                r.errors.stuck
            ),
        ),
        (
            "anomalies",
            format!(
                "echo reordered {}, unknown own record {}, final regressed {}, peers left {}",
                r.anomalies.echo_reordered,
                r.anomalies.echo_unknown,
                r.anomalies.final_regressed,
                r.anomalies.peers_left
            ),
        ),
        (
            "verdict",
            format!(
                "{} (SLO: own-echo p99 <= {} ms, no errors, converged){}",
                r.verdict,
                r.slo_p99_ms,
                if r.failures.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.failures.join("; "))
                }
            ),
        ),
        (
            "wall time",
            format!(
                "{:.1} s (load generator CPU: {})",
                r.wall_seconds,
                r.loadgen_cpu_seconds
                    .map(|s| format!("{s:.1} s"))
                    .unwrap_or_else(|| "-".into())
            ),
        ),
    ];
    push_rows(&mut s, &rows);
    s
}

pub fn math_table(r: &MathReport) -> String {
    let mut s = String::new();
    let label = label_suffix(r.label.as_deref());
    let _ = writeln!(s, "math{label}: {} for {} s", r.addr, r.seconds);
    let e = &r.errors;
    let rows: Vec<(&str, String)> = vec![
        (
            "connections",
            format!(
                "{}/{} (pipeline {})",
                r.connected, r.connections, r.pipeline
            ),
        ),
        (
            "requests/s",
            format!("{:.0} ({} replies)", r.requests_per_s, r.replies),
        ),
        ("latency", latency_line(&r.latency)),
        ("wrong replies", r.wrong_replies.to_string()),
        (
            "division by zero",
            format!("{} replies with status 1", r.division_by_zero_replies),
        ),
        (
            "errors",
            format!(
                "{} (connect {}, unexpected close {}, decode {}, io {}, unanswered {})",
                e.total,
                e.connect_failed,
                e.unexpected_close,
                e.decode_errors,
                e.io_errors,
                e.unanswered
            ),
        ),
    ];
    push_rows(&mut s, &rows);
    s
}

pub fn idle_table(r: &IdleReport) -> String {
    let mut s = String::new();
    let label = label_suffix(r.label.as_deref());
    let _ = writeln!(s, "idle{label}: {}", r.addr);
    let rows: Vec<(&str, String)> = vec![
        (
            "connected",
            format!(
                "{}/{} ({} failed) in {:.1} s",
                r.connected, r.connections, r.connect_failed, r.connect_seconds
            ),
        ),
        (
            "held",
            format!(
                "{:.1} s, {} closed by the server meanwhile",
                r.held_seconds, r.closed_while_held
            ),
        ),
        ("bytes received", r.bytes_received.to_string()),
    ];
    push_rows(&mut s, &rows);
    s
}

fn push_rows(s: &mut String, rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        let _ = writeln!(s, "  {key:<width$}  {value}");
    }
}

/// An own-echo latency, unless the generator set it.
fn echo_line(r: &PositionsReport, l: &LatencySummary) -> String {
    if r.generator.bound {
        return format!(
            "not a server figure: the run was generator-bound ({})",
            r.generator.reasons.join("; ")
        );
    }
    latency_line(l)
}

fn latency_line(l: &LatencySummary) -> String {
    if l.samples == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.samples
    )
}

fn convergence_line(r: &PositionsReport) -> String {
    let c = &r.convergence;
    match c.ms {
        Some(ms) if c.converged => format!("{ms:.1} ms after the last final move"),
        _ => format!(
            "not converged: {}/{} clients complete, {}/{} (client, other) final positions seen",
            c.clients_complete, c.clients, c.pairs_seen, c.pairs_expected
        ),
    }
}

/// One line of the bench's results file (see the module comment).
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub section: String,
    pub server: String,
    #[serde(default)]
    pub report: Value,
    /// Which repeat of its point this run was (1, 2, ...).
    #[serde(default)]
    pub run: Option<u32>,
    /// Server and loadgen pinned to different CPUs.
    #[serde(default)]
    pub pinned: Option<bool>,
    /// CPU seconds the server used while the load generator ran.
    #[serde(default)]
    pub server_cpu_s: Option<f64>,
    /// Busy CPU seconds of the whole machine over the run, less the server's
    /// and the load generator's: other work competing for the cores.
    #[serde(default)]
    pub other_cpu_s: Option<f64>,
    /// Share of the machine's CPU time stolen by the hypervisor over the run.
    #[serde(default)]
    pub steal_pct: Option<f64>,
    /// One-minute load average when the run started.
    #[serde(default)]
    pub load_before: Option<f64>,
    #[serde(default)]
    pub rss_baseline_kb: Option<u64>,
    #[serde(default)]
    pub rss_held_kb: Option<u64>,
}

impl Entry {
    /// Server CPU nanoseconds per record delivered to the clients.
    pub fn ns_per_record(&self) -> Option<f64> {
        let records = get(&self.report, &["records_delivered"]).as_f64()?;
        let cpu = self.server_cpu_s?;
        (records > 0.0).then(|| cpu * 1e9 / records)
    }

    /// A figure of the report; none of a latency of a generator-bound run
    /// (it measured the generator, not the server).
    fn report_f64(&self, path: &[&str]) -> Option<f64> {
        let latency = path.first().is_some_and(|p| p.starts_with("echo"));
        if latency && text(&self.report, &["verdict"]) == "generator-bound" {
            return None;
        }
        get(&self.report, path).as_f64()
    }
}

/// Parses the results file; unparsable lines are skipped with a warning.
pub fn parse_entries(text: &str) -> Vec<Entry> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(entry) => Some(entry),
            Err(e) => {
                eprintln!("warning: skipping a results line: {e}");
                None
            }
        })
        .collect()
}

/// The median of some runs' values, with their range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` when no run has the value.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread {
            median: median(v.clone()),
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// `median (min–max)` in format `f`, or just the value when the runs agree;
/// `-` for none.
fn spread(s: Option<Spread>, f: fn(f64) -> String) -> String {
    match s {
        None => "-".into(),
        Some(s) if f(s.min) == f(s.max) => f(s.median),
        Some(s) => format!("{} ({}–{})", f(s.median), f(s.min), f(s.max)),
    }
}

/// Two decimals at most (CPU seconds, percentages, load averages).
fn dec2(v: f64) -> String {
    if v.abs() >= 10.0 {
        fig(v)
    } else {
        format!("{v:.2}")
    }
}

/// Three significant figures or so, never fewer than the integer digits.
fn fig(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => thousands(v),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// An integer with thousands separators: `2,400`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 { format!("-{out}") } else { out }
}

/// A ladder point of one server, as plotted: medians of its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub clients: f64,
    pub p50_ms: Spread,
    pub p99_ms: Spread,
    pub records_per_s: f64,
    /// Records per second if every position reached every client.
    pub full_per_s: f64,
    pub ns_per_record: Option<f64>,
}

/// The servers in order of first appearance.
pub fn servers(entries: &[Entry]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in entries {
        if !out.contains(&e.server) {
            out.push(e.server.clone());
        }
    }
    out
}

/// The runs of one section grouped by (client count, server): counts
/// ascending, servers in order of first appearance, runs in file order.
/// Runs where no client connected are left out.
fn groups<'a>(entries: &'a [Entry], section: &str) -> Vec<(f64, &'a str, Vec<&'a Entry>)> {
    let runs: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.section == section && num(&e.report, &["clients_connected"]) > 0.0)
        .collect();
    let mut counts: Vec<f64> = runs.iter().map(|e| num(&e.report, &["clients"])).collect();
    counts.sort_by(f64::total_cmp);
    counts.dedup();
    let mut out = Vec::new();
    for clients in counts {
        for server in servers(entries) {
            let same: Vec<&Entry> = runs
                .iter()
                .copied()
                .filter(|e| e.server == server && num(&e.report, &["clients"]) == clients)
                .collect();
            if let Some(first) = same.first() {
                out.push((clients, first.server.as_str(), same));
            }
        }
    }
    out
}

/// Ladder points of one server by client count, medians of the repeats.
pub fn points(entries: &[Entry], server: &str) -> Vec<Point> {
    groups(entries, "ladder")
        .into_iter()
        .filter(|(_, s, _)| *s == server)
        .filter_map(|(clients, _, runs)| {
            let of = |path: &[&str]| Spread::of(runs.iter().filter_map(|e| e.report_f64(path)));
            Some(Point {
                clients,
                p50_ms: of(&["echo", "p50_ms"])?,
                p99_ms: of(&["echo", "p99_ms"])?,
                records_per_s: of(&["records_received_per_s"]).map_or(0.0, |s| s.median),
                full_per_s: of(&["records_expected_per_s"]).map_or(0.0, |s| s.median),
                ns_per_record: Spread::of(runs.iter().filter_map(|e| e.ns_per_record()))
                    .map(|s| s.median),
            })
        })
        .collect()
}

/// The SLO of the first positions run (50 ms if there is none).
pub fn slo_p99_ms(entries: &[Entry]) -> f64 {
    entries
        .iter()
        .find_map(|e| e.report_f64(&["slo_p99_ms"]))
        .unwrap_or(50.0)
}

/// Median (the mean of the middle two for an even count); 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn get<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |v, key| &v[*key])
}

fn num(value: &Value, path: &[&str]) -> f64 {
    get(value, path).as_f64().unwrap_or(0.0)
}

fn text(value: &Value, path: &[&str]) -> String {
    match get(value, path) {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn opt(v: Option<f64>, format: fn(f64) -> String) -> String {
    v.map(format).unwrap_or_else(|| "-".into())
}

/// `3 pass` or `2 pass, 1 fail`, in order of first appearance.
fn verdicts(runs: &[&Entry]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in runs {
        let v = text(&e.report, &["verdict"]);
        match counts.iter_mut().find(|(name, _)| *name == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    let parts: Vec<String> = counts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    parts.join(", ")
}

const SUMMARY_HEADER: &str = "| clients | server | runs | verdicts | echo p50 ms | echo p99 ms | server CPU s | ns/record | loadgen CPU s | other CPU s | steal % | load avg | records/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// One row per (client count, server): median (min–max) over the runs.
fn summary_row(clients: f64, server: &str, runs: &[&Entry]) -> String {
    let of = |f: &dyn Fn(&Entry) -> Option<f64>, format: fn(f64) -> String| {
        spread(Spread::of(runs.iter().filter_map(|e| f(e))), format)
    };
    format!(
        "| {} | {server} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        thousands(clients),
        runs.len(),
        verdicts(runs),
        of(&|e| e.report_f64(&["echo", "p50_ms"]), fig),
        of(&|e| e.report_f64(&["echo", "p99_ms"]), fig),
        of(&|e| e.server_cpu_s, dec2),
        of(&|e| e.ns_per_record(), thousands),
        of(&|e| e.report_f64(&["loadgen_cpu_seconds"]), dec2),
        of(&|e| e.other_cpu_s, dec2),
        of(&|e| e.steal_pct, dec2),
        of(&|e| e.load_before, dec2),
        of(&|e| e.report_f64(&["records_received_per_s"]), thousands),
    )
}

const RUNS_HEADER: &str = "| server | clients | run | sent/s | records/s | full delivery/s | echo p50 ms | p99 ms | max ms | p99 as read ms | send late p99 ms | echoes missed | convergence ms | errors | verdict | CPU s: server / loadgen / other | ns/record | wall s | steal % | load avg |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

fn run_row(e: &Entry) -> String {
    let r = &e.report;
    let native = match num(r, &["native_clients"]) {
        n if n > 0.0 => format!(" + {} / {n} native", text(r, &["native_connected"])),
        _ => String::new(),
    };
    let converged = if get(r, &["convergence", "converged"]).as_bool() == Some(true) {
        opt(e.report_f64(&["convergence", "ms"]), fig)
    } else {
        format!(
            "no ({}/{})",
            text(r, &["convergence", "pairs_seen"]),
            text(r, &["convergence", "pairs_expected"])
        )
    };
    format!(
        "| {} | {} / {}{native} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {converged} | {} | {} | {} / {} / {} | {} | {} | {} | {} |",
        e.server,
        text(r, &["clients_connected"]),
        text(r, &["clients"]),
        e.run.map_or("-".into(), |n| n.to_string()),
        thousands(num(r, &["positions_sent_per_s"])),
        thousands(num(r, &["records_received_per_s"])),
        thousands(num(r, &["records_expected_per_s"])),
        opt(e.report_f64(&["echo", "p50_ms"]), fig),
        opt(e.report_f64(&["echo", "p99_ms"]), fig),
        opt(e.report_f64(&["echo", "max_ms"]), fig),
        opt(e.report_f64(&["echo_as_read", "p99_ms"]), fig),
        opt(e.report_f64(&["send_lateness", "p99_ms"]), fig),
        text(r, &["echoes_missed"]),
        text(r, &["errors", "total"]),
        text(r, &["verdict"]),
        opt(e.server_cpu_s, dec2),
        opt(e.report_f64(&["loadgen_cpu_seconds"]), dec2),
        opt(e.other_cpu_s, dec2),
        opt(e.ns_per_record(), thousands),
        opt(e.report_f64(&["wall_seconds"]), dec2),
        opt(e.steal_pct, dec2),
        opt(e.load_before, dec2),
    )
}

/// `1,200 clients, resolution 50: 1,200 passed (3/3 runs), 1,250 failed (0/2)`.
fn capacity_line(r: &Value) -> String {
    let probes = get(r, &["probes"]).as_array().cloned().unwrap_or_default();
    let runs_at = |n: f64| {
        probes
            .iter()
            .rev()
            .find(|p| num(p, &["clients"]) == n)
            .map(|p| format!("{}/{} runs", text(p, &["passed"]), text(p, &["runs"])))
            .unwrap_or_else(|| "not probed".into())
    };
    let lo = num(r, &["capacity"]);
    match get(r, &["first_fail"]).as_f64() {
        Some(hi) if lo > 0.0 => format!(
            "**{}** clients, resolution {}: {} passed ({}), {} failed ({})",
            thousands(lo),
            thousands(hi - lo),
            thousands(lo),
            runs_at(lo),
            thousands(hi),
            runs_at(hi)
        ),
        Some(hi) => format!(
            "under {} clients: {} failed ({})",
            thousands(hi),
            thousands(hi),
            runs_at(hi)
        ),
        None if lo > 0.0 => format!(
            "at least **{}** clients (the largest count tried): {} passed ({})",
            thousands(lo),
            thousands(lo),
            runs_at(lo)
        ),
        None => "not measured".into(),
    }
}

/// `20 3/3, 50 3/3, 100 0/3 (ladder); 75 2/2, 87 0/2`: passed/runs per count.
fn probe_list(r: &Value) -> String {
    let probes = get(r, &["probes"]).as_array().cloned().unwrap_or_default();
    let mut parts: Vec<String> = Vec::new();
    for from in ["ladder", "capacity"] {
        let list: Vec<String> = probes
            .iter()
            .filter(|p| text(p, &["from"]) == from)
            .map(|p| {
                format!(
                    "{} {}/{}",
                    thousands(num(p, &["clients"])),
                    text(p, &["passed"]),
                    text(p, &["runs"])
                )
            })
            .collect();
        if !list.is_empty() {
            parts.push(format!("{} ({from})", list.join(", ")));
        }
    }
    parts.join("; ")
}

pub fn markdown(entries: &[Entry]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmark results\n");
    let _ = writeln!(
        s,
        "Produced by `bench/run` with `loadgen`; what each column means and what limits the \
         figures: [docs/bench/README.md](README.md). Everything ran on one machine over \
         127.0.0.1 (the load generator shares the CPUs with the server under test). Echo \
         latency: from the tick a client's position was scheduled for until its own \
         record came back, as stamped by the kernel on arrival (\"as read\": when the \
         generator got to read it, its own wake-up included). Figures are the median (min–max) of the runs of a point; servers alternated run by \
         run. ns/record: server CPU time over the run divided by the records it delivered.\n"
    );
    let positions = entries
        .iter()
        .find(|e| matches!(e.section.as_str(), "ladder" | "capacity"));
    let plain = |path: &[&str]| {
        positions
            .and_then(|e| e.report_f64(path))
            .map_or("-".into(), |v| v.to_string())
    };
    let (rate, slo) = (plain(&["rate_hz"]), plain(&["slo_p99_ms"]));
    let ladder = groups(entries, "ladder");
    if !ladder.is_empty() {
        let _ = writeln!(s, "## Positions ladder ({rate} Hz per client)\n");
        let _ = writeln!(s, "{SUMMARY_HEADER}");
        for (clients, server, runs) in &ladder {
            let _ = writeln!(s, "{}", summary_row(*clients, server, runs));
        }
        let _ = writeln!(
            s,
            "\n![own-echo p50/p99, records/s and ns/record against clients](plot.png)\n"
        );
    }
    let results: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.section == "capacity_result")
        .collect();
    if !results.is_empty() {
        let _ = writeln!(
            s,
            "## Capacity at {rate} Hz (own-echo p99 ≤ {slo} ms, full convergence, no errors)\n"
        );
        let _ = writeln!(
            s,
            "A count passes when most of its runs pass. The true capacity lies between the \
             passing and the failing count.\n"
        );
        let _ = writeln!(
            s,
            "| server | capacity | counts probed: passed/runs |\n|---|---|---|"
        );
        for e in &results {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                e.server,
                capacity_line(&e.report),
                probe_list(&e.report)
            );
        }
        let _ = writeln!(s);
    }
    for (section, title) in [
        ("ladder", "Ladder runs"),
        ("capacity", "Capacity probe runs"),
    ] {
        let runs: Vec<&Entry> = entries.iter().filter(|e| e.section == section).collect();
        if !runs.is_empty() {
            let _ = writeln!(s, "### {title}\n\n{RUNS_HEADER}");
            for e in runs {
                let _ = writeln!(s, "{}", run_row(e));
            }
            let _ = writeln!(s);
        }
    }
    let math: Vec<&Entry> = entries.iter().filter(|e| e.section == "math").collect();
    if !math.is_empty() {
        let _ = writeln!(s, "## Math (pipelined, every reply checked)\n");
        let _ = writeln!(
            s,
            "| server | runs | connections | pipeline | requests/s | p50 ms | p99 ms | server CPU s | wrong replies | errors |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for server in servers(entries) {
            let runs: Vec<&Entry> = math
                .iter()
                .copied()
                .filter(|e| e.server == server)
                .collect();
            let Some(first) = runs.first() else { continue };
            let of = |f: &dyn Fn(&Entry) -> Option<f64>, format: fn(f64) -> String| {
                spread(Spread::of(runs.iter().filter_map(|e| f(e))), format)
            };
            let total = |path: &[&str]| thousands(runs.iter().map(|e| num(&e.report, path)).sum());
            let _ = writeln!(
                s,
                "| {server} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
                runs.len(),
                text(&first.report, &["connected"]),
                text(&first.report, &["connections"]),
                text(&first.report, &["pipeline"]),
                of(&|e| e.report_f64(&["requests_per_s"]), thousands),
                of(&|e| e.report_f64(&["latency", "p50_ms"]), fig),
                of(&|e| e.report_f64(&["latency", "p99_ms"]), fig),
                of(&|e| e.server_cpu_s, dec2),
                total(&["wrong_replies"]),
                total(&["errors", "total"]),
            );
        }
        let _ = writeln!(s);
    }
    let idle: Vec<&Entry> = entries.iter().filter(|e| e.section == "idle").collect();
    if !idle.is_empty() {
        let _ = writeln!(s, "## Idle connections: server memory\n");
        let _ = writeln!(
            s,
            "| server | connected | failed | closed while held | RSS before (MiB) | RSS held (MiB) | per connection (KiB) |\n|---|---|---|---|---|---|---|"
        );
        for e in &idle {
            let r = &e.report;
            let connected = num(r, &["connected"]);
            let (before, held) = (e.rss_baseline_kb, e.rss_held_kb);
            let per_conn = match (before, held) {
                (Some(b), Some(h)) if connected > 0.0 => {
                    format!("{:.1}", (h as f64 - b as f64) / connected)
                }
                _ => "-".into(),
            };
            let mib = |kb: Option<u64>| {
                kb.map(|kb| format!("{:.1}", kb as f64 / 1024.0))
                    .unwrap_or("-".into())
            };
            let _ = writeln!(
                s,
                "| {} | {} / {} | {} | {} | {} | {} | {} |",
                e.server,
                text(r, &["connected"]),
                text(r, &["connections"]),
                text(r, &["connect_failed"]),
                text(r, &["closed_while_held"]),
                mib(before),
                mib(held),
                per_conn
            );
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ladder run of `server` at `clients` with the given p99, 10 s of load.
    fn ladder_line(server: &str, clients: u32, run: u32, p99: f64, verdict: &str) -> String {
        format!(
            r#"{{"section":"ladder","server":"{server}","run":{run},"server_cpu_s":2.0,"other_cpu_s":0.5,"steal_pct":0.1,"load_before":1.5,"report":{{"clients":{clients},"clients_connected":{clients},"rate_hz":10.0,"slo_p99_ms":50.0,"positions_sent_per_s":500.0,"records_received_per_s":25000.0,"records_expected_per_s":25000.0,"records_delivered":250000,"echo":{{"p50_ms":0.2,"p99_ms":{p99},"max_ms":2.0}},"send_lateness":{{"p99_ms":0.05}},"echoes_missed":0,"convergence":{{"converged":true,"ms":1.5}},"errors":{{"total":0}},"verdict":"{verdict}","wall_seconds":10.5,"loadgen_cpu_seconds":2.31}}}}"#
        )
    }

    fn sample() -> Vec<Entry> {
        let mut lines = Vec::new();
        for run in 1..=3 {
            lines.push(ladder_line(
                "rust",
                50,
                run,
                [0.5, 0.9, 0.4][run as usize - 1],
                "pass",
            ));
            lines.push(ladder_line("python", 50, run, 3.0, "pass"));
            lines.push(ladder_line("rust", 20, run, 0.3, "pass"));
        }
        lines.push(ladder_line("python", 200, 1, 9000.0, "collapsed"));
        lines.push("not json".into());
        lines.push(r#"{"section":"capacity","server":"rust","run":1,"report":{"clients":75,"clients_connected":75,"echo":{"p99_ms":9.0},"verdict":"pass"}}"#.into());
        lines.push(r#"{"section":"capacity_result","server":"rust","report":{"capacity":1200,"first_fail":1250,"resolution":50,"probes":[{"clients":1000,"passed":3,"runs":3,"from":"ladder"},{"clients":2000,"passed":0,"runs":3,"from":"ladder"},{"clients":1250,"passed":0,"runs":2,"from":"capacity"},{"clients":1200,"passed":2,"runs":3,"from":"capacity"}]}}"#.into());
        lines.push(r#"{"section":"capacity_result","server":"python","report":{"capacity":6400,"first_fail":null,"probes":[{"clients":6400,"passed":2,"runs":2,"from":"capacity"}]}}"#.into());
        lines.push(r#"{"section":"idle","server":"python","rss_baseline_kb":1024,"rss_held_kb":11264,"report":{"connections":10,"connected":10,"connect_failed":0,"closed_while_held":0}}"#.into());
        parse_entries(&lines.join("\n"))
    }

    #[test]
    fn points_are_ladder_medians_sorted_by_clients() {
        let entries = sample();
        assert_eq!(servers(&entries), ["rust", "python"]);
        let points = points(&entries, "rust");
        assert_eq!(points.len(), 2, "capacity probes are not plotted");
        assert_eq!(points[0].clients, 20.0);
        assert_eq!(
            points[1].p99_ms,
            Spread {
                median: 0.5,
                min: 0.4,
                max: 0.9
            }
        );
        // 2 s of server CPU over 250,000 records.
        assert_eq!(points[1].ns_per_record, Some(8000.0));
    }

    #[test]
    fn repeats_give_their_median() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(Spread::of([]), None);
        assert_eq!(spread(Spread::of([2.0, 2.0]), fig), "2.00");
        assert_eq!(
            spread(Spread::of([9.7, 8.6, 10.2]), fig),
            "9.70 (8.60–10.2)"
        );
    }

    #[test]
    fn figures_keep_three_digits_and_group_thousands() {
        assert_eq!(fig(0.2134), "0.213");
        assert_eq!(fig(24117.2), "24,117");
        assert_eq!(thousands(9988627.0), "9,988,627");
        assert_eq!(thousands(999.0), "999");
    }

    #[test]
    fn markdown_summarises_runs_and_capacity() {
        let md = markdown(&sample());
        assert!(
            md.contains("## Positions ladder (10 Hz per client)"),
            "{md}"
        );
        // Counts ascending, servers side by side at each count.
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| 50 |")).collect();
        assert_eq!(
            rows,
            [
                "| 50 | rust | 3 | 3 pass | 0.200 | 0.500 (0.400–0.900) | 2.00 | 8,000 | 2.31 | 0.50 | 0.10 | 1.50 | 25,000 |",
                "| 50 | python | 3 | 3 pass | 0.200 | 3.00 | 2.00 | 8,000 | 2.31 | 0.50 | 0.10 | 1.50 | 25,000 |",
            ],
            "{md}"
        );
        assert!(md.contains("| 200 | python | 1 | 1 collapsed |"), "{md}");
        assert!(
            md.contains("| rust | **1,200** clients, resolution 50: 1,200 passed (2/3 runs), 1,250 failed (0/2 runs) | 1,000 3/3, 2,000 0/3 (ladder); 1,250 0/2, 1,200 2/3 (capacity) |"),
            "{md}"
        );
        assert!(md.contains("| python | at least **6,400** clients"), "{md}");
        assert!(md.contains("| rust | 50 / 50 | 2 | 500 | 25,000 | 25,000 | 0.200 | 0.900 | 2.00 | - | 0.050 | 0 | 1.50 | 0 | pass | 2.00 / 2.31 / 0.50 | 8,000 | 10.5 | 0.10 | 1.50 |"), "{md}");
        // (11264 - 1024) KiB over 10 connections.
        assert!(
            md.contains("| python | 10 / 10 | 0 | 0 | 1.0 | 11.0 | 1024.0 |"),
            "{md}"
        );
    }
}
