#!/bin/sh
# Issue floor for gate output: a gate printing 1 GiB finishes in at most 1.5x the time of
# `sh -c 'CMD | tee FILE > /dev/null'`, with a peak RSS of at most 64 MiB.
#
# Usage: bench/gate-output.sh [RUNS]     (env: SIZE bytes, default 1 GiB; TMPDIR)
# Runs the real binary (`agent-orch run` of a one-gate workflow, output echoed to stderr,
# which goes to /dev/null, and written to the step log) and the tee baseline RUNS times each
# (default 3), interleaved, and compares the medians. Peak RSS is agent-orch's own (GNU time).
set -eu

runs=${1:-3}
size=${SIZE:-1073741824}
cmd="head -c $size /dev/zero | tr '\\0' x | fold -w 100"
work=$(mktemp -d "${TMPDIR:-/tmp}/gate-output.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/agent-orch
cat >"$work/gate.yaml" <<YAML
name: gate-output
safety: {max_iterations: 1}
steps:
  - id: big
    gate: |
      $cmd
YAML

now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$work/gate" && : >"$work/tee" && : >"$work/rss"
i=0
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    start=$(now)
    sh -c "$cmd | tee '$work/tee.log' > /dev/null"
    end=$(now)
    echo "$end - $start" | bc -l >>"$work/tee"
    want=$(wc -c <"$work/tee.log")
    rm -f "$work/tee.log"

    rm -rf "$work/artifacts"
    /usr/bin/time -f '%e %M' -o "$work/time" \
        "$bin" run --color never --artifacts "$work/artifacts" "$work/gate.yaml" 2>/dev/null \
        || { echo "agent-orch run failed" >&2; exit 1; }
    got=$(wc -c <"$work/artifacts/steps/1-steps/big.log")
    [ "$got" -eq "$want" ] || { echo "gate log has $got bytes, tee's has $want" >&2; exit 1; }
    cut -d' ' -f1 "$work/time" >>"$work/gate"
    cut -d' ' -f2 "$work/time" >>"$work/rss"
    echo "run $i: gate $(tail -n1 "$work/gate")s (peak RSS $(tail -n1 "$work/rss") KiB), tee $(tail -n1 "$work/tee")s"
done

gate=$(median <"$work/gate")
tee=$(median <"$work/tee")
rss=$(sort -n "$work/rss" | tail -n1)
ratio=$(echo "$gate / $tee" | bc -l)
printf 'command:        %s\n' "$cmd"
printf 'gate (median):  %.2fs\n' "$gate"
printf 'tee  (median):  %.2fs\n' "$tee"
printf 'ratio:          %.2f (floor: <= 1.50)\n' "$ratio"
printf 'peak RSS (max): %d KiB = %.1f MiB (floor: <= 64 MiB)\n' "$rss" "$(echo "$rss / 1024" | bc -l)"
if [ "$(echo "$ratio <= 1.5 && $rss <= 65536" | bc)" -eq 1 ]; then
    echo "PASS"
else
    echo "FAIL"
    exit 1
fi
