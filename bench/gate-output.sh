#!/bin/sh
# Issue floor for gate output: a gate printing 1 GiB finishes in at most 1.5x the time of
# `sh -c 'CMD | tee FILE > /dev/null'`, with a peak RSS of at most 64 MiB.
#
# Usage: bench/gate-output.sh [RUNS]     (env: SIZE bytes, default 1 GiB; TMPDIR)
# Each round runs, in turn: the producer alone (`sh -c 'CMD > /dev/null'`), the tee baseline,
# and the real binary (`agent-orch run` of a one-gate workflow, output echoed to stderr, which
# goes to /dev/null, and written to the step log); RUNS rounds (default 3), medians compared.
# The producer is `yes` cut to SIZE bytes of 100-byte lines, several GB/s: its own rate is
# printed beside the figures, and a run where agent-orch comes near it is flagged, since the
# figure would then measure the producer. Peak RSS is agent-orch's own (GNU time).
set -eu

runs=${1:-3}
size=${SIZE:-1073741824}
line=$(printf '%099d' 0 | tr 0 x)
cmd="yes $line | head -c $size"
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
# Seconds taken by `sh -c "$1"`, appended to file $2.
timed() {
    start=$(now)
    sh -c "$1"
    end=$(now)
    echo "$end - $start" | bc -l >>"$2"
}

: >"$work/producer" && : >"$work/gate" && : >"$work/tee" && : >"$work/rss"
i=0
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    timed "$cmd > /dev/null" "$work/producer"
    timed "$cmd | tee '$work/tee.log' > /dev/null" "$work/tee"
    want=$(wc -c <"$work/tee.log")

    rm -rf "$work/artifacts"
    /usr/bin/time -f '%e %M' -o "$work/time" \
        "$bin" run --color never --artifacts "$work/artifacts" "$work/gate.yaml" 2>/dev/null \
        || { echo "agent-orch run failed" >&2; exit 1; }
    log="$work/artifacts/steps/1-steps/big.log"
    got=$(wc -c <"$log")
    [ "$got" -eq "$want" ] || { echo "gate log has $got bytes, tee's has $want" >&2; exit 1; }
    if [ "$i" -eq 1 ]; then
        cmp -s "$log" "$work/tee.log" || { echo "gate log differs from tee's" >&2; exit 1; }
    fi
    rm -f "$work/tee.log"
    cut -d' ' -f1 "$work/time" >>"$work/gate"
    cut -d' ' -f2 "$work/time" >>"$work/rss"
    echo "run $i: producer $(tail -n1 "$work/producer")s, gate $(tail -n1 "$work/gate")s" \
        "(peak RSS $(tail -n1 "$work/rss") KiB), tee $(tail -n1 "$work/tee")s"
done

producer=$(median <"$work/producer")
gate=$(median <"$work/gate")
tee=$(median <"$work/tee")
rss=$(sort -n "$work/rss" | tail -n1)
ratio=$(echo "$gate / $tee" | bc -l)
rate() { echo "$size / $1 / 1000000" | bc -l; }
printf 'command:         %s (%d bytes)\n' "yes <100-byte line> | head -c $size" "$size"
printf 'producer alone:  %.2fs = %.0f MB/s (the harness; the figures below are bounded by it)\n' \
    "$producer" "$(rate "$producer")"
printf 'agent-orch:      %.2fs = %.0f MB/s (median)\n' "$gate" "$(rate "$gate")"
printf 'tee:             %.2fs = %.0f MB/s (median)\n' "$tee" "$(rate "$tee")"
printf 'ratio:           %.2f (floor: <= 1.50)\n' "$ratio"
printf 'peak RSS (max):  %d KiB = %.1f MiB (floor: <= 64 MiB)\n' "$rss" "$(echo "$rss / 1024" | bc -l)"
if [ "$(echo "$producer * 2 > $gate" | bc)" -eq 1 ]; then
    echo "warning: agent-orch took less than twice the producer's time; the figure may be the producer's"
fi
if [ "$(echo "$ratio <= 1.5 && $rss <= 65536" | bc)" -eq 1 ]; then
    echo "PASS"
else
    echo "FAIL"
    exit 1
fi
