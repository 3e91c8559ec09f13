-- loss_spec.lua: softmax, log_softmax, cross_entropy, nll_loss, mse_loss through the Lua API
-- against PyTorch 1.13 (docs/pytorch-parity.md §1-§4).  Goldens: spec/fixtures/loss_golden.lua,
-- written by tests/fixtures/gen_losses.py; gradients go through autograd (t:backward(g)).
local lunet = require "lunet"
local nn, F = lunet.nn, lunet.nn.functional

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/"
local goldens = dofile(here .. "fixtures/loss_golden.lua")

local function dtype_of(d) return d == 1 and lunet.float64 or lunet.float32 end
local function tol_of(d) return d == 1 and 1e-12 or 1e-6 end

local function mk(flat, shape, dtype, requires_grad)
  local t = lunet.tensor(flat, {dtype = dtype}):reshape(shape)
  if requires_grad then t:requires_grad_() end
  return t
end

local function options(c)
  local o = {ignore_index = c.ignore_index, reduction = ({"none", "mean", "sum"})[c.reduction + 1]}
  if c.weight then
    o.weight = lunet.tensor(c.weight, {dtype = dtype_of(c.dtype)})
  end
  if c.kind == 0 then o.label_smoothing = c.eps end
  return o
end

describe("losses against PyTorch goldens", function()
  it("every cross_entropy / nll_loss / mse_loss case: value, shape, grad_fn, gradient", function()
    local n = 0
    for _, c in ipairs(goldens.loss) do
      local dt = dtype_of(c.dtype)
      local x = mk(c.x, c.shape, dt, true)
      local tdt = (c.prob == 1 or c.kind == 2) and dt or (c.tu8 == 1 and lunet.uint8 or lunet.int64)
      local t = mk(c.target, c.tshape, tdt)
      local o = options(c)
      local out
      if c.kind == 0 then
        out = F.cross_entropy(x, t, o)
      elseif c.kind == 1 then
        out = F.nll_loss(x, t, o)
      else
        out = F.mse_loss(x, t, {reduction = o.reduction})
      end
      local ok, err = pcall(function()
        assert.are.equal(#c.oshape, out:dim())
        assert_close(out, c.out, tol_of(c.dtype))
        assert.are.equal("<" .. c.grad_fn .. ">", tostring(out.grad_fn))
        out:backward(mk(c.g, c.oshape, dt))
        assert_close(x.grad, c.grad, tol_of(c.dtype))
      end)
      if not ok then error(c.name .. ": " .. tostring(err)) end
      n = n + 1
    end
    assert.is_true(n > 300)
  end)

  it("every softmax / log_softmax case: value and gradient", function()
    for _, c in ipairs(goldens.softmax) do
      local dt = dtype_of(c.dtype)
      local x = mk(c.x, c.shape, dt, true)
      local y = c.log == 1 and F.log_softmax(x, c.dim) or F.softmax(x, c.dim)
      local ok, err = pcall(function()
        assert_close(y, c.out, tol_of(c.dtype))
        y:backward(mk(c.g, c.shape, dt))
        assert_close(x.grad, c.grad, tol_of(c.dtype))
      end)
      if not ok then error(c.name .. ": " .. tostring(err)) end
    end
  end)
end)

describe("softmax API", function()
  local m = lunet.tensor({{1., 2.}, {3., 5.}})

  it("takes dim positionally, in a table, as a method, and through modules", function()
    local want = {{0.2689414322376251, 0.7310585975646973}, {0.11920291185379028, 0.8807970285415649}}
    assert_close(F.softmax(m, 1), want)
    assert_close(F.softmax(m, {dim = -1}), want)
    assert_close(m:softmax(1), want)
    assert_close(lunet.softmax(m, 1), want)
    assert_close(nn.Softmax(1)(m), want)
    assert_close(nn.Softmax({dim = 1})(m), want)
    assert_close(nn.LogSoftmax(0)(lunet.tensor({1., 2., 3.})),
                 {-2.4076058864593506, -1.4076058864593506, -0.40760594606399536})
    assert_close(m:log_softmax(0):exp(), F.softmax(m, 0))
  end)

  it("prints modules as PyTorch", function()
    assert.are.equal("Softmax(dim=1)", tostring(nn.Softmax(1)))
    assert.are.equal("Softmax(dim=None)", tostring(nn.Softmax()))
    assert.are.equal("LogSoftmax(dim=1)", tostring(nn.LogSoftmax(1)))
    assert.are.equal("CrossEntropyLoss()", tostring(nn.CrossEntropyLoss()))
    assert.are.equal("NLLLoss()", tostring(nn.NLLLoss()))
    assert.are.equal("MSELoss()", tostring(nn.MSELoss()))
  end)

  it("picks PyTorch's implicit dim (0 for 0/1/3-d, else 1)", function()
    local t3 = lunet.arange(8.):reshape({2, 2, 2})
    assert.is_true(lunet.equal(F.softmax(t3), F.softmax(t3, 0)))
    assert.is_true(lunet.equal(F.softmax(m), F.softmax(m, 1)))
    assert.is_true(lunet.equal(nn.Softmax()(m), F.softmax(m, 1)))
  end)

  it("converts with dtype first, which is how integers can be soft-maxed", function()
    local r = F.softmax(lunet.tensor({1, 2, 3}), 0, {dtype = lunet.float64})
    assert.are.equal(lunet.float64, r.dtype)
    assert_close(r, {0.09003057317038046, 0.24472847105479764, 0.6652409557748219}, 1e-12)
  end)

  it("0-d and empty inputs", function()
    assert.are.equal("tensor(1.)", tostring(F.softmax(lunet.tensor(3.0), 0)))
    assert.are.equal("tensor(0.)", tostring(F.log_softmax(lunet.tensor(3.0), 0)))
    assert.are.equal("tensor([], size=(0, 3))", tostring(F.softmax(lunet.zeros(0, 3), 1)))
  end)

  it("raises PyTorch's errors", function()
    assert_error_contains(function() F.softmax(m, 2) end,
      "Dimension out of range (expected to be in range of [-2, 1], but got 2)")
    assert_error_contains(function() F.softmax(lunet.tensor(3.0), 1) end,
      "Dimension out of range (expected to be in range of [-1, 0], but got 1)")
    assert_error_contains(function() F.softmax(lunet.tensor({1, 2, 3}), 0) end,
      "\"softmax_lastdim_kernel_impl\" not implemented for 'Long'")
    assert_error_contains(function() F.log_softmax(lunet.tensor({1, 2, 3}), 0) end,
      "\"log_softmax_lastdim_kernel_impl\" not implemented for 'Long'")
    assert_error_contains(function() F.softmax(lunet.tensor({{1, 2}, {3, 4}}), 0) end,
      "\"softmax_kernel_impl\" not implemented for 'Long'")
  end)
end)

describe("cross_entropy / nll_loss API", function()
  local x = lunet.tensor({{1.0, 2.0, 0.5}, {0.1, 0.2, 3.0}, {2.0, -1.0, 0.0}, {0.3, 0.3, 0.3}})
  local y = lunet.tensor({1, 2, 0, 1})

  it("module attributes and options", function()
    local L = nn.CrossEntropyLoss()
    assert.are.equal(-100, L.ignore_index)
    assert.are.equal("mean", L.reduction)
    assert.are.equal(0.0, L.label_smoothing)
    assert.is_nil(L.weight)
    assert.are.equal(-100, nn.NLLLoss().ignore_index)
    assert_close(L(x, y), 0.4606071710586548)
    assert_close(nn.CrossEntropyLoss({reduction = "sum"})(x, y), 1.8424286842346191)
    local w = lunet.tensor({0.2, 1.0, 3.0})
    assert_close(nn.CrossEntropyLoss({weight = w})(x, y), 0.37033748626708984)
    assert_close(nn.CrossEntropyLoss({label_smoothing = 0.1})(x, y), 0.5706071853637695)
    assert_close(F.cross_entropy(x, lunet.tensor({1, -100, 0, 1}), {weight = w}), 0.7258864641189575)
    local lp = lunet.tensor({{-0.5, -1.0, -2.0}, {-3.0, -0.1, -0.7}})
    assert_close(nn.NLLLoss({weight = lunet.tensor({2.0, 1.0, 0.5})})(lp, lunet.tensor({2, 0})),
                 2.799999952316284)
    assert_close(nn.MSELoss()(lunet.tensor({1., 2.}), lunet.tensor({0., 0.})), 2.5)
  end)

  it("CE equals NLL(log_softmax) exactly", function()
    local z = lunet.randn(5, 4)
    local t = lunet.tensor({0, 3, 1, 1, 2})
    assert.are.equal(F.cross_entropy(z, t):item(), F.nll_loss(F.log_softmax(z, 1), t):item())
  end)

  it("float32 logits with a float64 probability target give a float64 loss", function()
    local p = lunet.tensor({{0.1, 0.7, 0.2}, {0., 0., 1.}, {0.5, 0.25, 0.25}, {1 / 3, 1 / 3, 1 / 3}},
                           {dtype = lunet.float64})
    local l = F.cross_entropy(x, p)
    assert.are.equal(lunet.float64, l.dtype)
    assert_close(l, 0.8731071949005127)
  end)

  it("raises PyTorch's errors", function()
    local cases = {
      {function() F.cross_entropy(x, lunet.tensor({1, 2, 3, 1})) end, "Target 3 is out of bounds."},
      {function() F.cross_entropy(x, lunet.tensor({1, 2, -1, 1})) end, "Target -1 is out of bounds."},
      {function() F.cross_entropy(x, lunet.tensor({1, 2, 0})) end,
       "Expected input batch_size (4) to match target batch_size (3)."},
      {function() F.cross_entropy(x, y:float()) end, "expected scalar type Long but found Float"},
      {function() F.cross_entropy(x, lunet.full({4, 3}, 1):long()) end,
       "Expected floating point type for target with class probabilities, got Long"},
      {function() F.cross_entropy(x, lunet.full({4, 3}, 1 / 3), {ignore_index = 1}) end,
       "ignore_index is not supported for floating point target"},
      {function() F.cross_entropy(x, y, {label_smoothing = 1.5}) end,
       "label_smoothing must be between 0.0 and 1.0. Got: 1.5"},
      {function() F.cross_entropy(x, y, {reduction = "avg"}) end,
       "avg is not a valid value for reduction"},
      {function() nn.CrossEntropyLoss({reduction = "avg"})(x, y) end,
       "avg is not a valid value for reduction"},
      {function() F.cross_entropy(x, y, {weight = lunet.ones(4)}) end,
       "weight tensor should be defined either for all 3 classes or no classes but got weight tensor of shape: [4]"},
      {function() F.cross_entropy(x, y, {weight = lunet.ones({3}, {dtype = lunet.float64})}) end,
       "expected scalar type Float but found Double"},
      {function() F.cross_entropy(x[0], y:narrow(0, 0, 1)) end,
       "size mismatch (got input: [3], target: [1])"},
      {function() F.cross_entropy(x:long(), y) end,
       "\"log_softmax_lastdim_kernel_impl\" not implemented for 'Long'"},
      {function() F.cross_entropy(lunet.randn(2, 3, 4), lunet.zeros({2, 3}, {dtype = lunet.int64})) end,
       "Expected target size [2, 4], got [2, 3]"},
      {function() F.cross_entropy(lunet.randn(2, 3, 2, 2), lunet.zeros({2, 1, 2}, {dtype = lunet.int64})) end,
       "size mismatch (got input: [2, 3, 2, 2] , target: [2, 1, 2]"},
      {function() F.cross_entropy(x, y, {size_average = false}) end,
       "unexpected keyword argument 'size_average'"},
      {function() F.nll_loss(lunet.tensor(1.0), lunet.tensor(0)) end,
       "Expected 1 or more dimensions (got 0)"},
      {function() F.nll_loss(x, lunet.tensor({{0}, {1}, {0}, {1}})) end,
       "0D or 1D target tensor expected, multi-target not supported"},
      {function() F.nll_loss(x, y, {weight = lunet.ones(2)}) end,
       "weight tensor should be defined either for all 3 classes or no classes but got weight tensor of shape: [2]"},
      {function() F.nll_loss(x, lunet.tensor({0, 5, 1, 1})) end, "Target 5 is out of bounds."},
      {function() F.nll_loss(x, y, {label_smoothing = 0.1}) end,
       "unexpected keyword argument 'label_smoothing'"},
      {function() F.mse_loss(y, y) end, "\"mse_cpu\" not implemented for 'Long'"},
    }
    for _, c in ipairs(cases) do assert_error_contains(c[1], c[2]) end
  end)
end)
