#!/usr/bin/env python3
"""Cluster benchmark: legacy clients on two server nodes sharing one world over
NATS, against the same load on one node, alternating (one, two, one, ...).

Every point runs --repeats times; the table gives the median with min-max.
The loadgen spreads its clients round-robin over the nodes (`--addr A,B`), so
its convergence check shows whether every player's final position reached
every client of both nodes, its delivery count how many of all records did,
and its own-echo figure is the round trip of a player's move through its own
node while that node also carries the other node's players.

Usage: bench/cluster.py [--clients 1000] [--seconds 20] [--repeats 3] [--check]
With --check it exits 1 unless every run's loadgen verdict is "pass" (no
errors, every record delivered, converged, own-echo p99 within the SLO, the
generator not the bottleneck).
Needs: nats-server on PATH; builds the release binaries with cargo.
Takes about (seconds + 10) x 2 x repeats seconds (~3 minutes by default).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def cpu_seconds(pid):
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_node(binary, positions, nats_url=None, node=None):
    args = [binary, "--host", "127.0.0.1", "--game-port", "0", "--test-port", "0",
            "--math-port", "0", "--positions-port", str(positions)]
    if nats_url:
        args += ["--cluster", nats_url, "--node-id", str(node)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RUST_LOG": "warn"})
    wait_port(positions)
    return proc


def run_point(bins, layout, clients, seconds):
    """One run: `layout` is "one" (one node) or "two" (two nodes + NATS)."""
    procs = []
    try:
        if layout == "two":
            nats_port = free_port()
            procs.append(subprocess.Popen(
                ["nats-server", "-a", "127.0.0.1", "-p", str(nats_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(nats_port)
            url = f"nats://127.0.0.1:{nats_port}"
            ports = [free_port(), free_port()]
            nodes = [start_node(bins["gameserver"], p, url, i + 1) for i, p in enumerate(ports)]
            time.sleep(1.5)  # the nodes hear each other's heartbeats
        else:
            ports = [free_port()]
            nodes = [start_node(bins["gameserver"], ports[0])]
        procs += nodes
        cpu_before = sum(cpu_seconds(p.pid) for p in nodes)
        load_before = os.getloadavg()[0]
        addr = ",".join(f"127.0.0.1:{p}" for p in ports)
        out = subprocess.run(
            [bins["loadgen"], "positions", "--addr", addr, "--clients", str(clients),
             "--rate", "10", "--seconds", str(seconds), "--label", layout, "--json"],
            capture_output=True, text=True, check=False)
        cpu = sum(cpu_seconds(p.pid) for p in nodes) - cpu_before
        try:
            report = json.loads(out.stdout)
        except json.JSONDecodeError:
            raise SystemExit(f"loadgen gave no report (exit {out.returncode}): {out.stderr[-500:]}")
        report["server_cpu_seconds"] = cpu
        report["load_before"] = load_before
        return report
    finally:
        for p in procs:
            p.kill()
            p.wait()


def summary(values):
    values = sorted(values)
    digits = 2 if values[-1] < 10 else 1
    return (f"{statistics.median(values):.{digits}f} "
            f"({values[0]:.{digits}f}–{values[-1]:.{digits}f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs/bench/cluster.md"))
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless every run's verdict is pass")
    args = parser.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-p", "server", "-p", "loadgen"],
                   cwd=ROOT, check=True)
    bins = {name: f"{target}/release/{name}" for name in ("gameserver", "loadgen")}

    runs = {"one": [], "two": []}
    for i in range(args.repeats):
        for layout in ("one", "two"):
            r = run_point(bins, layout, args.clients, args.seconds)
            runs[layout].append(r)
            print(f"run {i + 1} {layout} node(s): p50 {r['echo']['p50_ms']:.1f} ms, "
                  f"p99 {r['echo']['p99_ms']:.1f} ms, converged "
                  f"{r['convergence']['converged']}, errors {r['errors']['total']}, "
                  f"verdict {r['verdict']}", file=sys.stderr)

    lines = [
        f"# Cluster benchmark: {args.clients} legacy clients at 10 Hz for {args.seconds} s",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/cluster.py "
        f"--clients {args.clients} --seconds {args.seconds} --repeats {args.repeats}` on this "
        f"{os.cpu_count()}-core machine: server node(s), NATS (two-node case) and the load "
        "generator all on the same cores. Median (min–max) of the runs, one and two nodes "
        "alternating.",
        "",
        "| layout | own-echo p50 ms | own-echo p99 ms | converged | records delivered / expected "
        "| errors | server CPU s | loadgen CPU s | load avg before |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layout, name in (("one", "1 node"), ("two", f"2 nodes + NATS ({args.clients // 2} + "
                                                   f"{args.clients - args.clients // 2})")):
        rs = runs[layout]
        delivered = [r["records_received_per_s"] / r["records_expected_per_s"] * 100 for r in rs]
        lines.append(
            f"| {name} | {summary([r['echo']['p50_ms'] for r in rs])} "
            f"| {summary([r['echo']['p99_ms'] for r in rs])} "
            f"| {sum(r['convergence']['converged'] for r in rs)}/{len(rs)} "
            f"| {summary(delivered)} % "
            f"| {sum(r['errors']['total'] for r in rs)} "
            f"| {summary([r['server_cpu_seconds'] for r in rs])} "
            f"| {summary([r['loadgen_cpu_seconds'] for r in rs])} "
            f"| {summary([r['load_before'] for r in rs])} |")
    every = [r for rs in runs.values() for r in rs]
    failed = [f"{r['label'] or 'run'}: {r['verdict']} ({'; '.join(r['failures'])})"
              for r in every if r["verdict"] != "pass"]
    delivered_all = all(r["records_delivered"] >= r["records_expected"] for r in every)
    lines += [
        "",
        ("Every run delivered every record and converged." if delivered_all and not failed
         else "Not every run passed, so this does not show that the cluster delivers every "
         "record: " + "; ".join(failed) + "."),
        "",
        "Both nodes, NATS and the load generator share the same two cores, so the run "
        "measures what the replication costs in CPU and latency at this load, not that two "
        "nodes hold more clients than one; on one box they cannot, since every client still "
        "receives every move. The capacity gain needs nodes on separate machines (README, "
        "Scale out).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    if args.check and failed:
        sys.exit(f"{len(failed)} of {len(every)} runs did not pass")


if __name__ == "__main__":
    main()
