#!/usr/bin/env python3
"""The kernel's floor for many small TCP writes over loopback on this machine:
what one write to (and one read from) one of thousands of sockets costs the
CPU, with no game server and no generator in the way.

usage: bench/syscall_floor.py [--sockets N] [--rate HZ] [--bytes B] [--seconds S]

A sender process pinned to CPU 1 opens N loopback connections to a receiver
pinned to CPU 0 and writes B bytes on each of them HZ times a second, spread
evenly (as loadgen's clients send, or as a server writes one broadcast to
each subscriber). The receiver reads with epoll, one `recv` per readiness.
Each side's CPU comes from getrusage, split into user and kernel (sys): the
sys time per call is the kernel's price, whatever the program around it;
Python's own overhead is in the user time only.

Prints one JSON line: sends/s achieved, the sender's sys and user µs per
send, the receiver's sys and user µs per recv, reads/s, and the share of a
core each side used.

Why it matters (issue 22): loadgen's area-of-interest point needs 50,000
native sends a second (5,000 clients at 10 Hz) from one core, and 100,000
at 10,000 clients; the server writes each subscriber a few dozen times a
second. If the kernel alone takes more than a core for that, no generator
or server on this box can do it on one core.
"""
import argparse, json, os, resource, select, socket, sys, time
from multiprocessing import Pipe, Process


def usage_now():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def receiver(port_out, results, seconds_total):
    os.sched_setaffinity(0, {0})
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port_out.send(listener.getsockname()[1])
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    conns = {}
    reads = 0
    start = None
    deadline = None
    while True:
        if port_out.poll():
            msg = port_out.recv()
            if msg == "start":
                start = usage_now()
                reads = 0
            elif msg == "stop":
                end = usage_now()
                results.send({"reads": reads, "user": end[0] - start[0], "sys": end[1] - start[1]})
                return
        for fd, _ in ep.poll(0.01):
            if fd == listener.fileno():
                while True:
                    try:
                        c, _ = listener.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    conns[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN)
                continue
            try:
                data = conns[fd].recv(65536)
            except BlockingIOError:
                continue
            reads += 1
            if not data:
                ep.unregister(fd)
                conns.pop(fd).close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=10.0, help="writes a second on each socket")
    ap.add_argument("--bytes", type=int, default=10, help="bytes per write")
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctl_parent, ctl_child = Pipe()
    res_parent, res_child = Pipe()
    rx = Process(target=receiver, args=(ctl_child, res_child, a.seconds))
    rx.start()
    port = ctl_parent.recv()
    os.sched_setaffinity(0, {1})
    socks = []
    for _ in range(a.sockets):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    time.sleep(1.0)
    payload = b"x" * a.bytes
    n = len(socks)
    interval = 1.0 / (a.rate * n)  # between two writes, round-robin
    ctl_parent.send("start")
    u0 = usage_now()
    t0 = time.perf_counter()
    sent = 0
    blocked = 0
    i = 0
    end = t0 + a.seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - t0) / interval) + 1
        while sent + blocked < due:
            try:
                socks[i].send(payload)
                sent += 1
            except BlockingIOError:
                blocked += 1
            i = (i + 1) % n
        # Sleep to the next millisecond's worth of writes.
        time.sleep(max(0.0, min(0.001, t0 + (due + 1) * interval - time.perf_counter())))
    u1 = usage_now()
    elapsed = time.perf_counter() - t0
    ctl_parent.send("stop")
    r = res_parent.recv()
    for s in socks:
        s.close()
    rx.join()
    out = {
        "sockets": n,
        "rate_hz": a.rate,
        "bytes": a.bytes,
        "seconds": round(elapsed, 2),
        "sends_per_s": round(sent / elapsed),
        "send_would_block": blocked,
        "sender_sys_us_per_send": round((u1[1] - u0[1]) / max(sent, 1) * 1e6, 2),
        "sender_user_us_per_send": round((u1[0] - u0[0]) / max(sent, 1) * 1e6, 2),
        "sender_core_share": round((u1[0] - u0[0] + u1[1] - u0[1]) / elapsed, 3),
        "reads_per_s": round(r["reads"] / elapsed),
        "receiver_sys_us_per_read": round(r["sys"] / max(r["reads"], 1) * 1e6, 2),
        "receiver_user_us_per_read": round(r["user"] / max(r["reads"], 1) * 1e6, 2),
        "receiver_core_share": round((r["user"] + r["sys"]) / elapsed, 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
