-- nn_spec.lua: nn.Module and its layers, and optim.SGD, against PyTorch 1.13's values
-- (spec/fixtures/nn_golden.lua, written by spec/fixtures/gen_nn.py).
local lunet = require "lunet"
local nn, F, optim = lunet.nn, lunet.nn.functional, lunet.optim
local golden = dofile("spec/fixtures/nn_golden.lua")

local function bits_equal(t, want)
  local flat_g, flat_w = flatten(t:tolist()), flatten(want)
  assert.are.equal(#flat_w, #flat_g)
  for i = 1, #flat_w do
    if flat_g[i] ~= flat_w[i] then
      error(("element %d: got %.17g, expected %.17g"):format(i, flat_g[i], flat_w[i]), 2)
    end
  end
end

describe("nn.Linear", function()
  it("initialises bit-exactly as PyTorch after manual_seed", function()
    for _, case in ipairs(golden.inits) do
      lunet.manual_seed(case.seed)
      for li, size in ipairs(case.sizes) do
        local l = nn.Linear(size[1], size[2])
        local want = case.params[li]
        if case.weight_sum then
          bits_equal(l.weight[0]:narrow(0, 0, 5), want[1])
          assert_close(l.weight:double():sum():item(), case.weight_sum, 1e-12)
        else
          bits_equal(l.weight, want[1])
        end
        bits_equal(l.bias, want[2])
      end
    end
  end)

  it("has PyTorch's parameters, text and errors", function()
    local l = nn.Linear(3, 2)
    assert.are.equal("Linear(in_features=3, out_features=2, bias=True)", tostring(l))
    assert.are.equal("lunet.Size([2, 3])", tostring(l.weight:size()))
    assert.is_true(l.weight.requires_grad)
    assert.is_true(l.weight.is_leaf)
    local names = {}
    for name in l:named_parameters() do names[#names + 1] = name end
    assert.are.same({"weight", "bias"}, names)
    assert.is_nil(nn.Linear(3, 2, {bias = false}).bias)
    assert.are.equal("Linear(in_features=3, out_features=2, bias=False)", tostring(nn.Linear(3, 2, {bias = false})))
    assert.has_error(function() l(lunet.zeros(2, 5)) end, "mat1 and mat2 shapes cannot be multiplied (2x5 and 3x2)")
    assert.has_error(function() l(lunet.zeros(2, 3, {dtype = lunet.float64})) end, "mat1 and mat2 must have the same dtype")
    assert.matches("Parameter containing:\ntensor%(%[%[", tostring(l.weight))
  end)

  it("accepts 1-D and batched inputs", function()
    local l = nn.Linear(3, 2)
    assert.are.equal("lunet.Size([2])", tostring(l(lunet.ones(3)):size()))
    assert.are.equal("lunet.Size([4, 5, 2])", tostring(l(lunet.ones(4, 5, 3)):size()))
    local y = l(lunet.ones(2, 3))
    assert.are.equal("AddmmBackward0", tostring(y.grad_fn):match("<(.-)>"))
  end)
end)

describe("nn.Module", function()
  local Net = nn.Module:extend("Net")
  function Net:init(n_in, n_out)
    self.layer1 = nn.Linear(n_in, 3)
    self.layer2 = nn.Linear(3, n_out)
    self.scale = nn.Parameter(lunet.ones(1))
    self.note = "plain field"
  end
  function Net:forward(x) return self.layer2(self.layer1(x):sigmoid()) * self.scale end

  it("registers parameters and modules in PyTorch's order", function()
    local m = Net(2, 2)
    local names = {}
    for name in m:named_parameters() do names[#names + 1] = name end
    assert.are.same({"scale", "layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"}, names)
    assert.are.equal(5, #m:parameters())
    assert.are.equal(2, #m:children())
    assert.are.equal(3, #m:modules())
    assert.are.equal("plain field", m.note)
    assert.are.equal(
      "Net(\n  (layer1): Linear(in_features=2, out_features=3, bias=True)\n  (layer2): Linear(in_features=3, out_features=2, bias=True)\n)",
      tostring(m))
  end)

  it("calls forward, switches train/eval, zero-fills grads", function()
    local m = Net(2, 2)
    local out = m(lunet.ones(4, 2))
    assert.are.equal("lunet.Size([4, 2])", tostring(out:size()))
    out:sum():backward()
    assert.is_not_nil(m.layer1.weight.grad)
    m:zero_grad()
    assert_close(m.layer1.weight.grad, {{0, 0}, {0, 0}, {0, 0}}, 0)
    m:zero_grad({set_to_none = true})
    assert.is_nil(m.layer1.weight.grad)
    assert.is_true(m.training)
    m:eval()
    assert.is_false(m.layer1.training)
    m:train()
    assert.is_true(m.layer2.training)
  end)

  it("round-trips a state dict and checks keys and shapes", function()
    local a, b = Net(2, 2), Net(2, 2)
    b:load_state_dict(a:state_dict())
    for name, p in a:named_parameters() do
      assert_close(b:state_dict()[name], p, 0)
    end
    local sd = a:state_dict()
    sd["layer1.weight"] = lunet.zeros(5, 5)
    assert.has_error(function() b:load_state_dict(sd) end,
      "size mismatch for layer1.weight: copying a param with shape lunet.Size([5, 5]) from checkpoint, the shape in current model is lunet.Size([3, 2]).")
    sd["layer1.weight"] = nil
    local ok, err = pcall(b.load_state_dict, b, sd)
    assert.is_false(ok)
    assert.matches('Missing key%(s%) in state_dict: "layer1.weight"', err)
  end)

  it("refuses to be constructed directly and without forward", function()
    assert.has_error(function() nn.Module() end)
    local Bare = nn.Module:extend("Bare")
    assert.has_error(function() Bare()(lunet.ones(1)) end)
  end)
end)

describe("nn.Sequential and nn.MLP", function()
  it("chains modules and prints as PyTorch", function()
    local s = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.Sigmoid())
    assert.are.equal(
      "Sequential(\n  (0): Linear(in_features=4, out_features=3, bias=True)\n  (1): ReLU()\n  (2): Linear(in_features=3, out_features=2, bias=True)\n  (3): Sigmoid()\n)",
      tostring(s))
    local x = lunet.randn(5, 4)
    -- the fused Linear+ReLU gives what the separate steps give
    local want = s["3"](s["2"](s["0"](x):relu()))
    assert_close(s(x), want, 1e-6)
    local names = {}
    for name in s:named_parameters() do names[#names + 1] = name end
    assert.are.same({"0.weight", "0.bias", "2.weight", "2.bias"}, names)
  end)

  it("builds the notebook's MLP and flattens images", function()
    local m = nn.MLP({784, 512, 256, 128, 64, 10})
    assert.are.equal(9, #m:children())
    assert.are.equal(10, #m:parameters())
    local y = m(lunet.zeros(3, 1, 28, 28))
    assert.are.equal("lunet.Size([3, 10])", tostring(y:size()))
    assert.has_error(function() nn.MLP({4, 2}, {activation = "gelu"}) end)
  end)

  it("gives PyTorch's loss and gradients for a small MLP (float64 and float32)", function()
    for _, g in ipairs(golden.mlps) do
      local dt = g.dtype == "float64" and lunet.float64 or lunet.float32
      local m = nn.Sequential(nn.Linear(5, 4, {dtype = dt}), nn.ReLU(), nn.Linear(4, 3, {dtype = dt}))
      m:load_state_dict({
        ["0.weight"] = lunet.tensor(g.w1, {dtype = dt}), ["0.bias"] = lunet.tensor(g.b1, {dtype = dt}),
        ["2.weight"] = lunet.tensor(g.w2, {dtype = dt}), ["2.bias"] = lunet.tensor(g.b2, {dtype = dt}),
      })
      local x, y = lunet.tensor(g.x, {dtype = dt}), lunet.tensor(g.y)
      local loss = F.cross_entropy(m(x), y)
      local tol = g.dtype == "float64" and 1e-12 or 1e-5
      assert_close(loss:item(), g.loss, tol)
      loss:backward()
      assert_close(m["0"].weight.grad, g.gw1, tol)
      assert_close(m["0"].bias.grad, g.gb1, tol)
      assert_close(m["2"].weight.grad, g.gw2, tol)
      assert_close(m["2"].bias.grad, g.gb2, tol)
    end
  end)
end)

describe("optim.SGD", function()
  local function opts_text(o)
    local keys = {}
    for k in pairs(o) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(o[k]) end
    return table.concat(parts, " ")
  end

  it("follows PyTorch's trajectories for every option (float32 bit-exact, float64 1e-12)", function()
    local s = golden.sgd
    for _, run in ipairs(s.runs) do
      local dt = run.dtype == "float64" and lunet.float64 or lunet.float32
      local p = lunet.tensor(s.p0):to(dt):requires_grad_()
      local opt = optim.SGD({p}, run.opts)
      for k, g in ipairs(s.grads) do
        p.grad = lunet.tensor(g):to(dt)
        opt:step()
        if run.dtype == "float32" then
          local ok, err = pcall(bits_equal, p, run.steps[k])
          if not ok then error(opts_text(run.opts) .. " step " .. k .. ": " .. err) end
        else
          assert_close(p, run.steps[k], 1e-12)
        end
      end
    end
  end)

  it("validates its options with PyTorch's messages", function()
    local p = lunet.zeros(2, {requires_grad = true})
    assert.has_error(function() optim.SGD({p}, {lr = -1}) end, "Invalid learning rate: -1")
    assert.has_error(function() optim.SGD({p}, {lr = 0.1, momentum = -0.1}) end, "Invalid momentum value: -0.1")
    assert.has_error(function() optim.SGD({p}, {lr = 0.1, weight_decay = -1}) end, "Invalid weight_decay value: -1")
    assert.has_error(function() optim.SGD({p}, {lr = 0.1, nesterov = true}) end,
      "Nesterov momentum requires a momentum and zero dampening")
    assert.has_error(function() optim.SGD({p}, {}) end,
      "parameter group didn't specify a value of required optimization parameter lr")
    assert.has_error(function() optim.SGD({}, {lr = 0.1}) end, "optimizer got an empty parameter list")
    assert.has_error(function() optim.SGD({p * 2}, {lr = 0.1}) end, "can't optimize a non-leaf Tensor")
    assert.has_error(function() optim.SGD({{params = {p}}, {params = {p}}}, {lr = 0.1}) end,
      "some parameters appear in more than one parameter group")
  end)

  it("skips nil grads, steps zero grads, supports groups and prints", function()
    local w = lunet.ones(1, {requires_grad = true})
    local v = lunet.ones(1, {requires_grad = true})
    local opt = optim.SGD({{params = {w}}, {params = {v}, lr = 0.01, momentum = 0.9}}, {lr = 0.1})
    w.grad = lunet.ones(1)
    v.grad = lunet.ones(1)
    opt:step()
    assert_close(w, {0.9}, 1e-7)
    assert_close(v, {0.99}, 1e-7)
    local a = lunet.ones(1, {requires_grad = true})
    local b = lunet.ones(1, {requires_grad = true})
    local o2 = optim.SGD({a, b}, {lr = 0.1, weight_decay = 0.5})
    a.grad = lunet.zeros(1)
    o2:step()
    assert.are.equal(0.949999988079071, a:item())
    assert.are.equal(1, b:item())
    o2:zero_grad()
    assert.are.equal(0, a.grad:item())
    assert.are.equal(
      "SGD (\nParameter Group 0\n    dampening: 0\n    differentiable: False\n    foreach: None\n    lr: 0.1\n    maximize: False\n    momentum: 0\n    nesterov: False\n    weight_decay: 0.5\n)",
      tostring(o2))
  end)

  it("saves and restores its momentum state", function()
    local p = lunet.tensor({1.0, -2.0}, {requires_grad = true})
    local opt = optim.SGD({p}, {lr = 0.1, momentum = 0.9})
    p.grad = lunet.tensor({0.5, 0.5})
    opt:step()
    local sd = opt:state_dict()
    assert.is_not_nil(sd.state[0].momentum_buffer)
    assert.are.same({0}, sd.param_groups[1].params)
    local q = lunet.tensor({1.0, -2.0}, {requires_grad = true})
    local opt2 = optim.SGD({q}, {lr = 0.1, momentum = 0.9})
    lunet.no_grad(function() q:copy_(p) end)
    opt2:load_state_dict(sd)
    p.grad = lunet.tensor({0.25, 0.25})
    q.grad = lunet.tensor({0.25, 0.25})
    opt:step()
    opt2:step()
    assert_close(q, p, 0)
  end)
end)

describe("a training loop", function()
  local optimizers = {
    SGD = function(params) return optim.SGD(params, {lr = 0.1, momentum = 0.5}) end,
    AdamW = function(params) return optim.AdamW(params, {lr = 0.01, amsgrad = true}) end,
  }
  for _, name in ipairs({"SGD", "AdamW"}) do
    it("drives the loss down with flat memory over 1000 steps (" .. name .. ")", function()
      lunet.manual_seed(0)
      local x = lunet.randn(64, 8)
      local y = (x:narrow(1, 0, 1):squeeze(1):gt(0)):long()
      local m = nn.MLP({8, 16, 2})
      local crit = nn.CrossEntropyLoss()
      local opt = optimizers[name](m:parameters())
      -- memory the runtime holds (live tensors + its cache of freed blocks), sampled without
      -- forcing collections.  Lua's collector frees tensors at its own pace, so the figure
      -- wobbles a little; a leak of even one small tensor per step would add hundreds of KB.
      local first, last, warm, peak
      for step = 1, 1000 do
        opt:zero_grad()
        local loss = crit(m(x), y)
        loss:backward()
        opt:step()
        if step == 1 then first = loss:item() end
        if step == 500 then warm = lunet.memory_reserved() end
        if step > 500 then peak = math.max(peak or 0, lunet.memory_reserved()) end
        last = loss:item()
      end
      assert.is_true(last < first * 0.2, ("loss %g -> %g"):format(first, last))
      assert.is_true(peak <= warm * 1.25, ("memory grew from %d to %d bytes"):format(warm, peak))
    end)
  end
end)
