-- bench_sr.lua - one Fashion-MNIST epoch of d2l's softmax regression from scratch (batch 256,
-- lr 0.1: the training loop of scripts/softmax_regression.lua, op for op), timed two ways:
--   loader     through the DataLoader (ToTensor, shuffled), as the script runs it
--   preloaded  the whole set converted once, each batch gathered with index_select by a
--              randperm, as bench/bench_epoch_torch.py sr does it in PyTorch
-- Prints the epoch's seconds of wall time and of CPU time (all threads), and with --check the
-- epoch's loss sum and a checksum of W's bits after it (same on any thread count).
--   build/lunet bench/bench_sr.lua [loader|preloaded] [data_root] [--check]
local lunet = lunet or require "lunet"
local data = lunet.data
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
package.path = here .. "../scripts/?.lua;" .. package.path
local d2l = require "d2l_ch3"

local mode = arg and arg[1] or "loader"
local root = arg and arg[2] or "data"
local check = arg and (arg[3] == "--check" or arg[2] == "--check")
if root == "--check" then root = "data" end
if mode ~= "loader" and mode ~= "preloaded" then error("modes: loader, preloaded") end

lunet.manual_seed(0)
local ds = data.FashionMNIST{root = root, train = true, transform = data.transforms.ToTensor()}
local batches
if mode == "loader" then
  local loader = data.DataLoader(ds, {batch_size = 256, shuffle = true})
  batches = function() return loader:iter() end
else
  local N = #ds
  local X, Y
  for x, y in data.DataLoader(ds, {batch_size = N}):iter() do X, Y = x, y end
  batches = function()
    local perm, i = lunet.randperm(N), 0
    return function()
      if i >= N then return nil end
      local idx = perm:narrow(0, i, math.min(256, N - i))
      i = i + 256
      return X:index_select(0, idx), Y:index_select(0, idx)
    end
  end
end

-- scripts/softmax_regression.lua's model, loss, updater and epoch (scripts/d2l_ch3.lua)
local W, b = d2l.init_params(784, 10)
local t0, c0 = lunet.monotonic(), os.clock()
local loss, acc = d2l.train_epoch_ch3(d2l.net(W, b), batches(), function(size) d2l.sgd({W, b}, 0.1, size) end)
print(("%.4f %.4f"):format(lunet.monotonic() - t0, os.clock() - c0))
if check then
  local h = 0
  local w = W:detach():contiguous():view(-1)
  for i = 0, w:numel() - 1 do
    h = (h * 31 + math.floor(w[i] * 2 ^ 40)) & 0xffffffffffff
  end
  print(("loss %.9f acc %.6f W %012x"):format(loss, acc, h))
end
