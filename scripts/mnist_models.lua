-- mnist_models.lua - the networks of the MNIST scripts, for scripts/mnist_mlp.lua (and through
-- it scripts/mnist_cnn.lua and scripts/lenet.lua) and bench/bench_cnn.lua: the notebook's MLP,
-- the course's CNN and d2l's LeNet-5, each a constructor of a fresh model:
--   package.path = <this folder> .. "?.lua;" .. package.path
--   local models = require "mnist_models"; local net = models.cnn()
-- Layers are made in PyTorch's order, so under a seed the weights are PyTorch's.
local lunet = rawget(_G, "lunet") or require "lunet"
local nn, F = lunet.nn, lunet.nn.functional

-- The notebook's 784-512-256-128-64-10 ReLU network.
local Net = nn.Module:extend("Net")

function Net:init()
  self.l1 = nn.Linear(784, 512)
  self.l2 = nn.Linear(512, 256)
  self.l3 = nn.Linear(256, 128)
  self.l4 = nn.Linear(128, 64)
  self.l5 = nn.Linear(64, 10)
end

function Net:forward(x)
  x = x:view(-1, 784)
  x = F.relu(self.l1(x))
  x = F.relu(self.l2(x))
  x = F.relu(self.l3(x))
  x = F.relu(self.l4(x))
  return self.l5(x) -- no activation on the last layer: cross-entropy takes logits
end

-- The course's CNN.
local CNN = nn.Module:extend("CNN")

function CNN:init()
  self.conv1 = nn.Conv2d(1, 10, 5)
  self.conv2 = nn.Conv2d(10, 20, 5)
  self.mp = nn.MaxPool2d(2)
  self.fc = nn.Linear(320, 10)
end

function CNN:forward(x)
  local n = x:size(0)
  x = F.relu(self.mp(self.conv1(x)))
  x = F.relu(self.mp(self.conv2(x)))
  return self.fc(x:view(n, -1))
end

-- d2l's LeNet-5 (chapter 7.6), with d2l's init_weights: xavier_uniform_ on every Linear and
-- Conv2d weight, in module order (net.apply), the biases as PyTorch made them.
local function LeNet()
  local net = nn.Sequential(
    nn.Conv2d(1, 6, 5, {padding = 2}), nn.Sigmoid(), nn.AvgPool2d(2, 2),
    nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
    nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
    nn.Linear(84, 10))
  for _, m in ipairs(net:modules()) do
    if m.__name == "Linear" or m.__name == "Conv2d" then nn.init.xavier_uniform_(m.weight) end
  end
  return net
end

return {mlp = Net, cnn = CNN, lenet = LeNet}
