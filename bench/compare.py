#!/usr/bin/env python3
"""Own-echo latency of our server against the Python reference at given
client counts: every point --repeats times, servers alternating (Rust,
Python, Rust, ...), median with min-max, and each server's CPU seconds.

Usage: bench/compare.py [--clients 20 50 2000] [--seconds 10] [--repeats 3]
Takes about (seconds + 3) x 2 x repeats x points seconds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import ROOT, cpu_seconds, free_port, summary, wait_port  # noqa: E402


def start(kind, bins, port):
    if kind == "rust":
        args = [bins["server"], "--host", "127.0.0.1", "--game-port", "0", "--test-port", "0",
                "--math-port", "0", "--positions-port", str(port)]
    else:
        args = [sys.executable, str(ROOT / "bench/reference_server.py"), "--host", "127.0.0.1",
                "--test-port", str(free_port()), "--math-port", str(free_port()),
                "--positions-port", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RUST_LOG": "warn"})
    wait_port(port)
    return proc


def run(kind, bins, clients, seconds):
    port = free_port()
    proc = start(kind, bins, port)
    try:
        before = cpu_seconds(proc.pid)
        load = os.getloadavg()[0]
        out = subprocess.run([bins["loadgen"], "positions", "--addr", f"127.0.0.1:{port}",
                              "--clients", str(clients), "--rate", "10",
                              "--seconds", str(seconds), "--json"],
                             capture_output=True, text=True, check=False)
        report = json.loads(out.stdout)
        report["server_cpu_seconds"] = cpu_seconds(proc.pid) - before
        report["load_before"] = load
        return report
    finally:
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--servers", nargs="+", default=["rust", "python"])
    parser.add_argument("--out", default=str(ROOT / "docs/bench/compare.md"))
    args = parser.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-p", "server", "-p", "loadgen"],
                   cwd=ROOT, check=True)
    bins = {name: f"{target}/release/{name}" for name in ("server", "loadgen")}
    results = {}
    for clients in args.clients:
        for i in range(args.repeats):
            for kind in args.servers:
                r = run(kind, bins, clients, args.seconds)
                results.setdefault((clients, kind), []).append(r)
                print(f"{clients} {kind} run {i + 1}: p50 {r['echo']['p50_ms']:.2f} "
                      f"p99 {r['echo']['p99_ms']:.2f} ms verdict {r['verdict']}", file=sys.stderr)
    lines = [
        f"# Own-echo latency, our server against the Python reference",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/compare.py "
        f"--clients {' '.join(map(str, args.clients))} --seconds {args.seconds} "
        f"--repeats {args.repeats}`: legacy positions clients at 10 Hz, servers alternating, "
        "median (min–max) over the runs; server and load generator on the same "
        f"{os.cpu_count()} cores.",
        "",
        "| clients | server | p50 ms | p99 ms | verdicts | server CPU s | loadgen CPU s "
        "| load avg before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (clients, kind), rs in results.items():
        lines.append(
            f"| {clients} | {kind} | {summary([r['echo']['p50_ms'] for r in rs])} "
            f"| {summary([r['echo']['p99_ms'] for r in rs])} "
            f"| {', '.join(r['verdict'] for r in rs)} "
            f"| {summary([r['server_cpu_seconds'] for r in rs])} "
            f"| {summary([r['loadgen_cpu_seconds'] for r in rs])} "
            f"| {summary([r['load_before'] for r in rs])} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
