-- lunet.optim: SGD, PyTorch 1.13's SGD (parity spec section 7).  The update
-- of each parameter is one C call (lunet._c.sgd_update), bit-exact with PyTorch in float32.
local lunet = require "lunet"
local nn = require "lunet.nn"

local C = lunet._c
local optim = {}

local DEFAULTS = {momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false}
local KEYS = {"dampening", "differentiable", "foreach", "lr", "maximize", "momentum", "nesterov", "weight_decay"}

local SGD = {__name = "SGD"}
SGD.__index = SGD
optim.SGD = SGD

local function fmt_number(v)
  if v == nil then return "None" end
  if v == true then return "True" end
  if v == false then return "False" end
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 1e15 then return ("%d"):format(v) end
  return ("%.17g"):format(v):gsub("(%..-)0+$", "%1")
end

-- Python's repr of a float: the shortest text that reads back the same number.
local function py_float(v)
  if type(v) ~= "number" then return fmt_number(v) end
  if math.type(v) == "integer" then return tostring(v) end
  for prec = 1, 17 do
    local s = ("%." .. prec .. "g"):format(v)
    if tonumber(s) == v then
      if not s:find("[%.eEn]") then s = s .. ".0" end
      return s
    end
  end
  return tostring(v)
end

local function check_number(name, v)
  if type(v) ~= "number" then error(("SGD: %s must be a number, got %s"):format(name, type(v)), 4) end
end

-- SGD(params, {lr =, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false,
-- maximize = false}); params is an array of tensors or of groups {params = {...}, lr = ...}.
function optim.SGD.new(params, opts)
  if lunet.is_tensor(params) then
    error("params argument given to the optimizer should be an iterable of Tensors or dicts, but got " ..
      "lunet." .. params.dtype .. " tensor", 3)
  end
  if type(params) ~= "table" then
    error("SGD: params must be a table of tensors or of parameter groups", 3)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("SGD: options must be a table, e.g. {lr = 0.01}", 3) end
  local defaults = {}
  for k, v in pairs(DEFAULTS) do defaults[k] = v end
  for k, v in pairs(opts) do
    if DEFAULTS[k] == nil and k ~= "lr" then error("SGD: unknown option '" .. tostring(k) .. "'", 3) end
    defaults[k] = v
  end
  local self = setmetatable({defaults = defaults, param_groups = {}, state = {}}, SGD)
  if #params == 0 then error("optimizer got an empty parameter list", 3) end
  local groups = params
  if lunet.is_tensor(params[1]) then groups = {{params = params}} end
  local seen = {}
  for _, g in ipairs(groups) do
    if type(g) ~= "table" or type(g.params) ~= "table" then
      error("SGD: a parameter group must be a table with a 'params' list", 3)
    end
    local group = {params = {}}
    for k, v in pairs(g) do if k ~= "params" then group[k] = v end end
    for k, v in pairs(defaults) do if group[k] == nil then group[k] = v end end
    if group.lr == nil then
      error("parameter group didn't specify a value of required optimization parameter lr", 3)
    end
    for _, k in ipairs({"lr", "momentum", "dampening", "weight_decay"}) do check_number(k, group[k]) end
    C.sgd_check(group)
    for i, p in ipairs(g.params) do
      if not lunet.is_tensor(p) then error(("SGD: params[%d] is not a tensor"):format(i), 3) end
      if not p.is_leaf then error("can't optimize a non-leaf Tensor", 3) end
      if seen[p] then error("some parameters appear in more than one parameter group", 3) end
      seen[p] = true
      group.params[#group.params + 1] = p
    end
    self.param_groups[#self.param_groups + 1] = group
  end
  return self
end

setmetatable(SGD, {__call = function(_, params, opts) return SGD.new(params, opts) end})

-- One step over every parameter that has a gradient (params whose .grad is nil are skipped).
function SGD:step(closure)
  local loss
  if closure then loss = lunet.enable_grad and lunet.enable_grad(closure) or closure() end
  local state = self.state
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do
      local g = p.grad
      if g ~= nil then
        local st = state[p]
        if st == nil then st = {} state[p] = st end
        st.momentum_buffer = C.sgd_update(p, g, st.momentum_buffer, group)
      end
    end
  end
  return loss
end

-- PyTorch 1.13's default: gradients are zero-filled in place; {set_to_none = true} drops them.
function SGD:zero_grad(opts)
  for _, group in ipairs(self.param_groups) do nn._zero_grads(group.params, opts) end
end

-- {state = {[i] = {momentum_buffer = T}}, param_groups = {{lr = ..., params = {i, ...}}}},
-- parameters numbered from 0 across the groups, as PyTorch does.
function SGD:state_dict()
  local index, n = {}, 0
  local groups, state = {}, {}
  for gi, group in ipairs(self.param_groups) do
    local g = {params = {}}
    for k, v in pairs(group) do if k ~= "params" then g[k] = v end end
    for _, p in ipairs(group.params) do
      index[p] = n
      g.params[#g.params + 1] = n
      n = n + 1
    end
    groups[gi] = g
  end
  for p, st in pairs(self.state) do
    if index[p] ~= nil then
      state[index[p]] = {momentum_buffer = st.momentum_buffer and st.momentum_buffer:clone()}
    end
  end
  return {state = state, param_groups = groups}
end

function SGD:load_state_dict(sd)
  if type(sd) ~= "table" or type(sd.param_groups) ~= "table" then
    error("load_state_dict: expected an optimizer state dict {state=, param_groups=}", 2)
  end
  if #sd.param_groups ~= #self.param_groups then
    error("loaded state dict has a different number of parameter groups", 2)
  end
  local params = {}
  for gi, group in ipairs(self.param_groups) do
    local saved = sd.param_groups[gi]
    if #saved.params ~= #group.params then
      error("loaded state dict contains a parameter group that doesn't match the size of optimizer's group", 2)
    end
    for k, v in pairs(saved) do if k ~= "params" then group[k] = v end end
    for i, p in ipairs(group.params) do params[saved.params[i]] = p end
  end
  self.state = {}
  for id, st in pairs(sd.state or {}) do
    local p = params[id]
    if p ~= nil then
      local buf = st.momentum_buffer
      self.state[p] = {momentum_buffer = buf and buf:to(p.dtype):clone()}
    end
  end
end

function SGD:__tostring()
  local out = {"SGD ("}
  for gi, group in ipairs(self.param_groups) do
    out[#out + 1] = "Parameter Group " .. (gi - 1)
    for _, k in ipairs(KEYS) do
      local v = group[k]
      if k == "foreach" then v = nil elseif k == "differentiable" then v = false end
      out[#out + 1] = "    " .. k .. ": " .. py_float(v)
    end
  end
  out[#out + 1] = ")"
  return table.concat(out, "\n")
end

return optim
