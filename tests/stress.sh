#!/bin/sh
# stress.sh BUILD [RUNS] - the whole suite (tests/run.sh) RUNS times in a row
# (default 10) while `stress` keeps both cores busy with as many spinning
# workers as there are cores: a test that depends on an idle machine (a
# bound in seconds, a signal racing the end of training) fails here.  Ends
# with "stress: K of RUNS runs passed" and fails unless all did.
set -u
build=${1:-build}
runs=${2:-10}
command -v stress >/dev/null || { echo "stress.sh: needs 'stress' (apt-get install stress)"; exit 1; }
stress --cpu "$(nproc)" >/dev/null 2>&1 &
spid=$!
# a signal ends the runs too (a trap alone would only stop stress and go on)
trap 'kill $spid 2>/dev/null' EXIT
trap 'kill $spid 2>/dev/null; exit 130' INT
trap 'kill $spid 2>/dev/null; exit 143' TERM
good=0
mkdir -p "$build"
for r in $(seq 1 "$runs"); do
    t0=$(date +%s)
    if sh tests/run.sh "$build" >"$build/stress-$r.log" 2>&1; then
        good=$((good + 1))
        echo "run $r: $(tail -1 "$build/stress-$r.log") ($(($(date +%s) - t0)) s)"
    else
        echo "run $r FAILED ($(($(date +%s) - t0)) s):"
        grep -E "^(FAIL|not ok)|failed" "$build/stress-$r.log" | head -20 | sed 's/^/    /'
    fi
done
echo "stress: $good of $runs runs passed"
[ "$good" = "$runs" ]
