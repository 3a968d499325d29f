#!/usr/bin/python3
"""apidoc.py - the API reference (docs/api.md) from the public headers.

  apidoc.py HEADER... [-o FILE]   writes the reference (stdout without -o)
  apidoc.py --check FILE HEADER...  fails when FILE is not what the headers give
  apidoc.py --lint HEADER...        fails when a function has no comment of its own
  apidoc.py --functions HEADER...   lists the functions found: "HEADER:LINE NAME"

A header is read as a sequence of entries: a comment, then the declarations
that follow it with no blank line between (a function, a typedef, a
#define).  A comment "/* ----- name */" starts a section.  A function is
documented when it is the only declaration of its entry and a comment heads
the entry, or when that comment names it (one comment for cn_net_get and
cn_net_set names both); a function declared right after another one without
a comment of its own is not.  `make docs` writes docs/api.md; tests/docs.sh
checks that it is up to date and that --lint passes.
"""
import os
import re
import sys

SECTION = re.compile(r"^/\*\s*-{5,}\s*(.*?)\s*\*/$")


class Entry:
    def __init__(self, section):
        self.section = section
        self.comment = None  # text of the heading comment, or None
        self.decls = []  # (kind, name, code, line): kind function/type/macro/other


def comment_text(raw):
    """The prose of a /* ... */ comment: the stars and indentation gone."""
    body = raw[2:-2]
    lines = [re.sub(r"^\s*\* ?", "", l) if i else l for i, l in enumerate(body.split("\n"))]
    return "\n".join(l.strip() for l in lines).strip()


def decl_kind(code):
    """(kind, name) of one declaration's code."""
    if code.startswith("#define"):
        return "macro", code.split()[1].split("(")[0]
    flat = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    if flat.startswith("typedef"):
        depth, outer = 0, ""
        for ch in flat:  # the text outside braces
            depth += ch == "{"
            if depth == 0:
                outer += ch
            depth -= ch == "}"
        m = re.search(r"\(\s*\*\s*(\w+)\s*\)", outer) or re.search(r"(\w+)\s*;\s*$", outer)
        return "type", m.group(1)
    m = re.match(r"[^({]*?(\w+)\s*\(", flat)
    if m:
        return "function", m.group(1)
    m = re.search(r"(\w+)\s*(\[[^]]*\])?\s*;\s*$", flat)
    return "other", m.group(1) if m else flat.strip()


def parse(path):
    """(intro, [Entry]) of a header."""
    text = open(path, encoding="utf-8").read()
    lines = text.split("\n")
    entries, intro, section = [], None, ""
    cur = None  # the entry being filled: declarations may still join it
    i, n = 0, len(lines)
    skip = 0  # inside #ifdef __cplusplus ... #endif
    while i < n:
        line = lines[i]
        s = line.strip()
        if skip:
            skip += s.startswith("#if")
            skip -= s.startswith("#endif")
            i += 1
            continue
        if s == "":
            cur = None
            i += 1
            continue
        if s.startswith("/*"):
            start = i
            while "*/" not in lines[i]:
                i += 1
            raw = "\n".join(lines[start : i + 1]).strip()
            i += 1
            m = SECTION.match(raw)
            if intro is None and not entries:
                intro = comment_text(raw)
            elif m:
                section, cur = m.group(1), None
            else:
                cur = Entry(section)
                cur.comment = comment_text(raw)
                entries.append(cur)
            continue
        if s.startswith("#"):
            if s.startswith("#ifdef __cplusplus"):
                skip = 1
            elif s.startswith("#define") and not re.match(r"#define\s+\w+_H\s*$", s):
                code = line
                while code.endswith("\\"):
                    i += 1
                    code += "\n" + lines[i]
                if cur is None:
                    cur = Entry(section)
                    entries.append(cur)
                cur.decls.append(decl_kind(code) + (code, i + 1))
            i += 1
            continue
        # a declaration: up to the ';' outside braces, comments and all
        start, depth, code = i, 0, []
        while True:
            l = lines[i]
            code.append(l)
            bare = re.sub(r"/\*.*?\*/", "", l)
            depth += bare.count("{") - bare.count("}")
            i += 1
            if depth == 0 and bare.rstrip().endswith(";"):
                break
            if i >= n:
                sys.exit(f"{path}:{start + 1}: a declaration without its ';'")
        code = "\n".join(code)
        if cur is None:
            cur = Entry(section)
            entries.append(cur)
        cur.decls.append(decl_kind(code) + (code, start + 1))
    return intro or "", entries


def undocumented(entries):
    """The functions (name, line) without a comment of their own."""
    bad = []
    for e in entries:
        for kind, name, _, line in e.decls:
            if kind != "function":
                continue
            named = e.comment is not None and re.search(r"\b%s\b" % name, e.comment)
            alone = e.comment is not None and len(e.decls) == 1
            if not (named or alone):
                bad.append((name, line))
    return bad


def slug(heading):
    """The anchor GitHub gives a heading."""
    s = heading.strip().lower().replace("`", "")
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def render(headers):
    parsed = [(h, *parse(h)) for h in headers]
    # every documented name, and the anchor of its entry
    anchor = {}
    for _, _, entries in parsed:
        for e in entries:
            names = [d[1] for d in e.decls]
            if names:
                e.heading = ", ".join("`%s`" % x for x in names)
                for x in names:
                    anchor.setdefault(x, slug(e.heading))

    def prose(text, own=()):
        # names in code style, the documented ones linked to their entry
        def name(m):
            w = m.group(0).replace("&lt;", "<")
            bare = w[:-2] if w.endswith("()") else w
            if bare in anchor and bare not in own:
                return "[`%s`](#%s)" % (w, anchor[bare])
            return "`%s`" % w

        def plain(part):  # markdown's own characters, outside code
            part = part.replace("*", "\\*").replace("<", "&lt;")
            return re.sub(r"\b(?:cn|CN)_(?:\w|&lt;\w+>)+(?:\(\))?", name, part)

        parts = text.split("`")  # what is already in code stays as it is
        return "`".join(p if i % 2 else plain(p) for i, p in enumerate(parts))

    out = [
        "# API reference",
        "",
        "<!-- Written by scripts/apidoc.py (make docs) from %s: edit the headers,"
        " not this file. -->" % ", ".join(headers),
        "",
        "Every declaration of the public headers with its comment, in the headers' order"
        " and sections. The headers are the source: this page is made from them by"
        " `make docs`, and the tests fail when it is out of date or when a function has"
        " no comment.",
        "",
    ]
    for h, _, entries in parsed:
        base = os.path.basename(h)
        sections = []
        for e in entries:
            if e.section not in sections:
                sections.append(e.section)
        links = " · ".join("[%s](#%s)" % (s, slug(s)) for s in sections if s)
        out.append("- [%s](#%s): %s" % (base, slug(base), links))
    out.append("")
    for h, intro, entries in parsed:
        out += ["## %s" % os.path.basename(h), "", prose(intro), ""]
        section = ""
        for e in entries:
            if e.section != section:
                section = e.section
                out += ["### %s" % section, ""]
            names = [d[1] for d in e.decls]
            if names:
                out += ["#### %s" % e.heading, ""]
            if e.comment:
                out += [prose(e.comment, names), ""]
            if e.decls:
                out += ["```c"] + [d[2] for d in e.decls] + ["```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv):
    if len(argv) >= 2 and argv[0] == "--check":
        want = render(argv[2:])
        have = open(argv[1], encoding="utf-8").read() if os.path.exists(argv[1]) else ""
        if have != want:
            print("%s is not what %s give: run make docs" % (argv[1], " and ".join(argv[2:])))
            return 1
        return 0
    if argv and argv[0] == "--lint":
        bad = []
        for h in argv[1:]:
            bad += ["%s:%d: %s has no comment of its own" % (h, l, f)
                    for f, l in undocumented(parse(h)[1])]
        print("\n".join(bad) if bad else "every function has a comment")
        return 1 if bad else 0
    if argv and argv[0] == "--functions":
        for h in argv[1:]:
            for e in parse(h)[1]:
                for kind, name, _, line in e.decls:
                    if kind == "function":
                        print("%s:%d %s" % (h, line, name))
        return 0
    out = None
    if "-o" in argv:
        k = argv.index("-o")
        out, argv = argv[k + 1], argv[:k] + argv[k + 2 :]
    if not argv or any(a.startswith("-") for a in argv):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    text = render(argv)
    if out:
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
