#!/usr/bin/env bash
# make bench: the whole story in one run.  Benchmarks, not tests: numbers are printed,
# nothing is asserted.  Every comparison is measured in this run, interleaved (Lunet,
# PyTorch, Lunet, ...), and reported as the median of ROUNDS runs (default 3), because the
# machine's other load changes from minute to minute.  PyTorch (Debian's python3-torch)
# is optional: without it its rows say so.
#   1. the hardware: FMA peak (register loop) and the FLOP bound of one MLP epoch
#   2. the GEMM floor: Lunet's own GEMM path at the epoch's 14 shapes
#   3. epochs on Fashion-MNIST: the MLP (data preloaded; DataLoader) and softmax
#      regression, Lunet vs PyTorch, and the ratios
#   4. the MLP epoch while a busy loop holds one core, against Lunet's quiet 1-thread epoch
#   5. peak RSS of a full MLP run (train + test)
#   6. the micro-benchmarks (tensor core, losses, data loading)
set -u
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
have_torch=0
/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1 && have_torch=1
no_torch="(PyTorch not installed: apt-get install python3-torch python3-torchvision)"
torch() { if [ $have_torch = 1 ]; then /usr/bin/python3 "$@"; else echo "$no_torch"; fi; }
tmp=$(mktemp -d)
busy_pid=
trap 'rm -rf "$tmp"; [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null' EXIT

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0 && a + 0 > 0) printf "%.2fx", a / b; else print "-"}'; }

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load:$(uptime | sed 's/.*load average://')"
echo "   Lunet $("$BUILD/lunet" -e 'io.write(lunet._VERSION)') on $("$BUILD/lunet" -e 'io.write(lunet.get_num_threads())') threads"
echo
echo "== 1. the hardware limit"
"$BUILD/bench_gemm" peak | tee "$tmp/peak"
bound2=$(sed -n 's/.*; FLOP bound [0-9.]* s on 1 core, \([0-9.]*\) s on 2 cores.*/\1/p' "$tmp/peak")
echo
echo "== 2. the step's GEMM floor"
"$BUILD/bench_gemm" floor "$ROUNDS"
echo

if [ ! -f data/FashionMNIST/raw/train-labels-idx1-ubyte ]; then
  echo "(no data/: run make data for the epoch benchmarks)"
else
  echo "== 3. one Fashion-MNIST epoch (seconds, median of $ROUNDS interleaved runs)"
  lunet_loader() { # the scripts' own epoch_seconds
    "$BUILD/lunet" scripts/mnist_mlp.lua --dataset fashion --epochs 1 --no-progress --out "$tmp/mlp" >/dev/null &&
      tail -n 1 "$tmp/mlp/metrics.csv" | cut -d, -f4
  }
  lunet_sr() {
    "$BUILD/lunet" scripts/softmax_regression.lua --epochs 1 --out "$tmp/sr" >/dev/null &&
      tail -n 1 "$tmp/sr/metrics.csv" | cut -d, -f5
  }
  for r in $(seq "$ROUNDS"); do
    "$BUILD/lunet" bench/bench_epoch.lua >> "$tmp/l_mlp"
    [ $have_torch = 1 ] && /usr/bin/python3 bench/bench_epoch_torch.py mlp >> "$tmp/t_mlp"
    lunet_loader >> "$tmp/l_loader"
    [ $have_torch = 1 ] && /usr/bin/python3 bench/bench_epoch_torch.py mlp-loader >> "$tmp/t_loader"
    lunet_sr >> "$tmp/l_sr"
    [ $have_torch = 1 ] && /usr/bin/python3 bench/bench_epoch_torch.py sr >> "$tmp/t_sr"
    LUNET_NUM_THREADS=1 "$BUILD/lunet" bench/bench_epoch.lua >> "$tmp/l_mlp1"
  done
  col() { cut -d' ' -f"$1" < "$tmp/$2" | median; } # column of a file's lines, median
  row() { # label lunet-file torch-file: wall seconds, and CPU seconds where both print them
    local l t lc tc
    l=$(col 1 "$2"); lc=$(awk 'NF > 1 {print $2}' "$tmp/$2" | median)
    if [ $have_torch = 1 ]; then t=$(col 1 "$3"); tc=$(awk 'NF > 1 {print $2}' "$tmp/$3" | median); else t=-; tc=-; fi
    printf "%-46s %9s %9s %9s   %9s %9s %9s\n" "$1" "$l" "$t" "$(ratio "$l" "$t")" "$lc" "$tc" "$(ratio "$lc" "$tc")"
  }
  printf "%-46s %9s %9s %9s   %9s %9s %9s\n" "work" "Lunet" "PyTorch" "ratio" "CPU: Lunet" "PyTorch" "ratio"
  row "MLP (batch 64), data preloaded" l_mlp t_mlp
  row "MLP, DataLoader + ToTensor/Normalize" l_loader t_loader
  row "softmax regression (batch 256), Lunet's loader" l_sr t_sr
  printf "%-46s %9s %9s %9s   %9s\n" "MLP preloaded, Lunet on 1 thread" "$(col 1 l_mlp1)" "" "" "$(col 2 l_mlp1)"
  [ $have_torch = 1 ] || echo "$no_torch"
  [ $have_torch = 1 ] && echo "(PyTorch: $(/usr/bin/python3 -c 'import torch; print(torch.__version__, "with", torch.get_num_threads(), "thread(s)")'); softmax regression with its data preloaded)"
  echo "MLP preloaded vs the 2-core FLOP bound ($bound2 s): $(ratio "$(col 1 l_mlp)" "$bound2")"
  echo

  echo "== 4. the MLP epoch while a busy loop holds CPU 1"
  if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    for r in $(seq "$ROUNDS"); do
      LUNET_NUM_THREADS=1 "$BUILD/lunet" bench/bench_epoch.lua >> "$tmp/q1"
      taskset -c 1 sh -c 'while :; do :; done' & busy_pid=$!
      "$BUILD/lunet" bench/bench_epoch.lua >> "$tmp/busy"
      kill "$busy_pid"; wait "$busy_pid" 2>/dev/null; busy_pid=
    done
    q1=$(col 1 q1); b=$(col 1 busy)
    echo "quiet, 1 thread: $q1 s; busy core, $("$BUILD/lunet" -e 'io.write(lunet.get_num_threads())') threads: $b s; ratio $(ratio "$b" "$q1") (target <= 1.10x)"
  else
    echo "(needs taskset and 2 CPUs)"
  fi
  echo

  echo "== 5. peak RSS of a full MLP run (train + test, one epoch)"
  /usr/bin/time -f "%M" -o "$tmp/rss" "$BUILD/lunet" scripts/mnist_mlp.lua --dataset fashion --epochs 1 \
    --no-progress --out "$tmp/rss_out" >/dev/null
  echo "$(awk '{printf "%.1f", $1 / 1024}' "$tmp/rss") MiB (target <= 100 MiB)"
  echo
fi

echo "== 6. micro-benchmarks: tensor core, losses, data loading"
"$BUILD/bench_core"
torch bench/bench_mlp_torch.py
"$BUILD/bench_loss"
torch bench/bench_loss_torch.py
echo
echo "== optimizer step over the MNIST MLP's parameters"
"$BUILD/lunet" bench/bench_optim.lua
torch bench/bench_optim_torch.py
if [ -f data/FashionMNIST/raw/train-labels-idx1-ubyte ]; then
  "$BUILD/lunet" bench/bench_data.lua data
  torch bench/bench_data_torch.py data
fi

if [ -f data/FashionMNIST/raw/train-labels-idx1-ubyte ]; then
  echo
  echo "== 7. CNN epochs on Fashion-MNIST: the course's CNN (scripts/mnist_cnn.lua) and d2l's LeNet-5"
  echo "   (scripts/lenet.lua), and the time their two convolutions take alone over the same batches"
  "$BUILD/lunet" bench/bench_cnn.lua data
  torch bench/bench_cnn_torch.py data
fi

if command -v mpirun >/dev/null && "$BUILD/lunet" -e 'os.exit(lunet.distributed.is_available() and 0 or 1)'; then
  echo
  echo "== 8. data-parallel training (Open MPI): 1 process x 2 threads against 2 processes x 1 thread"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  mpirun -np 2 -x LUNET_NUM_THREADS=1 "$BUILD/lunet" bench/bench_allreduce.lua
  if [ -f data/FashionMNIST/raw/train-labels-idx1-ubyte ]; then
    out=$(mktemp -d)
    LUNET_NUM_THREADS=2 "$BUILD/lunet" scripts/mnist_mlp.lua --dataset fashion --epochs 1 \
      --no-progress --out "$out/one" >/dev/null
    mpirun -np 2 -x LUNET_NUM_THREADS=1 "$BUILD/lunet" scripts/mnist_mlp.lua --distributed \
      --dataset fashion --epochs 1 --no-progress --out "$out/two" > "$out/two.log"
    echo "MLP epoch, 1 process x 2 threads, batch 64:          $(tail -n 1 "$out/one/metrics.csv" | cut -d, -f4) s"
    echo "MLP epoch, 2 processes x 1 thread, batch 2 x 32 (DDP): $(tail -n 1 "$out/two/metrics.csv" | cut -d, -f4) s"
    grep "^all-reduce" "$out/two.log"
    rm -rf "$out"
  fi
fi
