# mk/mpi.mk - Open MPI for lunet.distributed (runtime/distributed.c, bindings/l_distributed.c).
# Found through mpicc (--showme), else `pkg-config ompi`.  Without it (or with `make
# MPI=none BUILD=build/nompi`: give such a build its own folder) the same sources build a
# stub whose init_process_group raises "Lunet was built without MPI".  `make test-mpi` (part of
# `make test`) runs tests/mpi/ under mpirun and checks the MPI=none build's refusal.
MPI ?= auto
ifeq ($(MPI),none)
MPI_CFLAGS :=
MPI_LIBS   :=
else
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null || pkg-config --cflags ompi 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null || pkg-config --libs ompi 2>/dev/null)
ifeq ($(strip $(MPI_LIBS)),)
$(info lunet: Open MPI not found (install libopenmpi-dev, or `make deps`): lunet.distributed will say Lunet was built without MPI)
endif
endif

ifneq ($(strip $(MPI_LIBS)),)
FEATURE_CFLAGS += -DLUNET_HAVE_MPI
FEATURE_LIBS   += $(MPI_LIBS)
# only distributed.c includes mpi.h
$(BUILD)/obj/runtime/distributed.o: ALLFLAGS += $(MPI_CFLAGS)
endif

FEATURE_TESTS += test-mpi
NOMPI_BUILD := build/nompi

.PHONY: test-mpi
test-mpi: all
	$(MAKE) --no-print-directory MPI=none BUILD=$(NOMPI_BUILD) $(NOMPI_BUILD)/lunet
	bash tests/mpi/run.sh $(BUILD) $(NOMPI_BUILD)
