-- 10_losses.lua: softmax, log_softmax and the losses (parity spec sections 1-3).
-- F.softmax / F.log_softmax / F.cross_entropy / F.nll_loss / F.mse_loss, the modules
-- nn.Softmax, nn.LogSoftmax, nn.CrossEntropyLoss, nn.NLLLoss, nn.MSELoss, the functions
-- lunet.softmax / lunet.log_softmax and the tensor methods x:softmax(dim), x:log_softmax(dim).
-- Runs after 00_nn.lua (lunet.nn, nn.functional, nn.Module); the C kernels are in lunet._c.
local lunet = ...
local C = lunet._c

lunet.nn = lunet.nn or {}
local nn = lunet.nn
nn.functional = nn.functional or {}
local F = nn.functional

-- nn.Module comes from 00_nn.lua.  Should it be missing, a minimal stand-in with the same
-- surface (extend, init, forward, __call, __tostring via extra_repr) keeps these usable.
local Module = nn.Module
if not Module then
  Module = {__name = "Module"}
  Module.__index = Module
  function Module:extend(name)
    local cls = setmetatable({}, {__index = self, __call = function(c, ...)
      local obj = setmetatable({training = true}, c)
      obj:init(...)
      return obj
    end})
    cls.__name, cls.__index = name, cls
    cls.__call = function(obj, ...) return obj:forward(...) end
    cls.__tostring = function(obj) return name .. "(" .. obj:extra_repr() .. ")" end
    return cls
  end
  function Module:init() end
  function Module:extra_repr() return "" end
  setmetatable(Module, {__call = function(c, ...) return Module.extend(c, "Module")(...) end})
  nn.Module = Module
end

-- ---------------------------------------------------------------- helpers

local warned = {}
local function warn_once(key, text)
  if not warned[key] then
    warned[key] = true
    io.stderr:write("UserWarning: ", text, "\n")
  end
end

-- Raises PyTorch's TypeError for an option the function does not take.
local function check_keys(fname, opts, allowed)
  if opts == nil then return end
  if type(opts) ~= "table" then
    error(("%s(): options must be a table, got %s"):format(fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not allowed[k] then
      error(("TypeError: %s() got an unexpected keyword argument '%s'"):format(fname, tostring(k)), 3)
    end
  end
end

-- PyTorch's implicit dim (deprecated): 0 for 0-, 1- and 3-d inputs, else 1, with a warning.
local function implicit_dim(name, x)
  warn_once("implicit:" .. name, ("Implicit dimension choice for %s has been deprecated. "
    .. "Change the call to include dim=X as an argument."):format(name))
  local n = x:dim()
  if n == 0 or n == 1 or n == 3 then return 0 end
  return 1
end

-- softmax(x, dim [, {dtype=}]) or softmax(x, {dim=, dtype=}) or softmax(x, dim, dtype).
local function softmax_args(name, x, dim, opts)
  local dtype
  if type(dim) == "table" then
    dim, opts = nil, dim
  end
  if opts ~= nil then
    if type(opts) == "table" then
      check_keys(name, opts, {dim = true, dtype = true, _stacklevel = true})
      if opts.dim ~= nil then dim = opts.dim end
      dtype = opts.dtype
    else
      dtype = opts -- a dtype given positionally
    end
  end
  if dtype ~= nil then x = x:to(dtype) end
  if dim == nil then dim = implicit_dim(name, x) end
  return x, dim
end

local function make_softmax(name, kernel)
  return function(x, dim, opts)
    local x2, d = softmax_args(name, x, dim, opts)
    return kernel(x2, d)
  end
end

F.softmax = make_softmax("softmax", C.softmax)
F.log_softmax = make_softmax("log_softmax", C.log_softmax)

-- torch.softmax(input, dim, dtype=None) and the tensor methods
lunet.softmax = F.softmax
lunet.log_softmax = F.log_softmax
local methods = lunet.Tensor
if type(methods) == "table" then
  methods.softmax = F.softmax
  methods.log_softmax = F.log_softmax
end

local CE_KEYS = {weight = true, ignore_index = true, reduction = true, label_smoothing = true}
local NLL_KEYS = {weight = true, ignore_index = true, reduction = true}
local MSE_KEYS = {reduction = true}

function F.cross_entropy(x, y, opts)
  check_keys("cross_entropy", opts, CE_KEYS)
  return C.cross_entropy(x, y, opts)
end

function F.nll_loss(x, y, opts)
  check_keys("nll_loss", opts, NLL_KEYS)
  return C.nll_loss(x, y, opts)
end

function F.mse_loss(x, y, opts)
  check_keys("mse_loss", opts, MSE_KEYS)
  local xs, ys = x:size(), y:size()
  if tostring(xs) ~= tostring(ys) then
    warn_once("mse_size", ("Using a target size (%s) that is different to the input size (%s). "
      .. "This will likely lead to incorrect results due to broadcasting. Please ensure they "
      .. "have the same size."):format(tostring(ys), tostring(xs)))
  end
  return C.mse_loss(x, y, opts and opts.reduction)
end

-- ---------------------------------------------------------------- modules

local function dim_module(name, fn)
  local M = Module:extend(name)
  function M:init(dim)
    if type(dim) == "table" then dim = dim.dim end
    self.dim = dim
  end
  function M:forward(x) return fn(x, self.dim) end
  function M:extra_repr() return "dim=" .. (self.dim == nil and "None" or tostring(self.dim)) end
  return M
end

nn.Softmax = dim_module("Softmax", F.softmax)
nn.LogSoftmax = dim_module("LogSoftmax", F.log_softmax)

-- Loss modules keep PyTorch's attributes (weight, ignore_index, reduction, label_smoothing)
-- and print with an empty extra_repr: CrossEntropyLoss().
local function loss_module(name, keys, fn, fields)
  local M = Module:extend(name)
  function M:init(opts)
    check_keys(name, opts, keys)
    opts = opts or {}
    for k, default in pairs(fields) do
      local v = opts[k]
      if v == nil then v = default end
      self[k] = v
    end
    if keys.weight then self.weight = opts.weight end
  end
  function M:forward(x, y)
    local o = {}
    for k in pairs(keys) do o[k] = self[k] end
    return fn(x, y, o)
  end
  function M:extra_repr() return "" end
  return M
end

nn.CrossEntropyLoss = loss_module("CrossEntropyLoss", CE_KEYS, F.cross_entropy,
  {ignore_index = -100, reduction = "mean", label_smoothing = 0.0})
nn.NLLLoss = loss_module("NLLLoss", NLL_KEYS, F.nll_loss,
  {ignore_index = -100, reduction = "mean"})
nn.MSELoss = loss_module("MSELoss", MSE_KEYS, F.mse_loss, {reduction = "mean"})
