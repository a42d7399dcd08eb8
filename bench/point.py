#!/usr/bin/env python3
"""One pinned load point, with the server's broadcasts a second: the server on
CPU 0, loadgen on CPU 1, /metrics sampled every second.

usage: bench/point.py SERVER_BIN LOADGEN_BIN CLIENTS SECONDS [server flags...]
       NATIVE=1 ...   area-of-interest native clients instead (world 4000, view 200)
       TAG=name ...   a label copied into the output
       LOADGEN_ARGS="--native-protocol-version 2" ...   more loadgen flags
       RATE=2 ...     each client's moves a second (default 10)

Prints one JSON line: the server's CPU seconds (the whole run, and the load
phase alone as load_cpu_s / load_ns_per_record) and peak RSS, broadcasts a
second and the server's share of a core in the middle half of the run, the
metrics at the end, and loadgen's whole --json report. bench/point_summary.py
turns such lines into one line each. docs/bench/pacing.md's curve was made
with it:
  for n in 20 50 200 500 1000 2000 3000; do
    bench/point.py target/release/gameserver target/release/loadgen $n 10
  done | bench/point_summary.py
"""
import json, os, subprocess, sys, time, re, signal
srv, lg, clients, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
extra = sys.argv[5:]
native = os.environ.get("NATIVE")
args = ["taskset", "-c", "0", srv, "--host", "127.0.0.1", "--game-port", "0", "--test-port", "0",
        "--math-port", "0", "--positions-port", "0", "--max-connections-per-ip", "0", "--metrics", "127.0.0.1:19109"] + extra
p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                     env=dict(os.environ, RUST_LOG="info"))
ports = {}
deadline = time.time() + 20
while time.time() < deadline and len(ports) < 2:
    line = re.sub(r'\x1b\[[0-9;]*m', '', p.stdout.readline())
    m = re.search(r'listening service=(positions|game) addr=127\.0\.0\.1:(\d+)', line)
    if m:
        ports[m.group(1)] = int(m.group(2))
# drain output in background
import threading
threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
def cpu():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu()
import urllib.request
samples = []
stop_scrape = threading.Event()
def scrape():
    while not stop_scrape.wait(1.0):
        try:
            txt = urllib.request.urlopen("http://127.0.0.1:19109/metrics", timeout=1).read().decode()
            b = [float(l.split()[-1]) for l in txt.splitlines() if l.startswith("gameserver_broadcasts_total")]
            samples.append((time.time(), b[0] if b else 0.0, cpu()))
        except Exception:
            pass
threading.Thread(target=scrape, daemon=True).start()
if native:
    lgargs = [lg, "positions", "--clients", "0", "--native-addr", f"127.0.0.1:{ports['game']}",
              "--native-clients", str(clients), "--world-size", "4000", "--view", "200"]
else:
    lgargs = [lg, "positions", "--addr", f"127.0.0.1:{ports['positions']}", "--clients", str(clients)]
lgargs += ["--rate", os.environ.get("RATE", "10"), "--seconds", str(secs), "--json"] + os.environ.get("LOADGEN_ARGS", "").split()
t0 = time.time()
# The server's CPU over the load phase alone: from loadgen's "load: ..."
# line (on stderr, 200 ms before the first send) to the end of the load.
load_cpu = {}
lgp = subprocess.Popen(["taskset", "-c", "1"] + lgargs, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
def watch_load():
    err = []
    for line in lgp.stderr:
        err.append(line)
        if line.startswith("load: ") and "start" not in load_cpu:
            time.sleep(0.2)
            load_cpu["start"] = cpu()
            def at_end():
                time.sleep(secs)
                load_cpu["end"] = cpu()
            threading.Thread(target=at_end, daemon=True).start()
    load_cpu["stderr"] = "".join(err)
watcher = threading.Thread(target=watch_load, daemon=True)
watcher.start()
stdout = lgp.stdout.read()
lgp.wait()
watcher.join(timeout=5)
r = subprocess.CompletedProcess(lgargs, lgp.returncode, stdout, load_cpu.get("stderr", ""))
c1 = cpu()
stop_scrape.set()
rss = 0
for l in open(f"/proc/{p.pid}/status"):
    if l.startswith("VmHWM"): rss = int(l.split()[1]) / 1024
import urllib.request
metrics = {}
try:
    for l in urllib.request.urlopen("http://127.0.0.1:19109/metrics", timeout=3).read().decode().splitlines():
        if l.startswith(("gameserver_broadcasts_total", "gameserver_moves_coalesced_total", "gameserver_subscriber_resyncs_total", "gameserver_record_")):
            k, v = l.split()[0], float(l.split()[-1]); metrics[k.replace("gameserver_","")] = v
except Exception as e:
    metrics["err"] = str(e)
p.send_signal(signal.SIGTERM); p.wait(timeout=10)
try:
    j = json.loads(r.stdout.strip().splitlines()[-1])
except Exception:
    print(json.dumps({"error": r.stdout[-500:] + r.stderr[-1500:]})); sys.exit(1)
out = {"tag": os.environ.get("TAG",""), "clients": clients, "server_cpu_s": round(c1 - c0, 2), "rss_mb": round(rss, 1), "wall": round(time.time() - t0, 1)}
if "end" in load_cpu:
    out["load_cpu_s"] = round(load_cpu["end"] - load_cpu["start"], 2)
    out["load_ns_per_record"] = round(out["load_cpu_s"] * 1e9 / max(j.get("records_received", 0), 1), 1)
for k in ("p50_ms","p99_ms","verdict","records_per_s","converged","errors","send_late_p99_ms","visible_max","records"):
    pass
out["loadgen"] = j
out["metrics"] = metrics
# steady state: middle half of the samples
if len(samples) >= 4:
    k = len(samples) // 4
    a, b = samples[k], samples[-k-1]
    dt = b[0] - a[0]
    out["steady_broadcasts_per_s"] = round((b[1] - a[1]) / dt, 1)
    out["steady_cpu_share"] = round((b[2] - a[2]) / dt, 3)
print(json.dumps(out))
