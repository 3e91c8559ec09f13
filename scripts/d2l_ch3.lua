-- d2l_ch3.lua - softmax regression from scratch as d2l's chapter 3.6 writes it, for
-- scripts/softmax_regression.lua (the notebook) and bench/bench_sr.lua (its timed epoch):
-- the parameters, the hand-written softmax and net, cross_entropy as -log(y_hat[range, y]),
-- d2l.sgd and one training epoch (train_epoch_ch3).
--   package.path = <this folder> .. "?.lua;" .. package.path; local d2l = require "d2l_ch3"
local lunet = rawget(_G, "lunet") or require "lunet"
local metrics = lunet.metrics

local M = {}

-- W (num_inputs, num_outputs) from N(0, 0.01) and b zeros, both with requires_grad
function M.init_params(num_inputs, num_outputs)
  return lunet.normal(0, 0.01, {num_inputs, num_outputs}, {requires_grad = true}),
         lunet.zeros(num_outputs, {requires_grad = true})
end

-- exp, then divide by the row sums (broadcast); naive on purpose, as in the notebook
function M.softmax(X)
  local X_exp = X:exp()
  local partition = X_exp:sum(1, true)
  return X_exp / partition
end

-- the model: softmax(X W + b) over the flattened images
function M.net(W, b)
  return function(X) return M.softmax(X:reshape(-1, W.shape[1]):matmul(W) + b) end
end

-- -log of the probability each row gives its true class: y_hat[range(len(y_hat)), y]
function M.cross_entropy(y_hat, y)
  return -y_hat:index{lunet.arange(#y_hat), y}:log()
end

-- d2l.sgd: param -= lr * param.grad / batch_size, then zero the gradient, without history
function M.sgd(params, lr, size)
  lunet.no_grad(function()
    for _, param in ipairs(params) do
      param:sub_(lr * param.grad / size)
      param.grad:zero_()
    end
  end)
end

-- d2l.train_epoch_ch3 over the (X, y) batches of an iterator; updater(batch_size) steps.
-- Returns the mean training loss and the training accuracy.
function M.train_epoch_ch3(net, batches, updater)
  local metric = metrics.Accumulator(3) -- loss sum, correct predictions, examples
  for X, y in batches do
    local y_hat = net(X)
    local l = M.cross_entropy(y_hat, y)
    l:sum():backward()
    updater(X:size(0))
    metric:add(l:sum(), metrics.accuracy(y_hat, y), y:numel())
  end
  return metric[1] / metric[3], metric[2] / metric[3]
end

return M
