#!/bin/sh
# run.sh BUILD SECONDS MODE TARGET... - runs each fuzz target for SECONDS on
# its seed corpus (fuzz/corpus/TARGET, read only) and prints how many inputs
# it ran.  MODE "smoke" starts from the seeds alone each time
# (BUILD/smoke/TARGET, emptied first); "keep" grows BUILD/corpus/TARGET from
# run to run.  A crash, leak, timeout (an input taking over 30 s) or an
# allocation over 2 GB fails the run: the input is left in BUILD/artifacts/
# and the end of the target's log is printed.
# The fuzzers start from FUZZ_SEED (1), so that a run can be repeated.
# fontconfig's caches (reached when the log target draws text) are not leaks
# (tests/lsan.supp says why).
set -u
build=$1 seconds=$2 mode=$3
shift 3
mkdir -p "$build/artifacts" "$build/logs"
failed=""
total=0
for t in "$@"; do
    bin="$build/fuzz_$t"
    [ -x "$bin" ] || { echo "fuzz: $bin is missing (make fuzz)"; exit 1; }
    if [ "$mode" = smoke ]; then work="$build/smoke/$t"; rm -rf "$work"; else work="$build/corpus/$t"; fi
    mkdir -p "$work"
    log="$build/logs/$t.log"
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS=suppressions=tests/lsan.supp:print_suppressions=0 \
    "$bin" -seed="${FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$t-" "$work" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    corpus=$(ls "$work" | wc -l)
    if [ "$rc" = 0 ]; then
        printf 'fuzz: %-12s %10s inputs in %ss, coverage %s, corpus %s files\n' \
            "$t" "${runs:-?}" "$seconds" "${cov:-?}" "$corpus"
        total=$((total + ${runs:-0}))
    else
        printf 'fuzz: %-12s FAILED (exit %s); log %s:\n' "$t" "$rc" "$log"
        grep -E 'ERROR|SUMMARY|broken promise|Test unit written|runtime error' "$log" | head -20
        tail -40 "$log"
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed"
    exit 1
fi
echo "fuzz: all $# targets passed, $total inputs in all"
