-- mnist_cnn.lua - the course's convolutional network on MNIST: Conv2d(1, 10, 5) ->
-- MaxPool2d(2) -> ReLU -> Conv2d(10, 20, 5) -> MaxPool2d(2) -> ReLU -> Linear(320, 10),
-- cross-entropy, SGD(lr = 0.01, momentum = 0.5), batches of 64, ToTensor + Normalize.
--
--   build/lunet scripts/mnist_cnn.lua [--dataset mnist|fashion] [--epochs 10] [--out DIR]
--                                      [--limit N] [--resume CHECKPOINT] [--no-progress]
--
-- The training loop, progress line, metrics.csv, curves.svg and checkpoints are
-- scripts/mnist_mlp.lua's (run with --model cnn); every option of that script works here.
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
assert(loadfile(here .. "mnist_mlp.lua"))({
  name = "mnist_cnn.lua",
  description = "Train the course's CNN on MNIST with Lunet.",
  defaults = {{"--model", "cnn"}, {"--out", "out/mnist_cnn"}},
})
