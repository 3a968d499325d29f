#!/bin/sh
# man.sh CONVNET OUTDIR VERSION - the manual pages, made from the command's
# own help: convnet.1 from 'convnet --help' and convnet-CMD.1 from
# 'convnet CMD --help' for every command that lists, so that the pages say
# what --help says.  The help's layout is the source's (cli/*.c): a "usage:"
# line, paragraphs, and indented lists whose items are a tag, two spaces or
# more, and the text, continued on lines indented further.
set -eu
bin=$1 out=$2 version=$3
mkdir -p "$out"
"$bin" --help >"$out/convnet.help"
# The commands with their summaries: "name<TAB>summary" from the list.
awk '
    /^commands:/ { on = 1; next }
    on && /^$/ { exit }
    on && /^  [a-z]/ {
        if (name != "") print name "\t" text
        line = substr($0, 3); name = line; sub(/ .*/, "", name)
        text = ""
        if (match(line, /   +/)) text = substr(line, RSTART + RLENGTH)
        next
    }
    on { t = $0; sub(/^ +/, "", t); text = text == "" ? t : text " " t }
    END { if (name != "") print name "\t" text }
' "$out/convnet.help" >"$out/commands"
[ -s "$out/commands" ] || { echo "man.sh: no commands in '$bin --help'" >&2; exit 1; }

# page NAME SUMMARY SEEALSO < help > NAME.1
page() {
    awk -v name="$1" -v summary="$2" -v also="$3" -v version="$version" '
    function esc(s) {
        gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s)
        return s
    }
    # a line of text, safe at the start of a roff line
    function text(s) { s = esc(s); if (s ~ /^[.'"'"']/) s = "\\&" s; print s }
    BEGIN {
        print ".TH " toupper(name) " 1 \"\" \"convnet " version "\" \"convnet manual\""
        print ".nh"
        print ".SH NAME"
        print esc(name) " \\- " esc(summary)
    }
    NR == 1 {
        sub(/^usage: /, "")
        cmd = $0; args = ""
        n = split($0, w, " ")
        # the command and its subcommand in bold, the arguments as they are
        k = (n > 1 && w[2] ~ /^[a-z]+$/) ? 2 : 1
        cmd = w[1]; for (i = 2; i <= k; i++) cmd = cmd " " w[i]
        for (i = k + 1; i <= n; i++) args = args " " w[i]
        print ".SH SYNOPSIS"
        print "\\fB" esc(cmd) "\\fR" esc(args)
        print ".SH DESCRIPTION"
        para = 0
        next
    }
    /^$/ { para = 0; item = 0; next }
    /^  / {
        line = $0; ind = match(line, /[^ ]/) - 1
        if (ind == 2 || !item) {
            # an item: its tag, then its text after two spaces or more
            tag = substr(line, 3); rest = ""
            if (match(tag, /   */) && substr(tag, RSTART, 2) == "  ") {
                rest = substr(tag, RSTART + RLENGTH); tag = substr(tag, 1, RSTART - 1)
            }
            print ".TP"
            print "\\fB" esc(tag) "\\fR"
            if (rest != "") text(rest)
            col = ind + length(tag) + (rest == "" ? 0 : index(substr(line, ind + length(tag) + 1), rest) - 1)
            item = 1; para = 1
        } else {
            # more of the item: a line indented past its text keeps its break
            t = line; sub(/^ +/, "", t)
            if (col > 0 && ind > col) print ".br"
            text(t)
        }
        next
    }
    # a heading of its own ("commands:") becomes a section
    !para && /^[a-z]+:$/ { sub(/:$/, ""); print ".SH " toupper($0); para = 1; next }
    {
        if (!para || item) print ".PP"
        para = 1; item = 0
        text($0)
    }
    END {
        print ".SH SEE ALSO"
        print also
    }'
}

also=""
while IFS="$(printf '\t')" read -r cmd summary; do
    also="$also${also:+,
}.BR convnet\\-$cmd (1)"
done <"$out/commands"
first=$(sed -n 3p "$out/convnet.help" | sed 's/\.$//')
# "Define, train, ..." -> "define, train, ..." for the NAME line
first=$(printf '%s' "$first" | awk '{ print tolower(substr($0, 1, 1)) substr($0, 2) }')
page convnet "$first" "$also" <"$out/convnet.help" >"$out/convnet.1"
while IFS="$(printf '\t')" read -r cmd summary; do
    "$bin" "$cmd" --help >"$out/$cmd.help"
    page "convnet-$cmd" "$summary" ".BR convnet (1)" <"$out/$cmd.help" >"$out/convnet-$cmd.1"
    rm -f "$out/$cmd.help"
done <"$out/commands"
rm -f "$out/convnet.help" "$out/commands"
