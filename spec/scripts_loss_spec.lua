-- scripts_loss_spec.lua: runs scripts/cross_entropy.lua (seed 000) and scripts/ce_vs_nll.lua
-- (seeds 002, 004) with the lunet program and checks the printed numbers against the
-- notebooks' outputs (and docs/pytorch-parity.md §4).
local function run(script)
  local bin = LUNET_BIN or "build/lunet"
  local f = assert(io.popen(bin .. " " .. script .. " 2>&1"))
  local out = f:read("a")
  local ok, how, code = f:close()
  if not ok then error(("%s exited with %s %s:\n%s"):format(script, how, code, out)) end
  return out
end

local function has(out, text)
  if not out:find(text, 1, true) then
    error(("output lacks %q; output was:\n%s"):format(text, out), 2)
  end
end

describe("scripts/cross_entropy.lua (seed 000)", function()
  local out
  setup(function() out = run("scripts/cross_entropy.lua") end)

  it("shows softmax applied once, twice and three times", function()
    has(out, "tensor([[0.2501, 0.3376, 0.4123],\n        [0.2603, 0.3514, 0.3883]])")
    has(out, "tensor([[0.3060, 0.3340, 0.3599],\n        [0.3094, 0.3389, 0.3517]])")
    has(out, "tensor([[0.3243, 0.3335, 0.3422],\n        [0.3254, 0.3351, 0.3394]])")
    has(out, "tensor([[-1.3859, -1.0859, -0.8859],\n        [-1.3459, -1.0459, -0.9459]])")
  end)

  it("gives the loop method's and the gather method's losses", function()
    has(out, "法1 [0.8859393000602722, 1.0459107160568237]")
    has(out, "法2 tensor([[0.8859],\n        [1.0459]])")
    has(out, "y_hat: tensor([[0.2318, 0.3458, 0.4224],\n        [0.3179, 0.5242, 0.1579],\n"
      .. "        [0.3858, 0.5755, 0.0387],\n        [0.6310, 0.2835, 0.0854]])")
    has(out, "log_all: tensor([[1.4619, 1.0619, 0.8619],\n        [1.1459, 0.6459, 1.8459],\n"
      .. "        [0.9525, 0.5525, 3.2525],\n        [0.4604, 1.2604, 2.4604]])")
    local list = out:match("loss: %[([^%]]*)%]")
    local want = {1.0618523359298706, 1.1459113359451294, 0.5524619817733765, 2.4603724479675293}
    local got = {}
    for v in list:gmatch("[^,%s]+") do got[#got + 1] = tonumber(v) end
    assert_close(got, want, 1e-6)
    has(out, "gather: tensor([1.0619, 1.1459, 0.5525, 2.4604])")
  end)

  it("gives the mean and nn.CrossEntropyLoss's 1.3051", function()
    has(out, "loss_mean tensor(1.3051)")
    has(out, "crossentropyloss_output: tensor(1.3051)")
  end)
end)

describe("scripts/ce_vs_nll.lua (seeds 002 and 004)", function()
  local out
  setup(function() out = run("scripts/ce_vs_nll.lua") end)

  it("single sample: 0.9729 by hand and by the loss", function()
    assert_close(tonumber(out:match("by hand: ([%d%.]+)")), 0.9729189131256584, 1e-15)
    has(out, "CrossEntropyLoss: tensor(0.9729)")
    assert_close(tonumber(out:match("CrossEntropyLoss: tensor%(0%.9729%) ([%d%.]+)")),
                 0.9729189276695251, 1e-6)
  end)

  it("mini-batches: 0.4966 (right) and 1.2389 (wrong)", function()
    assert_close(tonumber(out:match("Batch Loss1 = ([%d%.]+)")), 0.4966353178024292, 1e-6)
    assert_close(tonumber(out:match("Batch Loss2 = ([%d%.]+)")), 1.2388995885849, 1e-6)
    has(out, "tensor(0.4966)")
    has(out, "tensor(1.2389)")
    has(out, "predictions 1: tensor([2, 0, 1]) predictions 2: tensor([0, 2, 2])")
  end)

  it("float64 5-class example: 1.0156 four ways", function()
    assert_close(tonumber(out:match("by hand %(Lua tables%): ([%d%.]+)")), 1.0155949508195155, 1e-14)
    has(out, "rounded to 4 places: 1.0156")
    local t = "tensor(1.0156, dtype=lunet.float64)"
    has(out, "softmax -> log -> pick: " .. t)
    has(out, "NLLLoss(log(softmax)): " .. t)
    has(out, "LogSoftmax + NLLLoss: " .. t)
    has(out, "CrossEntropyLoss: " .. t)
    assert_close(tonumber(out:match("F%.cross_entropy: [^\n]-%) ([%d%.]+)")), 1.0155949508195155, 1e-12)
  end)

  it("labels shifted by one give a different loss (2.0800)", function()
    has(out, "labels shifted by one: tensor([0, 1, 2])")
    has(out, "pytorch false result: tensor(2.0800, dtype=lunet.float64)")
  end)
end)
