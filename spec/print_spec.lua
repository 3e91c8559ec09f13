-- print_spec.lua - tostring(t) is PyTorch 1.13's str(t) with "lunet." dtype names
-- (docs/pytorch-parity.md §9).  Goldens: spec/fixtures/print_golden.lua,
-- written by tests/fixtures/gen_print.py from real PyTorch.
local lunet = require "lunet"

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local goldens = dofile(here .. "fixtures/print_golden.lua")

local function lunet_text(text)
  return (text:gsub("torch%.", "lunet."))
end

-- Rebuilds a golden case: base tensor from the flat values, views, requires_grad, op.
local function build(c)
  local opts = { dtype = lunet[c.dtype] }
  local t
  if #c.shape == 0 then
    t = lunet.tensor(c.values[1], opts)
  else
    t = lunet.tensor(c.values, opts)
    if #c.shape ~= 1 then t = t:reshape(table.unpack(c.shape)) end
  end
  for _, o in ipairs(c.ops or {}) do
    local name = o[1]
    if name == "t" then
      t = t:t()
    elseif name == "transpose" then
      t = t:transpose(o[2], o[3])
    elseif name == "narrow" then
      t = t:narrow(o[2], o[3], o[4])
    elseif name == "select" then
      t = t:select(o[2], o[3])
    elseif name == "permute" then
      t = t:permute(table.unpack(o[2]))
    elseif name == "expand" then
      t = t:expand(table.unpack(o[2]))
    else
      error("no Lua equivalent for view op " .. name)
    end
  end
  if c.requires_grad then t:requires_grad_() end
  if c.op then
    if c.op[1] == "div" then
      t = t / c.op[2]
    elseif c.op[1] == "mul" then
      t = t * c.op[2]
    elseif c.op[1] == "mean" then
      t = t:mean()
    end
  end
  return t
end

local function lua_buildable(c)
  for _, o in ipairs(c.ops or {}) do
    if o[1] == "as_strided" then return false end
  end
  return true
end

describe("tostring(tensor) matches PyTorch's text", function()
  it("has the golden cases", function()
    assert.is_true(#goldens >= 40)
  end)

  for _, c in ipairs(goldens) do
    if lua_buildable(c) then
      it(c.name, function()
        assert.are.equal(lunet_text(c.text), tostring(build(c)))
      end)
    end
  end
end)

describe("printing through the Lua API", function()
  it("formatter cases of the table of docs/pytorch-parity.md §9.2", function()
    assert.are.equal("tensor([1., 2., 3.])", tostring(lunet.tensor({ 1.0, 2.0, 3.0 })))
    assert.are.equal("tensor([ 1.5000,  2.0000, -3.2500])", tostring(lunet.tensor({ 1.5, 2.0, -3.25 })))
    assert.are.equal("tensor([1.0000e-04, 1.0000e+00])", tostring(lunet.tensor({ 0.0001, 1.0 })))
    assert.are.equal("tensor([   1., 1000.])", tostring(lunet.tensor({ 1.0, 1000.0 })))
    assert.are.equal("tensor([1.0000e+00, 1.0010e+03])", tostring(lunet.tensor({ 1.0, 1001.0 })))
    assert.are.equal("tensor([nan, inf, -inf, 1.])",
      tostring(lunet.tensor({ 0 / 0, math.huge, -math.huge, 1.0 })))
    assert.are.equal("tensor([-0., 1.])", tostring(lunet.tensor({ -0.0, 1.0 })))
    assert.are.equal("tensor(0.1235)", tostring(lunet.tensor(0.12345)))
    assert.are.equal("tensor(7)", tostring(lunet.tensor(7)))
    assert.are.equal("tensor([  1, -20, 300])", tostring(lunet.tensor({ 1, -20, 300 })))
    assert.are.equal("tensor([ True, False])", tostring(lunet.tensor({ true, false })))
    assert.are.equal("tensor([1.0000, 2.5000], dtype=lunet.float64)",
      tostring(lunet.tensor({ 1.0, 2.5 }, { dtype = lunet.float64 })))
    assert.are.equal("tensor([  0, 255], dtype=lunet.uint8)",
      tostring(lunet.tensor({ 0, 255 }, { dtype = lunet.uint8 })))
  end)

  it("line width and summarisation (§9.3, §9.4)", function()
    assert.are.equal(
      "tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17,\n" ..
      "        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29])",
      tostring(lunet.arange(30)))
    assert.are.equal("tensor([   0,    1,    2,  ...,  998,  999, 1000])", tostring(lunet.arange(1001)))
    assert.are.equal(
      "tensor([[   0,    1,    2,  ...,   27,   28,   29],\n" ..
      "        [  30,   31,   32,  ...,   57,   58,   59],\n" ..
      "        [  60,   61,   62,  ...,   87,   88,   89],\n" ..
      "        ...,\n" ..
      "        [1110, 1111, 1112,  ..., 1137, 1138, 1139],\n" ..
      "        [1140, 1141, 1142,  ..., 1167, 1168, 1169],\n" ..
      "        [1170, 1171, 1172,  ..., 1197, 1198, 1199]])",
      tostring(lunet.arange(1200):reshape(40, 30)))
    assert.are.equal(
      "tensor([0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000],\n" ..
      "       dtype=lunet.float64)",
      tostring(lunet.arange(8, { dtype = lunet.float64 }) / 7))
    local _, lines = tostring(lunet.arange(1000)):gsub("\n", "")
    assert.are.equal(71, lines) -- 72 lines
  end)

  it("suffixes: dtype, requires_grad, grad_fn (9.6)", function()
    assert.are.equal("tensor([1., 2.], requires_grad=True)",
      tostring(lunet.tensor({ 1.0, 2.0 }, { requires_grad = true })))
    assert.are.equal("tensor([2., 4.], grad_fn=<MulBackward0>)",
      tostring(lunet.tensor({ 1.0, 2.0 }, { requires_grad = true }) * 2))
    assert.are.equal("tensor(1.5000, dtype=lunet.float64, grad_fn=<MeanBackward0>)",
      tostring(lunet.tensor({ 1.0, 2.0 }, { dtype = lunet.float64, requires_grad = true }):mean()))
    assert.are.equal(
      "tensor([0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429],\n" ..
      "       dtype=lunet.float64, grad_fn=<DivBackward0>)",
      tostring(lunet.arange(9, { dtype = lunet.float64 }):requires_grad_() / 7))
    local u = lunet.ones(18, { dtype = lunet.uint8 })
    assert.are.equal("tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],\n" ..
      "       dtype=lunet.uint8)", tostring(u))
  end)

  it("empty tensors (9.5)", function()
    assert.are.equal("tensor([])", tostring(lunet.tensor({})))
    assert.are.equal("tensor([], size=(0, 3))", tostring(lunet.empty(0, 3)))
    assert.are.equal("tensor([], dtype=lunet.int64)", tostring(lunet.zeros(0, { dtype = lunet.int64 })))
    assert.are.equal("tensor([], size=(2, 0))", tostring(lunet.zeros(2, 0)))
  end)

  it("sizes print as lunet.Size", function()
    assert.are.equal("lunet.Size([256, 1, 28, 28])", tostring(lunet.zeros(256, 1, 28, 28):size()))
    assert.are.equal("lunet.Size([])", tostring(lunet.tensor(1.5):size()))
  end)
end)
