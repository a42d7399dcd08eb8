#!/usr/bin/env python3
"""What `--record` costs: bench/point.py runs alternating without and with
`--record`, the recording on this machine's disk (a fresh file each run,
deleted after), each tagged with what else was using the CPUs.

usage: bench/record_cost.py SERVER_BIN LOADGEN_BIN CLIENTS SECONDS RUNS [DIR]

Prints bench/point.py's JSON lines (TAG=plain or TAG=record, plus
"busy": the other processes over 20 % CPU at the start and end of the run,
and "record_bytes": the recording's size). Summarise with
bench/point_summary.py. docs/recording.md's figures were made with
  bench/record_cost.py target/release/gameserver target/release/loadgen 2000 10 3
"""
import json, os, subprocess, sys, glob

srv, lg, clients, secs, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
directory = sys.argv[6] if len(sys.argv) > 6 else "/tmp"
here = os.path.dirname(os.path.abspath(__file__))


def busy():
    """Other processes using more than 20 % of a CPU (ps's lifetime average)."""
    out = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    rows = [l.split(None, 1) for l in out.splitlines()[1:]]
    return [f"{name.strip()} {cpu}%" for cpu, name in rows if float(cpu) > 20.0]


for run in range(runs):
    for tag in ("plain", "record"):
        path = os.path.join(directory, f"record-cost-{os.getpid()}-{run}.rec")
        extra = ["--record", path] if tag == "record" else []
        before = busy()
        line = subprocess.run([sys.executable, os.path.join(here, "point.py"), srv, lg, clients, secs] + extra,
                              capture_output=True, text=True, env=dict(os.environ, TAG=tag)).stdout.strip()
        after = busy()
        try:
            d = json.loads(line.splitlines()[-1])
        except Exception:
            print(json.dumps({"error": line[-500:]}), flush=True)
            continue
        d["busy"] = {"before": before, "after": after}
        files = glob.glob(path + "*")
        d["record_bytes"] = sum(os.path.getsize(f) for f in files)
        for f in files:
            os.remove(f)
        print(json.dumps(d), flush=True)
