#!/usr/bin/python3
"""check_layering.py BUILD - fails when code reaches past the device seam or
the modules depend on each other in a circle.

Above the seam (the layers, the network, training, the step, model files,
the optimizer, gradient checks) tensor memory is the backend's: that code
names it and hands it to the backend's operations (src/backend/backend.h).
Checked on the sources and on what the compiled objects reference:

  1. no file above the seam includes a kernel header (kernels/...) or the
     CPU backend's private one (backend/cpu.h);
  2. no object above the seam references a symbol that a kernel object or
     the CPU backend defines, but for cn_backend_create and
     cn_backend_destroy;
  3. no layer object copies, clears or allocates memory itself (memcpy,
     memset, memmove, malloc, calloc, realloc, cn_alloc), and the network
     allocates no tensor memory (cn_alloc is the CPU's aligned allocator);
  4. the library's modules form no cycle: net, train, step, model and the
     rest call each other one way only (symbols defined and used);
  5. the core library (libconvnet.a) needs no cairo or stb: only the
     pictures (libconvnet_vis.a) do.
Each broken rule is printed with the file and symbol; the exit status is 1
when any is."""
import glob
import os
import re
import subprocess
import sys

ABOVE = ["src/layers/*.c", "src/net.c", "src/train.c", "src/step.c", "src/model.c",
         "src/optim/*.c", "src/gradcheck.c", "src/plan.c"]
# The registry's entry points: a backend made, destroyed, or stood in for
# (the planner's stand-in for a device that is not here).
SEAM_OK = {"cn_backend_create", "cn_backend_destroy", "cn_backend_standin"}
LAYER_FORBIDDEN = {"memcpy", "memset", "memmove", "malloc", "calloc", "realloc", "cn_alloc"}
NET_FORBIDDEN = {"cn_alloc"}


def sources(patterns):
    return sorted(f for p in patterns for f in glob.glob(p))


def symbols(obj):
    """(defined, undefined) global symbols of an object file."""
    out = subprocess.run(["nm", "-g", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRCVW":
            defined.add(parts[2])
    return defined, undefined


def module(src):
    """The module a source belongs to: one per file, the layers one module."""
    return "layers" if src.startswith("src/layers/") else os.path.splitext(src[4:])[0]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    errors = []
    above = sources(ABOVE)

    # 1. includes (and, in the layers, calls that the compiler may inline
    # and so hide from rule 3)
    for src in above:
        for n, line in enumerate(open(src), 1):
            code = line.split("//")[0]
            calls = set(re.findall(r"\b(\w+)\s*\(", code)) & LAYER_FORBIDDEN
            if src.startswith("src/layers/") and calls and not code.lstrip().startswith("*"):
                errors.append(f"{src}:{n}: calls {', '.join(sorted(calls))}: a layer moves and "
                              "allocates no memory itself")
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if m and (m.group(1).startswith("kernels/") or m.group(1) == "backend/cpu.h"):
                errors.append(f"{src}:{n}: includes {m.group(1)}: above the seam only "
                              "backend/backend.h (through internal.h) is seen")

    # Every source compiled on its own (kernels/conv.c and its kind are
    # included into each kernels/cpu_<isa>.c instead).
    objs = {src: os.path.join(build, src[:-2] + ".o") for src in sources(["src/*.c", "src/*/*.c"])}
    objs = {s: o for s, o in objs.items() if os.path.exists(o) or s in above}
    missing = [o for o in objs.values() if not os.path.exists(o)]
    if missing:
        print(f"check-layering: build first (missing {missing[0]})", file=sys.stderr)
        return 2
    syms = {src: symbols(o) for src, o in objs.items()}
    extra = [os.path.join(build, "src/kernels", f) for f in ("cpu_portable.o", "cpu_avx2.o",
                                                              "cpu_avx512.o")]
    below = set()
    for src, (defined, _) in syms.items():
        if src.startswith("src/kernels/") or src.startswith("src/backend/"):
            below |= defined
    for o in extra:
        if os.path.exists(o):
            below |= symbols(o)[0]

    # 2 and 3: what the objects above the seam reference
    for src in above:
        undefined = syms[src][1]
        for s in sorted(undefined & below - SEAM_OK):
            errors.append(f"{src}: calls {s}, which is below the seam (kernels/ or the CPU "
                          "backend): go through the backend's table")
        if src.startswith("src/layers/"):
            for s in sorted(undefined & LAYER_FORBIDDEN):
                errors.append(f"{src}: uses {s}: a layer moves and allocates no memory itself "
                              "(the backend's copy, fill and the network's plan do)")
        if src == "src/net.c":
            for s in sorted(undefined & NET_FORBIDDEN):
                errors.append(f"{src}: uses {s}: tensor memory comes from the backend's alloc")

    # 4. cycles between modules (kernels and backends below the seam, the
    # pictures and the leaf helpers included)
    owner = {}
    for src, (defined, _) in syms.items():
        for s in defined:
            owner[s] = module(src)
    edges = {}
    for src, (_, undefined) in syms.items():
        a = module(src)
        for s in undefined:
            b = owner.get(s)
            if b and b != a:
                edges.setdefault(a, set()).add(b)
    state, stack = {}, []

    def visit(a):
        state[a] = 1
        stack.append(a)
        for b in sorted(edges.get(a, ())):
            if state.get(b) == 1:
                cycle = stack[stack.index(b):] + [b]
                errors.append("modules call each other in a circle: " + " -> ".join(cycle))
            elif not state.get(b):
                visit(b)
        stack.pop()
        state[a] = 2

    for a in sorted(edges):
        if not state.get(a):
            visit(a)

    # 5. the core library links no graphics
    core = os.path.join(build, "libconvnet.a")
    if os.path.exists(core):
        out = subprocess.run(["nm", "-u", core], capture_output=True, text=True).stdout
        for s in sorted(set(re.findall(r"\b(cairo_\w+|stbi_\w+)", out))):
            errors.append(f"{core}: needs {s}: only libconvnet_vis.a may draw or read images")

    for e in errors:
        print("check-layering: " + e)
    n_mod = len({module(s) for s in syms})
    if not errors:
        print(f"check-layering: {len(above)} files above the device seam reach it only through "
              f"the backend's table; {n_mod} modules, no cycle; libconvnet.a needs no graphics")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
