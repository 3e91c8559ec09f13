-- parity_ops_spec.lua - the differential test of the tensor API against PyTorch 1.13
-- (docs/pytorch-parity.md §27). Every case of spec/fixtures/parity_ops_golden.lua, written by
-- spec/fixtures/gen_parity_ops.py from real PyTorch runs, is one call made here the Lua way;
-- the spec checks the result's dtype, shape and values (or the error text), and for floating
-- inputs that require grad the gradient of sum(output). A failure names the case, what Lunet
-- gave and what PyTorch gave; all failures are reported together.
local lunet = require "lunet"
local F = lunet.nn.functional

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/"
local CASES = dofile(here .. "fixtures/parity_ops_golden.lua")

-- Float tolerances for the cases marked `tol` (docs/pytorch-parity.md §0.3): transcendental
-- functions are within 2 ulp of PyTorch's vectorised ones, sums, products, GEMMs, softmax and
-- losses add in another order. Unmarked cases are exact to the last bit: + - * /, //, min/max,
-- selection, views and indexing round once or not at all, so any difference is a bug.
local RTOL = { float32 = 1e-6, float64 = 1e-12 }
local ATOL = { float32 = 1e-7, float64 = 1e-15 }

local function build(a)
  if type(a) ~= "table" then return a end
  if not a.T then
    -- an option table (losses) may hold tensors; an index list stays a plain table
    local o = {}
    for k, v in pairs(a) do o[k] = build(v) end
    return o
  end
  local t
  if a.nc and #a.shape >= 2 then
    -- the same values in a transposed layout: build the transpose, then transpose it back
    local n = #a.shape
    local rs = {}
    for i = 1, n do rs[i] = a.shape[i] end
    rs[n - 1], rs[n] = a.shape[n], a.shape[n - 1]
    t = lunet.tensor(a.v, { dtype = a.dtype }):reshape(a.shape):transpose(-1, -2):contiguous()
        :reshape(rs):transpose(-1, -2)
    assert(not t:is_contiguous() or a.shape[n] == 1 or a.shape[n - 1] == 1)
  else
    t = lunet.tensor(a.v, { dtype = a.dtype }):reshape(a.shape)
  end
  if a.rg then t:requires_grad_() end
  return t
end

local function reduction(name)
  return function(t, dim, keepdim)
    if dim == nil and not keepdim then return t[name](t) end
    return t[name](t, dim, keepdim)
  end
end

-- The Lua side of every op of gen_parity_ops.py's PY table, under the same names.
local OPS = {
  neg = lunet.neg, exp = lunet.exp, log = lunet.log, sqrt = lunet.sqrt, abs = lunet.abs,
  sigmoid = lunet.sigmoid, tanh = lunet.tanh, relu = lunet.relu,
  unm = function(a) return -a end,
  add = lunet.add, sub = lunet.sub, mul = lunet.mul, div = lunet.div,
  floor_divide = lunet.floor_divide, pow = lunet.pow,
  maximum = lunet.maximum, minimum = lunet.minimum,
  add_alpha = function(a, b, alpha) return lunet.add(a, b, { alpha = alpha }) end,
  sub_alpha = function(a, b, alpha) return lunet.sub(a, b, { alpha = alpha }) end,
  eq = lunet.eq, ne = lunet.ne, lt = lunet.lt, le = lunet.le, gt = lunet.gt, ge = lunet.ge,
  equal = lunet.equal,
  radd = function(s, t) return s + t end, rsub = function(s, t) return s - t end,
  rmul = function(s, t) return s * t end, rdiv = function(s, t) return s / t end,
  rfloordiv = function(s, t) return s // t end, rpow = function(s, t) return s ^ t end,
  where = lunet.where,
  clamp = function(t, lo, hi) return t:clamp(lo, hi) end,
  sum = reduction("sum"), mean = reduction("mean"), prod = reduction("prod"),
  max = reduction("max"), min = reduction("min"), argmax = reduction("argmax"),
  argmin = reduction("argmin"), all = reduction("all"), any = reduction("any"),
  view = function(t, s) return t:view(s) end, reshape = function(t, s) return t:reshape(s) end,
  permute = function(t, d) return t:permute(d) end, transpose = lunet.transpose, t = lunet.t,
  expand = function(t, s) return t:expand(s) end,
  squeeze = function(t, d) return t:squeeze(d) end, unsqueeze = lunet.unsqueeze,
  flatten = lunet.flatten, narrow = lunet.narrow, select = lunet.select,
  getitem = function(t, i) return t[i] end,
  index = function(t, ...) return t:index { ... } end,
  index_t = function(t, i) return t[i] end,
  gather = lunet.gather, index_select = lunet.index_select, masked_fill = lunet.masked_fill,
  matmul = lunet.matmul, mm = lunet.mm,
  addmm = function(c, a, b, beta, alpha) return lunet.addmm(c, a, b, { beta = beta, alpha = alpha }) end,
  softmax = F.softmax, log_softmax = F.log_softmax,
  softmax_dtype = function(t, d, dt) return F.softmax(t, d, { dtype = dt }) end,
  cross_entropy = F.cross_entropy, nll_loss = F.nll_loss, mse_loss = F.mse_loss,
  add_ = function(a, b) return a:clone():add_(b) end, sub_ = function(a, b) return a:clone():sub_(b) end,
  mul_ = function(a, b) return a:clone():mul_(b) end, div_ = function(a, b) return a:clone():div_(b) end,
  pow_ = function(a, b) return a:clone():pow_(b) end,
  clamp_ = function(t, lo, hi) return t:clone():clamp_(lo, hi) end,
  copy_ = function(a, b) return a:clone():copy_(b) end, fill_ = function(a, v) return a:clone():fill_(v) end,
  sum_dtype = function(t, dt) return t:sum { dtype = dt } end,
  mean_dtype = function(t, dt) return t:mean { dtype = dt } end,
  linear = F.linear,
  leaky_relu = F.leaky_relu, elu = F.elu, gelu = F.gelu, softplus = F.softplus, logsigmoid = F.logsigmoid,
  arange = lunet.arange, linspace = lunet.linspace, full = lunet.full, eye = lunet.eye,
  tensor = lunet.tensor,
  setitem = function(t, i, v)
    local c = t:detach():clone()
    c[i] = v
    return c
  end,
  to = function(t, dt) return t:to(dt) end, max2 = lunet.max, min2 = lunet.min,
  where_method = function(x, c, y) return x:where(c, y) end,
  sum_opts = function(t, dim, keepdim) return t:sum { dim = dim, keepdim = keepdim } end,
  max_opts = function(t, dim, keepdim) return t:max { dim = dim, keepdim = keepdim } end,
  mean_axis = function(t, dim, keepdim) return t:mean { axis = dim, keepdims = keepdim } end,
  view_as = function(t, o) return t:view_as(o) end, expand_as = function(t, o) return t:expand_as(o) end,
  reshape_as = function(t, o) return t:reshape_as(o) end,
}

local function show(vals)
  local s = {}
  for i = 1, math.min(#vals, 12) do s[i] = tostring(vals[i]) end
  if #vals > 12 then s[#s + 1] = "..." end
  return "{" .. table.concat(s, ", ") .. "}"
end

-- tol: nil for exact, else the dtype whose tolerance applies; rtol, atol: a case's looser
-- tolerances (the generator says why next to the case)
local function same_value(got, want, tol, rtol, atol)
  if type(want) ~= "number" or math.type(want) == "integer" and math.type(got) == "integer" then
    return got == want
  end
  if type(got) ~= "number" then return false end
  if want ~= want then return got ~= got end
  if want == math.huge or want == -math.huge or not tol then return got == want end
  return math.abs(got - want) <= (rtol or RTOL[tol]) * math.abs(want) + (atol or ATOL[tol])
end

-- compares one result; returns nil or the reason it differs
local function compare(got, want, tol, rtol, atol)
  if want.py ~= nil then
    if got ~= want.py then return "got " .. tostring(got) .. ", expected " .. tostring(want.py) end
    return nil
  end
  if type(got) == "number" or type(got) == "boolean" then
    -- a 1-D tensor's element comes back as a Lua value (docs/lua-api.md §9)
    if #want.shape ~= 0 then return "got the Lua value " .. tostring(got) end
    if not same_value(got, want.v[1], tol, rtol, atol) then
      return string.format("got %s, expected %s", tostring(got), tostring(want.v[1]))
    end
    return nil
  end
  if not lunet.is_tensor(got) then return "got a " .. type(got) .. ", expected a tensor" end
  local shape = {}
  for i, s in ipairs(got:size()) do shape[i] = s end
  local gs, ws = table.concat(shape, ", "), table.concat(want.shape, ", ")
  if got.dtype ~= want.dtype or gs ~= ws then
    return string.format("got %s [%s], expected %s [%s]", got.dtype, gs, want.dtype, ws)
  end
  local vals = flatten(got:tolist())
  for i = 1, #want.v do
    if not same_value(vals[i], want.v[i], tol, rtol, atol) then
      return string.format("element %d: got %s, expected %s\n    got      %s\n    expected %s", i - 1,
        tostring(vals[i]), tostring(want.v[i]), show(vals), show(want.v))
    end
  end
  return nil
end

local function run(c)
  local args = {}
  for i = 1, c.n do args[i] = build(c.args[i]) end
  local outs = table.pack(pcall(OPS[c.op], table.unpack(args, 1, c.n)))
  if not outs[1] then
    if not c.err then return "raised: " .. tostring(outs[2]) end
    -- PyTorch's texts name types torch.X where Lunet's say lunet.X (docs/pytorch-parity.md §0.2);
    -- other texts (torch.clamp: ...) are PyTorch's as they are
    local got, want = tostring(outs[2]), c.err:gsub("torch%.", "lunet.")
    if not got:find(want, 1, true) and not got:find(c.err, 1, true) then
      return string.format("error\n    got      %s\n    expected %s", tostring(outs[2]), c.err)
    end
    return nil
  end
  if c.err then
    return "returned " .. tostring(outs[2]) .. " where PyTorch raised: " .. c.err
  end
  for k, want in ipairs(c.out) do
    local why = compare(outs[k + 1], want, c.tol and want.dtype, c.rtol)
    if why then return (#c.out > 1 and ("result " .. k .. ": ") or "") .. why end
  end
  if c.backward_err then
    local ok, err = pcall(function() outs[2]:sum():backward() end)
    if ok then return "backward returned where PyTorch raised: " .. c.backward_err end
    if not tostring(err):find(c.backward_err, 1, true) then
      return string.format("backward error\n    got      %s\n    expected %s", tostring(err), c.backward_err)
    end
  end
  if c.grads and lunet.is_tensor(outs[2]) then
    local ok, err = pcall(function() outs[2]:sum():backward() end)
    if not ok then return "backward raised: " .. tostring(err) end
    for i = 1, c.n do
      local want = c.grads[i]
      if want then
        local g = args[i].grad
        if g == nil then return "argument " .. i .. ": no gradient" end
        -- a gradient is computed in the output's dtype, then converted to the input's: a
        -- float64 input of a float32 result has a gradient of float32 precision
        local a = c.args[i]
        local prec = c.out[1].dtype == "float32" and "float32" or a.dtype
        local why = compare(g, { v = want, dtype = a.dtype, shape = a.shape }, prec, c.grad_rtol,
          c.grad_atol)
        if why then return "gradient of argument " .. i .. ": " .. why end
      end
    end
  end
  return nil
end

-- Cases where Lunet still differs, by their call (a case's name without its number). A
-- case listed here that passes is reported, so that the list only shrinks.
local PENDING = {
}

describe("tensor API against PyTorch 1.13 (differential)", function()
  it("every case of parity_ops_golden.lua", function()
    local failures, n = {}, 0
    for _, c in ipairs(CASES) do
      n = n + 1
      local ok, why = pcall(run, c)
      if not ok then why = "the spec itself failed: " .. tostring(why) end
      local call = c.name:match("#%d+ (.*)$")
      if PENDING[call] then
        if not why then failures[#failures + 1] = c.name .. ": passes now: remove it from PENDING" end
        if why and os.getenv("PARITY_VERBOSE") then print("pending " .. c.name .. ": " .. why) end
      elseif why then
        failures[#failures + 1] = c.name .. ": " .. why
      end
    end
    assert.is_true(n > 2500)
    if #failures > 0 then
      error(string.format("%d of %d cases differ from PyTorch:\n  %s", #failures, n,
        table.concat(failures, "\n  ")), 0)
    end
  end)
end)
