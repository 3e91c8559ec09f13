-- ce_vs_nll.lua - seed notebooks 002 (Lecture 9, softmax classifier) and 004 (cross-entropy
-- by hand vs NLLLoss vs CrossEntropyLoss):
--   * one sample: 0.9729 by hand (plain Lua numbers, as the notebook's NumPy) and by the loss;
--   * two mini-batches of 3: 0.4966 (all predictions right) and 1.2389 (all wrong);
--   * the float64 5-class example: by hand with plain Lua tables, with tensors
--     (softmax -> log -> pick), with nn.LogSoftmax + nn.NLLLoss and with nn.CrossEntropyLoss,
--     all 1.0156; and the notebook's "labels shifted by one" mistake (2.0800).
-- Run: build/lunet scripts/ce_vs_nll.lua
local lunet = require "lunet"
local nn, F = lunet.nn, lunet.nn.functional

-- Python's print and repr of a float, as the notebook printed
local pyprint, repr = lunet.py.print, lunet.py.repr

-- ---------------------------------------------------------------- seed 002
pyprint("== one sample (seed 002)")
do
  -- the NumPy cell: y one-hot, z logits, loss = -(y * log(softmax(z))).sum()
  local y, z = {1, 0, 0}, {0.2, 0.1, -0.1}
  local s = 0
  for i = 1, #z do s = s + math.exp(z[i]) end
  local loss = 0
  for i = 1, #z do loss = loss - y[i] * math.log(math.exp(z[i]) / s) end
  pyprint("by hand:", repr(loss))

  local criterion = nn.CrossEntropyLoss()
  local yt = lunet.tensor({0})
  local zt = lunet.tensor({{0.2, 0.1, -0.1}})
  local l = criterion(zt, yt)
  pyprint("CrossEntropyLoss:", l, repr(l:item()))
end

pyprint("== mini-batch of 3 (seed 002)")
do
  local criterion = nn.CrossEntropyLoss()
  local Y = lunet.tensor({2, 0, 1})
  local y_pred_1 = lunet.tensor({{0.1, 0.2, 0.9},    -- 2 (True)
                                 {1.1, 0.1, 0.2},    -- 0 (True)
                                 {0.2, 2.1, 0.1}})   -- 1 (True)
  local y_pred_2 = lunet.tensor({{0.8, 0.2, 0.3},    -- 2 (False)
                                 {0.2, 0.3, 0.5},    -- 0 (False)
                                 {0.2, 0.2, 0.5}})   -- 1 (False)
  local loss_1 = criterion(y_pred_1, Y)
  local loss_2 = criterion(y_pred_2, Y)
  pyprint("Batch Loss1 = " .. repr(loss_1:item()), loss_1)
  pyprint("Batch Loss2 = " .. repr(loss_2:item()), loss_2)
  pyprint("predictions 1:", y_pred_1:argmax(1), "predictions 2:", y_pred_2:argmax(1))
end

-- ---------------------------------------------------------------- seed 004
local X = {{0.093, 0.1939, -1.0649, 0.4476, -2.0769},
           {-1.8024, 0.3696, 0.7796, -1.0346, 0.473},
           {0.5593, -2.5067, -2.1275, 0.5548, -1.6639}}
local labels = {1, 2, 3}

pyprint("== 3 samples, 5 classes, float64 (seed 004)")
do
  -- by hand with plain Lua tables: softmax of each row, -log at the label, mean
  local total = 0
  for i, row in ipairs(X) do
    local s = 0
    for _, v in ipairs(row) do s = s + math.exp(v) end
    total = total + math.log(math.exp(row[labels[i] + 1]) / s)
  end
  local loss = -total / #X
  pyprint("by hand (Lua tables):", repr(loss))
  pyprint("rounded to 4 places:", ("%.4f"):format(loss))
end

local x = lunet.tensor(X, {dtype = lunet.float64})
local y = lunet.tensor(labels)
do
  -- tensors: softmax -> log -> pick each sample's label -> |mean|
  local x_softmax = nn.Softmax(1)(x)
  local x_log = x_softmax:log()
  local picked = x_log:index({{0, 1, 2}, y})
  local loss = (picked:sum() / #x):abs()
  pyprint("softmax -> log -> pick:", loss)
  pyprint("NLLLoss(log(softmax)):", nn.NLLLoss()(x_log, y))
  local ls = nn.LogSoftmax(1)
  pyprint("LogSoftmax + NLLLoss:", nn.NLLLoss()(ls(x), y))
  pyprint("CrossEntropyLoss:", nn.CrossEntropyLoss()(x, y))
  pyprint("F.cross_entropy:", F.cross_entropy(x, y), repr(F.cross_entropy(x, y):item()))
end

do
  -- the notebook's mistake: labels shifted by one (y - 1) are different classes,
  -- not the same labels counted from 0, so the loss changes
  local y_shift = y - 1
  pyprint("labels shifted by one:", y_shift)
  pyprint("pytorch false result:", nn.CrossEntropyLoss()(x, y_shift))
end
