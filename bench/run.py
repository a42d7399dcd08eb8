#!/usr/bin/env python3
"""Benchmarks our Rust server against the Python reference server
(bench/reference_server.py) with loadgen, over 127.0.0.1 only.

  bench/run            full run (about 11 minutes on 2 cores)
  bench/run --quick    3-second runs, ladder 20 50 200 1000 (about 3 minutes)

Writes bench/out/results.md, bench/out/plot.png, bench/out/results.jsonl (one
JSON object per run) and bench/out/logs/. Column meanings and the limits of the
figures: docs/bench/README.md.

Every point runs REPEATS times with the servers alternating (rust, python,
rust, ...), each run on a freshly started server; the report gives the median
with min-max. A server that collapses at a client count is not run again at
that count or above. The capacity search starts from the ladder's verdicts (a
count passes when most of its runs pass) and bisects to CAP_RESOLUTION_PCT.

Knobs (environment variables), with their defaults (--quick ones in brackets):
  SECTIONS="ladder capacity math idle"  which parts to run
  SERVERS="rust python"      which servers, in alternation order
  REPEATS=3                  runs per point (ladder, capacity probe, math)
  LADDER="20 50 100 200 500 1000 2000"  [20 50 200 1000]  client counts
  RATE=10                    positions per second per client
  LADDER_SECONDS=10 [3]      load phase of a ladder run
  CAP_SECONDS=10 [3]         load phase of a capacity probe run
  CAP_START=100              first count when the ladder gives no failing count
  CAP_MAX=6400               capacity search: largest count tried
  CAP_RESOLUTION_PCT=5 [10]  stop bisecting when failing - passing <= this % (at least 5 clients)
  SLO_P99_MS=50              pass: own-echo p99 at or under this, converged, no errors
  DRAIN_TIMEOUT=3 CONVERGE_TIMEOUT=5  seconds loadgen waits after the load phase
  MATH_SECONDS=10 [3] MATH_CONNECTIONS=1 MATH_PIPELINE=256
  IDLE_CONNECTIONS=10000 [2000] IDLE_SECONDS=5 [2]
  NATIVE_CLIENTS=0           native clients added to each Rust positions run
  PIN=0                      1: server on CPU 1, loadgen on CPU 0 (taskset; off by
                             default, see docs/bench/README.md for the measurement)
  NICE=0                     e.g. NICE=-10 (root): servers and loadgen ahead of other work
  RUST_SERVER_ARGS=""        extra flags for our server, e.g. "--worker-threads 1"
  OUT=bench/out              output directory

Example: SECTIONS=ladder LADDER="20 50" LADDER_SECONDS=8 bench/run
"""

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK_DEFAULTS = {
    "LADDER": "20 50 200 1000",
    "LADDER_SECONDS": "3",
    "CAP_SECONDS": "3",
    "CAP_RESOLUTION_PCT": "10",
    "MATH_SECONDS": "3",
    "IDLE_CONNECTIONS": "2000",
    "IDLE_SECONDS": "2",
}
DEFAULTS = {
    "SECTIONS": "ladder capacity math idle",
    "SERVERS": "rust python",
    "REPEATS": "3",
    "LADDER": "20 50 100 200 500 1000 2000",
    "RATE": "10",
    "LADDER_SECONDS": "10",
    "CAP_SECONDS": "10",
    "CAP_START": "100",
    "CAP_MAX": "6400",
    "CAP_RESOLUTION_PCT": "5",
    "SLO_P99_MS": "50",
    "DRAIN_TIMEOUT": "3",
    "CONVERGE_TIMEOUT": "5",
    "MATH_SECONDS": "10",
    "MATH_CONNECTIONS": "1",
    "MATH_PIPELINE": "256",
    "IDLE_CONNECTIONS": "10000",
    "IDLE_SECONDS": "5",
    "NATIVE_CLIENTS": "0",
    "PIN": "0",
    "NICE": "0",
    "RUST_SERVER_ARGS": "",
    "OUT": str(ROOT / "bench/out"),
}
SERVER_CPU, LOADGEN_CPU = "1", "0"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def knobs(quick):
    values = dict(DEFAULTS)
    if quick:
        values.update(QUICK_DEFAULTS)
    for name in values:
        values[name] = os.environ.get(name, values[name])
    return values


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def process_cpu_s(pid):
    """User + system CPU seconds of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Machine:
    """The whole machine's CPU time (all CPUs, /proc/stat) and load average
    between `Machine()` and `.end()`."""

    def __init__(self):
        self.load_before = os.getloadavg()[0]
        self.start = self.sample()

    @staticmethod
    def sample():
        # user nice system idle iowait irq softirq steal (guest is inside user)
        jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle, steal = jiffies[3] + jiffies[4], jiffies[7]
        return sum(jiffies), sum(jiffies) - idle - steal, steal

    def end(self, own_cpu_s):
        """Fields for the results line; `own_cpu_s` is what server and
        loadgen used, the rest of the busy time is `other_cpu_s`."""
        total, busy, steal = (b - a for a, b in zip(self.start, self.sample()))
        tick = os.sysconf("SC_CLK_TCK")
        return {
            "load_before": round(self.load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "steal_pct": round(100 * steal / total, 2) if total else None,
            "other_cpu_s": round(max(busy / tick - own_cpu_s, 0.0), 2),
        }


class Bench:
    def __init__(self, k, bins):
        self.k = k
        self.bins = bins
        self.repeats = int(k["REPEATS"])
        self.pin = k["PIN"] == "1"
        self.out = Path(k["OUT"])
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results = self.out / "results.jsonl"
        self.results.write_text("")
        self.server = None

    def prefix(self, cpu):
        args = ["nice", "-n", self.k["NICE"]] if self.k["NICE"] != "0" else []
        return args + (["taskset", "-c", cpu] if self.pin else [])

    def record(self, section, server, report, **extra):
        line = {"section": section, "server": server, **extra, "report": report}
        with self.results.open("a") as f:
            f.write(json.dumps(line) + "\n")

    # ------------------------------------------------------------ servers
    def start(self, kind, tag):
        ports = {"positions": free_port(), "math": free_port()}
        if kind == "rust":
            ports["game"] = free_port()
            args = [self.bins["gameserver"], "--host", "127.0.0.1", "--game-port", str(ports["game"]),
                    "--test-port", "0", "--math-port", str(ports["math"]),
                    "--positions-port", str(ports["positions"]),
                    *self.k["RUST_SERVER_ARGS"].split()]
        else:
            args = [sys.executable, str(ROOT / "bench/reference_server.py"), "--host",
                    "127.0.0.1", "--test-port", str(free_port()), "--math-port",
                    str(ports["math"]), "--positions-port", str(ports["positions"])]
        logfile = open(self.logs / f"{tag}.server.log", "w")
        proc = subprocess.Popen(self.prefix(SERVER_CPU) + args, stdout=logfile, stderr=logfile,
                                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
        logfile.close()
        self.server = proc
        deadline = time.time() + 10
        while not (port_open(ports["positions"]) and port_open(ports["math"])):
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"{kind} server did not start; see {self.logs / tag}.server.log")
            time.sleep(0.05)
        return proc, ports

    def stop(self):
        if self.server and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server = None

    def loadgen(self, args, tag):
        with open(self.logs / f"{tag}.loadgen.log", "a") as err:
            out = subprocess.run(self.prefix(LOADGEN_CPU) + [self.bins["loadgen"], *args, "--json"],
                                 stdout=subprocess.PIPE, stderr=err, text=True, check=False)
        try:
            return json.loads(out.stdout)
        except json.JSONDecodeError:
            return None

    def measured(self, kind, tag, args):
        """One loadgen run against a fresh server: (report, fields for the
        results line: server CPU and the machine over the run)."""
        proc, ports = self.start(kind, tag)
        try:
            args = [a.format(**ports) for a in args]
            cpu_before = process_cpu_s(proc.pid)
            machine = Machine()
            report = self.loadgen(args, tag)
            cpu_after = process_cpu_s(proc.pid)
        finally:
            self.stop()
        # None if the server died during the run.
        server_cpu = None if None in (cpu_before, cpu_after) else round(cpu_after - cpu_before, 3)
        loadgen_cpu = (report or {}).get("loadgen_cpu_seconds") or 0
        fields = {"server_cpu_s": server_cpu, "pinned": self.pin,
                  **machine.end((server_cpu or 0) + loadgen_cpu)}
        return report, fields

    # ---------------------------------------------------------- positions
    def positions(self, section, kind, clients, seconds, run):
        k = self.k
        args = ["positions", "--addr", "127.0.0.1:{positions}", "--clients", str(clients),
                "--rate", k["RATE"], "--seconds", str(seconds), "--slo-p99-ms", k["SLO_P99_MS"],
                "--drain-timeout", k["DRAIN_TIMEOUT"], "--converge-timeout",
                k["CONVERGE_TIMEOUT"], "--label", kind]
        if kind == "rust" and int(k["NATIVE_CLIENTS"]) > 0:
            args += ["--native-addr", "127.0.0.1:{game}", "--native-clients", k["NATIVE_CLIENTS"]]
        tag = f"{section}-{kind}-{clients}-{run}"
        report, fields = self.measured(kind, tag, args)
        self.record(section, kind, report, run=run, **fields)
        verdict = (report or {}).get("verdict", "no report")
        if report:
            echo = report["echo"]
            delivered = report.get("records_delivered") or 0
            cpu = fields["server_cpu_s"] or 0
            ns = f"{cpu * 1e9 / delivered:.0f}" if delivered else "-"
            log(f"  {kind:6} {clients:>5} clients run {run}: {verdict}, echo p50 {echo['p50_ms']:.2f}"
                f" p99 {echo['p99_ms']:.2f} ms, server {cpu:.1f} s CPU"
                f" ({ns} ns/record), other {fields['other_cpu_s']:.1f} s, steal"
                f" {fields['steal_pct']} %, load {fields['load_before']}")
        else:
            log(f"  {kind:6} {clients:>5} clients run {run}: no report (see {tag}.loadgen.log)")
        return verdict

    def ladder(self, servers):
        """Every count REPEATS times, servers alternating. Returns
        {server: {clients: [verdicts]}}."""
        seconds = self.k["LADDER_SECONDS"]
        verdicts = {s: {} for s in servers}
        stopped = set()
        for clients in (int(n) for n in self.k["LADDER"].split()):
            log(f"ladder: {clients} clients at {self.k['RATE']} Hz, {seconds} s per run")
            for run in range(1, self.repeats + 1):
                for kind in servers:
                    if kind in stopped:
                        continue
                    v = self.positions("ladder", kind, clients, seconds, run)
                    verdicts[kind].setdefault(clients, []).append(v)
                    if v in ("collapsed", "no report"):
                        log(f"  {kind} collapsed at {clients} clients: no more runs at this count"
                            " or above")
                        stopped.add(kind)
        return verdicts

    def probe(self, kind, clients):
        """A capacity probe: runs until most of REPEATS runs agree (a
        collapse decides at once). Returns (passed, runs)."""
        passed = runs = 0
        while runs < self.repeats:
            runs += 1
            v = self.positions("capacity", kind, clients, self.k["CAP_SECONDS"], runs)
            passed += v == "pass"
            failed = runs - passed
            if v in ("collapsed", "no report") or 2 * passed > self.repeats \
                    or 2 * failed >= self.repeats:
                break
        return passed, runs

    def capacity(self, kind, ladder):
        k = self.k
        probes = []  # in the order decided: clients, passed runs, runs, where from
        lo, hi = 0, None
        for clients in sorted(ladder):
            vs = ladder[clients]
            passed = sum(v == "pass" for v in vs)
            probes.append({"clients": clients, "passed": passed, "runs": len(vs), "from": "ladder"})
            if 2 * passed > len(vs):
                lo = clients
            else:
                hi = clients
                break

        def try_count(n):
            passed, runs = self.probe(kind, n)
            probes.append({"clients": n, "passed": passed, "runs": runs, "from": "capacity"})
            return 2 * passed > runs

        cap_max = int(k["CAP_MAX"])
        if hi is None:
            n = max(2 * lo, int(k["CAP_START"]))
            while n <= cap_max:
                log(f"capacity on {kind}: {n} clients")
                if try_count(n):
                    lo, n = n, 2 * n
                else:
                    hi = n
                    break
        pct = float(k["CAP_RESOLUTION_PCT"])
        while hi is not None and hi - lo > max(lo * pct / 100, 5):
            mid = (lo + hi) // 2
            log(f"capacity on {kind}: {mid} clients (passed {lo}, failed {hi})")
            if try_count(mid):
                lo = mid
            else:
                hi = mid
        self.record("capacity_result", kind, {
            "capacity": lo, "first_fail": hi, "resolution": None if hi is None else hi - lo,
            "cap_max": cap_max, "probes": probes})
        log(f"  {kind} capacity: {lo} clients"
            + (f", {hi} failed" if hi is not None else f" (CAP_MAX={cap_max} reached)"))

    # ------------------------------------------------------- math and idle
    def math(self, servers):
        k = self.k
        for run in range(1, self.repeats + 1):
            for kind in servers:
                args = ["math", "--addr", "127.0.0.1:{math}", "--connections",
                        k["MATH_CONNECTIONS"], "--pipeline", k["MATH_PIPELINE"], "--seconds",
                        k["MATH_SECONDS"], "--label", kind]
                report, fields = self.measured(kind, f"math-{kind}-{run}", args)
                self.record("math", kind, report, run=run, **fields)
                log(f"  math {kind} run {run}: {(report or {}).get('requests_per_s', 0):.0f}"
                    f" requests/s, wrong {(report or {}).get('wrong_replies')}")

    def idle(self, kind):
        k = self.k
        proc, ports = self.start(kind, f"idle-{kind}")
        try:
            time.sleep(0.5)
            before = rss_kb(proc.pid)
            errlog = self.logs / f"idle-{kind}.loadgen.log"
            with open(errlog, "w") as err:
                idle = subprocess.Popen(
                    self.prefix(LOADGEN_CPU) + [
                        self.bins["loadgen"], "idle", "--addr", f"127.0.0.1:{ports['positions']}",
                        "--connections", k["IDLE_CONNECTIONS"], "--seconds", k["IDLE_SECONDS"],
                        "--label", kind, "--json"],
                    stdout=subprocess.PIPE, stderr=err, text=True)
            deadline = time.time() + 120
            while time.time() < deadline and idle.poll() is None:
                if "ready" in errlog.read_text():
                    break
                time.sleep(0.1)
            time.sleep(1)
            held = rss_kb(proc.pid)
            stdout, _ = idle.communicate()
        finally:
            self.stop()
        try:
            report = json.loads(stdout)
        except json.JSONDecodeError:
            report = None
        self.record("idle", kind, report, rss_baseline_kb=before, rss_held_kb=held)
        log(f"  idle {kind}: {(report or {}).get('connected')} connected, RSS {before} -> {held} KiB")


def main():
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    unknown = [a for a in args if a != "--quick"]
    if unknown:
        sys.exit(f"unknown argument: {unknown[0]} (try --help)")
    quick = "--quick" in args
    k = knobs(quick)
    started = time.time()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    # Many client sockets in one process (the hard limit is the ceiling).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    log("building release binaries")
    subprocess.run(["cargo", "build", "--release", "-p", "loadgen", "-p", "server"], cwd=ROOT,
                   check=True, stdout=sys.stderr)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    bins = {name: str(target / "release" / name) for name in ("gameserver", "loadgen")}
    bench = Bench(k, bins)
    servers = k["SERVERS"].split()
    sections = k["SECTIONS"].split()

    ladder = bench.ladder(servers) if "ladder" in sections else {s: {} for s in servers}
    if "capacity" in sections:
        for kind in servers:
            bench.capacity(kind, ladder[kind])
    if "math" in sections:
        log(f"math: {k['MATH_CONNECTIONS']} connection(s), pipeline {k['MATH_PIPELINE']}")
        bench.math(servers)
    if "idle" in sections:
        log(f"idle: {k['IDLE_CONNECTIONS']} connections")
        for kind in servers:
            bench.idle(kind)

    out = bench.out
    subprocess.run([bins["loadgen"], "report", "--input", str(bench.results), "--markdown",
                    str(out / "results.md"), "--plot", str(out / "plot.png")], check=True)
    elapsed = time.time() - started
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    changed = " ".join(f"{n}={os.environ[n]}" for n in DEFAULTS if n in os.environ)
    with (out / "results.md").open("a") as f:
        f.write(
            "## This run\n\n"
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, machine:"
            f" {os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().release}\n"
            f"- `{(changed + ' ') if changed else ''}bench/run{' --quick' if quick else ''}`:"
            f" {k['REPEATS']} runs per point, servers alternating ({', '.join(servers)});"
            f" ladder `{k['LADDER']}` at {k['RATE']} Hz, {k['LADDER_SECONDS']} s per run;"
            f" capacity probes of {k['CAP_SECONDS']} s to {k['CAP_RESOLUTION_PCT']} %;"
            f" math {k['MATH_SECONDS']} s; {k['IDLE_CONNECTIONS']} idle connections\n"
            f"- pinning: {'server on CPU 1, loadgen on CPU 0' if bench.pin else 'none'};"
            f" nice {k['NICE']}\n"
            f"- took {elapsed:.0f} s; load average before: {load_before}, after: {load_after}"
            " (anything else running on the machine skews these figures: see the other CPU,"
            " steal and load columns)\n")
    log(f"done in {elapsed:.0f} s: {out / 'results.md'}, {out / 'plot.png'}")


if __name__ == "__main__":
    main()
