#!/usr/bin/env python3
"""A second, minimal own-echo probe for the positions service, independent of
loadgen: one thread, `selectors`, N clients each sending a position at RATE Hz
(staggered), latency from the send to the read that holds the client's own
record. Standard library only. It is slower than loadgen (Python decodes what
it reads), so use it at a few dozen clients, as a cross-check of loadgen's
low-load figures, not as a benchmark of its own.

    python3 bench/echo_probe.py --port 7003 --clients 50 --seconds 12
    # prints: clients=50 samples=5500 p50 0.150 p99 0.700 ms

Expects the id greeting (`--legacy-welcome on`, the default) and `<ihh`
records. The first second is not counted (connections settle).
"""
import argparse
import selectors
import socket
import struct
import time

RECORD = struct.Struct("<ihh")
GREETING = 4


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7003)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=10.0)
    a = p.parse_args()
    n = a.clients
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(n):
        s = socket.create_connection((a.host, a.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, i)
    time.sleep(0.5)
    buf = [b""] * n
    skip = [GREETING] * n
    pending = [None] * n  # (y sent, send time) of the echo awaited
    seq = [0] * n
    lat = []
    period = 1.0 / a.rate
    start = time.perf_counter()
    due = [start + 0.3 + period * i / n for i in range(n)]
    end = start + 0.3 + a.seconds
    counted_from = start + 1.3
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        soonest = end
        for i in range(n):
            if due[i] <= now:
                seq[i] = seq[i] % 30000 + 1
                try:
                    socks[i].send(struct.pack("<hh", i + 1, seq[i]))
                    pending[i] = (seq[i], time.perf_counter())
                except BlockingIOError:
                    pass
                due[i] += period
            soonest = min(soonest, due[i])
        for key, _ in sel.select(max(0.0, soonest - time.perf_counter())):
            i = key.data
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            t = time.perf_counter()
            if not data:
                raise SystemExit(f"client {i}: the server closed the connection")
            b = buf[i] + data
            if skip[i]:
                cut = min(skip[i], len(b))
                b, skip[i] = b[cut:], skip[i] - cut
            whole = len(b) - len(b) % RECORD.size
            if pending[i] is not None:
                y_sent, sent_at = pending[i]
                for off in range(0, whole, RECORD.size):
                    _, x, y = RECORD.unpack_from(b, off)
                    if x == i + 1 and y == y_sent:
                        if t >= counted_from:
                            lat.append((t - sent_at) * 1000)
                        pending[i] = None
                        break
            buf[i] = b[whole:]
    if not lat:
        raise SystemExit("no echo measured")
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
    print(f"clients={n} samples={len(lat)} p50 {q(0.5):.3f} p99 {q(0.99):.3f} ms")


if __name__ == "__main__":
    main()
