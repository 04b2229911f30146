#!/usr/bin/env bash
# Runs one bench group several times and reports the minimum and median of every figure.
#
#   benches/run.sh GROUP [RUNS] [SIZES]
#
# * GROUP: the peeks bench filter (e.g. inbound_peek, local_, outbound_renew, timeout, restore,
#   fanout_destinations); RUNS: default 3; SIZES: PEEK_SIZES, default 1000,1000000.
# * Each run is `PEEK_SIZES=SIZES cargo bench --bench peeks -- --warm-up-time 1
#   --measurement-time 2 --noplot GROUP`, from one binary built before the first run (the
#   revision recorded is the one built). A run's figure for a benchmark is criterion's point
#   estimate from its `new/estimates.json` (the slope for linear sampling, else the mean):
#   the middle number of criterion's `time: [...]` line.
# * The load is recorded with every run: /proc/loadavg before and after, and every 15 s the
#   processes using the CPU besides the bench (the machine is shared with other jobs). So is
#   the host's CPU, once per series (model, family, caches: ratios differ between hosts).
# * A machine/floor ratio is taken within each run (the machine's figure over the floor's of
#   the same run, same size), then its minimum and median over the runs are reported.
#
# * With PAIRED=1, the per-op groups run in the paired mode (PEEK_PAIRED=1: machine and floor
#   measured chunk by chunk, alternately, so load changes hit both alike): a run's figures are
#   the medians over its rounds, and its ratio is the median of the per-round ratios.
#
# Output (PEEK_RESULTS=DIR to write elsewhere): benches/results/GROUP-SIZES.tsv (raw: run, benchmark, ns) and GROUP-SIZES.md (the
# summary with the command and the load), also printed.
set -euo pipefail
cd "$(dirname "$0")/.."

group=${1:?usage: benches/run.sh GROUP [RUNS] [SIZES]}
runs=${2:-3}
sizes=${3:-1000,1000000}
out=${PEEK_RESULTS:-benches/results}
mkdir -p "$out"
paired=${PAIRED:-0}
tag="${group}-${sizes//,/_}"
[ "$paired" = 1 ] && tag="paired-$tag"
raw="$out/$tag.tsv"
md="$out/$tag.md"
loadlog="$out/$tag.load"
envs="PEEK_SIZES=$sizes"
[ "$paired" = 1 ] && envs="PEEK_PAIRED=1 $envs"
# ruma's id storage (e.g. RUMA_IDENTIFIERS_STORAGE=Arc, built in its own target dir) is part of
# the command.
if [ -n "${RUMA_IDENTIFIERS_STORAGE:-}" ]; then
    envs="RUMA_IDENTIFIERS_STORAGE=$RUMA_IDENTIFIERS_STORAGE CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target} $envs"
fi
cmd="$envs cargo bench --bench peeks -- --warm-up-time 1 --measurement-time 2 --noplot $group"

# Built once: every run of the series executes this binary, so an edit made while the series
# runs cannot slip into a later run (cargo bench would rebuild it).
bin=$(cargo bench --bench peeks --no-run --message-format=json 2>/dev/null \
    | jq -r 'select(.reason == "compiler-artifact" and .target.name == "peeks"
        and .executable != null) | .executable' | tail -1)
[ -x "$bin" ] || { echo "run.sh: could not build the peeks bench" >&2; exit 1; }
rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- benches src || echo +dirty)
: >"$raw"
: >"$loadlog"
# The CPU the series ran on: ratios move between hosts (BENCHMARKS.md, part 2, eleventh step),
# and a VM's model name alone (`AMD EPYC`) does not tell them apart.
cpu=$(lscpu 2>/dev/null | awk -F: '
    /^Model name/ { gsub(/^ +/, "", $2); name = $2 }
    /^CPU family/ { gsub(/ /, "", $2); family = $2 }
    /^Model:/ { gsub(/ /, "", $2); model = $2 }
    /^L2 cache/ { gsub(/^ +/, "", $2); l2 = $2 }
    /^L3 cache/ { gsub(/^ +/, "", $2); l3 = $2 }
    END { printf "%s (family %s, model %s), L2 %s, L3 %s", name, family, model, l2, l3 }')
printf 'host\t%s\t%s\n' "$(nproc) cores" "${cpu:-unknown}" >>"$loadlog"

# Every 15 s: the load average and the other busy processes (what else was running).
sample_load() {
    while true; do
        {
            printf 'sample\t%s\t%s\n' "$(date +%T)" "$(cut -d' ' -f1-3 /proc/loadavg)"
            ps -eo pid=,pcpu=,comm= --sort=-pcpu | awk '$2 > 5' | head -5 \
                | while read -r pid cpu comm; do
                    case $comm in peeks-* | ps) continue ;; esac
                    crate=$({ tr '\0' ' ' </proc/"$pid"/cmdline; } 2>/dev/null \
                        | grep -o -e '--crate-name [^ ]*' | cut -d' ' -f2 || true)
                    cwd=$(readlink /proc/"$pid"/cwd 2>/dev/null || true)
                    [ "$cwd" = "$PWD" ] && continue # this run's own cargo
                    printf 'busy\t%s\t%s\t%s\t%s\n' "$cpu" "$comm" "${crate:--}" "${cwd:--}"
                done
        } >>"$loadlog"
        sleep 15
    done
}

for run in $(seq 1 "$runs"); do
    marker=$(mktemp)
    before=$(cut -d' ' -f1-3 /proc/loadavg)
    sample_load &
    sampler=$!
    # The sampler must not outlive a failed run (set -e).
    trap 'kill "$sampler" 2>/dev/null || true' EXIT
    echo "== run $run/$runs: $cmd (load before: $before)" >&2
    env $envs "$bin" --bench --warm-up-time 1 --measurement-time 2 \
        --noplot "$group" >"$out/$tag.run$run.log" 2>&1
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    after=$(cut -d' ' -f1-3 /proc/loadavg)
    printf 'run\t%s\t%s\t%s\t%s\n' "$run" "$(date -Is)" "$before" "$after" >>"$loadlog"
    # Paired lines: paired LABEL N machine-ns floor-ns ratio q1 q3 rounds.
    awk -F'\t' -v run="$run" '$1 == "paired" {
        printf "%s\t%s/machine/%s\t%s\n%s\t%s/floor/%s\t%s\n%s\t%s/ratio/%s\t%s\n",
            run, $2, $3, $4, run, $2, $3, $5, run, $2, $3, $6
    }' "$out/$tag.run$run.log" >>"$raw"
    crit="${CARGO_TARGET_DIR:-target}/criterion"
    mkdir -p "$crit" # absent when only paired groups ran
    find "$crit" -path '*/new/estimates.json' -newer "$marker" | while read -r est; do
        id=$(jq -r .full_id "$(dirname "$est")/benchmark.json")
        ns=$(jq -r '(.slope.point_estimate // .mean.point_estimate)' "$est")
        printf '%s\t%s\t%s\n' "$run" "$id" "$ns" >>"$raw"
    done
    rm -f "$marker"
done

python3 benches/summarize.py "$raw" "$loadlog" "$cmd ($rev)" "$runs" >"$md"
cat "$md"
