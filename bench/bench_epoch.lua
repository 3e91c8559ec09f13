-- bench_epoch.lua - one Fashion-MNIST epoch of the MNIST notebook's MLP (batch 64, SGD lr 0.01
-- momentum 0.5) with the data preloaded as one normalised tensor, as
-- bench/bench_epoch_torch.py mlp does it in PyTorch; prints the epoch's seconds of wall
-- time and of CPU time (all threads; other load on the machine does not inflate it).
-- (The DataLoader and softmax-regression epochs are the scripts' own: make bench reads their
-- metrics.csv.)  Run: build/lunet bench/bench_epoch.lua [data_root]
local lunet = lunet or require "lunet"
local nn, F, optim, data = lunet.nn, lunet.nn.functional, lunet.optim, lunet.data

local root = arg and arg[1] or "data"
local ds = data.FashionMNIST{root = root, train = true, transform = data.transforms.Compose{
  data.transforms.ToTensor(), data.transforms.Normalize({0.1307}, {0.3081})}}
local N = #ds
-- the whole set through ToTensor + Normalize once: one batch of everything, in order
local X, Y
for x, y in data.DataLoader(ds, {batch_size = N}):iter() do X, Y = x, y end

local Net = nn.Module:extend("Net")
function Net:init()
  self.l1, self.l2, self.l3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 128)
  self.l4, self.l5 = nn.Linear(128, 64), nn.Linear(64, 10)
end
function Net:forward(x)
  x = x:view(-1, 784)
  x = F.relu(self.l1(x)); x = F.relu(self.l2(x)); x = F.relu(self.l3(x)); x = F.relu(self.l4(x))
  return self.l5(x)
end

lunet.manual_seed(0)
local model = Net()
local opt = optim.SGD(model:parameters(), {lr = 0.01, momentum = 0.5})
local t0, c0 = lunet.monotonic(), os.clock()
local perm = lunet.randperm(N)
for i = 0, N - 1, 64 do
  local idx = perm:narrow(0, i, math.min(64, N - i))
  local x, y = X:index_select(0, idx), Y:index_select(0, idx)
  opt:zero_grad()
  local loss = F.cross_entropy(model(x), y)
  loss:backward()
  opt:step()
end
print(("%.4f %.4f"):format(lunet.monotonic() - t0, os.clock() - c0))
