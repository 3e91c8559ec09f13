-- lunet.nn -- Module (the base class users subclass), Parameter, the layers Linear,
-- Sequential, ReLU, Sigmoid, Tanh, Flatten, Identity, MLP, Softmax, LogSoftmax and the loss
-- modules CrossEntropyLoss, NLLLoss, MSELoss; lunet.nn.functional is nn.functional.  Heavy
-- lifting is C (lunet._c.linear: one GEMM with the bias and, when a ReLU follows, the
-- activation fused in).
local lunet = require "lunet"
local F = require "lunet.nn.functional"
local init = require "lunet.nn.init"

local C = lunet._c
local nn = {functional = F, init = init}

local is_tensor = lunet.is_tensor

-- ---------------------------------------------------------------- Parameter

-- A leaf that requires grad and sharing t's storage; modules register it on assignment.
function nn.Parameter(t, requires_grad)
  if not is_tensor(t) then
    error("nn.Parameter: expected a tensor, got " .. type(t), 2)
  end
  local p = t:detach()
  if requires_grad ~= false then p:requires_grad_(true) end
  p._is_param = true
  return p
end

local function is_param(v) return is_tensor(v) and v._is_param == true end

-- ---------------------------------------------------------------- Module

-- Instances keep their parameters and submodules in ordered lists, outside the raw
-- table, so that every assignment goes through __newindex and registers in order.
local Module = {__name = "Module"}
nn.Module = Module

local function is_module(v)
  return type(v) == "table" and rawget(v, "_modules") ~= nil
end
nn.is_module = is_module

local function class_index(cls)
  return function(obj, k)
    local params = rawget(obj, "_params")
    local p = params[k]
    if p ~= nil then return p end
    local m = rawget(obj, "_modules")[k]
    if m ~= nil then return m end
    local b = rawget(obj, "_buffers")[k]
    if b ~= nil then return b end
    return cls[k]
  end
end

local function class_newindex(obj, k, v)
  local params, mods = rawget(obj, "_params"), rawget(obj, "_modules")
  local buffers = rawget(obj, "_buffers")
  if buffers[k] ~= nil and (v == nil or is_tensor(v)) then
    buffers[k] = v -- assigning a registered buffer replaces it (nil keeps the name, as PyTorch)
    if v == nil then buffers[k] = false end
  elseif is_param(v) then
    if params[k] == nil then table.insert(rawget(obj, "_param_order"), k) end
    params[k] = v
  elseif is_module(v) then
    if mods[k] == nil then table.insert(rawget(obj, "_module_order"), k) end
    mods[k] = v
  elseif v == nil and (params[k] ~= nil or mods[k] ~= nil) then
    -- m.bias = nil unregisters, as in PyTorch
    local order = params[k] ~= nil and "_param_order" or "_module_order"
    local list = rawget(obj, order)
    for i, name in ipairs(list) do if name == k then table.remove(list, i) break end end
    params[k], mods[k] = nil, nil
  else
    rawset(obj, k, v)
  end
end

local function new_instance(cls)
  local obj = {
    _params = {}, _param_order = {}, _modules = {}, _module_order = {}, _buffers = {},
    _buffer_order = {}, training = true,
  }
  return setmetatable(obj, cls)
end

-- Makes a subclass: Net = nn.Module:extend("Net"); Net(...) calls Net.init(self, ...).
function Module:extend(name)
  if type(name) ~= "string" then error("Module:extend: expected a class name", 2) end
  local cls = {__name = name, __super = self}
  cls.__index = class_index(cls)
  cls.__newindex = class_newindex
  cls.__call = function(obj, ...) return obj:forward(...) end
  cls.__tostring = function(obj) return obj:repr() end
  return setmetatable(cls, {
    __index = self,
    __call = function(c, ...)
      local obj = new_instance(c)
      obj:init(...)
      return obj
    end,
    __tostring = function() return "<class " .. name .. ">" end,
  })
end

function Module:init() end

function Module:forward()
  error(self.__name .. " has no forward(): define " .. self.__name .. ":forward(...)", 2)
end

function Module:extra_repr() return "" end

-- PyTorch's module text: Name(extra) or Name(\n  (child): ...\n)
function Module:repr()
  local lines = {}
  local extra = self:extra_repr()
  if extra ~= "" then
    for line in (extra .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  end
  for _, k in ipairs(rawget(self, "_module_order")) do
    local child = tostring(rawget(self, "_modules")[k]):gsub("\n", "\n  ")
    lines[#lines + 1] = "(" .. k .. "): " .. child
  end
  if #lines == 0 then return self.__name .. "()" end
  if #lines == 1 and #rawget(self, "_module_order") == 0 then
    return self.__name .. "(" .. lines[1] .. ")"
  end
  return self.__name .. "(\n  " .. table.concat(lines, "\n  ") .. "\n)"
end

-- Depth-first (name, module) pairs, the module itself first with name "".
local function walk_modules(m, prefix, out, seen)
  if seen[m] then return out end
  seen[m] = true
  out[#out + 1] = {prefix, m}
  for _, k in ipairs(rawget(m, "_module_order")) do
    walk_modules(rawget(m, "_modules")[k], prefix == "" and k or prefix .. "." .. k, out, seen)
  end
  return out
end

-- An iterator over the {name, value} pairs of list.
local function iterate(list)
  local i = 0
  return function()
    i = i + 1
    local e = list[i]
    if e then return e[1], e[2] end
  end
end

-- (qualified name, value) for the entries of the registry `store` (in the order kept in
-- `order`) of m and its submodules, depth first as PyTorch's _named_members: each value
-- once, empty slots (false) skipped.
local function named_members(m, order, store)
  local list, seen = {}, {}
  for _, entry in ipairs(walk_modules(m, "", {}, {})) do
    local prefix, sub = entry[1], entry[2]
    for _, k in ipairs(rawget(sub, order)) do
      local v = rawget(sub, store)[k]
      if v and not seen[v] then
        seen[v] = true
        list[#list + 1] = {prefix == "" and k or prefix .. "." .. k, v}
      end
    end
  end
  return iterate(list)
end

-- Iterator over (name, parameter) in PyTorch's order; each parameter once.
function Module:named_parameters() return named_members(self, "_param_order", "_params") end

-- Registers a buffer: state that is not a parameter (BatchNorm's running statistics),
-- saved in state_dict and reached as self[name]; t may be nil (a registered empty slot).
function Module:register_buffer(name, t)
  if type(name) ~= "string" then error("register_buffer: buffer name should be a string", 2) end
  if t ~= nil and not is_tensor(t) then
    error(("cannot assign '%s' object to buffer '%s' (torch Tensor or None required)")
      :format(type(t), name), 2)
  end
  local buffers = rawget(self, "_buffers")
  if buffers[name] == nil then table.insert(rawget(self, "_buffer_order"), name) end
  buffers[name] = t == nil and false or t
end

-- Iterator over (name, buffer) in PyTorch's order (empty slots skipped).
function Module:named_buffers() return named_members(self, "_buffer_order", "_buffers") end

function Module:buffers()
  local out = {}
  for _, b in self:named_buffers() do out[#out + 1] = b end
  return out
end

-- Array of parameters in the same order.
function Module:parameters()
  local out = {}
  for _, p in self:named_parameters() do out[#out + 1] = p end
  return out
end

-- Array of the direct submodules, in registration order.
function Module:children()
  local out = {}
  for _, k in ipairs(rawget(self, "_module_order")) do out[#out + 1] = rawget(self, "_modules")[k] end
  return out
end

function Module:named_children()
  local i, order = 0, rawget(self, "_module_order")
  return function()
    i = i + 1
    local k = order[i]
    if k then return k, rawget(self, "_modules")[k] end
  end
end

-- Array of every module (self first), depth first.
function Module:modules()
  local out = {}
  for _, e in ipairs(walk_modules(self, "", {}, {})) do out[#out + 1] = e[2] end
  return out
end

function Module:named_modules() return iterate(walk_modules(self, "", {}, {})) end

function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode) end
  return self
end

function Module:eval() return self:train(false) end

-- PyTorch 1.13: gradients are zero-filled in place; {set_to_none = true} drops them.
-- Shared with optim (nn._zero_grads).
-- Zero-filling is one memset per run of gradients that share a slab (runtime/slab.c).
local function zero_grads(params, opts)
  if type(opts) == "table" and opts.set_to_none then
    for _, p in ipairs(params) do p.grad = nil end
  else
    C.slab_zero_grads(params)
  end
end

nn._zero_grads = zero_grads

function Module:zero_grad(opts) zero_grads(self:parameters(), opts) end

-- name -> tensor (detached, sharing storage), for every parameter and buffer.
function Module:state_dict()
  local sd = {}
  for name, p in self:named_parameters() do sd[name] = p:detach() end
  for name, b in self:named_buffers() do sd[name] = b:detach() end
  return sd
end

function Module:load_state_dict(sd, opts)
  if type(sd) ~= "table" then error("load_state_dict: expected a table of tensors", 2) end
  local strict = not (type(opts) == "table" and opts.strict == false)
  local own, missing, unexpected = {}, {}, {}
  for name, p in self:named_parameters() do
    own[name] = p
    if sd[name] == nil then missing[#missing + 1] = name end
  end
  for name, b in self:named_buffers() do
    own[name] = b
    if sd[name] == nil then missing[#missing + 1] = name end
  end
  for name in pairs(sd) do
    if own[name] == nil then unexpected[#unexpected + 1] = tostring(name) end
  end
  table.sort(missing)
  table.sort(unexpected)
  if strict and (#missing > 0 or #unexpected > 0) then
    local parts = {}
    if #missing > 0 then parts[#parts + 1] = 'Missing key(s) in state_dict: "' .. table.concat(missing, '", "') .. '".' end
    if #unexpected > 0 then parts[#parts + 1] = 'Unexpected key(s) in state_dict: "' .. table.concat(unexpected, '", "') .. '".' end
    error("Error(s) in loading state_dict for " .. self.__name .. ":\n\t" .. table.concat(parts, "\n\t"), 2)
  end
  lunet.no_grad(function()
    for name, p in pairs(own) do
      local v = sd[name]
      if v ~= nil then
        if not is_tensor(v) then error("load_state_dict: '" .. name .. "' is not a tensor", 3) end
        if tostring(v:size()) ~= tostring(p:size()) then
          error(("size mismatch for %s: copying a param with shape %s from checkpoint, the shape in current model is %s.")
            :format(name, tostring(v:size()), tostring(p:size())), 3)
        end
        p:copy_(v)
      end
    end
  end)
  return {missing_keys = missing, unexpected_keys = unexpected}
end

setmetatable(Module, {
  __call = function() error("nn.Module is abstract: subclass it with nn.Module:extend(name)", 2) end,
})

-- ---------------------------------------------------------------- layers

local Linear = Module:extend("Linear")
nn.Linear = Linear

function Linear:init(in_features, out_features, opts)
  if math.type(in_features) ~= "integer" or math.type(out_features) ~= "integer" then
    error("nn.Linear(in_features, out_features): expected two integers", 3)
  end
  opts = opts or {}
  local dtype = opts.dtype or lunet.get_default_dtype()
  self.in_features, self.out_features = in_features, out_features
  self.weight = nn.Parameter(lunet.empty({out_features, in_features}, {dtype = dtype}))
  if opts.bias ~= false then
    self.bias = nn.Parameter(lunet.empty({out_features}, {dtype = dtype}))
  end
  self:reset_parameters()
end

-- PyTorch's nn.Linear.reset_parameters, through nn.init (bit-exact after manual_seed).
function Linear:reset_parameters()
  init.kaiming_uniform_(self.weight, math.sqrt(5))
  if self.bias ~= nil then
    local fan_in = init._calculate_fan_in_and_fan_out(self.weight)
    local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
    init.uniform_(self.bias, -bound, bound)
  end
end

function Linear:forward(x) return C.linear(x, self.weight, self.bias, false) end

function Linear:extra_repr()
  return ("in_features=%d, out_features=%d, bias=%s"):format(self.in_features,
    self.out_features, self.bias ~= nil and "True" or "False")
end

local function simple(name, fn)
  local cls = Module:extend(name)
  cls.forward = function(_, x) return fn(x) end
  nn[name] = cls
  return cls
end

simple("ReLU", function(x) return x:relu() end)
simple("Sigmoid", function(x) return x:sigmoid() end)
simple("Tanh", function(x) return x:tanh() end)
simple("Identity", function(x) return x end)

local Flatten = Module:extend("Flatten")
nn.Flatten = Flatten
function Flatten:init(start_dim, end_dim)
  self.start_dim, self.end_dim = start_dim or 1, end_dim or -1
end
function Flatten:forward(x) return x:flatten(self.start_dim, self.end_dim) end
function Flatten:extra_repr()
  return ("start_dim=%d, end_dim=%d"):format(self.start_dim, self.end_dim)
end

-- Sequential(m1, m2, ...): children named "0", "1", ...  A Linear followed by a ReLU
-- runs as one fused C call.
local Sequential = Module:extend("Sequential")
nn.Sequential = Sequential

function Sequential:init(...)
  local mods = table.pack(...)
  if mods.n == 1 and type(mods[1]) == "table" and not is_module(mods[1]) then
    mods = mods[1]
    mods.n = #mods
  end
  for i = 1, mods.n do
    if not is_module(mods[i]) then
      error(("nn.Sequential: argument %d is not a module"):format(i), 3)
    end
    self[tostring(i - 1)] = mods[i]
  end
end

function Sequential:forward(x)
  local list = self:children()
  local i = 1
  while i <= #list do
    local m = list[i]
    local nxt = list[i + 1]
    if getmetatable(m) == Linear and nxt ~= nil and getmetatable(nxt) == nn.ReLU then
      x = C.linear(x, m.weight, m.bias, true)
      i = i + 2
    else
      x = m(x)
      i = i + 1
    end
  end
  return x
end

function Sequential:__len() return #rawget(self, "_module_order") end

-- MLP({784, 512, 256, 128, 64, 10} [, {activation = "relu"}]): Linear layers with the
-- activation between them (none after the last); inputs with more than 2 dims are
-- flattened to (N, features) first, so image batches go in directly.
local activations = {relu = nn.ReLU, sigmoid = nn.Sigmoid, tanh = nn.Tanh}
local MLP = Sequential:extend("MLP")
nn.MLP = MLP

function MLP:init(sizes, opts)
  if type(sizes) ~= "table" or #sizes < 2 then
    error("nn.MLP: expected a list of at least two layer sizes", 3)
  end
  opts = opts or {}
  local act = activations[opts.activation or "relu"]
  if not act then
    error("nn.MLP: unknown activation '" .. tostring(opts.activation) .. "' (relu, sigmoid, tanh)", 3)
  end
  local mods = {}
  for i = 1, #sizes - 1 do
    mods[#mods + 1] = Linear(sizes[i], sizes[i + 1], {bias = opts.bias, dtype = opts.dtype})
    if i < #sizes - 1 then mods[#mods + 1] = act() end
  end
  Sequential.init(self, mods)
end

function MLP:forward(x)
  if x:dim() > 2 then x = x:reshape(x:size(0), -1) end
  return Sequential.forward(self, x)
end

-- ---------------------------------------------------------------- softmax and loss modules

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
    F._check_keys(name, opts, keys)
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

local OPTS = F._loss_options
nn.CrossEntropyLoss = loss_module("CrossEntropyLoss", OPTS.cross_entropy, F.cross_entropy,
  {ignore_index = -100, reduction = "mean", label_smoothing = 0.0})
nn.NLLLoss = loss_module("NLLLoss", OPTS.nll_loss, F.nll_loss,
  {ignore_index = -100, reduction = "mean"})
nn.MSELoss = loss_module("MSELoss", OPTS.mse_loss, F.mse_loss, {reduction = "mean"})

-- Conv2d, pooling, Dropout, BatchNorm and the CNN activations (lunet.nn.cnn_layers).
require("lunet.nn.cnn_layers")(nn)

-- nn.parallel (DistributedDataParallel, lunet/nn/parallel.lua) builds on this module, so it
-- loads on first use
setmetatable(nn, {__index = function(t, k)
  if k == "parallel" then
    local parallel = require "lunet.nn.parallel"
    rawset(t, "parallel", parallel)
    return parallel
  end
end})

return nn
