#!/bin/sh
# install.sh BUILD - make install and make uninstall: into an empty temporary
# prefix, the files, sonames and links it must write; the shared libraries
# export what the headers declare and nothing else; pkg-config finds both
# libraries; every examples/*.c builds against the installed prefix with
# pkg-config's flags alone, linked to the shared libraries and statically to
# the archives (an example names the package it needs in a line
# "pkg-config: convnet_vis"; convnet otherwise), and hello runs; the
# installed convnet finds the installed model descriptions from any
# directory; the man pages render and say what --help says; make uninstall
# leaves no file behind, also under DESTDIR.  Prints "install: N passed, M
# failed, K skipped".  SAN (make test-asan) is the build's sanitizer flags.
set -u
build=${1:-build}
root=$(pwd)
bin="$root/$build/convnet"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL  %s: %s\n' "$1" "$2"
    [ -s "$tmp/log" ] && tail -n 15 "$tmp/log" | sed 's/^/      log| /'
    return 1
}
# check NAME CMD...: ok when CMD succeeds, its output in $tmp/log
check() {
    name=$1
    shift
    if "$@" >"$tmp/log" 2>&1; then ok "$name"; else fail "$name" "failed: $*"; fi
}
# make with this build's settings, apart from any make that runs the tests
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory BUILD="$build" "$@"; }
version=$(sed -n 's/^#define CN_VERSION "\(.*\)"/\1/p' include/convnet.h)
prefix="$tmp/prefix"
lib="$prefix/lib"
mkdir -p "$prefix"

# --- install ----------------------------------------------------------------------
check "make install PREFIX=tmp" mk install PREFIX="$prefix"

# Exactly these files, links counted.
{
    echo bin/convnet
    echo include/convnet.h
    echo include/convnet_vis.h
    for l in libconvnet libconvnet_vis; do
        printf 'lib/%s\n' "$l.a" "$l.so" "$l.so.0" "$l.so.$version"
        echo "lib/pkgconfig/${l#lib}.pc"
    done
    for m in models/*.cfg; do echo "share/convnet/$m"; done
    echo share/man/man1/convnet.1
    "$bin" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\).*/share\/man\/man1\/convnet-\1.1/p'
} | sort >"$tmp/want"
(cd "$prefix" && find . -type f -o -type l | sed 's|^\./||' | sort) >"$tmp/got"
if cmp -s "$tmp/want" "$tmp/got"; then
    ok "installed files ($(wc -l <"$tmp/got"))"
else
    diff "$tmp/want" "$tmp/got" >"$tmp/log"
    fail "installed files" "not the expected list (< expected, > installed)"
fi

# Sonames and links: libX.so -> libX.so.0 -> libX.so.VERSION, whose soname is
# libX.so.0; the pictures' library needs the core's by its soname.
for l in libconvnet libconvnet_vis; do
    soname=$(readelf -d "$lib/$l.so.$version" 2>&1 | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    if [ "$soname" != "$l.so.0" ]; then
        fail "$l soname" "'$soname', not $l.so.0"
    elif [ "$(readlink "$lib/$l.so.0")" != "$l.so.$version" ] || [ "$(readlink "$lib/$l.so")" != "$l.so.0" ]; then
        fail "$l soname" "links: $l.so -> $(readlink "$lib/$l.so"), $l.so.0 -> $(readlink "$lib/$l.so.0")"
    else
        ok "$l: soname $soname, $l.so -> $l.so.0 -> $l.so.$version"
    fi
done
if readelf -d "$lib/libconvnet_vis.so.$version" | grep -q 'NEEDED.*\[libconvnet\.so\.0\]'; then
    ok "libconvnet_vis needs libconvnet.so.0"
else
    fail "libconvnet_vis needs libconvnet.so.0" "no such NEEDED entry"
fi

# Exports: the functions the header declares (gcc -aux-info lists every
# prototype with its file), no more and no fewer.
for h in convnet convnet_vis; do
    gcc -aux-info "$tmp/aux" -fsyntax-only -I include "include/$h.h" 2>"$tmp/log"
    grep "^/\* include/$h\.h:" "$tmp/aux" | sed -E 's/ \(.*//; s/.*[ *]//' | sort -u >"$tmp/declared"
    cp "$tmp/declared" "$tmp/declared-$h"
    nm -D --defined-only "$lib/lib$h.so.$version" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
        sort -u >"$tmp/exported"
    extra=$(comm -13 "$tmp/declared" "$tmp/exported" | tr '\n' ' ')
    missing=$(comm -23 "$tmp/declared" "$tmp/exported" | tr '\n' ' ')
    if [ ! -s "$tmp/declared" ]; then
        fail "lib$h.so exports" "found no function in include/$h.h"
    elif [ -n "$extra" ]; then
        fail "lib$h.so exports" "symbols its header does not declare: $extra"
    elif [ -n "$missing" ]; then
        fail "lib$h.so exports" "declared in include/$h.h but not exported: $missing"
    else
        ok "lib$h.so exports the $(wc -l <"$tmp/declared") functions of $h.h and nothing else"
    fi
done

# --- pkg-config and the examples ------------------------------------------------
export PKG_CONFIG_PATH="$lib/pkgconfig"
unset PKG_CONFIG_LIBDIR 2>/dev/null
for p in convnet convnet_vis; do
    flags=$(pkg-config --cflags --libs "$p" 2>"$tmp/log")
    case " $flags " in
    *" -I$prefix/include "*"-L$lib "*) ;;
    *) fail "pkg-config $p" "'$flags'"; continue ;;
    esac
    v=$(pkg-config --modversion "$p")
    [ "$v" = "$version" ] && ok "pkg-config --cflags --libs $p; version $v" ||
        fail "pkg-config $p" "version '$v', convnet.h says $version"
done

# The flags of an example's package; "pkg-config: NAME" in the file names it.
package() {
    p=$(sed -n 's/.*pkg-config: *\(convnet[a-z_]*\).*/\1/p' "$1" | head -1)
    echo "${p:-convnet}"
}
cflags="-std=c11 -O1 -Wall -Wextra -Werror ${SAN:-}"
n=0
for ex in examples/*.c; do
    [ -f "$ex" ] || continue
    n=$((n + 1))
    name=$(basename "$ex" .c)
    p=$(package "$ex")
    # from elsewhere, so that nothing of the source tree is in reach
    (cd "$tmp" && cc $cflags "$root/$ex" $(pkg-config --cflags --libs "$p") -o "$tmp/$name") >"$tmp/log" 2>&1 &&
        LD_LIBRARY_PATH="$lib" ldd "$tmp/$name" >"$tmp/ldd" 2>&1 &&
        grep -q "libconvnet.so.0 => $lib/libconvnet.so.0" "$tmp/ldd" &&
        ok "example $name builds against the prefix ($p, shared)" ||
        fail "example $name builds against the prefix ($p, shared)" "see the log"
    # Static: the archives (-l:lib.a) and whatever Libs.private and
    # Requires.private add; the program needs no convnet library at run time.
    libs=$(pkg-config --static --libs "$p" | sed 's/-l\(convnet[a-z_]*\)\b/-l:lib\1.a/g')
    (cd "$tmp" && cc $cflags "$root/$ex" $(pkg-config --cflags "$p") $libs -o "$tmp/$name-static") >"$tmp/log" 2>&1 &&
        ! readelf -d "$tmp/$name-static" | grep -q 'NEEDED.*libconvnet' &&
        ok "example $name builds against the prefix ($p, static)" ||
        fail "example $name builds against the prefix ($p, static)" "see the log"
done
[ "$n" -gt 0 ] || fail "examples" "no examples/*.c"

# A program that takes every function of a header links statically with
# pkg-config --static's flags: Libs.private and Requires.private are whole.
for p in convnet convnet_vis; do
    {
        echo "#include <$p.h>"
        echo "#include <stdio.h>"
        echo "typedef void (*fn)(void);"
        echo "/* external: kept whole, and every function with it */"
        echo "fn all[] = {"
        cat "$tmp/declared-convnet" $([ $p = convnet ] || echo "$tmp/declared-$p") | sed 's/.*/    (fn)&,/'
        echo "};"
        echo "int main(void)"
        echo "{"
        printf '%s\n' '    printf("%zu\n", sizeof all / sizeof all[0]);'
        echo "    return 0;"
        echo "}"
    } >"$tmp/all_$p.c"
    libs=$(pkg-config --static --libs "$p" | sed 's/-l\(convnet[a-z_]*\)\b/-l:lib\1.a/g')
    want=$(cat "$tmp/declared-convnet" $([ $p = convnet ] || echo "$tmp/declared-$p") | wc -l)
    (cd "$tmp" && cc $cflags "all_$p.c" $(pkg-config --cflags "$p") $libs -o "all_$p") >"$tmp/log" 2>&1 &&
        [ "$("$tmp/all_$p")" = "$want" ] &&
        ok "all $want functions of $p link statically with pkg-config --static" ||
        fail "all functions of $p link statically" "see the log"
done

# hello runs with the installed library, and statically.
for h in hello hello-static; do
    if [ -x "$tmp/$h" ] && LD_LIBRARY_PATH="$lib" "$tmp/$h" >"$tmp/log" 2>&1 &&
        grep -q "^convnet $version (header $version)$" "$tmp/log" &&
        grep -q "^conv1 .* 8x24x24, 208 parameters$" "$tmp/log" &&
        grep -q "^fc1 .* 10x1x1, 11530 parameters$" "$tmp/log"; then
        ok "$h runs: version and layers"
    else
        fail "$h runs" "wrong output or status"
    fi
done

# --- the installed command ----------------------------------------------------------
mkdir -p "$tmp/elsewhere"
cd "$tmp/elsewhere"
"$prefix/bin/convnet" --version >"$tmp/log" 2>&1
grep -qx "convnet $version" "$tmp/log" && ok "installed convnet --version" ||
    fail "installed convnet --version" "not 'convnet $version'"
# A bare name finds the installed description (with or without .cfg); a file
# of that name here comes first; no such description fails as before.
"$prefix/bin/convnet" info lenet >"$tmp/log" 2>&1 && grep -q "^conv2 .* 50x8x8 " "$tmp/log" &&
    "$prefix/bin/convnet" info small.cfg >"$tmp/log" 2>&1 && grep -q "^fc1 " "$tmp/log" &&
    ok "installed convnet finds share/convnet/models from any directory" ||
    fail "installed convnet finds share/convnet/models" "info lenet / small.cfg"
cp "$root/models/small.cfg" lenet.cfg
"$prefix/bin/convnet" info lenet.cfg >"$tmp/log" 2>&1 && ! grep -q "^conv2 .* 50x8x8 " "$tmp/log" &&
    grep -q "^conv2 .* 16x14x14 " "$tmp/log" && ok "a description in the current directory comes first" ||
    fail "a description in the current directory comes first" "info lenet.cfg read the installed one"
"$prefix/bin/convnet" info nosuch >"$tmp/log" 2>&1
[ $? = 1 ] && grep -q "nosuch: cannot open" "$tmp/log" && ok "an unknown description still fails" ||
    fail "an unknown description still fails" "status or message"
cd "$root"

# --- man pages --------------------------------------------------------------------
# Each renders without a warning, and its text has every option and every
# line's words that the command's --help prints (the same source).
man1="$prefix/share/man/man1"
for page in "$man1"/*.1; do
    name=$(basename "$page" .1)
    cmd=${name#convnet}
    cmd=${cmd#-}
    # (all warnings but "can't break line": a long installed path is one word)
    if ! groff -man -Tutf8 -ww -Wbreak -z "$page" >"$tmp/log" 2>&1 || [ -s "$tmp/log" ]; then
        fail "man $name" "groff warns"
        continue
    fi
    MANWIDTH=200 man -l "$page" 2>"$tmp/log" | col -bx | tr -s ' \n' '  ' >"$tmp/man.txt"
    "$prefix/bin/convnet" $cmd --help | tr -s ' \n' '  ' | grep -oE '(^| )--?[a-z][a-z-]*' |
        sort -u >"$tmp/options"
    missing=""
    while read -r o; do
        grep -qe " $o" "$tmp/man.txt" || missing="$missing $o"
    done <"$tmp/options"
    # every word of --help, in its order ("usage:" aside, case and colons not
    # counted: "commands:" is a section heading)
    lost=$("$prefix/bin/convnet" $cmd --help | awk -v man="$tmp/man.txt" '
        function norm(w) { w = tolower(w); sub(/:$/, "", w); return w }
        BEGIN { getline text < man; n = split(text, m, " "); j = 1 }
        { for (i = 1; i <= NF; i++) {
              if (NR == 1 && i == 1) continue
              w = norm($i)
              while (j <= n && norm(m[j]) != w) j++
              if (j > n) { print "\"" $i "\" (line " NR ")"; exit }
              j++
        } }')
    if [ ! -s "$tmp/man.txt" ]; then
        fail "man $name" "man -l rendered nothing"
    elif ! grep -q "^ *[A-Z-]*(1) .* NAME $name - " "$tmp/man.txt"; then
        fail "man $name" "no NAME line: $(head -c 200 "$tmp/man.txt")"
    elif [ -n "$missing" ]; then
        fail "man $name" "lacks what --help says:$missing"
    elif [ -n "$lost" ]; then
        fail "man $name" "lacks --help's words from $lost on"
    else
        ok "man $name renders, with every word and the $(wc -l <"$tmp/options") options of --help"
    fi
done

# --- uninstall ----------------------------------------------------------------------
check "make uninstall PREFIX=tmp" mk uninstall PREFIX="$prefix"
left=$(cd "$prefix" && find . -type f -o -type l | head -5 | tr '\n' ' ')
[ -z "$left" ] && [ ! -e "$prefix/share/convnet" ] && ok "uninstall leaves no file in the prefix" ||
    fail "uninstall leaves no file in the prefix" "left: $left"

# DESTDIR: staged under it, for the prefix /usr/local, and removed again.
stage="$tmp/stage"
check "make install DESTDIR=tmp" mk install DESTDIR="$stage" PREFIX=/usr/local
if [ -x "$stage/usr/local/bin/convnet" ] && grep -qx "prefix=/usr/local" "$stage/usr/local/lib/pkgconfig/convnet.pc" &&
    "$stage/usr/local/bin/convnet" --help | grep -q "/usr/local/share/convnet/models" &&
    [ "$(cd "$stage" && find . -type f -o -type l | wc -l)" = "$(wc -l <"$tmp/want")" ]; then
    ok "DESTDIR stages the files for /usr/local"
else
    fail "DESTDIR stages the files for /usr/local" "files, convnet.pc or the models directory"
fi
check "make uninstall DESTDIR=tmp" mk uninstall DESTDIR="$stage" PREFIX=/usr/local
left=$(cd "$stage" && find . -type f -o -type l | head -5 | tr '\n' ' ')
[ -z "$left" ] && ok "uninstall under DESTDIR leaves no file" || fail "uninstall under DESTDIR leaves no file" "left: $left"

echo "install: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
