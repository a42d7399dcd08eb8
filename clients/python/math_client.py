#!/usr/bin/env python3
"""Legacy "math" client: sends struct-packed operations and prints the replies.

Request: struct.pack('<ihh', len(cmd), a, b) + cmd; reply: struct.pack('<id', status, value).
By default sends a random operation on two random signed shorts every --interval
seconds; --once sends a single query (OP is sent as-is, so unknown commands work).

Example:
    python3 clients/python/math_client.py --port 7002 --once SUMA 3 4
    # SUMA 3 4 -> status=0 (ok) value=7.0
"""
import argparse
import random
import socket
import struct
import sys
import time

OPS = ["SUMA", "RESTA", "MULTIPLICACION", "DIVISION"]
STATUS = {0: "ok", 1: "division_by_zero", 2: "unknown_command", 3: "malformed"}


class Closed(Exception):
    pass


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Closed("server closed the connection")
        buf += chunk
    return buf


def short(text):
    v = int(text)
    if not -32768 <= v <= 32767:
        raise ValueError
    return v


def query(sock, op, a, b):
    cmd = op.encode("utf-8", "surrogateescape")
    sock.sendall(struct.pack("<ihh", len(cmd), a, b) + cmd)
    status, value = struct.unpack("<id", recv_exactly(sock, 12))
    print(f"{op} {a} {b} -> status={status} ({STATUS.get(status, 'unknown')}) value={value!r}",
          flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7002, help="server port (default 7002)")
    p.add_argument("--interval", type=float, default=10.0,
                   help="seconds between random queries (default 10)")
    p.add_argument("--count", type=int, default=0,
                   help="stop after N random queries (default 0 = forever)")
    p.add_argument("--once", nargs=3, metavar=("OP", "A", "B"),
                   help="send one query and exit (A, B in -32768..32767)")
    args = p.parse_args()
    if args.once:
        try:
            args.once[1:] = [short(v) for v in args.once[1:]]
        except ValueError:
            p.error("--once: A and B must be integers in -32768..32767")
    if args.count < 0 or args.interval < 0:
        p.error("--count and --interval must be >= 0")

    try:
        sock = socket.create_connection((args.host, args.port), timeout=10)
    except OSError as e:
        print(f"error: cannot connect to {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    sock.settimeout(None)
    try:
        (cid,) = struct.unpack("<i", recv_exactly(sock, 4))
        print(f"connected id={cid}", flush=True)
        if args.once:
            query(sock, *args.once)
            return 0
        sent = 0
        while True:
            query(sock, random.choice(OPS), random.randint(-32768, 32767),
                  random.randint(-32768, 32767))
            sent += 1
            if args.count and sent >= args.count:
                return 0
            time.sleep(args.interval)
    except (Closed, OSError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"error: {reason}", file=sys.stderr)
        return 1
    finally:
        sock.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
