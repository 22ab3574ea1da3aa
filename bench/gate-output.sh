#!/bin/sh
# Issue floor for gate output: a gate printing 1 GiB finishes in at most 1.5x the time of
# `sh -c 'CMD | tee FILE > /dev/null'`, with a peak RSS of at most 64 MiB.
#
# Usage: bench/gate-output.sh [RUNS]     (env: SIZE bytes, default 1 GiB; TMPDIR)
# Runs the gate (release build of benches/gate_output.rs) and the tee baseline RUNS times
# each (default 3), interleaved, and compares the medians.
set -eu

runs=${1:-3}
size=${SIZE:-1073741824}
cmd="head -c $size /dev/zero | tr '\\0' x | fold -w 100"
work=$(mktemp -d "${TMPDIR:-/tmp}/gate-output.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

cd "$(dirname "$0")/.."
cargo bench --bench gate_output --no-run >/dev/null 2>&1 || cargo bench --bench gate_output --no-run

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

    line=$(cargo bench --bench gate_output -- "$cmd" "$work/gate.log" 2>/dev/null)
    case $line in *status=Passed*) ;; *) echo "gate run failed: $line" >&2; exit 1 ;; esac
    got=$(wc -c <"$work/gate.log")
    [ "$got" -eq "$want" ] || { echo "gate log has $got bytes, tee's has $want" >&2; exit 1; }
    rm -f "$work/gate.log"
    echo "$line" | sed 's/.*elapsed_s=\([0-9.]*\).*/\1/' >>"$work/gate"
    echo "$line" | sed 's/.*peak_rss_kib=\([0-9]*\).*/\1/' >>"$work/rss"
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
