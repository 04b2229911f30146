#!/usr/bin/env python3
"""Compact per-op table for BENCHMARKS.md from benches/run.sh series: per benchmark and size,
the machine ÷ floor ratio (median over the runs, min in brackets; each ratio taken within one
run, or for a paired series the median of a run's per-round ratios) and the machine's median
time, plus the 1 M ÷ 1 k growth of the median ratio.

    benches/optable.py results/TAG.tsv [results/TAG2.tsv ...]
"""
import collections, statistics, sys

def load(path):
    fig = collections.defaultdict(dict)
    for line in open(path):
        run, bid, ns = line.rstrip("\n").split("\t")
        fig[bid][int(run)] = float(ns)
    return fig

def fmt(ns):
    if ns >= 1e6: return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3: return f"{ns / 1e3:.3g} µs"
    return f"{ns:.3g} ns"

for path in sys.argv[1:]:
    fig = load(path)
    rows = collections.defaultdict(dict)  # op -> size -> (ratios, machine ns)
    for bid in fig:
        parts = bid.split("/")
        size = parts[-1]
        if "/ratio/" in bid or "machine" not in bid:
            continue
        floor = bid.replace("machine", "floor")
        if floor not in fig:
            continue
        m = fig[bid]
        paired = bid.replace("/machine/", "/ratio/")
        if paired != bid and paired in fig:
            r = list(fig[paired].values())
        else:
            r = [m[k] / fig[floor][k] for k in m if k in fig[floor]]
        op = "/".join(p for p in parts[:-1]).replace("/machine", "").replace("_machine", "")
        rows[op][int(size)] = (r, statistics.median(m.values()))
    sizes = sorted({s for op in rows.values() for s in op})
    print(f"\n{path}\n")
    print("| op | " + " | ".join(f"{s:,}".replace(",", " ") for s in sizes) + " | 1 M ÷ 1 k |")
    print("|---" * (len(sizes) + 2) + "|")
    for op in sorted(rows):
        cells = []
        for s in sizes:
            if s not in rows[op]:
                cells.append("–")
                continue
            r, ns = rows[op][s]
            cells.append(f"**{statistics.median(r):.2f}×** ({min(r):.2f}) {fmt(ns)}")
        g = "–"
        if 1000 in rows[op] and 1000000 in rows[op]:
            g = f"{statistics.median(rows[op][1000000][0]) / statistics.median(rows[op][1000][0]):.2f}"
        print(f"| {op} | " + " | ".join(cells) + f" | {g} |")
