"""The issue-22 points of bench/run (`bench/run --issue22`, or SECTIONS=issue22).

Each point runs REPEATS times (at least 3) with the server on CPU 0 and
loadgen on CPU 1 (taskset), a fresh server per run, and with BASELINE=<commit>
that commit's server alternating with ours (current, baseline, current, ...).
Per run: own-echo p99, server CPU over the whole loadgen run (connections
included), server CPU per delivered record, the server's peak RSS (VmHWM just
before it is stopped), and the generator's own state: a generator-bound run
has no p99 (it measured loadgen) and misses every target.

A target holds when the median of the current server's runs meets it. Writes
OUT/issue22.md (current and baseline side by side) and returns the missed
targets; `bench/run --check` exits 1 when there is one.
"""

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

# name: (legacy clients, native area-of-interest clients, targets). A target
# is (figure, most allowed, unit); every point also needs a run that is not
# generator-bound and has no errors.
POINTS = {
    "legacy-20": (20, 0, [("p99_ms", 1.0, "ms")]),
    "legacy-50": (50, 0, [("p99_ms", 1.0, "ms")]),
    "legacy-2000": (2000, 0, [("p99_ms", 30.0, "ms"), ("server_cpu_per_20s", 10.0, "s")]),
    "legacy-3000": (3000, 0, [("p99_ms", 50.0, "ms"), ("converged_ms", 250.0, "ms"),
                              ("rss_mb", 40.0, "MB"), ("ns_per_record", 8.0, "ns")]),
    "aoi-5000": (0, 5000, [("p99_ms", 50.0, "ms"), ("visible_max", 400, ""),
                           ("ns_per_record", 50.0, "ns")]),
    "aoi-10000": (0, 10000, [("p99_ms", 150.0, "ms")]),
}
ALWAYS = [("errors", 0, ""), ("generator_bound", 0, "runs")]
FIGURES = ["p99_ms", "server_cpu_s", "ns_per_record", "rss_mb", "converged_ms", "visible_max",
           "send_late_p99_ms", "loadgen_cpu_s"]


def server_binary(release):
    """The server binary in a release directory: `server`, or `gameserver`
    once the rename lands (the newer one if an old build left both)."""
    found = [Path(release) / n for n in ("gameserver", "server") if (Path(release) / n).exists()]
    if not found:
        raise SystemExit(f"no server or gameserver binary in {release}")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def build_baseline(root, commit, log):
    """Builds `commit`'s server from a `git archive` copy in /tmp with its own
    target directory (kept, so a second run reuses it); returns the binary."""
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=root,
                         check=True, capture_output=True, text=True).stdout.strip()
    home = Path(f"/tmp/bench-baseline-{sha[:12]}")
    src, target = home / "src", home / "target"
    if not (src / "Cargo.toml").exists():
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        archive = subprocess.Popen(["git", "archive", sha], cwd=root, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive {sha} failed")
    log(f"building the baseline server of {sha[:12]} in {home}")
    subprocess.run(["cargo", "build", "--release", "-p", "server"], cwd=src, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    return server_binary(target / "release")


def figures(report, fields, seconds):
    """One run's figures; p99 is None when the generator set it."""
    report = report or {}
    bound = report.get("verdict") == "generator-bound"
    # loadgen leaves echo_p99_ms out (null) when the run was generator-bound.
    cpu = fields.get("server_cpu_s")
    delivered = report.get("records_delivered") or 0
    peak = fields.get("server_peak_rss_kb")
    samples = (report.get("echo", {}).get("samples") or 0) + \
        (report.get("native_echo", {}).get("samples") or 0)
    conv = report.get("convergence", {})
    return {
        "verdict": report.get("verdict", "no report"),
        "generator_bound": int(bound),
        "p99_ms": report.get("echo_p99_ms") if samples else None,
        "server_cpu_s": cpu,
        "server_cpu_per_20s": None if cpu is None else cpu * 20.0 / seconds,
        "ns_per_record": cpu * 1e9 / delivered if cpu is not None and delivered else None,
        "rss_mb": None if peak is None else peak / 1024,
        "converged_ms": conv.get("ms") if conv.get("converged") else None,
        "visible_max": report.get("visible_max"),
        "errors": report.get("errors", {}).get("total") if report else None,
        "send_late_p99_ms": report.get("send_lateness", {}).get("p99_ms"),
        "loadgen_cpu_s": report.get("generator", {}).get("load_cpu_seconds"),
        "sampled": (report.get("native_sampled") or 0) + (report.get("legacy_sampled") or 0),
    }


def median_of(runs, key):
    """Median of a figure; a run without it (no report, generator-bound)
    counts as infinitely bad, so it can never help meet a target."""
    values = [r[key] if r[key] is not None else float("inf") for r in runs]
    return statistics.median(values) if values else None


def args_for(k, legacy, native, seconds, p99_target, kind):
    args = ["positions", "--rate", "10", "--seconds", str(seconds), "--slo-p99-ms",
            str(p99_target), "--drain-timeout", k["DRAIN_TIMEOUT"], "--converge-timeout",
            k["CONVERGE_TIMEOUT"], "--label", kind, "--clients", str(legacy),
            "--addr", "127.0.0.1:{positions}"]
    if native:
        args += ["--native-addr", "127.0.0.1:{game}", "--native-clients", str(native),
                 "--world-size", "4000", "--view", "200"]
    return args


def run(bench, k, log):
    """Runs the points; writes OUT/issue22.md; returns the missed targets."""
    bench.pin = True
    seconds = float(k["ISSUE22_SECONDS"])
    repeats = max(int(k["REPEATS"]), 3)
    servers = ["rust"] + (["baseline"] if "baseline" in bench.bins else [])
    names = k["POINTS"].split()
    unknown = [n for n in names if n not in POINTS]
    if unknown:
        raise SystemExit(f"unknown issue-22 point {unknown[0]}; known: {' '.join(POINTS)}")
    results = {}
    for name in names:
        legacy, native, targets = POINTS[name]
        p99_target = dict((t[0], t[1]) for t in targets).get("p99_ms", 50.0)
        log(f"issue22 {name}: {legacy} legacy + {native} native clients, {seconds:g} s,"
            f" {repeats} runs per server, pinned")
        for run_no in range(1, repeats + 1):
            for kind in servers:
                tag = f"issue22-{name}-{kind}-{run_no}"
                report, fields = bench.measured(
                    kind, tag, args_for(k, legacy, native, seconds, p99_target, kind))
                bench.record("issue22", kind, report, point=name, run=run_no, **fields)
                f = figures(report, fields, seconds)
                results.setdefault(name, {}).setdefault(kind, []).append(f)
                log(f"  {kind:8} run {run_no}: {f['verdict']}, p99 {fmt(f['p99_ms'])} ms,"
                    f" server {fmt(f['server_cpu_s'])} s CPU ({fmt(f['ns_per_record'])} ns/record),"
                    f" peak RSS {fmt(f['rss_mb'])} MB, send late p99"
                    f" {fmt(f['send_late_p99_ms'])} ms, loadgen {fmt(f['loadgen_cpu_s'])} s CPU")
    missed = []
    for name in names:
        runs = results[name]["rust"]
        for key, most, unit in POINTS[name][2] + ALWAYS:
            value = median_of(runs, key) if key != "generator_bound" else \
                sum(r[key] for r in runs)
            if value is None or value > most:
                missed.append(f"{name} {key} {fmt(value)} > {most} {unit}".strip())
    write(bench.out / "issue22.md", k, names, results, servers, missed, seconds, repeats)
    log(f"issue22: {len(missed)} targets missed; {bench.out / 'issue22.md'}")
    for m in missed:
        log(f"  missed: {m}")
    return missed


def fmt(v):
    if v is None:
        return "-"
    if v == float("inf"):
        return "none"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def cell(runs, key):
    """`median (run, run, run)`."""
    values = [r[key] for r in runs]
    if all(v is None for v in values):
        return "-"
    return f"{fmt(median_of(runs, key))} ({', '.join(fmt(v) for v in values)})"


def write(path, k, names, results, servers, missed, seconds, repeats):
    baseline = k["BASELINE"] or None
    lines = [
        "# Issue-22 points",
        "",
        f"`{'BASELINE=' + baseline + ' ' if baseline else ''}bench/run --issue22`,"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {repeats} runs per server,"
        f" alternating, {seconds:g} s of load at 10 Hz each, server on CPU 0 and loadgen on"
        " CPU 1. Median (every run). Server CPU counts the whole loadgen run (connections"
        " included); ns/record is that CPU over the records delivered; peak RSS is VmHWM."
        " A generator-bound run has no p99 (shown as `-`, counted as `none` in the median).",
        "",
        "| point | server | verdicts | p99 ms | server CPU s | ns/record | peak RSS MB"
        " | converged ms | visible max | send late p99 ms | loadgen CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for kind in servers:
            runs = results[name].get(kind, [])
            verdicts = ", ".join(r["verdict"] for r in runs)
            label = "current" if kind == "rust" else f"baseline {baseline}"
            lines.append(f"| {name} | {label} | {verdicts} | " + " | ".join(
                cell(runs, key) for key in FIGURES) + " |")
    lines += ["", "## Targets (current server)", ""]
    for name in names:
        wanted = ", ".join(f"{key} <= {most}{(' ' + unit) if unit else ''}"
                           for key, most, unit in POINTS[name][2] + ALWAYS)
        lines.append(f"- {name}: {wanted}")
    lines += ["", "Missed: " + ("; ".join(missed) if missed else "none"), ""]
    Path(path).write_text("\n".join(lines))
