#!/usr/bin/env python3
"""Summarises one benches/run.sh series: min and median of every figure over the runs, and of
every machine/floor ratio taken within a run, with the command and the load.

    benches/summarize.py RAW.tsv LOAD.log COMMAND RUNS   (run.sh calls it; prints markdown)
"""
import collections, statistics, sys

raw, loadlog, cmd, runs = sys.argv[1:]
fig = collections.defaultdict(dict)  # id -> run -> ns
for line in open(raw):
    run, bid, ns = line.rstrip("\n").split("\t")
    fig[bid][int(run)] = float(ns)

def fmt(ns):
    if ns >= 1e9: return f"{ns / 1e9:.3g} s"
    if ns >= 1e6: return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3: return f"{ns / 1e3:.3g} µs"
    return f"{ns:.3g} ns"

def floor_of(bid):
    # inbound_peek/cold_machine/1000 -> inbound_peek/cold_floor/1000; restore/inbound_machine/N
    # -> restore/inbound_floor/N; fanout_x/machine/10/N -> fanout_x/floor/10/N.
    return bid.replace("machine", "floor")

print(f"Command ({runs} runs): `{cmd}`\n")
print("| benchmark | min | median | runs |")
print("|---|---|---|---|")
for bid in sorted(fig):
    if "/ratio/" in bid:
        continue
    v = list(fig[bid].values())
    print(f"| {bid} | {fmt(min(v))} | {fmt(statistics.median(v))} | "
          + " / ".join(fmt(x) for x in v) + " |")
print("\n| ratio machine ÷ floor (same run) | min | median | runs |")
print("|---|---|---|---|")
for bid in sorted(fig):
    if "machine" not in bid or floor_of(bid) not in fig:
        continue
    f = fig[floor_of(bid)]
    r = [fig[bid][k] / f[k] for k in fig[bid] if k in f]
    paired_ratio = bid.replace("/machine/", "/ratio/")
    if paired_ratio != bid and paired_ratio in fig:  # paired: the median of the round ratios
        r = list(fig[paired_ratio].values())
    if r:
        print(f"| {bid} | {min(r):.2f}× | {statistics.median(r):.2f}× | "
              + " / ".join(f"{x:.2f}" for x in r) + " |")

print("\nHost and load (1/5/15-min averages):\n")
busy = collections.Counter()
samples = []
for line in open(loadlog):
    parts = line.rstrip("\n").split("\t")
    if parts[0] == "host":
        print(f"* host: {parts[1]}, {parts[2]}")
    elif parts[0] == "run":
        print(f"* run {parts[1]} ({parts[2]}): before {parts[3]}, after {parts[4]}")
    elif parts[0] == "sample":
        samples.append(float(parts[2].split()[0]))
    elif parts[0] == "busy":
        _, cpu, comm, crate, cwd = parts
        what = comm + ("" if crate == "-" else f" {crate}") + ("" if cwd == "-" else f" in {cwd}")
        busy[what] += 1
if samples:
    print(f"* 1-min load sampled every 15 s: min {min(samples):.2f}, median "
          f"{statistics.median(samples):.2f}, max {max(samples):.2f} ({len(samples)} samples)")
if busy:
    print("* other processes above 5 % CPU (samples seen): "
          + "; ".join(f"{w} ×{c}" for w, c in busy.most_common(8)))
