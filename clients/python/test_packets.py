#!/usr/bin/env python3
"""Legacy "test packets" client: echoes every probe the server sends.

Reads the 4-byte client id, then for each 8-byte probe (seq, clients_connected)
prints it and sends the same 8 bytes back unchanged.

Example:
    python3 clients/python/test_packets.py --host 127.0.0.1 --port 7001 --count 5
"""
import argparse
import socket
import struct
import sys


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


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7001, help="server port (default 7001)")
    p.add_argument("--count", type=int, default=0,
                   help="exit 0 after echoing N probes (default 0 = forever)")
    args = p.parse_args()
    if args.count < 0:
        p.error("--count must be >= 0")

    try:
        sock = socket.create_connection((args.host, args.port), timeout=10)
    except OSError as e:
        print(f"error: cannot connect to {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    sock.settimeout(None)
    echoed = 0
    try:
        (cid,) = struct.unpack("<i", recv_exactly(sock, 4))
        print(f"connected id={cid}", flush=True)
        while args.count == 0 or echoed < args.count:
            probe = recv_exactly(sock, 8)
            seq, clients = struct.unpack("<ii", probe)
            print(f"probe seq={seq} clients={clients}", flush=True)
            sock.sendall(probe)
            echoed += 1
    except (Closed, OSError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"disconnected: {reason}", flush=True)
        return 1 if args.count else 0
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
