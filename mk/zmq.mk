# mk/zmq.mk - the Jupyter kernel (`lunet --kernel`, cli/kernel*.c): needs ZeroMQ, cJSON and
# OpenSSL's libcrypto, found with pkg-config (Debian: libzmq3-dev libcjson-dev libssl-dev).
# ZMQ=auto (default) builds it when all three are found; ZMQ=none leaves it out and builds
# under build/nozmq.  Without it cli/kernel_none.c stands in and `lunet --kernel` says what
# is missing.  (Named zmq.mk so that it comes after mpi.mk, which may change BUILD.)
ZMQ ?= auto
ifeq ($(ZMQ),none)
ifneq ($(origin BUILD),command line)
BUILD := $(BUILD:build%=build/nozmq%)
endif
endif
ifneq ($(ZMQ),none)
KERNEL_PKGS := $(shell pkg-config --exists libzmq libcjson libcrypto 2>/dev/null && echo libzmq libcjson libcrypto)
endif
ifneq ($(KERNEL_PKGS),)
KERNEL_CFLAGS := $(shell pkg-config --cflags $(KERNEL_PKGS))
KERNEL_LIBS   := $(shell pkg-config --libs $(KERNEL_PKGS))
CLI_SRC := $(filter-out cli/kernel_none.c,$(CLI_SRC))
# only the kernel's objects and the program see these flags and libraries (patterns: any BUILD)
%/obj/cli/kernel.o %/obj/cli/kernel_wire.o: FEATURE_CFLAGS += $(KERNEL_CFLAGS)
%/lunet: FEATURE_LIBS += $(KERNEL_LIBS)
FEATURE_TESTS += test-kernel test-notebooks test-kernel-memcheck
FEATURE_ALL += $(BUILD)/kernelspec/logo-64x64.png
else
CLI_SRC := $(filter-out cli/kernel.c cli/kernel_wire.c cli/kernel_capture.c,$(CLI_SRC))
ifneq ($(ZMQ),none)
$(info lunet: ZeroMQ/cJSON/libcrypto not found by pkg-config (install libzmq3-dev libcjson-dev libssl-dev): the Jupyter kernel is not built)
endif
endif
FEATURE_TESTS += test-kernel-nozmq

PYTHON ?= /usr/bin/python3

# this file is included before `all:`; its rules must not become the default goal
.DEFAULT_GOAL := all

# The kernel under jupyter_client: conformance suite, rich output, hostile input, interrupts;
# then every notebook in notebooks/ run by nbclient and checked.  Bounded by timeout.
.PHONY: test-kernel test-kernel-nozmq test-kernel-memcheck test-notebooks update-notebooks bench-kernel
test-kernel: $(BUILD)/lunet
	timeout 300 $(PYTHON) tests/kernel/test_kernel.py $(BUILD)

# The kernel's C under valgrind: the rich-output and hostile-input tests with every kernel
# run by valgrind; each log must end in "ERROR SUMMARY: 0 errors" (so the kernel exited
# normally, with no invalid access and no definite leak).  The empty logs are those of
# os.execute's children between fork and exec (--child-silent-after-fork).  One suppression
# (tests/kernel/zmq_shutdown.supp): a message libzmq still held when the context stopped.
test-kernel-memcheck: $(BUILD)/lunet
	@rm -rf $(BUILD)/kernel-vg && mkdir -p $(BUILD)/kernel-vg
	LUNET_KERNEL_TIMEOUT=120 LUNET_KERNEL_WRAPPER="valgrind --leak-check=full \
	  --errors-for-leak-kinds=definite --child-silent-after-fork=yes \
	  --suppressions=$(abspath tests/kernel/zmq_shutdown.supp) \
	  --log-file=$(abspath $(BUILD))/kernel-vg/vg.%p" \
	  timeout 600 $(PYTHON) tests/kernel/test_kernel.py $(BUILD) RichOutput HostileInput
	@n=0; for f in $(BUILD)/kernel-vg/vg.*; do [ -s $$f ] || continue; n=$$((n + 1)); \
	  if ! grep -q "ERROR SUMMARY: 0 errors" $$f; then echo "valgrind: $$f"; cat $$f; exit 1; fi; done; \
	  echo "test-kernel-memcheck: $$n kernels, each 0 errors and no definite leak under valgrind"

# Every notebook in notebooks/ on the kernel, its checked cells compared with the committed
# outputs (the training ones shortened: tests/kernel/run_notebooks.py; needs `make data`).
# `make update-notebooks` re-runs them in full and writes the outputs back.
test-notebooks: $(BUILD)/lunet
	timeout 600 $(PYTHON) tests/kernel/run_notebooks.py $(BUILD)

update-notebooks: $(BUILD)/lunet
	$(PYTHON) tests/kernel/run_notebooks.py $(BUILD) --update

# Not a test: start-to-kernel_info_reply and `1+1` round-trip latencies (bench/kernel_latency.py).
bench-kernel: $(BUILD)/lunet
	$(PYTHON) bench/kernel_latency.py $(BUILD)

# A build without ZeroMQ still builds, and --kernel says what is missing.
test-kernel-nozmq:
	$(MAKE) --no-print-directory ZMQ=none BUILD=build/nozmq build/nozmq/lunet
	@out=$$(build/nozmq/lunet --kernel /nonexistent.json 2>&1); st=$$?; \
	if [ $$st -ne 0 ] && echo "$$out" | grep -q "libzmq3-dev libcjson-dev libssl-dev"; then \
	  echo "test-kernel-nozmq: ok (exit $$st): $$out" | head -1; \
	else echo "test-kernel-nozmq: FAILED: exit $$st, output: $$out"; exit 1; fi

# The kernel spec's logos, drawn by lunet itself (tools/kernel_logo.lua, the PNG writer);
# `lunet --install-kernel` copies them from $(BUILD)/kernelspec/.
%/kernelspec/logo-64x64.png: tools/kernel_logo.lua %/lunet
	$*/lunet tools/kernel_logo.lua $*/kernelspec

# `make install` also installs the kernel spec: PREFIX/share/jupyter/kernels/lunet, whose
# kernel.json starts BINDIR/lunet (Jupyter finds it when PREFIX is /usr/local or /usr, or
# with JUPYTER_PATH=PREFIX/share/jupyter), and share/doc/lunet/lua-api.md, where the
# kernel's inspect (Shift-Tab) finds its one-line docs.
KERNELSPEC_DIR = $(PREFIX)/share/jupyter/kernels/lunet
.PHONY: install-kernelspec uninstall-kernelspec
ifneq ($(KERNEL_PKGS),)
install: install-kernelspec
uninstall: uninstall-kernelspec
endif
install-kernelspec: $(BUILD)/kernelspec/logo-64x64.png
	install -d $(DESTDIR)$(KERNELSPEC_DIR)
	printf '{\n  "argv": ["%s", "--kernel", "{connection_file}"],\n  "display_name": "Lunet (Lua 5.4)",\n  "language": "lua",\n  "interrupt_mode": "signal",\n  "metadata": {"debugger": false}\n}\n' \
	  "$(BINDIR)/lunet" > $(DESTDIR)$(KERNELSPEC_DIR)/kernel.json
	install -m 644 $(BUILD)/kernelspec/logo-32x32.png $(BUILD)/kernelspec/logo-64x64.png \
	  $(DESTDIR)$(KERNELSPEC_DIR)/
	install -d $(DESTDIR)$(PREFIX)/share/doc/lunet
	install -m 644 docs/lua-api.md $(DESTDIR)$(PREFIX)/share/doc/lunet/lua-api.md

uninstall-kernelspec:
	rm -f $(DESTDIR)$(KERNELSPEC_DIR)/kernel.json $(DESTDIR)$(KERNELSPEC_DIR)/logo-32x32.png \
	  $(DESTDIR)$(KERNELSPEC_DIR)/logo-64x64.png $(DESTDIR)$(PREFIX)/share/doc/lunet/lua-api.md
	-rmdir $(DESTDIR)$(KERNELSPEC_DIR) 2>/dev/null
