#!/usr/bin/env python3
"""Legacy "positions" client: random-walks a player and prints the shared world.

Sends struct.pack('<hh', x, y) every --interval seconds from a writer thread and
prints every struct.pack('<ihh', id, x, y) record the server broadcasts:
JOIN (first time an id is seen), MOVE (afterwards), LEAVE (leave marker
-32768,-32768); records about this client end with " (me)".

With --classic it speaks the classic layout of the original demos, for a server
started with --legacy-welcome off --positions-records hh: no id greeting, and
every position relayed as the bare 4-byte struct.pack('<hh', x, y), printed as
POS lines (no id, so no JOIN / LEAVE and no "(me)").

Example:
    python3 clients/python/positions_client.py --port 7003 --start 0 0 --duration 10
    python3 clients/python/positions_client.py --port 7003 --classic
"""
import argparse
import random
import socket
import struct
import sys
import threading

RESERVED = -32768
I16_MIN, I16_MAX = -32768, 32767


def recv_exactly(sock, n):
    """Exactly n bytes, or None once the connection is closed."""
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def step(x, y):
    x = min(max(x + random.choice((-1, 0, 1)), I16_MIN), I16_MAX)
    y = min(max(y + random.choice((-1, 0, 1)), I16_MIN), I16_MAX)
    if x == RESERVED and y == RESERVED:  # reserved pair: stay just inside
        x = y = RESERVED + 1
    return x, y


def writer(sock, x, y, interval, move, stop):
    try:
        while True:
            sock.sendall(struct.pack("<hh", x, y))
            if not move or stop.wait(interval):
                return
            x, y = step(x, y)
    except OSError:  # broken pipe / reset: the reader notices the close
        pass


def print_records(sock, start_writer):
    """Legacy contract: the <i id greeting, then <ihh records until closed."""
    data = recv_exactly(sock, 4)
    if data is None:
        return
    (me,) = struct.unpack("<i", data)
    print(f"connected id={me}", flush=True)
    start_writer()
    known = set()
    while (rec := recv_exactly(sock, 8)) is not None:
        pid, px, py = struct.unpack("<ihh", rec)
        tag = " (me)" if pid == me else ""
        if px == RESERVED and py == RESERVED:
            known.discard(pid)
            print(f"LEAVE id={pid}{tag}", flush=True)
        else:
            kind = "MOVE" if pid in known else "JOIN"
            known.add(pid)
            print(f"{kind} id={pid} x={px} y={py}{tag}", flush=True)


def print_classic(sock, start_writer):
    """Classic layout: no greeting, bare <hh packets until closed."""
    print("connected (classic: no id, <hh packets)", flush=True)
    start_writer()
    while (pkt := recv_exactly(sock, 4)) is not None:
        px, py = struct.unpack("<hh", pkt)
        print(f"POS x={px} y={py}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7003, help="server port (default 7003)")
    p.add_argument("--start", nargs=2, type=int, metavar=("X", "Y"),
                   help="start position (default random in -100..100)")
    p.add_argument("--interval", type=float, default=0.5,
                   help="seconds between moves (default 0.5)")
    p.add_argument("--duration", type=float, default=0,
                   help="exit 0 after S seconds (default 0 = forever)")
    p.add_argument("--classic", action="store_true",
                   help="classic layout: no id greeting, <hh packets "
                        "(server: --legacy-welcome off --positions-records hh)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--no-move", action="store_true",
                      help="send the start position once and never move")
    mode.add_argument("--silent", action="store_true", help="never send a position")
    args = p.parse_args()
    if args.start:
        x, y = args.start
        in_range = I16_MIN <= x <= I16_MAX and I16_MIN <= y <= I16_MAX
        if not in_range or (x, y) == (RESERVED, RESERVED):
            p.error("--start: X and Y must be in -32768..32767, and not both -32768")
    else:
        x, y = random.randint(-100, 100), random.randint(-100, 100)
    if args.interval <= 0 or args.duration < 0:
        p.error("--interval must be > 0 and --duration >= 0")

    try:
        sock = socket.create_connection((args.host, args.port), timeout=10)
    except OSError as e:
        print(f"error: cannot connect to {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    sock.settimeout(None)
    stop, expired = threading.Event(), threading.Event()

    def expire():
        expired.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocking recv below
        except OSError:
            pass

    if args.duration:
        timer = threading.Timer(args.duration, expire)
        timer.daemon = True
        timer.start()

    def start_writer():
        if not args.silent:
            threading.Thread(target=writer, daemon=True,
                             args=(sock, x, y, args.interval, not args.no_move, stop)).start()

    try:
        (print_classic if args.classic else print_records)(sock, start_writer)
    finally:
        stop.set()
        sock.close()
    if expired.is_set():
        return 0
    print("disconnected", flush=True)
    return 1 if args.duration else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
