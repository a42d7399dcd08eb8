#!/usr/bin/env python3
"""Seed-style baseline server for the three legacy services (benchmark reference).

Speaks /work/shared/legacy-wire-contract.md on the "test packets", "math" and
"positions" services, designed on purpose the way the old Python demos were:
one global registry guarded by one lock, ONE THREAD PER CLIENT, and every
position received is broadcast by the receiving thread itself, which loops over
every positions socket calling sendall (while holding the lock). Do not
optimize it: it is the baseline whose scaling the Rust server is compared with.

Example:
    python3 bench/reference_server.py --test-port 0 --math-port 0 --positions-port 0
    # prints: listening test=<p> math=<p> positions=<p>
"""
import argparse
import signal
import socket
import struct
import sys
import threading
import time

RESERVED = -32768
SEND_TIMEOUT = 5.0  # a positions client that stops reading is dropped after this
SNDTIMEO = struct.pack("ll", int(SEND_TIMEOUT), 0)  # struct timeval for SO_SNDTIMEO

LOCK = threading.RLock()
REGISTRY = {}  # id -> Client (all services)
WORLD = {}  # id -> (x, y) for positions clients that have sent a position
_next_id = 0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Client:
    def __init__(self, cid, kind, sock):
        self.id, self.kind, self.sock = cid, kind, sock


def new_id():
    global _next_id
    with LOCK:
        _next_id += 1
        return _next_id


def kick(client):
    """Wake the client's own thread (its recv returns EOF); it closes the socket."""
    try:
        client.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def broadcast(record):
    """Send one record to every positions client; return the clients that failed."""
    failed = []
    for c in list(REGISTRY.values()):
        if c.kind == "positions":
            try:
                c.sock.sendall(record)
            except OSError:
                failed.append(c)
    return failed


def remove(client, reason):
    with LOCK:
        pending = [(client, reason)]
        while pending:
            c, why = pending.pop()
            if REGISTRY.pop(c.id, None) is None:
                continue
            log(f"client {c.id} ({c.kind}) removed: {why}")
            kick(c)
            if WORLD.pop(c.id, None) is not None:
                marker = struct.pack("<ihh", c.id, RESERVED, RESERVED)
                pending += [(f, "send failed") for f in broadcast(marker)]


def recv_exactly(sock, n):
    """Read exactly n bytes; None on EOF/error. Socket timeouts just keep waiting."""
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def register(client, extra=b""):
    """Send the id (+ extra bytes) and add the client to the registry, atomically."""
    with LOCK:
        try:
            client.sock.sendall(struct.pack("<i", client.id) + extra)
        except OSError as e:
            return False, f"send failed: {e}"
        REGISTRY[client.id] = client
        return True, ""


# ---------------------------------------------------------------- test packets
def serve_test(client, interval, timeout):
    ok, why = register(client)
    if not ok:
        return why
    sock, seq, outstanding, buf = client.sock, 0, {}, b""  # probe bytes -> deadline
    next_probe = time.monotonic() + interval
    while True:
        now = time.monotonic()
        if outstanding and min(outstanding.values()) <= now:
            return "probe timeout"
        if now >= next_probe:
            seq += 1
            with LOCK:
                probe = struct.pack("<ii", seq, len(REGISTRY))
            try:
                sock.sendall(probe)
            except OSError as e:
                return f"send failed: {e}"
            outstanding[probe] = now + timeout
            next_probe += interval
            continue
        wake = min([next_probe] + list(outstanding.values()))
        sock.settimeout(max(wake - now, 0.001))
        try:
            chunk = sock.recv(8 - len(buf))
        except socket.timeout:
            continue
        except OSError as e:
            return f"recv failed: {e}"
        if not chunk:
            return "closed by peer"
        buf += chunk
        if len(buf) == 8:
            if outstanding.pop(buf, None) is None:
                return "protocol violation: not the echo of an outstanding probe"
            buf = b""


# ------------------------------------------------------------------------ math
OPS = {
    b"SUMA": lambda a, b: float(a + b),
    b"RESTA": lambda a, b: float(a - b),
    b"MULTIPLICACION": lambda a, b: float(a * b),
    b"DIVISION": lambda a, b: a / b,
}


def serve_math(client):
    ok, why = register(client)
    if not ok:
        return why
    sock = client.sock
    while True:
        head = recv_exactly(sock, 8)
        if head is None:
            return "closed by peer"
        n, a, b = struct.unpack("<ihh", head)
        if not 1 <= n <= 64:
            sock.sendall(struct.pack("<id", 3, 0.0))
            return f"protocol violation: math command length {n}"
        cmd = recv_exactly(sock, n)
        if cmd is None:
            return "closed by peer"
        if not cmd.isascii():
            sock.sendall(struct.pack("<id", 3, 0.0))
            return "protocol violation: non-ASCII math command"
        name = cmd.upper() if cmd.islower() else cmd  # exact upper or lower case
        op = OPS.get(name)
        if op is None:
            status, value = 2, 0.0
        elif name == b"DIVISION" and b == 0:
            status, value = 1, 0.0
        else:
            status, value = 0, op(a, b)
        try:
            sock.sendall(struct.pack("<id", status, value))
        except OSError as e:
            return f"send failed: {e}"


# ------------------------------------------------------------------- positions
def serve_positions(client):
    sock = client.sock
    # Bound sendall to a stuck client with SO_SNDTIMEO, not settimeout():
    # settimeout() makes CPython poll() before every send and recv, which
    # roughly halves the send rate. The socket stays in blocking mode.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, SNDTIMEO)
    with LOCK:
        snap = b"".join(struct.pack("<ihh", i, x, y) for i, (x, y) in WORLD.items())
        ok, why = register(client, snap)
    if not ok:
        return why
    while True:
        data = recv_exactly(sock, 4)
        if data is None:
            return "closed by peer"
        x, y = struct.unpack("<hh", data)
        if x == RESERVED and y == RESERVED:
            x = y = RESERVED + 1
        with LOCK:
            if client.id not in REGISTRY:
                return "removed"
            WORLD[client.id] = (x, y)
            failed = broadcast(struct.pack("<ihh", client.id, x, y))
        for f in failed:
            remove(f, "send failed")


# ---------------------------------------------------------------------- server
def client_thread(kind, conn, args):
    client = Client(new_id(), kind, conn)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if kind == "test":
            why = serve_test(client, args.probe_interval_ms / 1000, args.probe_timeout_ms / 1000)
        elif kind == "math":
            why = serve_math(client)
        else:
            why = serve_positions(client)
    except OSError as e:
        why = f"error: {e}"
    remove(client, why)
    conn.close()


def accept_loop(kind, listener, args):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=client_thread, args=(kind, conn, args), daemon=True).start()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    p.add_argument("--test-port", type=int, default=7101,
                   help="test packets port, 0 = any (default 7101)")
    p.add_argument("--math-port", type=int, default=7102,
                   help="math port, 0 = any (default 7102)")
    p.add_argument("--positions-port", type=int, default=7103,
                   help="positions port, 0 = any (default 7103)")
    p.add_argument("--probe-interval-ms", type=int, default=1000,
                   help="probe interval (default 1000)")
    p.add_argument("--probe-timeout-ms", type=int, default=3000,
                   help="probe echo timeout (default 3000)")
    args = p.parse_args()

    listeners = {}
    try:
        for kind, port in (("test", args.test_port), ("math", args.math_port),
                           ("positions", args.positions_port)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((args.host, port))
            s.listen(1024)
            listeners[kind] = s
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    ports = {k: s.getsockname()[1] for k, s in listeners.items()}
    print(f"listening test={ports['test']} math={ports['math']} positions={ports['positions']}",
          flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for kind, s in listeners.items():
        threading.Thread(target=accept_loop, args=(kind, s, args), daemon=True).start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    for s in listeners.values():
        s.close()
    log("shutting down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
