-- lenet.lua - d2l's LeNet-5 (chapter 7.6) on Fashion-MNIST: Conv2d(1, 6, 5, padding 2) ->
-- Sigmoid -> AvgPool2d(2) -> Conv2d(6, 16, 5) -> Sigmoid -> AvgPool2d(2) -> Flatten ->
-- Linear(400, 120) -> Sigmoid -> Linear(120, 84) -> Sigmoid -> Linear(84, 10), weights from
-- xavier_uniform_ (d2l's init_weights), SGD(lr = 0.9), batches of 256, 10 epochs, ToTensor
-- only (d2l does not normalise).
--
--   build/lunet scripts/lenet.lua [--epochs 10] [--out DIR] [--limit N] [--no-progress]
--
-- The training loop, progress line, metrics.csv, curves.svg and checkpoints are
-- scripts/mnist_mlp.lua's (run with --model lenet); every option of that script works here.
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
assert(loadfile(here .. "mnist_mlp.lua"))({
  name = "lenet.lua",
  description = "Train d2l's LeNet-5 on Fashion-MNIST with Lunet.",
  defaults = {{"--model", "lenet"}, {"--dataset", "fashion"}, {"--batch-size", "256"},
    {"--lr", "0.9"}, {"--momentum", "0"}, {"--no-normalize"}, {"--out", "out/lenet"}},
})
