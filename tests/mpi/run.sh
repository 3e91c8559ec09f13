#!/usr/bin/env bash
# run.sh - the distributed tests (make test-mpi): each Lua script under mpirun on 1, 2 and 3
# ranks, every run bounded by `timeout` so that a hang fails the test instead of stalling CI.
#   bash tests/mpi/run.sh BUILD_DIR [NOMPI_BUILD_DIR]
# The second build (made with MPI=none) must refuse init_process_group with its message.
#
# mpirun flags for a container as root with no network interface but lo: run as root
# allowed, more ranks than cores allowed, shared memory only (btl self,vader), and no
# cross-memory-attach (ptrace is often forbidden in containers).
set -u
BUILD=${1:-build}
NOMPI=${2:-}
LUNET=$BUILD/lunet
DIR=$(cd "$(dirname "$0")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_orte_base_help_aggregate=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# mpirun_ok NAME NP SECONDS SCRIPT [ARGS...]: the job must succeed within SECONDS
mpirun_ok() {
  local name=$1 np=$2 secs=$3
  shift 3
  if timeout -k 5 "$secs" mpirun -np "$np" "$LUNET" "$@" >"$TMP/out" 2>"$TMP/err"; then
    ok "$name ($(grep -c . "$TMP/out") lines: $(tail -n 1 "$TMP/out"))"
  else
    local rc=$?
    [ $rc -eq 124 ] && bad "$name: timed out after ${secs}s (a hang)" || bad "$name: exit $rc"
    sed 's/^/     | /' "$TMP/out" "$TMP/err" | head -n 40
  fi
}

if [ -n "$NOMPI" ]; then
  out=$("$NOMPI/lunet" -e 'local d = lunet.distributed
    local ok, msg = pcall(d.init_process_group, {backend = "mpi"})
    print(d.is_available(), ok, msg)
    print(pcall(d.get_rank))' 2>&1)
  if echo "$out" | grep -q "^false	false	init_process_group: Lunet was built without MPI" &&
     echo "$out" | grep -q "Default process group has not been initialized"; then
    ok "built with MPI=none: init_process_group says Lunet was built without MPI"
  else
    bad "built with MPI=none: $out"
  fi
fi

if ! "$LUNET" -e 'os.exit(lunet.distributed.is_available() and 0 or 1)'; then
  echo "skipped: $LUNET was built without MPI (install libopenmpi-dev and openmpi-bin)"
  echo "mpi tests: $pass passed, $fail failed"
  [ $fail -eq 0 ]
  exit
fi
if ! command -v mpirun >/dev/null; then
  bad "mpirun not found: install openmpi-bin (make deps)"
  exit 1
fi

for np in 1 2 3; do
  mpirun_ok "collectives on $np ranks" $np 120 "$DIR/collectives.lua"
done

for np in 1 2 4; do
  mpirun_ok "DistributedDataParallel parity on $np ranks" $np 120 "$DIR/ddp_parity.lua"
done
for np in 1 2; do
  mpirun_ok "DistributedDataParallel parity on $np ranks, gradient_as_bucket_view" $np 120 \
    "$DIR/ddp_parity.lua" view
done

# scripts/mnist_mlp.lua --distributed: only rank 0 prints and writes; --resume continues
# exactly (the metrics of 1 + 1 epochs equal those of 2 epochs straight)
DATA=${LUNET_DATA:-data}
if [ -f "$DATA/FashionMNIST/raw/train-labels-idx1-ubyte" ]; then
  args="scripts/mnist_mlp.lua --distributed --dataset fashion --data $DATA --limit 512 --no-progress"
  mpirun_ok "mnist_mlp.lua --distributed, 2 epochs on 2 ranks" 2 300 $args --epochs 2 --out "$TMP/straight"
  acc=$(grep -c "^Accuracy on test set" "$TMP/out")
  [ "$acc" = 2 ] && ok "only rank 0 printed (2 accuracy lines)" || bad "accuracy lines: $acc, expected 2"
  mpirun_ok "mnist_mlp.lua --distributed, 1 epoch" 2 300 $args --epochs 1 --out "$TMP/resumed"
  mpirun_ok "mnist_mlp.lua --distributed --resume, epoch 2" 2 300 $args --epochs 2 --out "$TMP/resumed" \
    --resume "$TMP/resumed/checkpoint.lnt"
  if cmp -s <(cut -d, -f1-3 "$TMP/straight/metrics.csv") <(cut -d, -f1-3 "$TMP/resumed/metrics.csv"); then
    ok "--resume: epoch, loss and accuracy equal to the straight run's"
  else
    bad "--resume: metrics differ:"; paste "$TMP/straight/metrics.csv" "$TMP/resumed/metrics.csv"
  fi
else
  echo "skipped: mnist_mlp.lua --distributed (no $DATA/FashionMNIST: make data)"
fi

# faults: a rank raising a Lua error ends the whole job quickly, non-zero, with its message
# fault_case NAME WHEN: rank 1 raises at WHEN ("before_init", "in_step"); the others wait in
# a collective
fault_case() {
  local name=$1 when=$2 start end rc
  start=$(date +%s)
  timeout -k 5 60 mpirun -np 3 "$LUNET" "$DIR/fault.lua" "$when" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  end=$(date +%s)
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    bad "$name: the job hung (killed by timeout after $((end - start)) s)"
  elif [ $rc -eq 0 ]; then
    bad "$name: the job exited 0"
  elif ! grep -q "rank 1 gives up ($when)" "$TMP/err"; then
    bad "$name: rank 1's message is not on stderr:"
    sed 's/^/     | /' "$TMP/err" | head -n 20
  elif grep -q "unreachable" "$TMP/out"; then
    bad "$name: a rank went on past the failed collective"
  else
    ok "$name: exit $rc after $((end - start)) s, rank 1's message on stderr"
  fi
}
fault_case "a rank raising before init_process_group" before_init
fault_case "a rank raising while the others wait in all_reduce" in_step

echo "mpi tests: $pass passed, $fail failed"
[ $fail -eq 0 ]
