-- init_spec.lua: lunet.nn.init against PyTorch 1.13 (spec/fixtures/optim_golden.lua, written
-- by tests/fixtures/gen_optim.py): every fill bit for bit after the same manual_seed, the
-- gains, and the error messages word for word.
local lunet = require "lunet"
local nn = lunet.nn
local init = nn.init
local golden = dofile("spec/fixtures/optim_golden.lua")

-- PyTorch's call f(t, *args, **kwargs) in Lua: positional args, then the keywords of the
-- function's signature in order (a table when only keywords are given works too).
local SIGNATURE = {
  kaiming_uniform_ = {"a", "mode", "nonlinearity"}, kaiming_normal_ = {"a", "mode", "nonlinearity"},
  xavier_uniform_ = {"gain"}, xavier_normal_ = {"gain"}, uniform_ = {"a", "b"}, normal_ = {"mean", "std"},
  constant_ = {"val"}, ones_ = {}, zeros_ = {},
}

local function call(case, t)
  local args = {}
  for i, v in ipairs(case.args) do args[i] = v end
  for i, name in ipairs(SIGNATURE[case.fn]) do
    if args[i] == nil and case.kwargs[name] ~= nil then args[i] = case.kwargs[name] end
  end
  return init[case.fn](t, table.unpack(args, 1, #SIGNATURE[case.fn]))
end

describe("nn.init", function()
  it("fills tensors bit for bit as PyTorch after manual_seed", function()
    for _, case in ipairs(golden.inits) do
      lunet.manual_seed(case.seed)
      local t = lunet.empty(case.shape, {dtype = case.dtype == "float64" and lunet.float64 or lunet.float32})
      assert.are.equal(t, call(case, t))
      local got = t:reshape(-1):tolist()
      for i, want in ipairs(case.values) do
        if got[i] ~= want then
          error(("%s %s seed %d: element %d: got %.17g, expected %.17g"):format(case.fn, case.dtype,
            case.seed, i - 1, got[i], want))
        end
      end
    end
  end)

  it("takes its options as a table too", function()
    lunet.manual_seed(2)
    local a = init.kaiming_uniform_(lunet.empty(4, 3, 3, 3), {a = 0.1, mode = "fan_out"})
    lunet.manual_seed(2)
    local b = init.kaiming_uniform_(lunet.empty(4, 3, 3, 3), 0.1, "fan_out", "leaky_relu")
    assert.is_true(a:equal(b))
  end)

  it("gives PyTorch's gains", function()
    for _, g in ipairs(golden.gains) do
      assert.are.equal(g.gain, init.calculate_gain(g.nonlinearity, g.param))
    end
    local fan_in, fan_out = init._calculate_fan_in_and_fan_out(lunet.empty(4, 3, 5, 2))
    assert.are.same({30, 40}, {fan_in, fan_out})
  end)

  it("fails with PyTorch's messages", function()
    for _, e in ipairs(golden.init_errors) do
      local ok, err
      if e.fn == "calculate_gain" then
        ok, err = pcall(init.calculate_gain, e.args[1], e.args[2])
      else
        ok, err = pcall(call, {fn = e.fn, args = e.args, kwargs = e.kwargs}, lunet.empty(e.shape))
      end
      assert.is_false(ok)
      assert.are.equal(e.message, (tostring(err):gsub("^.-:%d+: ", "")))
    end
  end)

  it("runs without recording autograd on parameters", function()
    local w = nn.Parameter(lunet.empty(3, 4))
    init.xavier_normal_(w)
    init.zeros_(w)
    assert.is_true(w.is_leaf)
    assert.are.equal(0, w:abs():sum():item())
  end)
end)
