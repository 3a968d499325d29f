#!/bin/sh
# docs.sh [BUILD] - the API reference: docs/api.md is what scripts/apidoc.py
# makes of the public headers (make docs), every public function has a
# comment of its own, the script sees every function the compiler sees, and
# the README links the page.  Ends with "docs: P passed, F failed, K skipped".
set -u
py=/usr/bin/python3
root=$(pwd)
headers="include/convnet.h include/convnet_vis.h"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-docs-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
skip() { skipped=$((skipped + 1)); printf 'skip  %s: %s\n' "$1" "$2"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL  %s: %s\n' "$1" "$2"
    [ -s "$tmp/out" ] && head -n 20 "$tmp/out" | sed 's/^/      | /'
    return 1
}

# shellcheck disable=SC2086 # $headers: two words
if $py scripts/apidoc.py --check docs/api.md $headers >"$tmp/out" 2>&1; then
    ok "docs/api.md is up to date with the headers"
else
    fail "docs/api.md is up to date with the headers" "run make docs and commit docs/api.md"
fi

# shellcheck disable=SC2086
if $py scripts/apidoc.py --lint $headers >"$tmp/out" 2>&1; then
    ok "every public function has a comment"
else
    fail "every public function has a comment" "these have none of their own"
fi

# The functions the script finds are those the compiler declares (gcc's
# -aux-info lists every prototype with its file and line).
if cc -aux-info "$tmp/aux" -fsyntax-only -Iinclude -x c include/convnet_vis.h 2>/dev/null; then
    sed -n 's,^/\* \(include/[^:]*:[0-9]*\):.*,\1,p' "$tmp/aux" | sort >"$tmp/compiler"
    # shellcheck disable=SC2086
    $py scripts/apidoc.py --functions $headers | cut -d' ' -f1 | sort >"$tmp/script"
    if [ -s "$tmp/compiler" ] && diff "$tmp/compiler" "$tmp/script" >"$tmp/out"; then
        ok "the script sees the compiler's $(wc -l <"$tmp/compiler") functions"
    else
        fail "the script sees the compiler's functions" "compiler (<) and script (>) differ"
    fi
else
    skip "the script sees the compiler's functions" "cc is not gcc (no -aux-info)"
fi

# A function added without a comment, after a documented one (which then
# shares its comment and is flagged too) or on its own, fails the check, and
# the page is then stale.
mkdir -p "$tmp/include"
sed -e 's|^void cn_net_zero_grads(cn_net \*net);$|&\nvoid cn_net_new_one(cn_net *net);|' \
    -e 's|double \*forward, double \*backward, double \*update);$|&\n\ncn_status cn_another(void);|' \
    include/convnet.h >"$tmp/include/convnet.h"
$py scripts/apidoc.py --lint "$tmp/include/convnet.h" >"$tmp/out" 2>&1
lint=$?
$py scripts/apidoc.py --check docs/api.md "$tmp/include/convnet.h" include/convnet_vis.h >/dev/null 2>&1
check=$?
if [ $lint = 1 ] && grep -q "cn_net_new_one has no comment" "$tmp/out" &&
    grep -q "cn_another has no comment" "$tmp/out" && grep -q "cn_net_zero_grads has no comment" "$tmp/out" &&
    [ "$(wc -l <"$tmp/out")" = 3 ] && [ $check = 1 ]; then
    ok "a function added without a comment fails the check"
else
    fail "a function added without a comment fails the check" "--lint status $lint, --check status $check"
fi

# The README's section on the library links the page.
rm -f "$tmp/out"
if sed -n '/^## The library/,/^## /p' README.md | grep -q '(docs/api.md)'; then
    ok "README's 'The library' links docs/api.md"
else
    fail "README's 'The library' links docs/api.md" "no (docs/api.md) link in that section"
fi

echo "docs: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
