#!/usr/bin/env bash
# make bench: Lunet's benchmarks, each beside PyTorch's time for the same work on this
# machine in the same run (when Debian's python3-torch is installed; CI never needs it).
# Benchmarks, not tests: the numbers are printed, nothing is asserted.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
have_torch=0
/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1 && have_torch=1
torch() { if [ $have_torch = 1 ]; then /usr/bin/python3 "$@"; else echo "(PyTorch not installed: apt-get install python3-torch python3-torchvision)"; fi; }

echo "== tensor core (matmul, element-wise, one MLP SGD step)"
"$BUILD/bench_core"
torch bench/bench_mlp_torch.py
echo
echo "== cross-entropy forward + backward"
"$BUILD/bench_loss"
torch bench/bench_loss_torch.py
echo
echo "== optimizer step over the MNIST MLP's parameters"
"$BUILD/lunet" bench/bench_optim.lua
torch bench/bench_optim_torch.py
if [ -f data/FashionMNIST/raw/train-labels-idx1-ubyte ]; then
  echo
  echo "== Fashion-MNIST loading and DataLoader epoch"
  "$BUILD/lunet" bench/bench_data.lua data
  torch bench/bench_data_torch.py data
  echo
  echo "== training time per epoch (Fashion-MNIST)"
  out=$(mktemp -d)
  "$BUILD/lunet" scripts/mnist_mlp.lua --dataset fashion --epochs 1 --no-progress --out "$out/mlp" >/dev/null
  "$BUILD/lunet" scripts/softmax_regression.lua --epochs 1 --out "$out/sr" >/dev/null
  echo "Lunet MLP epoch (DataLoader, ToTensor+Normalize): $(tail -n 1 "$out/mlp/metrics.csv" | cut -d, -f4) s"
  echo "Lunet softmax regression epoch (DataLoader): $(tail -n 1 "$out/sr/metrics.csv" | cut -d, -f5) s"
  rm -rf "$out"
  torch bench/bench_epoch_torch.py data
else
  echo "(no data/: run make data for the data and per-epoch benchmarks)"
fi
