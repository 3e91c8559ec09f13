-- bench_cnn.lua - Lunet's training time per epoch of the two CNN scripts on Fashion-MNIST
-- (60,000 images of 28x28), batches from lunet.data.DataLoader:
--  - the course's CNN (scripts/mnist_cnn.lua): batch 64, SGD lr 0.01 momentum 0.5,
--    ToTensor + Normalize;
--  - d2l's LeNet-5 (scripts/lenet.lua): batch 256, SGD lr 0.9, ToTensor only;
-- (the scripts' own networks, scripts/mnist_models.lua) and the share of the epoch's CPU time that the two convolutions take (forward and the
-- gradients training needs: weight and bias, and the input's for the second layer; timed
-- alone over the same batches).  CPU time, because on a shared machine it varies less than
-- wall time; the epoch is given in both.
-- The same work as bench/bench_cnn_torch.py.  Run: build/lunet bench/bench_cnn.lua [data_root]
local lunet = require "lunet"
local F, data = lunet.nn.functional, lunet.data
local clock = lunet.monotonic
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
package.path = here .. "../scripts/?.lua;" .. package.path
local models = require "mnist_models" -- the scripts' networks
local root = arg[1] or "data"

local function loader(normalize, bs)
  local steps = {data.transforms.ToTensor()}
  if normalize then steps[2] = data.transforms.Normalize({0.1307}, {0.3081}) end
  local ds = data.FashionMNIST{root = root, train = true, transform = data.transforms.Compose(steps)}
  return data.DataLoader(ds, {batch_size = bs, shuffle = true})
end

local function epoch(model, dl, lr, momentum)
  local opt = lunet.optim.SGD(model:parameters(), {lr = lr, momentum = momentum})
  local t0, c0 = clock(), os.clock()
  for x, y in dl:iter() do
    opt:zero_grad()
    F.cross_entropy(model(x), y):backward()
    opt:step()
  end
  return clock() - t0, os.clock() - c0
end

-- Forward, then backward of ones (made outside the timed regions, once per shape: a fill is
-- not convolution work), for both layers.
local function conv_time(c1, between, c2, dl)
  local total, ones = 0, {}
  local function timed(f, ...)
    local t0 = os.clock()
    local r = f(...)
    total = total + os.clock() - t0
    return r
  end
  local function ones_for(y)
    local key = table.concat(y:size(), "x")
    ones[key] = ones[key] or lunet.ones_like(y)
    return ones[key]
  end
  local function backward(y, g) y:backward(g) end
  for x in dl:iter() do
    local y1 = timed(c1, x)
    timed(backward, y1, ones_for(y1))
    local h = between(y1:detach()):requires_grad_(true)
    local y2 = timed(c2, h)
    timed(backward, y2, ones_for(y2))
  end
  return total
end

lunet.manual_seed(0)
print(("Lunet %s, %d thread(s)"):format(lunet._VERSION, lunet.get_num_threads()))
local m, dl = models.cnn(), loader(true, 64)
local t, cpu = epoch(m, dl, 0.01, 0.5)
local tc = conv_time(m.conv1, function(y) return F.relu(F.max_pool2d(y, 2)) end, m.conv2, dl)
print(("Lunet course CNN epoch (batch 64): %.2f s (CPU %.2f s); convolution %.2f s CPU (%.0f%%)")
  :format(t, cpu, tc, 100 * tc / cpu))
local le = models.lenet()
dl = loader(false, 256)
t, cpu = epoch(le, dl, 0.9, 0)
tc = conv_time(le["0"], function(y) return F.avg_pool2d(y:sigmoid(), 2) end, le["3"], dl)
print(("Lunet LeNet-5 epoch (batch 256): %.2f s (CPU %.2f s); convolution %.2f s CPU (%.0f%%)")
  :format(t, cpu, tc, 100 * tc / cpu))
