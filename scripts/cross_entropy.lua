-- cross_entropy.lua - seed notebook 000 ("交叉熵损失"): softmax by hand (applied 1, 2 and 3
-- times), cross-entropy by a loop over samples and by gather, their mean, and
-- nn.CrossEntropyLoss on the same logits (1.3051).
-- Run: build/lunet scripts/cross_entropy.lua   (or lua5.4 with build/ on package.cpath)
local lunet = require "lunet"
local nn = lunet.nn

-- Python's print and repr of a float, as the notebook printed
local pyprint, repr = lunet.py.print, lunet.py.repr

local function list_repr(t)
  local parts = {}
  for i, v in ipairs(t) do parts[i] = repr(v) end
  return "[" .. table.concat(parts, ", ") .. "]"
end

-- softmax by hand, as the notebook writes it (no max subtraction)
local function softmax(x)
  local exp_x = x:exp()
  return exp_x / exp_x:sum(1, true)
end

local test_x = lunet.tensor({{0.5, 0.8, 1},
                             {1.2, 1.5, 1.6}})
local x_softmax = softmax(test_x)
pyprint(x_softmax)
pyprint(softmax(x_softmax))
-- repeating softmax keeps changing the values (towards 1/3)
pyprint(softmax(softmax(x_softmax)))
pyprint()

-- method 1: a loop over the samples, collecting plain numbers (item())
local function cross_loss_1(y_hat, y)
  local loss = {}
  for i = 0, #y - 1 do
    local yi = type(y) == "table" and y[i + 1] or y[i]
    -- y_hat[i][yi] would be a Lua number; select keeps a 0-d float32 tensor, so the log is
    -- taken in float32 as in the notebook
    loss[#loss + 1] = -(y_hat:select(0, i):select(0, yi):log()):item()
  end
  return loss
end

-- method 2: gather picks each sample's true-class probability
local function cross_loss_2(y_hat, y)
  return -(y_hat:gather(1, y:view(-1, 1))):log()
end

local y_hat = lunet.tensor({{0.5, 0.8, 1},
                            {1.2, 1.5, 1.6}})
local y = lunet.tensor({2, 1})
y_hat = softmax(y_hat)
pyprint(y_hat)
pyprint()
pyprint("对全部概率取-log：")
pyprint(y_hat:log())
pyprint("\n")
pyprint("对真实类别对应概率取-log：")
pyprint("法1", list_repr(cross_loss_1(y_hat, y)))
pyprint("法2", -(y_hat:gather(1, y:view(-1, 1)):log()))
pyprint()

-- four samples, three classes
local o_hat = lunet.tensor({{1.5, 1.9, 2.1},
                            {5.6, 6.1, 4.9},
                            {3.5, 3.9, 1.2},
                            {9.8, 9.0, 7.8}})
pyprint("o_hat:", o_hat, "\n")
y_hat = softmax(o_hat)
pyprint("y_hat:", y_hat, "\n")

local ylist = {1, 0, 1, 2}
local y_target = lunet.tensor(ylist)
pyprint("y:", "[" .. table.concat(ylist, ", ") .. "]", "\n")
pyprint("log_all:", -y_hat:log(), "\n")

local loss = cross_loss_1(y_hat, ylist)
pyprint("loss:", list_repr(loss), "\n")
pyprint("loss_mean", lunet.tensor(loss):mean())
pyprint("gather:", cross_loss_2(y_hat, y_target):view(-1))

local crossentropyloss = nn.CrossEntropyLoss()
local crossentropyloss_output = crossentropyloss(o_hat, y_target)
pyprint("crossentropyloss_output:", crossentropyloss_output)
