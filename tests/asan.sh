#!/bin/sh
# asan.sh BUILD - the whole test suite (tests/run.sh) on a build made with
# -fsanitize=address,undefined (make test-asan).  Every report of
# AddressSanitizer, LeakSanitizer or UBSan fails the run: the sanitizers stop
# the process with a status no test expects, and write their report to a file
# under BUILD/sanitizer/, which this script prints; any such file fails the
# run, also from a process whose exit status no test looks at.
set -u
build=${1:-build-asan}
root=$(pwd)
logs="$root/$build/sanitizer"
rm -rf "$logs" && mkdir -p "$logs"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=86:abort_on_error=0:detect_stack_use_after_return=1:strict_init_order=1:check_initialization_order=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$logs/ubsan"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
# tests/cli.sh does not judge resident memory under a sanitizer's allocator
export CONVNET_SANITIZER=AddressSanitizer
t0=$(date +%s)
sh tests/run.sh "$build"
status=$?
reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
    for f in $reports; do
        echo "--- sanitizer report $f"
        cat "$f"
    done
    echo "asan: $(echo "$reports" | wc -l) sanitizer report(s)"
    status=1
else
    echo "asan: no sanitizer reports"
fi
echo "asan: $(($(date +%s) - t0)) s"
exit $status
