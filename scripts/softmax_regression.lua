-- softmax_regression.lua - softmax regression from scratch on Fashion-MNIST, as the d2l
-- notebook (seed 001) writes it: W (784, 10) from N(0, 0.01) and b zeros with requires_grad,
-- the hand-written softmax, net, cross_entropy as -log(y_hat[range, y]), accuracy, an
-- Accumulator, evaluate_accuracy and the minibatch SGD updater; batch 256, lr 0.1, 10 epochs.
-- The model, loss, updater and training epoch are in scripts/d2l_ch3.lua.
--
--   build/lunet scripts/softmax_regression.lua [--epochs 10] [--out DIR]
--
-- Prints train loss, train accuracy and test accuracy per epoch, and writes metrics.csv and
-- curves.svg (the three curves d2l's train_ch3 draws) into --out.
local lunet = lunet or require "lunet"
local argparse = require "argparse"
local data, metrics = lunet.data, lunet.metrics
local clock = lunet.monotonic
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
package.path = here .. "?.lua;" .. package.path
local d2l = require "d2l_ch3" -- the model, loss, updater and epoch, shared with bench/bench_sr.lua

local parser = argparse("softmax_regression.lua", "Softmax regression from scratch (d2l 3.6).")
parser:option("--data", "Folder holding FashionMNIST/raw (make data).", "data")
parser:option("--epochs", "Number of epochs.", "10"):convert(math.tointeger)
parser:option("--batch-size", "Batch size.", "256"):convert(math.tointeger)
parser:option("--lr", "Learning rate.", "0.1"):convert(tonumber)
parser:option("--seed", "Seed of the random generator.", "0"):convert(math.tointeger)
parser:option("--out", "Output folder.", "out/softmax_regression")
parser:option("--limit", "Use only the first N training images (and N/6 test images).")
  :convert(math.tointeger)
local args = parser:parse(arg)

lunet.manual_seed(args.seed)

-- d2l.load_data_fashion_mnist: ToTensor only, training batches shuffled
local function load_data_fashion_mnist(batch_size)
  local tf = data.transforms.ToTensor()
  local mnist_train = data.FashionMNIST{root = args.data, train = true, transform = tf, limit = args.limit}
  local mnist_test = data.FashionMNIST{root = args.data, train = false, transform = tf,
    limit = args.limit and math.max(args.limit // 6, 1)}
  return data.DataLoader(mnist_train, {batch_size = batch_size, shuffle = true}),
         data.DataLoader(mnist_test, {batch_size = batch_size, shuffle = false})
end

local batch_size = args.batch_size
local train_iter, test_iter = load_data_fashion_mnist(batch_size)

local num_inputs, num_outputs = 784, 10
local W, b = d2l.init_params(num_inputs, num_outputs)
local net = d2l.net(W, b)

local function evaluate_accuracy(net_fn, data_iter)
  local metric = metrics.Accumulator(2) -- correct predictions, predictions
  lunet.no_grad(function()
    for X, y in data_iter:iter() do
      metric:add(metrics.accuracy(net_fn(X), y), y:numel())
    end
  end)
  return metric[1] / metric[2]
end

local function updater(size) return d2l.sgd({W, b}, args.lr, size) end

local out = args.out
assert(os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'"), "cannot create " .. out)
local hist = {epoch = {}, train_loss = {}, train_acc = {}, test_acc = {}, seconds = {}}

local function write_outputs()
  local rows = {"epoch,train_loss,train_acc,test_acc,epoch_seconds"}
  for i, e in ipairs(hist.epoch) do
    rows[#rows + 1] = ("%d,%.6f,%.4f,%.4f,%.3f"):format(e, hist.train_loss[i], hist.train_acc[i],
      hist.test_acc[i], hist.seconds[i])
  end
  local tmp = out .. "/metrics.csv.tmp"
  local f = assert(io.open(tmp, "wb"))
  f:write(table.concat(rows, "\n"), "\n")
  f:close()
  assert(os.rename(tmp, out .. "/metrics.csv"))
  local fig = lunet.plot.figure{width = 560, height = 400, title = "Softmax regression on Fashion-MNIST"}
  local ax = fig:panel{xlabel = "epoch", ylabel = "", title = "", ylim = {0.3, 0.9}, legend = "lower left"}
  ax:line(hist.epoch, hist.train_loss, {label = "train loss"})
  ax:line(hist.epoch, hist.train_acc, {label = "train acc"})
  ax:line(hist.epoch, hist.test_acc, {label = "test acc"})
  fig:save(out .. "/curves.svg")
end

-- d2l.train_ch3
for epoch = 1, args.epochs do
  local t0 = clock()
  local train_loss, train_acc = d2l.train_epoch_ch3(net, train_iter:iter(), updater)
  local seconds = clock() - t0
  local test_acc = evaluate_accuracy(net, test_iter)
  print(("epoch %d, train loss %.3f, train acc %.3f, test acc %.3f (%.2f s)"):format(epoch,
    train_loss, train_acc, test_acc, seconds))
  local n = #hist.epoch + 1
  hist.epoch[n], hist.train_loss[n], hist.train_acc[n] = epoch, train_loss, train_acc
  hist.test_acc[n], hist.seconds[n] = test_acc, seconds
  write_outputs()
end
print(("metrics: %s/metrics.csv\nfigure: %s/curves.svg"):format(out, out))
