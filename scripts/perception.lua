-- perception.lua - the perceptron notebook (seed 003) as a Lunet script: a custom Linear
-- module made of nn.Parameter(lunet.randn(...)), a two-layer sigmoid Perception, its
-- printout and named parameters, a random batch of 4, cross-entropy through
-- nn.CrossEntropyLoss and F.cross_entropy, and the same value again in the notebook's three
-- explicit steps (softmax, log, pick and average).
--
--   build/lunet scripts/perception.lua
--
-- The notebook drew unseeded numbers; seed 0 here gives what torch.manual_seed(0) gives.
local lunet = lunet or require "lunet"
local nn, F = lunet.nn, lunet.nn.functional

lunet.manual_seed(0)

-- A fully connected sub-module built from nn.Parameters (the notebook's own Linear).
local Linear = nn.Module:extend("Linear")

function Linear:init(in_dim, out_dim)
  self.w = nn.Parameter(lunet.randn(in_dim, out_dim))
  self.b = nn.Parameter(lunet.randn(out_dim))
end

function Linear:forward(x)
  x = x:matmul(self.w)
  return x + self.b:expand_as(x)
end

-- The perceptron: two such layers, each followed by a sigmoid.
local Perception = nn.Module:extend("Perception")

function Perception:init(in_dim, hid_dim, out_dim)
  self.layer1 = Linear(in_dim, hid_dim)
  self.layer2 = Linear(hid_dim, out_dim)
end

function Perception:forward(x)
  x = self.layer1(x)
  local y = lunet.sigmoid(x)
  y = self.layer2(y)
  return lunet.sigmoid(y)
end

local p = Perception(2, 3, 2)
print(p)

for name, parameter in p:named_parameters() do
  print(name, parameter)
end

-- four random samples of two features
local data = lunet.randn(4, 2)
print(data, data:size(), data.grad_fn)

local output = p(data)
print(output, output:size())

-- two classes: labels 0 or 1 for the four samples
local label = lunet.tensor({0, 1, 1, 0}):long()
print(label, label:size())

local criterion = nn.CrossEntropyLoss()
local loss_nn = criterion(output, label)
print(loss_nn)

local loss_functional = F.cross_entropy(output, label)
print(loss_functional)
assert(loss_nn:item() == loss_functional:item(), "the module and the function must agree")

-- CrossEntropyLoss in three explicit steps: 1. softmax, 2. log, 3. pick the true class and
-- average (the notebook's nn.Softmax() left the dim implicit; for 2-D input that is dim 1)
local softmax = nn.Softmax(1)
local output_softmax = softmax(output)
print(output_softmax)

local output_log = output_softmax:log()
print(output_log)

local picked = output_log:index{lunet.arange(#output), label}
print(picked)

local loss = (picked:sum() / #picked):abs()
print(loss)
print(("three steps %.6f, CrossEntropyLoss %.6f"):format(loss:item(), loss_nn:item()))
