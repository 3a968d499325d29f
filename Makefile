# convnet - build, test, demo.  `make help` lists the targets.

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
WERROR   ?= -Werror
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes $(WERROR)
CPPFLAGS += -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L
# -fPIC: the same objects make the static and the shared libraries.
CFLAGS   += -std=c11 $(OPT) -g $(WARN) -MMD -MP -fPIC
# Two libraries: the core (libconvnet: networks, training, files) needs
# cJSON, zlib, libm and POSIX threads (and OpenMP where the compiler has it:
# a team pass's workers are threads of their own, kernels/team.c); the pictures
# (libconvnet_vis: image files, drawings, the report's figures) add cairo and
# stb, which a program that trains or classifies does not link.
CORE_LDLIBS := -lcjson -lz -lm -pthread
VIS_LDLIBS  := -lcairo -lstb
LDLIBS   += $(VIS_LDLIBS) $(CORE_LDLIBS)
# Extra flags for compiling and linking everything: make test-asan sets the
# sanitizers here (and BUILD=build-asan).
SAN      ?=
CFLAGS   += $(SAN)
LDFLAGS  += $(SAN)
# Pictures (src/vis) draw with cairo and read image files with stb.
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo 2>/dev/null || echo -I/usr/include/cairo)

# --- what this machine has -------------------------------------------------
probe = $(shell printf 'int main(void){return 0;}\n' | $(CC) $(1) -x c - -o /dev/null 2>/dev/null && echo yes)
ifeq ($(call probe,-fopenmp),yes)
  CFLAGS  += -fopenmp
  LDFLAGS += -fopenmp
  OPENMP  := yes
else
  CFLAGS  += -Wno-unknown-pragmas
  OPENMP  := no
endif
ARCH := $(shell $(CC) -dumpmachine)
ifneq ($(findstring x86_64,$(ARCH)),)
  ifeq ($(call probe,-mavx512f -mavx512vl -mavx512dq -mavx512bw -mfma),yes)
    X86 := yes
    CPPFLAGS += -DCN_HAVE_X86_KERNELS
  endif
endif

# --- sources ---------------------------------------------------------------
CORE_SRC := $(wildcard src/*.c src/io/*.c src/layers/*.c src/optim/*.c src/backend/*.c) \
            src/kernels/gemm_ref.c src/kernels/conv_ref.c src/kernels/gemm_pack.c \
            src/kernels/plain.c src/kernels/team.c
# make CUDA=1: the CUDA backend too (src/backend/cuda.cu: cuBLAS, cuDNN 9 and
# kernels of its own), compiled with nvcc from CUDA_HOME and linked with the
# toolkit's libraries (found at run time through the rpath); without it
# src/backend/nocuda.c says how to get one.  Best in a build directory of its
# own: make BUILD=build-cuda CUDA=1 (nvcc's host code is C++: -lstdc++, and no
# -Wpedantic, which its generated line markers fail).  CUDA_ARCH: the GPUs to compile for
# (Ampere and Hopper, and PTX that newer ones compile when loading).
CUDA      ?= 0
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O3 -std=c++17 $(CUDA_ARCH) -Werror all-warnings \
             -Xcompiler -fPIC,-g,-Wall,-Wextra,-Wshadow$(if $(WERROR),$(comma)-Werror)
comma := ,
ifeq ($(CUDA),1)
  CORE_SRC := $(filter-out src/backend/nocuda.c,$(CORE_SRC))
  CUDA_LIBDIR := $(CUDA_HOME)/lib64
  CORE_LDLIBS += -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcudnn -lcublas -lcudart -lstdc++
endif
VIS_SRC  := $(wildcard src/vis/*.c)
LIB_SRC  := $(CORE_SRC) $(VIS_SRC)
LIB_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/src/kernels/cpu_portable.o
ifeq ($(X86),yes)
  LIB_OBJ += $(BUILD)/src/kernels/cpu_avx2.o $(BUILD)/src/kernels/cpu_avx512.o
endif
ifeq ($(CUDA),1)
  LIB_OBJ += $(BUILD)/src/backend/cuda.o
endif
VIS_OBJ  := $(VIS_SRC:%.c=$(BUILD)/%.o)
# make MPI=1: convnet train runs data-parallel under mpirun (Open MPI; the
# library itself never needs MPI: the CLI gives it a communicator).
MPI      ?= 0
ifeq ($(MPI),1)
  CLI_COMM := cli/comm/mpi.c
  MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
  MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
else
  CLI_COMM := cli/comm/solo.c
endif
CLI_SRC  := $(wildcard cli/*.c) $(CLI_COMM)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/default_model.o
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
# The fuzz targets, compiled once more with this compiler into the test
# program, where tests/test_replay.c feeds them every file of fuzz/corpus:
# fuzz/fuzz_NAME.c's entry points become cn_fuzz_NAME_one (and _init).  The
# log target reads with the command's own reader (cli/log.c).
FUZZ_SRC   := $(wildcard fuzz/fuzz_*.c)
REPLAY_OBJ := $(FUZZ_SRC:fuzz/fuzz_%.c=$(BUILD)/fuzz/replay_%.o) \
              $(BUILD)/cli/log.o $(BUILD)/cli/common.o $(BUILD)/gen/default_model.o

LIB  := $(BUILD)/libconvnet.a
VLIB := $(BUILD)/libconvnet_vis.a
# Shared libraries: libconvnet.so.$(SOVERSION) (soname) -> .so.$(VERSION);
# the soname changes when the API breaks.  The version is convnet.h's
# CN_VERSION (one place to change it).
VERSION   := $(shell sed -n 's/^\#define CN_VERSION "\(.*\)"/\1/p' include/convnet.h)
SOVERSION := 0
SOLIB  := $(BUILD)/libconvnet.so
VSOLIB := $(BUILD)/libconvnet_vis.so
BIN  := $(BUILD)/convnet
TBIN := $(BUILD)/test_convnet

.PHONY: accuracy install uninstall all test test-asan test-valgrind test-mpi test-stress test-fresh bench-mpi bench-gpu gpu-check plan-check demo data bench bench-alone clean format format-check help info \
        fuzz fuzz-smoke fuzz-run check-layering FORCE examples docs
all: $(BIN) $(TBIN) $(SOLIB) $(VSOLIB) examples

info:
	@echo "compiler: $(CC) ($(ARCH)), OpenMP: $(OPENMP), x86 SIMD kernels: $(if $(X86),avx2 + avx512,no), CUDA: $(if $(filter 1,$(CUDA)),yes ($(NVCC)),no (make CUDA=1))"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# The pictures see the core's public header only (no -Isrc: src/vis/vis.h).
$(BUILD)/src/vis/%.o: CPPFLAGS := $(filter-out -Isrc,$(CPPFLAGS)) $(CAIRO_CFLAGS)

$(BUILD)/fuzz/replay_%.o: fuzz/fuzz_%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DLLVMFuzzerTestOneInput=cn_fuzz_$*_one \
	  -DLLVMFuzzerInitialize=cn_fuzz_$*_init -c $< -o $@

# Kernels: -O3 and contraction into FMA; the CPU kernels are compiled once per
# instruction set (kernels/cpu_<isa>.c, which include the shared kernel code).
# No kernel reads errno, and without it sqrtf vectorises (the same bits).
KFLAGS := -O3 -ffp-contract=fast -fno-math-errno
$(BUILD)/src/kernels/%.o: src/kernels/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(KFLAGS) -c $< -o $@
# The plain kernels give the same bits as the host's own arithmetic (the
# input's preparation): no contraction into fused multiply-adds.
$(BUILD)/src/kernels/plain.o: KFLAGS := -O3 -ffp-contract=off -fno-math-errno
$(BUILD)/src/kernels/cpu_avx2.o: src/kernels/cpu_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(KFLAGS) -mavx2 -mfma -c $< -o $@
$(BUILD)/src/kernels/cpu_avx512.o: src/kernels/cpu_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(KFLAGS) -mavx512f -mavx512vl -mavx512dq -mavx512bw -mfma \
	  -mprefer-vector-width=512 -c $< -o $@

# The CUDA backend, with nvcc (make CUDA=1); made again when nvcc's flags
# change (CUDA_ARCH, say: the stamp holds them).
$(BUILD)/src/backend/cuda.o: src/backend/cuda.cu $(BUILD)/nvcc.stamp
	@mkdir -p $(dir $@)
	$(NVCC) $(CPPFLAGS) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/nvcc.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo "$(NVCC) $(NVCCFLAGS)" | cmp -s - $@ || echo "$(NVCC) $(NVCCFLAGS)" > $@

# The library is made again when CUDA= changes (the stamp holds its value).
$(BUILD)/cuda.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo "CUDA=$(CUDA)" | cmp -s - $@ || echo "CUDA=$(CUDA)" > $@

$(LIB): $(LIB_OBJ) $(BUILD)/cuda.stamp
	@rm -f $@
	$(AR) rcs $@ $(filter %.o,$^)

$(VLIB): $(VIS_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# They export what their header declares and nothing else (a version script
# made from the header, scripts/exports.sh), and every symbol they need
# resolves at their link (-z defs; not under the sanitizers, whose runtime
# the program brings): the pictures reach the core through convnet.h only.
SO_DEFS := $(if $(SAN),,-Wl,-z,defs)
$(BUILD)/convnet.map: include/convnet.h scripts/exports.sh $(LIB_OBJ)
	CC="$(CC)" sh scripts/exports.sh CONVNET_$(SOVERSION) $< $(LIB_OBJ) > $@.tmp && mv $@.tmp $@
$(BUILD)/convnet_vis.map: include/convnet_vis.h scripts/exports.sh $(VIS_OBJ)
	CC="$(CC)" sh scripts/exports.sh CONVNET_VIS_$(SOVERSION) $< $(VIS_OBJ) > $@.tmp && mv $@.tmp $@
$(SOLIB).$(VERSION): $(LIB_OBJ) $(BUILD)/convnet.map
	$(CC) -shared -Wl,-soname,libconvnet.so.$(SOVERSION) -Wl,--version-script,$(BUILD)/convnet.map \
	  $(SO_DEFS) $(LDFLAGS) $(LIB_OBJ) $(CORE_LDLIBS) -o $@
$(VSOLIB).$(VERSION): $(VIS_OBJ) $(SOLIB) $(BUILD)/convnet_vis.map
	$(CC) -shared -Wl,-soname,libconvnet_vis.so.$(SOVERSION) \
	  -Wl,--version-script,$(BUILD)/convnet_vis.map $(SO_DEFS) $(LDFLAGS) $(VIS_OBJ) \
	  -L$(BUILD) -lconvnet $(VIS_LDLIBS) -lm -o $@
$(BUILD)/%.so: $(BUILD)/%.so.$(VERSION)
	ln -sf $(notdir $<) $@.$(SOVERSION)
	ln -sf $(notdir $<) $@

# The default network is compiled into the binary from models/mnist.cfg.
$(BUILD)/gen/default_model.c: models/mnist.cfg scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh cn_cli_default_model < $< > $@

$(BUILD)/cli/comm/mpi.o: CPPFLAGS += $(MPI_CFLAGS)

# The binary is linked again when MPI= changes (the stamp holds its value).
$(BUILD)/mpi.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo "MPI=$(MPI)" | cmp -s - $@ || echo "MPI=$(MPI)" > $@
FORCE:

$(BIN): $(CLI_OBJ) $(VLIB) $(LIB) $(BUILD)/mpi.stamp
	$(CC) $(LDFLAGS) $(filter %.o %.a,$^) $(LDLIBS) $(MPI_LIBS) -o $@

# tests/test_fault.c injects faults into the library's file writes through
# the linker: these calls reach its __wrap_ functions first.
TEST_WRAP := -Wl,--wrap=write,--wrap=fsync,--wrap=close,--wrap=rename
$(TBIN): $(TEST_OBJ) $(REPLAY_OBJ) $(VLIB) $(LIB)
	$(CC) $(LDFLAGS) $(TEST_WRAP) $^ $(LDLIBS) -o $@

# tests/onnx.sh's reference: convnet's probabilities for a file of pixels,
# which it compares with ONNX Runtime's on the exported model.
ONNX_PROBS := $(BUILD)/onnx_probs
all: $(ONNX_PROBS)
$(ONNX_PROBS): $(BUILD)/tests/tools/onnx_probs.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(CORE_LDLIBS) -o $@

# tests/folders.sh's larger-than-memory run: a data cache of synthetic
# pictures written through the library's streaming writer.
SYNTH_CACHE := $(BUILD)/synth_cache
all: $(SYNTH_CACHE)
$(SYNTH_CACHE): $(BUILD)/tests/tools/synth_cache.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(CORE_LDLIBS) -o $@

# --- examples and the API reference ------------------------------------------
# examples/*.c use the public headers only; built here against the static
# libraries, with the pictures' one too for a file that says
# "pkg-config: convnet_vis" (as a program built with pkg-config would be).
EXAMPLE_SRC  := $(wildcard examples/*.c)
EXAMPLES     := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
VIS_EXAMPLES := $(shell grep -l 'pkg-config: convnet_vis' $(EXAMPLE_SRC) /dev/null)
examples: $(EXAMPLES)
$(BUILD)/examples/%: examples/%.c include/convnet.h include/convnet_vis.h $(LIB) $(VLIB)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) -g $(WARN) $(SAN) -Iinclude $< \
	  $(if $(filter $<,$(VIS_EXAMPLES)),$(VLIB) $(LIB) $(VIS_LDLIBS),$(LIB)) $(CORE_LDLIBS) \
	  $(LDFLAGS) -o $@

# docs/api.md from the headers' comments (tests/docs.sh fails when it is stale).
docs:
	@/usr/bin/python3 scripts/apidoc.py include/convnet.h include/convnet_vis.h -o docs/api.md

# --- data, tests, demo -------------------------------------------------------
data/mnist/train-images-idx3-ubyte:
	sh scripts/fetch-data.sh mnist

data: data/mnist/train-images-idx3-ubyte

# Both install what is missing first (apt-get as root, else they print the command).
test:
	@sh scripts/deps.sh --test
	@$(MAKE) --no-print-directory all data
	@sh tests/run.sh $(BUILD)

# The whole suite built with AddressSanitizer and UndefinedBehaviorSanitizer in
# build-asan/: any report fails it (tests/asan.sh sets the options).
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
test-asan:
	@sh scripts/deps.sh --test
	@$(MAKE) --no-print-directory BUILD=build-asan SAN="$(ASAN_FLAGS)" all data
	@SAN="$(ASAN_FLAGS)" sh tests/asan.sh build-asan

# Data-parallel training over MPI (tests/mpi.sh): a build with MPI=1 in
# build-mpi/, 1, 2 and 4 workers on this machine, the fault tests, and two
# workers in two network namespaces.
test-mpi:
	@sh scripts/deps.sh --test --mpi
	@$(MAKE) --no-print-directory BUILD=build-mpi MPI=1 all data
	@sh tests/mpi.sh build-mpi

# The C tests under valgrind memcheck: all but eight heavy ones (tests/valgrind.sh
# says which and why).
test-valgrind:
	@sh scripts/deps.sh --test
	@$(MAKE) --no-print-directory all data
	@sh tests/valgrind.sh $(BUILD)

# The suite ten times in a row with both cores kept busy by stress(1)
# (RUNS=N for another count): no test may depend on an idle machine.
RUNS ?= 10
test-stress:
	@sh scripts/deps.sh --test --stress
	@$(MAKE) --no-print-directory all data
	@sh tests/stress.sh $(BUILD) $(RUNS)

# .ci/run in a chroot on a bare Debian 12 made from Debian's packages, from a
# clean clone of HEAD: scripts/deps.sh must install all that the tests use
# (tests/fresh.sh; root, about an hour, build-fresh/).
test-fresh:
	@sh tests/fresh.sh

demo:
	@sh scripts/demo.sh

# Fails when the layers, the network or training reach past the backend's
# table, or the library's modules call each other in a circle.
check-layering: $(LIB) $(VLIB)
	@/usr/bin/python3 scripts/check_layering.py $(BUILD)

# convnet against PyTorch and ONNX Runtime, side by side, the contenders in
# shuffled rounds (about 25 minutes); see bench/run.py.
bench:
	@sh bench/run.sh

# One contender by itself on one workload, and the same workload as make bench
# measures it, with the ratio of the two (bench/run.py --alone; make
# bench-alone BENCH_WORKLOAD=list names the workloads and their contenders).
BENCH_WORKLOAD ?= lenet-train-b64-t2
BENCH_CONTENDER ?= tuned
bench-alone:
	@if [ "$(BENCH_WORKLOAD)" = list ]; then /usr/bin/python3 bench/run.py --list; \
	else sh bench/run.sh --alone "$(BENCH_WORKLOAD)" "$(BENCH_CONTENDER)"; fi

# The Accuracy table of README.md: each recipe of scripts/accuracy.sh with
# seeds 1, 2 and 3 and the means (hours on 2 cores; not part of make test).
accuracy: $(BIN)
	@sh scripts/accuracy.sh $(BUILD)

# Data-parallel training: throughput on this machine, the allreduce over a
# shaped link, the predicted speed-up of more machines (bench/mpi.py).
bench-mpi:
	@sh scripts/deps.sh --mpi
	@sh scripts/fetch-data.sh mnist >/dev/null
	@$(MAKE) --no-print-directory BUILD=build-mpi MPI=1 all
	mpicc -O2 bench/allreduce.c -o build-mpi/allreduce
	@/usr/bin/python3 bench/mpi.py

# The GPU's figures (bench/gpu.sh): time to 99% MNIST, fashion-best.cfg for 20
# epochs, LeNet images/s at batch 256, peak device memory, and where a step's
# time goes; a CUDA=1 build in build-cuda/, a GPU, MNIST and Fashion-MNIST in
# data/ (no network).
gpu-check:
	@sh scripts/gpu-check.sh

bench-gpu:
	@$(MAKE) --no-print-directory BUILD=build-cuda CUDA=1 build-cuda/convnet
	@sh bench/gpu.sh build-cuda

# convnet plan against real training runs (bench/plan_check.py, about 10
# minutes): every shipped model and 10 random networks at three batches
# each; the planned peak memory within 10% of the measured, an epoch's time
# within 25%.  Not part of make test: it times training on a shared machine.
plan-check: $(BIN) data
	@sh scripts/deps.sh --plan
	@/usr/bin/python3 bench/plan_check.py --build $(BUILD)

$(BUILD)/peak: bench/peak.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -fopenmp $< -o $@

# --- install -----------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=staging] writes INSTALLED (below)
# and make uninstall removes exactly that.  The installed convnet is linked
# apart ($(BUILD)/inst/convnet: cli/main.c compiled once more) so that it
# knows $(DATADIR)/convnet/models, where it finds a description named
# without a directory; the build tree's binary is untouched.  The man pages
# are made from that binary's --help (scripts/man.sh).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
PCDIR      ?= $(LIBDIR)/pkgconfig
MODELDIR   := $(DATADIR)/convnet/models
INSTALL    ?= install
INST       := $(BUILD)/inst
# The commands, as cli/main.c's table names them: one man page each.
COMMANDS   := $(shell sed -n 's/^ *{"\([a-z-]*\)", "[^"]*", cmd_.*/\1/p' cli/main.c)
MAN_PAGES  := convnet.1 $(COMMANDS:%=convnet-%.1)
MODEL_CFGS := $(notdir $(wildcard models/*.cfg))
SO_FILES    = $(foreach l,libconvnet libconvnet_vis,$(l).so $(l).so.$(SOVERSION) $(l).so.$(VERSION))
INSTALLED   = $(BINDIR)/convnet $(INCLUDEDIR)/convnet.h $(INCLUDEDIR)/convnet_vis.h \
              $(LIBDIR)/libconvnet.a $(LIBDIR)/libconvnet_vis.a $(SO_FILES:%=$(LIBDIR)/%) \
              $(PCDIR)/convnet.pc $(PCDIR)/convnet_vis.pc $(MODEL_CFGS:%=$(MODELDIR)/%) \
              $(MAN_PAGES:%=$(MANDIR)/man1/%)

# make builds them too (for PREFIX), so that make install only copies; not
# with MPI=1, where 'convnet train --help' would start MPI.
ifneq ($(MPI),1)
all: $(INST)/convnet $(INST)/man/convnet.1 $(INST)/convnet.pc $(INST)/convnet_vis.pc
endif

# Rebuilt when the directories change (the stamp holds them).
$(INST)/dirs.stamp: FORCE
	@mkdir -p $(INST)
	@echo "$(PREFIX) $(LIBDIR) $(INCLUDEDIR) $(MODELDIR)" | cmp -s - $@ || \
	  echo "$(PREFIX) $(LIBDIR) $(INCLUDEDIR) $(MODELDIR)" > $@
$(INST)/main.o: cli/main.c $(INST)/dirs.stamp
	$(CC) $(CPPFLAGS) $(CFLAGS) -DCN_MODELS_DIR='"$(MODELDIR)"' -c $< -o $@
$(INST)/convnet: $(filter-out $(BUILD)/cli/main.o,$(CLI_OBJ)) $(INST)/main.o $(VLIB) $(LIB) \
                 $(BUILD)/mpi.stamp
	$(CC) $(LDFLAGS) $(filter %.o %.a,$^) $(LDLIBS) $(MPI_LIBS) -o $@
$(INST)/man/convnet.1: $(INST)/convnet scripts/man.sh
	sh scripts/man.sh $< $(INST)/man $(VERSION)
# pkg-config: Libs.private and Requires.private are what a static link adds.
PC_SUBST = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
  -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
  -e 's|@VERSION@|$(VERSION)|' -e 's|@OPENMP@|$(if $(filter yes,$(OPENMP)),-fopenmp)|' \
  -e 's|@CUDA_LIBS@|$(if $(filter 1,$(CUDA)),-L$(CUDA_LIBDIR) -lcudnn -lcublas -lcudart -lstdc++)|'
$(INST)/%.pc: scripts/%.pc.in $(INST)/dirs.stamp
	$(PC_SUBST) $< > $@

install: $(INST)/convnet $(LIB) $(VLIB) $(SOLIB) $(VSOLIB) $(INST)/man/convnet.1 \
         $(INST)/convnet.pc $(INST)/convnet_vis.pc
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) \
	  $(DESTDIR)$(PCDIR) $(DESTDIR)$(MODELDIR) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 755 $(INST)/convnet $(DESTDIR)$(BINDIR)/convnet
	$(INSTALL) -m 644 include/convnet.h include/convnet_vis.h $(DESTDIR)$(INCLUDEDIR)
	$(INSTALL) -m 644 $(LIB) $(VLIB) $(DESTDIR)$(LIBDIR)
	$(INSTALL) -m 755 $(SOLIB).$(VERSION) $(VSOLIB).$(VERSION) $(DESTDIR)$(LIBDIR)
	for l in libconvnet libconvnet_vis; do \
	  ln -sf $$l.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$$l.so.$(SOVERSION) && \
	  ln -sf $$l.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/$$l.so || exit 1; done
	$(INSTALL) -m 644 $(INST)/convnet.pc $(INST)/convnet_vis.pc $(DESTDIR)$(PCDIR)
	$(INSTALL) -m 644 $(MODEL_CFGS:%=models/%) $(DESTDIR)$(MODELDIR)
	$(INSTALL) -m 644 $(MAN_PAGES:%=$(INST)/man/%) $(DESTDIR)$(MANDIR)/man1

# The files install wrote, then the two directories that are convnet's own.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(MODELDIR) $(DESTDIR)$(DATADIR)/convnet 2>/dev/null || true

# --- fuzzing -----------------------------------------------------------------
# One libFuzzer target per reader of outside input (fuzz/fuzz_*.c), built with
# clang and the address and undefined-behaviour sanitizers into build-fuzz/,
# apart from the gcc build.  The library is compiled with the portable kernels
# only; stb is compiled in (fuzz/stb.c) so that the fuzzer sees its decoders.
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 25
FUZZ_TARGETS ?= idx cifar cfg safetensors image log csv datacache
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=c11 -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -Wall -Wextra \
                -Wno-unknown-pragmas -Wno-unused-parameter -MMD -MP
FUZZ_CPPFLAGS := $(filter-out -DCN_HAVE_X86_KERNELS,$(CPPFLAGS)) $(CAIRO_CFLAGS)
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(LIB_SRC) src/kernels/cpu_portable.c fuzz/stb.c)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# stb's PNG reader adds a zero offset to a null pointer, and copies zero bytes
# to it, at a first IDAT chunk of length 0 (legal PNG; harmless, but undefined
# behaviour the sanitizer reports): not checked in stb, which the library
# takes from Debian as it is (fuzz/corpus/image/found-png-empty-idat.png).
$(FUZZ_BUILD)/fuzz/stb.o: FUZZ_CFLAGS += -fno-sanitize=pointer-overflow,nonnull-attribute

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -lcairo -lcjson -lz -lm -o $@

# The CSV log's reader is the command's (cli/log.c, with cli/common.c, which
# needs the built-in model).
$(FUZZ_BUILD)/fuzz_log: $(FUZZ_BUILD)/cli/log.o $(FUZZ_BUILD)/cli/common.o \
                        $(FUZZ_BUILD)/gen/default_model.o
$(FUZZ_BUILD)/gen/default_model.o: $(BUILD)/gen/default_model.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# The objects are kept between builds (make would otherwise remove them as
# intermediate files, and build everything again the next time).
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%.o)

fuzz:
	@sh scripts/deps.sh --fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

# Each target for FUZZ_SECONDS on its seeds; fails on any crash, leak or hang.
fuzz-smoke: fuzz
	@sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) smoke $(FUZZ_TARGETS)

# The same, growing the corpus in $(FUZZ_BUILD)/corpus from run to run.
fuzz-run: fuzz
	@sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) keep $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) build-asan build-mpi build-cuda $(FUZZ_BUILD)

format:
	clang-format -i include/*.h src/*.[ch] src/*/*.[ch] cli/*.[ch] cli/*/*.c tests/*.[ch] \
	  fuzz/*.[ch] examples/*.c tests/preload/*.c

format-check:
	clang-format --dry-run --Werror include/*.h src/*.[ch] src/*/*.[ch] cli/*.[ch] cli/*/*.c \
	  tests/*.[ch] fuzz/*.[ch] examples/*.c tests/preload/*.c

help:
	@echo "make          build $(BIN) and the tests"
	@echo "make demo     install what is missing, fetch MNIST, train the default network, report"
	@echo "make test     build and run the whole test suite"
	@echo "make test-asan   the whole suite under AddressSanitizer and UBSan (build-asan/)"
	@echo "make test-valgrind  the C tests (all but eight heavy ones) under valgrind memcheck"
	@echo "make test-mpi    data-parallel training over MPI (build-mpi/, make MPI=1)"
	@echo "make test-fresh  .ci/run on a bare Debian 12 in a chroot, from a clean clone (root, ~1 h)"
	@echo "make test-stress the whole suite ten times with both cores kept busy (RUNS=N)"
	@echo "make check-layering  nothing above the device seam reaches past it; no module cycles"
	@echo "make data     fetch MNIST into data/mnist"
	@echo "make bench    convnet against PyTorch and ONNX Runtime on this machine (training,"
	@echo "              inference, latency, memory, time to 99%; BENCH_SECONDS, BENCH_REPS, BENCH_QUICK=1,"
	@echo "              BENCH_ONLY=torch|ort|installed|tta for one section)"
	@echo "make bench-alone  one contender alone against the same inside make bench"
	@echo "              (BENCH_WORKLOAD=lenet-train-b64-t2 BENCH_CONTENDER=tuned; BENCH_WORKLOAD=list)"
	@echo "make plan-check  convnet plan's memory and time against real training runs (~10 min)"
	@echo "make accuracy README's Accuracy table: each recipe with seeds 1, 2, 3 and the means (hours)"
	@echo "make bench-mpi  data-parallel throughput, allreduce times, predicted speed-ups"
	@echo "make CUDA=1   build with the CUDA backend too (--device cuda; nvcc in CUDA_HOME=$(CUDA_HOME))"
	@echo "make bench-gpu  the GPU's figures: time to 99% MNIST, fashion-best 20 epochs, LeNet images/s"
	@echo "make gpu-check  everything a GPU must verify, in one run (scripts/gpu-check.sh, < 10 min)"
	@echo "make info     what the build found (OpenMP, SIMD kernels)"
	@echo "make examples build examples/*.c into $(BUILD)/examples (part of make)"
	@echo "make docs     write docs/api.md, the API reference, from the headers"
	@echo "make install  headers, libraries (static, shared), convnet.pc, the CLI, models, man pages"
	@echo "              into PREFIX=$(PREFIX) (DESTDIR, BINDIR, LIBDIR, INCLUDEDIR, DATADIR, MANDIR)"
	@echo "make uninstall   remove exactly what make install wrote (same variables)"
	@echo "make format   clang-format the sources"
	@echo "make fuzz     build the fuzz targets (clang, libFuzzer, sanitizers) into $(FUZZ_BUILD)"
	@echo "make fuzz-smoke  run each fuzz target $(FUZZ_SECONDS) s on its seeds (FUZZ_SECONDS=N)"
	@echo "make fuzz-run    the same, growing $(FUZZ_BUILD)/corpus (FUZZ_TARGETS=idx ...)"

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
