#!/usr/bin/env bash
# Instruction counts per op (callgrind), machine beside floor: load-independent.
#
#   benches/profile.sh [SIZE] [OPS] [WORKLOAD...]
#
# * SIZE: live peeks (default 1000000); OPS: ops measured (default 10000); WORKLOAD: any of
#   the `PEEK_PROFILE` workloads of benches/peeks/profile.rs, e.g. inbound_peek_warm or
#   local_timeout (default:
#   inbound_peek_cold inbound_renew inbound_unpeek local_peek_cold local_renew local_unpeek
#   outbound_peek_cold outbound_renew outbound_unpeek).
# * PEEK_PROFILE_SIDES: the sides to run (default `machine floor`); for inbound and local,
#   per-op workloads, `number_floor` and `key_floor` run one keying of the floor (`floor` is
#   the one the bench measures the op against), e.g. PEEK_PROFILE_SIDES='number_floor
#   key_floor'. The timeout workloads have `floor` only (the numbered keying); for the outbound
#   creates and unpeek, `room_floor` and `slot_floor` run one layout (benches/peeks/outbound_floor.rs),
#   and the outbound renewal has one floor (`floor`).
# * Builds the bench binary with line tables (CARGO_PROFILE_BENCH_DEBUG=line-tables-only, in
#   target/profiling so the ordinary target dir is untouched), then runs each workload and side
#   under `valgrind --tool=callgrind --cache-sim=yes --toggle-collect='*collected*'`: only the
#   ops are collected, not building the population. The simulated caches: D1 32 KiB 8-way, LL
#   32 MiB 16-way (a server part's L3 share, fixed so that counts compare across hosts: the
#   VMs of part 2 reported a 480 MiB L3 on one host, in which nothing would miss, and 32 MiB
#   on another).
# * Per workload and side it prints (benches/callgrind.py) Ir, D1 and LL misses per op, the
#   self cost grouped by what the code does, and the inclusive cost of the functions called.
#   The raw callgrind files stay in target/profiling/callgrind/ for
#   `callgrind_annotate --tree=calling`.
set -euo pipefail
cd "$(dirname "$0")/.."

size=${1:-1000000}
ops=${2:-10000}
shift $(($# < 2 ? $# : 2))
workloads=("$@")
if [ ${#workloads[@]} -eq 0 ]; then
    workloads=(inbound_peek_cold inbound_renew inbound_unpeek local_peek_cold local_renew
        local_unpeek outbound_peek_cold outbound_renew outbound_unpeek)
fi

export CARGO_TARGET_DIR=target/profiling
bin=$(CARGO_PROFILE_BENCH_DEBUG=line-tables-only cargo bench --bench peeks --no-run 2>&1 \
    | sed -n 's/.*Executable.*(\(.*\)).*/\1/p' | tail -1)
out=target/profiling/callgrind
mkdir -p "$out"

for w in "${workloads[@]}"; do
    for side in ${PEEK_PROFILE_SIDES:-machine floor}; do
        f="$out/$w-$side-$size.out"
        # A failed run (a panic, a valgrind error) stops the script, its output shown.
        if ! log=$(PEEK_PROFILE="$w:$side" PEEK_SIZES=$size PEEK_PROFILE_OPS=$ops valgrind -q \
            --tool=callgrind --cache-sim=yes --D1=32768,8,64 --LL=33554432,16,64 \
            --toggle-collect='*collected*' --callgrind-out-file="$f" "$bin" --bench 2>&1); then
            printf '%s\n' "$log" >&2
            echo "profile.sh: $w / $side failed" >&2
            exit 1
        fi
        grep -v -e '^profile:' -e 'warning:' <<<"$log" || true
        n=$ops
        case $w in *unpeek) n=$((ops < size ? ops : size)) ;; esac
        # A workload whose op count is not OPS (a timeout: the peeks it expired) prints it.
        counted=$(sed -n 's/^profile: ops counted \([0-9]*\)$/\1/p' <<<"$log")
        n=${counted:-$n}
        if [ "$n" -eq 0 ]; then
            echo "== $w / $side at $size live peeks: no op ran (nothing to count)"
            continue
        fi
        echo "== $w / $side at $size live peeks ($n ops)"
        python3 benches/callgrind.py "$f" "$n"
    done
done
