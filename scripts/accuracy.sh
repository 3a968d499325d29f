#!/bin/sh
# accuracy.sh [BUILD] - the figures of README's Accuracy table (make accuracy):
# each recipe below trained with the seeds 1, 2 and 3, each model's test
# accuracy (also with test-time augmentation, --tta flip or --tta shift,
# where the row says so)
# and training time, and their means, as a Markdown table on stdout.  Long
# (hours on 2 cores): not part of make test or CI.
#
#   SEEDS="1 2 3"    the seeds (the table's figures are means over these three)
#   THREADS=2        training and evaluation threads
#   OUT=out/accuracy where the models and logs go (ROW-seedN.safetensors, .log)
#   ROWS="a b"       only these rows (their names below); default: all
#   QUICK=1          a check of this script: 1 epoch of 2 000 images per run
#
# A row: NAME|DATA|DESCRIPTION|TTA|OPTIONS (TTA: flip, shift or none).
set -u
build="$(cd "${1:-build}" && pwd)"
bin="$build/convnet"
root="$(cd "$(dirname "$0")/.." && pwd)"
seeds=${SEEDS:-1 2 3}
threads=${THREADS:-2}
out=${OUT:-out/accuracy}
py=/usr/bin/python3
rows='mnist-fast-50k|mnist|models/mnist-fast.cfg|none|
mnist-fast|mnist|models/mnist-fast.cfg|none|--val 0
mnist-fast-30|mnist|models/mnist-fast.cfg|none|--epochs 30 --val 0
mnist-best|mnist|models/mnist-best.cfg|shift|--val 0
fashion-fast|fashion-mnist|models/fashion-fast.cfg|flip|--val 0
fashion-best|fashion-mnist|models/fashion-best.cfg|flip|--val 0
fashion-20|fashion-mnist|models/fashion-best.cfg|flip|--val 0 --mixup 0 --epochs 20'
[ -x "$bin" ] || { echo "accuracy.sh: no $bin: run make first" >&2; exit 1; }
mkdir -p "$out" || exit 1
quick=""
[ "${QUICK:-0}" = 1 ] && quick="--epochs 1 --limit 2000"

# acc FILE: the accuracy in an eval --json output, in percent.
acc() { "$py" -c 'import json,sys; print("%.2f" % (100 * json.load(open(sys.argv[1]))["accuracy"]))' "$1"; }
# mean N...: their mean, two decimals.
mean() { echo "$@" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s / NF }'; }

echo "| recipe | options | seeds | test accuracy per seed | mean | mean with --tta | mean training time |"
echo "|---|---|---|---|---|---|---|"
status=0
while IFS='|' read -r name data cfg tta opts; do
    if [ -n "${ROWS:-}" ]; then
        case " $ROWS " in *" $name "*) ;; *) continue ;; esac
    fi
    accs="" ttas="" times=""
    for s in $seeds; do
        model="$out/$name-seed$s.safetensors"
        # shellcheck disable=SC2086 # $opts and $quick: several options
        if ! "$bin" train "$root/$cfg" --data "$root/data/$data" --seed "$s" --threads "$threads" \
            -o "$model" --quiet $opts $quick </dev/null >"$out/$name-seed$s.log" 2>&1; then
            echo "accuracy.sh: $name, seed $s: training failed (see $out/$name-seed$s.log)" >&2
            status=1
            continue
        fi
        # The training time: the last epoch line's last figure ("... 88.4 s").
        t=$(grep '^epoch' "$out/$name-seed$s.log" | tail -1 | awk '{ print $(NF - 1) }')
        "$bin" eval "$model" --data "$root/data/$data" --json --threads "$threads" </dev/null \
            >"$out/eval.json" && accs="$accs $(acc "$out/eval.json")"
        if [ "$tta" != none ]; then
            "$bin" eval "$model" --data "$root/data/$data" --json --tta "$tta" --threads "$threads" \
                </dev/null >"$out/eval.json" && ttas="$ttas $(acc "$out/eval.json")"
        fi
        times="$times $t"
    done
    [ -n "$accs" ] || continue
    echo "| $cfg | ${opts:-} | $seeds | $(echo $accs | sed 's/ /%, /g')% | **$(mean $accs)%** |" \
        "$([ -n "$ttas" ] && echo "$(mean $ttas)% ($tta)" || echo "not used") | $(mean $times) s |"
done <<ROWS
$rows
ROWS
exit $status
