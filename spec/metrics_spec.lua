-- lunet.metrics: d2l's accuracy and Accumulator (seed 001)
local lunet = require "lunet"
local metrics = lunet.metrics

describe("lunet.metrics.accuracy", function()
  it("counts argmax hits for (N, C) scores, as d2l's accuracy", function()
    -- the notebook's example: accuracy(y_hat, y) / len(y_hat) = 0.5
    local y_hat = lunet.tensor({{0.1, 0.3, 0.6}, {0.3, 0.2, 0.5}})
    local y = lunet.tensor({0, 2})
    local n = metrics.accuracy(y_hat, y)
    assert.are.equal(1.0, n)
    assert.are.equal("float", math.type(n))
    assert.are.equal(0.5, n / y:size(0))
    -- ties go to the first maximum, as torch.argmax
    assert.are.equal(2.0, metrics.accuracy(lunet.tensor({{1, 1}, {0, 0}}), lunet.tensor({0, 0})))
    -- a batch of 256 x 10 logits with known labels
    lunet.manual_seed(0)
    local logits = lunet.randn(256, 10)
    local pred = logits:argmax(1)
    local labels = pred:clone()
    labels:narrow(0, 0, 100):fill_(-1) -- 100 wrong
    assert.are.equal(156.0, metrics.accuracy(logits, labels))
  end)

  it("compares a 1-D prediction (or (N, 1)) directly after casting to y's dtype", function()
    assert.are.equal(2.0, metrics.accuracy(lunet.tensor({0.0, 2.0, 1.9}), lunet.tensor({0, 2, 2})))
    -- 1.9 truncates to 1 in int64, as y_hat.type(y.dtype) does
    assert.are.equal(3.0, metrics.accuracy(lunet.tensor({0.0, 2.0, 1.9}), lunet.tensor({0, 2, 1})))
    assert.are.equal(1.0, metrics.accuracy(lunet.tensor({{3}, {4}}), lunet.tensor({{3}, {5}})))
    assert.are.equal(0.0, metrics.accuracy(lunet.zeros(0, 10), lunet.zeros(0, {dtype = lunet.int64})))
  end)

  it("rejects non-tensors", function()
    assert_error_contains(function() metrics.accuracy({1}, lunet.tensor({1})) end, "y_hat must be a tensor")
    assert_error_contains(function() metrics.accuracy(lunet.tensor({1}), 1) end, "y must be a tensor")
  end)
end)

describe("lunet.metrics.Accumulator", function()
  it("sums, resets and indexes as documented", function()
    local acc = metrics.Accumulator(3)
    assert.are.equal(3, #acc)
    assert.are.same({0.0, 0.0, 0.0}, acc.data)
    acc:add(1, 2, 3)
    acc:add(0.5, lunet.tensor(2.5), lunet.tensor({4}))
    -- acc[i] and acc.data[i] are 1-based, acc:get(i) is 0-based like d2l's metric[i]
    assert.are.equal(1.5, acc[1])
    assert.are.equal(4.5, acc[2])
    assert.are.equal(7.0, acc[3])
    assert.are.equal(1.5, acc:get(0))
    assert.are.equal(7.0, acc:get(2))
    assert.are.equal(acc[2], acc.data[2])
    assert.are.equal("float", math.type(acc[1]))
    assert.are.equal("Accumulator(1.5, 4.5, 7)", tostring(acc))
    -- extra arguments are ignored, as d2l's zip
    acc:add(1, 1, 1, 99)
    assert.are.equal(8.0, acc[3])
    acc:reset()
    assert.are.same({0.0, 0.0, 0.0}, acc.data)
    assert_error_contains(function() acc:get(3) end, "index 3 out of range for 3 sums (get is 0-based)")
    assert_error_contains(function() acc:add("x") end, "argument 1 must be a number or a tensor")
    assert_error_contains(function() metrics.Accumulator(-1) end, "non-negative integer")
  end)

  it("runs d2l's evaluate_accuracy loop", function()
    local X = lunet.tensor({{1, 0}, {0, 1}, {1, 0}, {0, 1}, {1, 0}})
    local y = lunet.tensor({0, 1, 1, 1, 0})
    local metric = metrics.Accumulator(2)
    for i = 0, 4, 2 do
      local n = math.min(2, 5 - i)
      metric:add(metrics.accuracy(X:narrow(0, i, n), y:narrow(0, i, n)), n)
    end
    assert.are.equal(4 / 5, metric[1] / metric[2])
  end)
end)
