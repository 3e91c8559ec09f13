-- train.lua - the Lua half of examples/embed_host: the C host passes the points X (N, 2)
-- float32, wrapping its own buffer, and the labels y (N) int64; this trains a small MLP
-- with lunet.nn and optim.SGD and returns the predicted class of every point (int64 (N))
-- and the final loss.  Runs unchanged under the `lunet` program with data of its own:
--     lunet examples/embed_host/train.lua      (makes an XOR-like set itself)
local lunet = require "lunet"
local nn, F, optim = lunet.nn, lunet.nn.functional, lunet.optim

local X, y = ...
if X == nil then -- standalone: four Gaussian blobs, XOR labels
  lunet.manual_seed(1)
  local centers = lunet.tensor({{-1, -1}, {1, 1}, {-1, 1}, {1, -1}})
  local k = lunet.randint(0, 4, {400})
  X = centers:index_select(0, k) + lunet.randn(400, 2) * 0.3
  y = k:ge(2):long()
end
assert(lunet.is_tensor(X) and lunet.is_tensor(y), "train.lua: expected X and y tensors")

lunet.manual_seed(0)
local model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
local opt = optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.9})
local n, batch = X:size(0), 50
local loss
for _ = 1, 60 do
  local perm = lunet.randperm(n)
  for start = 0, n - 1, batch do
    local idx = perm:narrow(0, start, math.min(batch, n - start))
    local xb, yb = X:index_select(0, idx), y:index_select(0, idx)
    loss = F.cross_entropy(model(xb), yb)
    opt:zero_grad()
    loss:backward()
    opt:step()
  end
end

local pred = lunet.no_grad(function() return model(X):argmax(1) end)
if select("#", ...) == 0 then
  print(model)
  print(("loss %.4f, accuracy %.3f"):format(loss:item(), pred:eq(y):float():mean():item()))
end
return pred, loss:item()
