#!/usr/bin/env python3
"""Generates the client's player sprites (standard library only).

Sprites are light grey-scale so the client can tint them per player kind:
  sprites/player_native.png  a round token with a dark outline (native clients)
  sprites/player_legacy.png  a square "terminal" with a ">_" prompt (Python clients)
  sprites/player_local.png   a round token with a ring and a centre dot (you)

Run from anywhere: python3 assets/make_sprites.py
"""

import math
import os
import struct
import zlib

SIZE = 32
HERE = os.path.dirname(os.path.abspath(__file__))


def write_png(path, pixels):
    """pixels: SIZE rows of SIZE (r, g, b, a) tuples."""
    raw = b"".join(
        b"\x00" + b"".join(struct.pack("BBBB", *px) for px in row) for row in pixels
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def blank():
    return [[(0, 0, 0, 0) for _ in range(SIZE)] for _ in range(SIZE)]


def token(ring=False):
    px = blank()
    c = (SIZE - 1) / 2
    for y in range(SIZE):
        for x in range(SIZE):
            d = math.hypot(x - c, y - c)
            if d <= 15.0:
                px[y][x] = (40, 40, 48, 255)  # outline
            if d <= 13.0:
                shade = int(255 - 60 * (y / SIZE))  # light from above
                px[y][x] = (shade, shade, shade, 255)
            if ring and 7.5 <= d <= 9.5:
                px[y][x] = (40, 40, 48, 255)
            if ring and d <= 3.0:
                px[y][x] = (40, 40, 48, 255)
    # two eyes so the token reads as a character
    if not ring:
        for ex in (11, 20):
            for y in range(10, 15):
                for x in range(ex - 1, ex + 2):
                    px[y][x] = (40, 40, 48, 255)
    return px


def terminal():
    px = blank()
    for y in range(2, 30):
        for x in range(2, 30):
            edge = x in (2, 3, 28, 29) or y in (2, 3, 28, 29)
            px[y][x] = (40, 40, 48, 255) if edge else (235, 235, 235, 255)
    # title bar
    for y in range(4, 8):
        for x in range(4, 28):
            px[y][x] = (120, 120, 130, 255)
    # ">" prompt
    for i in range(5):
        for t in range(2):
            px[12 + i][8 + i + t] = (40, 40, 48, 255)
            px[20 - i][8 + i + t] = (40, 40, 48, 255)
    # "_" cursor
    for y in range(20, 22):
        for x in range(16, 24):
            px[y][x] = (40, 40, 48, 255)
    return px


if __name__ == "__main__":
    out = os.path.join(HERE, "sprites")
    os.makedirs(out, exist_ok=True)
    write_png(os.path.join(out, "player_native.png"), token())
    write_png(os.path.join(out, "player_legacy.png"), terminal())
    write_png(os.path.join(out, "player_local.png"), token(ring=True))
    print("wrote", ", ".join(sorted(os.listdir(out))))
