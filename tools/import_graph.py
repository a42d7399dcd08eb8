#!/usr/bin/env python3
"""File-level import graph of a crate's `src/`; exits 1 on a cycle.

Usage: tools/import_graph.py [--print] CRATE_SRC_DIR...
       (default: server/src game_client/src shared/src)

A file A imports file B when A names a path `crate::x::y`, `super::y` or
`self::y` (in a `use` or inline) that resolves to B: the longest prefix of the
path that is a module file. Comments and `#[cfg(test)] mod tests { .. }`
blocks inside a file are skipped (a test module may use the layers above);
a file-level `mod tests;` is its own node. A path from a module into its own
descendants is not counted: a parent declares and re-exports its children
(lib.rs declares everything, as in mini-redis), so a cycle is a loop between
modules that are not parent and child.
"""

import os
import re
import sys

PATH = re.compile(r"\b((?:crate|super|self)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*|\{))+)")


def modules(src):
    """Map module path tuple -> file, e.g. ("world", "grid") -> .../world/grid.rs."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(root, f)
            rel = os.path.relpath(full, src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib") or (rel == ["main"] and not os.path.exists(os.path.join(src, "lib.rs"))):
                rel = rel[:-1]
            if rel and rel[0] == "bin":
                continue
            mods[tuple(rel)] = full
    return mods


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # drop inline test modules: `#[cfg(test)] mod name { ... }` by brace count
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand(text, start):
    """Paths named by a `use` tree starting at `start` (handles nested braces)."""
    # find the end of the use tree
    depth, j = 0, start
    while j < len(text):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and (c in ";,)=<>(" or c.isspace()):
            break
        j += 1
    tree = re.sub(r"\s+", "", text[start:j])

    def walk(prefix, t):
        if "{" not in t:
            yield prefix + [p for p in t.split("::") if p]
            return
        head, rest = t.split("{", 1)
        rest = rest[: rest.rfind("}")]
        base = prefix + [p for p in head.split("::") if p]
        depth, part = 0, ""
        for c in rest + ",":
            if c == "," and depth == 0:
                if part:
                    yield from walk(base, part)
                part = ""
                continue
            depth += c == "{"
            depth -= c == "}"
            part += c
        yield base

    return list(walk([], tree))


def graph(src):
    mods = modules(src)
    edges = {}
    for mod, file in mods.items():
        text = strip(open(file, encoding="utf-8").read())
        targets = set()
        # bare paths into a child module: `use world::World;`, `world::info(1)`
        children = {m[-1] for m in mods if len(m) == len(mod) + 1 and m[: len(mod)] == mod}
        for m in re.finditer(r"(?<![:\w])(\w+)::", text):
            if m.group(1) in children:
                targets.add(mod + (m.group(1),))
        # inline modules (`mod endpoint { .. }`): `super::` inside starts there
        spans = []
        for m in re.finditer(r"\bmod\s+\w+\s*\{", text):
            depth, j = 1, m.end()
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            spans.append((m.end(), j))
        for m in PATH.finditer(text):
            inline = sum(a <= m.start() < b for a, b in spans)
            for path in expand(text, m.start()):
                if path[0] == "crate":
                    abs_path, rest = [], path[1:]
                else:
                    # a file `x/mod.rs` or `x.rs` is module x; super is its parent
                    abs_path, rest, skip = list(mod), path, inline
                    while rest and rest[0] in ("self", "super"):
                        if rest[0] == "super":
                            if skip:
                                skip -= 1
                            else:
                                abs_path = abs_path[:-1]
                        rest = rest[1:]
                full = abs_path + [p.split(" as ")[0] for p in rest if p not in ("self", "*")]
                for n in range(len(full), -1, -1):
                    if tuple(full[:n]) in mods:
                        target = tuple(full[:n])
                        break
                # a path into a parent (e.g. crate::Shared from lib.rs) is an edge too
                targets.add(target)
        # a parent declaring or re-exporting its own children is the module
        # tree, not an import (lib.rs declares everything, as in mini-redis)
        edges[mod] = {t for t in targets if t[: len(mod)] != mod}
    return mods, edges


def name(mod):
    return "::".join(mod) or "lib"


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(argv):
    show = "--print" in argv
    dirs = [a for a in argv if a != "--print"]
    if not dirs:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        dirs = [os.path.join(here, d) for d in ("server/src", "game_client/src", "shared/src")]
    bad = False
    for src in dirs:
        if not os.path.isdir(src):
            continue
        _, edges = graph(src)
        if show:
            print(f"# {src}")
            for mod in sorted(edges):
                if edges[mod]:
                    print(f"{name(mod)} -> {', '.join(sorted(name(t) for t in edges[mod]))}")
        for comp in cycles(edges):
            bad = True
            print(f"cycle in {src}: {' <-> '.join(name(c) for c in comp)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
