#!/bin/sh
# exports.sh NODE HEADER OBJECT... - the linker version script of a shared
# library: under the version node NODE it exports the symbols that HEADER
# declares (its words, preprocessed: no comment counts) and the objects
# define, and hides all the others, the internals that the library's own
# files share.  The header is the list: a function added to it is exported
# with no change here.  tests/install.sh checks that every function the
# header declares is exported, and nothing else.
set -eu
node=$1 header=$2
shift 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/exports-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -E -P -Iinclude "$header" >"$tmp/pre"
grep -oE '[A-Za-z_][A-Za-z0-9_]*' "$tmp/pre" | sort -u >"$tmp/words"
nm -g --defined-only "$@" >"$tmp/nm"
awk 'NF == 3 { print $3 }' "$tmp/nm" | sort -u >"$tmp/defined"
comm -12 "$tmp/words" "$tmp/defined" >"$tmp/exports"
[ -s "$tmp/exports" ] || { echo "exports.sh: $header declares nothing the objects define" >&2; exit 1; }
printf '%s {\n  global:\n' "$node"
sed 's/.*/    &;/' "$tmp/exports"
printf '  local:\n    *;\n};\n'
