//! Human-readable output of one run, and the markdown report of a whole bench.
//!
//! The bench writes one JSON object per line:
//! `{"section": S, "server": NAME, "report": <loadgen --json output>, ...}`
//! with sections `ladder`, `capacity` (probes), `capacity_result`
//! (`{"capacity": N, "first_fail": M}`), `math` and `idle` (plus
//! `rss_baseline_kb` / `rss_held_kb` beside the report).

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
                "{}/{} legacy, {}/{} native",
                r.clients_connected, r.clients, r.native_connected, r.native_clients
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
        ("own-echo latency", latency_line(&r.echo)),
        (
            "echoes missed",
            format!(
                "{} (coalesced away, or never back before the drain timeout)",
                r.echoes_missed
            ),
        ),
        ("native own-echo", latency_line(&r.native_echo)),
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
                "{} (SLO: own-echo p99 <= {} ms, no errors, converged)",
                r.verdict, r.slo_p99_ms
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

/// One line of the bench's results file.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub section: String,
    pub server: String,
    #[serde(default)]
    pub report: Value,
    #[serde(default)]
    pub rss_baseline_kb: Option<u64>,
    #[serde(default)]
    pub rss_held_kb: Option<u64>,
    /// CPU seconds the server used over the measurement.
    #[serde(default)]
    pub server_cpu_s: Option<f64>,
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

/// A point of a positions run, as plotted and tabulated.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub clients: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub records_per_s: f64,
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

/// Ladder points of one server, by client count: the median of the repeats
/// of each count (capacity probes only where the ladder has no point).
pub fn points(entries: &[Entry], server: &str) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::new();
    for section in ["ladder", "capacity"] {
        let runs: Vec<&Value> = entries
            .iter()
            .filter(|e| e.server == server && e.section == section)
            .map(|e| &e.report)
            .filter(|r| num(r, &["clients_connected"]) > 0.0)
            .collect();
        let mut counts: Vec<f64> = runs.iter().map(|r| num(r, &["clients"])).collect();
        counts.sort_by(f64::total_cmp);
        counts.dedup();
        for clients in counts {
            if out.iter().any(|p| p.clients == clients) {
                continue;
            }
            let same: Vec<&&Value> = runs
                .iter()
                .filter(|r| num(r, &["clients"]) == clients)
                .collect();
            let median_of = |path: &[&str]| median(same.iter().map(|r| num(r, path)).collect());
            out.push(Point {
                clients,
                p50_ms: median_of(&["echo", "p50_ms"]),
                p99_ms: median_of(&["echo", "p99_ms"]),
                records_per_s: median_of(&["records_received_per_s"]),
            });
        }
    }
    out.sort_by(|a, b| a.clients.total_cmp(&b.clients));
    out
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

fn ms(value: &Value, path: &[&str]) -> String {
    match get(value, path).as_f64() {
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

/// Milliseconds with microsecond resolution (for sub-millisecond latencies).
fn ms3(value: &Value, path: &[&str]) -> String {
    match get(value, path).as_f64() {
        Some(v) => format!("{v:.3}"),
        None => "-".into(),
    }
}

fn positions_row(e: &Entry) -> String {
    let (server, r) = (&e.server, &e.report);
    let cpu = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
    let cpu = format!(
        "{} / {} / {:.1}",
        cpu(e.server_cpu_s),
        cpu(get(r, &["loadgen_cpu_seconds"]).as_f64()),
        num(r, &["wall_seconds"])
    );
    let native = match num(r, &["native_clients"]) {
        n if n > 0.0 => format!(" + {} / {n} native", text(r, &["native_connected"])),
        _ => String::new(),
    };
    let converged = if get(r, &["convergence", "converged"]).as_bool() == Some(true) {
        ms(r, &["convergence", "ms"])
    } else {
        format!(
            "no ({}/{})",
            text(r, &["convergence", "pairs_seen"]),
            text(r, &["convergence", "pairs_expected"])
        )
    };
    format!(
        "| {server} | {} / {}{native} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {cpu} |",
        text(r, &["clients_connected"]),
        text(r, &["clients"]),
        num(r, &["positions_sent_per_s"]),
        num(r, &["records_received_per_s"]),
        num(r, &["records_expected_per_s"]),
        ms(r, &["echo", "p50_ms"]),
        ms(r, &["echo", "p90_ms"]),
        ms(r, &["echo", "p99_ms"]),
        ms(r, &["echo", "max_ms"]),
        text(r, &["echoes_missed"]),
        converged,
        text(r, &["errors", "total"]),
        text(r, &["verdict"]),
    )
}

const POSITIONS_HEADER: &str = "| server | clients | sent/s | records/s | full delivery/s | echo p50 ms | p90 ms | p99 ms | max ms | echoes missed | convergence ms | errors | verdict | CPU s: server / loadgen / wall |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

pub fn markdown(entries: &[Entry]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmark results\n");
    let _ = writeln!(
        s,
        "Produced by `bench/run` with `loadgen`. Everything ran on one machine over 127.0.0.1 \
         (the load generator shares the CPUs with the server under test). Echo latency: a \
         client sends a position and waits for its own record to come back. Convergence: \
         after the run every client makes one final move; time from the last final move \
         sent until every client holds every other client's final position.\n"
    );
    let ladder: Vec<&Entry> = entries.iter().filter(|e| e.section == "ladder").collect();
    if !ladder.is_empty() {
        let rate = text(&ladder[0].report, &["rate_hz"]);
        let _ = writeln!(s, "## Positions ladder ({rate} Hz per client)\n");
        let _ = writeln!(s, "{POSITIONS_HEADER}");
        for e in &ladder {
            let _ = writeln!(s, "{}", positions_row(e));
        }
        let _ = writeln!(
            s,
            "\n![p99 echo latency and records/s against clients](plot.png)\n"
        );
    }
    let results: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.section == "capacity_result")
        .collect();
    if !results.is_empty() {
        let _ = writeln!(
            s,
            "## Capacity at 10 Hz (own-echo p99 ≤ 50 ms, full convergence, no errors)\n"
        );
        let _ = writeln!(
            s,
            "| server | capacity (clients) | smallest failing count probed |\n|---|---|---|"
        );
        for e in &results {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                e.server,
                text(&e.report, &["capacity"]),
                text(&e.report, &["first_fail"])
            );
        }
        let _ = writeln!(s, "\nProbes:\n\n{POSITIONS_HEADER}");
        for e in entries.iter().filter(|e| e.section == "capacity") {
            let _ = writeln!(s, "{}", positions_row(e));
        }
        let _ = writeln!(s);
    }
    let math: Vec<&Entry> = entries.iter().filter(|e| e.section == "math").collect();
    if !math.is_empty() {
        let _ = writeln!(s, "## Math (pipelined, every reply checked)\n");
        let _ = writeln!(
            s,
            "| server | connections | pipeline | requests/s | p50 ms | p99 ms | max ms | wrong replies | errors |\n|---|---|---|---|---|---|---|---|---|"
        );
        for e in &math {
            let r = &e.report;
            let _ = writeln!(
                s,
                "| {} | {} / {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                e.server,
                text(r, &["connected"]),
                text(r, &["connections"]),
                text(r, &["pipeline"]),
                num(r, &["requests_per_s"]),
                ms3(r, &["latency", "p50_ms"]),
                ms3(r, &["latency", "p99_ms"]),
                ms3(r, &["latency", "max_ms"]),
                text(r, &["wrong_replies"]),
                text(r, &["errors", "total"]),
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

    const LINES: &str = r#"{"section":"ladder","server":"rust","report":{"clients":50,"clients_connected":50,"rate_hz":10.0,"positions_sent_per_s":500.0,"records_received_per_s":25000.0,"records_expected_per_s":25000.0,"echo":{"p50_ms":0.2,"p90_ms":0.3,"p99_ms":0.5,"max_ms":2.0},"echoes_missed":0,"convergence":{"converged":true,"ms":1.5},"errors":{"total":0},"verdict":"pass","wall_seconds":10.5,"loadgen_cpu_seconds":2.31},"server_cpu_s":3.5}
not json
{"section":"capacity","server":"rust","report":{"clients":50,"clients_connected":50,"echo":{"p99_ms":9.0},"records_received_per_s":1.0}}
{"section":"capacity","server":"rust","report":{"clients":100,"clients_connected":100,"echo":{"p99_ms":9.0},"records_received_per_s":2.0}}
{"section":"capacity_result","server":"rust","report":{"capacity":100,"first_fail":200}}
{"section":"idle","server":"python","rss_baseline_kb":1024,"rss_held_kb":11264,"report":{"connections":10,"connected":10,"connect_failed":0,"closed_while_held":0}}"#;

    #[test]
    fn points_prefer_the_ladder_and_sort_by_clients() {
        let entries = parse_entries(LINES);
        assert_eq!(entries.len(), 5);
        assert_eq!(servers(&entries), ["rust", "python"]);
        let points = points(&entries, "rust");
        assert_eq!(points.len(), 2);
        assert_eq!(
            points[0],
            Point {
                clients: 50.0,
                p50_ms: 0.2,
                p99_ms: 0.5,
                records_per_s: 25000.0
            }
        );
        assert_eq!(points[1].clients, 100.0);
    }

    #[test]
    fn repeats_give_their_median() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
        let lines = [1.0, 9.0, 2.0]
            .map(|p99| format!(r#"{{"section":"ladder","server":"rust","report":{{"clients":20,"clients_connected":20,"echo":{{"p50_ms":0.1,"p99_ms":{p99}}}}}}}"#))
            .join("\n");
        let points = points(&parse_entries(&lines), "rust");
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].p99_ms, 2.0);
    }

    #[test]
    fn markdown_has_every_section() {
        let md = markdown(&parse_entries(LINES));
        assert!(
            md.contains("## Positions ladder (10.0 Hz per client)"),
            "{md}"
        );
        assert!(md.contains("| rust | 50 / 50 | 500 | 25000 | 25000 | 0.2 | 0.3 | 0.5 | 2.0 | 0 | 1.5 | 0 | pass | 3.5 / 2.3 / 10.5 |"), "{md}");
        assert!(md.contains("| rust | 100 | 200 |"), "{md}");
        // (11264 - 1024) KiB over 10 connections.
        assert!(
            md.contains("| python | 10 / 10 | 0 | 0 | 1.0 | 11.0 | 1024.0 |"),
            "{md}"
        );
    }
}
