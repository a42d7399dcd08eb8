#!/usr/bin/env python3
"""Tiles 8-bit PNG screenshots into one PNG, scaled to a width (standard
library only: the screenshot's tiling without ImageMagick).

usage: tools/tile_png.py OUT.png WIDTH COLUMNS IN.png... (missing tiles: blank)
"""
import struct
import sys
import zlib

BLANK = (0x14, 0x18, 0x1E)


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and not interlace, f"{path}: unsupported PNG"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        filt = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * channels : x * channels + 3]) for x in range(width)])
        prev = line
    return rows


def write_png(path, rows):
    height, width = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in rows)
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


def main():
    out, width, columns, inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    tiles = [read_png(p) for p in inputs]
    th, tw = len(tiles[0]), len(tiles[0][0])
    grid_rows = (len(tiles) + columns - 1) // columns
    full_w, full_h = tw * columns, th * grid_rows
    def pixel(x, y):
        index = (y // th) * columns + x // tw
        return tiles[index][y % th][x % tw] if index < len(tiles) else BLANK
    scale = full_w / width
    height = int(full_h / scale)
    rows = []
    for y in range(height):
        y0, y1 = int(y * scale), max(int((y + 1) * scale), int(y * scale) + 1)
        row = []
        for x in range(width):
            x0, x1 = int(x * scale), max(int((x + 1) * scale), int(x * scale) + 1)
            acc, n = [0, 0, 0], 0
            for yy in range(y0, min(y1, full_h)):
                for xx in range(x0, min(x1, full_w)):
                    p = pixel(xx, yy)
                    acc[0] += p[0]; acc[1] += p[1]; acc[2] += p[2]; n += 1
            row.append(tuple(v // n for v in acc))
        rows.append(row)
    write_png(out, rows)


if __name__ == "__main__":
    main()
