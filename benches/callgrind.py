#!/usr/bin/env python3
"""Per-op summary of one callgrind profile of `PEEK_PROFILE` (benches/profile.sh calls it).

    benches/callgrind.py FILE OPS

Prints the totals per op (Ir; D1 and LL misses, reads + writes), then where the instructions
go: the self cost of every file:function (the file is where the inlined line came from), per
op, grouped by what the code does (SipHash, hash-table probes, B-tree, malloc/free, ...), and
the largest single entries.
"""
import collections, re, subprocess, sys

path, ops = sys.argv[1], int(sys.argv[2])


def annotate(inclusive):
    """(totals, [(costs, file:function)]) from callgrind_annotate's flat function list."""
    out = subprocess.run(
        ["callgrind_annotate", f"--inclusive={inclusive}", "--auto=no", "--threshold=100", path],
        capture_output=True, text=True, check=True).stdout
    events, rows, total = None, [], None
    for line in out.splitlines():
        if line.startswith("Events shown:"):
            events = line.split(":", 1)[1].split()
            continue
        if events is None or not line.strip() or line.startswith("-"):
            continue
        toks = re.sub(r"\(\s*[\d.]+%\)", "", line).split()
        if len(toks) <= len(events) or not re.fullmatch(r"[\d,.]+", toks[0]):
            continue
        vals = dict(zip(events, (0 if t == "." else int(t.replace(",", "")) for t in toks)))
        name = re.sub(r"\s*\[[^\]]*\]$", "", " ".join(toks[len(events):]))
        name = re.sub(r"/rustc/[0-9a-f]+/library/", "std:", name)
        name = re.sub(r"/root/\.cargo/registry/src/[^/]+/", "", name).replace("/work/wt/bench/", "")
        if "PROGRAM TOTALS" in name:
            total = vals
        else:
            rows.append((vals, name))
    return total, rows


total, rows = annotate("no")

CATEGORIES = [
    ("SipHash", r"core/src/hash/sip\.rs"),
    ("other hashing", r"core/src/hash/|rustc-hash|rustc_hash|foldhash"),
    ("hash-table probe/insert/remove", r"hashbrown|collections/hash"),
    ("B-tree (deadline set)", r"collections/btree"),
    ("malloc/free", r"malloc\.c|alloc/src/alloc\.rs|sys/alloc|__rust_(de|re)?alloc|raw_vec"),
    ("memcpy/memcmp", r"memcpy|memmove|memcmp|memset|multiarch|string/"),
    ("VecDeque (output queue)", r"vec_deque"),
    ("slab", r"slab-|/slab/"),
    ("ruma ids (clone/drop/compare)", r"ruma"),
    ("timers (src/timer.rs)", r"src/timer\.rs"),
    ("machine code (src/)", r"(^|/)src/(inbound|local|outbound|coordinator|access|time|ids)"),
    ("str/String/Vec/slice", r"alloc/src/(string|vec|str|slice|boxed)|core/src/(str|slice|ptr|iter|cmp|option|result|num)"),
    ("bench harness / floor (benches/)", r"benches/"),
]

def category(name):
    for cat, pat in CATEGORIES:
        if re.search(pat, name):
            return cat
    return "other"

def per(d, *names):
    return sum(d.get(n, 0) for n in names) / ops

print(f"  total per op: {per(total, 'Ir'):.0f} Ir, {per(total, 'D1mr', 'D1mw'):.1f} D1 misses, "
      f"{per(total, 'DLmr', 'DLmw'):.1f} LL misses")
groups = collections.defaultdict(lambda: collections.Counter())
for d, name in rows:
    g = groups[category(name)]
    for k, v in d.items():
        g[k] += v
for cat, g in sorted(groups.items(), key=lambda kv: -kv[1]["Ir"]):
    if per(g, "Ir") >= 1:
        print(f"    {per(g, 'Ir'):7.0f} Ir {per(g, 'D1mr', 'D1mw'):5.1f} D1m "
              f"{per(g, 'DLmr', 'DLmw'):4.1f} LLm  {cat}")
print("  inclusive cost of the functions called (symbols; inlined code counts in its caller):")
_, inc = annotate("yes")
ceiling = max(d["Ir"] for d, name in inc if "profile::collected" in name)
best = {}
for d, name in inc:
    m = re.match(r"^(.*?\.(?:rs|c|S|h)|\?\?\?):(.*)$", name)
    fn = m.group(2) if m else name
    if d["Ir"] < ceiling and "profile::collected" not in fn and (fn not in best or d["Ir"] > best[fn]["Ir"]):
        best[fn] = d
for fn, d in sorted(best.items(), key=lambda kv: -kv[1]["Ir"])[:14]:
    print(f"    {per(d, 'Ir'):7.0f} Ir {per(d, 'D1mr', 'D1mw'):5.1f} D1m "
          f"{per(d, 'DLmr', 'DLmw'):4.1f} LLm  {fn[:140]}")
