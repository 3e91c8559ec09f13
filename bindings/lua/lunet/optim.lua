-- lunet.optim: PyTorch 1.13's SGD, Adam and AdamW over parameter groups, with state_dict /
-- load_state_dict (through lunet.save/lunet.load) and the lr schedulers of
-- lunet.optim.lr_scheduler.  Each parameter's update is one fused C call
-- (_c.sgd_update, runtime/optim.c; _c.adam_update, runtime/adam.c), bit-exact with PyTorch
-- (docs/pytorch-parity.md §7, §18, §19).
--
-- Decisions:
--  - One Optimizer base holds what every optimizer shares (groups, zero_grad, state_dict,
--    printing); a class brings its defaults, its option checks and its per-parameter update.
--  - Option checks with PyTorch's messages are done here rather than in C: Lua knows whether
--    a number is an integer, and PyTorch prints `lr=-1` as "-1" but `lr=-1.0` as "-1.0".
--  - state_dict numbers the parameters from 0 across the groups, as PyTorch does; tensors in
--    it are copies, the step count is a number (PyTorch keeps a 0-d float tensor).
local lunet = require "lunet"
local nn = require "lunet.nn"

local C = lunet._c
local optim = {}

local py_repr = require("lunet.py").repr

-- A group option as PyTorch's Optimizer.__repr__ prints it.
local function py_value(v)
  if v == nil then return "None" end
  if v == true then return "True" end
  if v == false then return "False" end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = py_value(x) end
    return "(" .. table.concat(parts, ", ") .. ")"
  end
  if type(v) == "number" then return py_repr(v) end
  return tostring(v)
end

local function copy(v)
  if lunet.is_tensor(v) then return v:clone() end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

-- ---- the base class ----------------------------------------------------------------------

local Optimizer = {__name = "Optimizer"}
Optimizer.__index = Optimizer
optim.Optimizer = Optimizer

-- A new optimizer class: spec = {defaults =, fixed = {printed option = value}, check(group),
-- update(p, grad, state, group) [, step_group(params, state, group), which steps a whole
-- group when the class has it]}; instances are made by calling the class.
local function class(name, spec)
  local cls = setmetatable({__name = name, _spec = spec, __tostring = Optimizer.__tostring},
    {__index = Optimizer,
     __call = function(c, params, opts) return Optimizer._init(setmetatable({}, c), params, opts) end})
  cls.__index = cls
  cls.new = function(params, opts) return Optimizer._init(setmetatable({}, cls), params, opts) end
  return cls
end

function Optimizer._init(self, params, opts)
  local name = getmetatable(self).__name
  if lunet.is_tensor(params) then
    error("params argument given to the optimizer should be an iterable of Tensors or dicts, but got " ..
      "lunet." .. params.dtype .. " tensor", 3)
  end
  if type(params) ~= "table" then
    error(name .. ": params must be a table of tensors or of parameter groups", 3)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error(name .. ": options must be a table, e.g. {lr = 0.01}", 3) end
  local defaults = {}
  for k, v in pairs(self._spec.defaults) do defaults[k] = v end
  for k, v in pairs(opts) do
    if self._spec.fixed[k] ~= nil then
      -- PyTorch's implementation switches (foreach, fused, ...): only their CPU default
      if v ~= false then
        error(("%s: %s = %s is not supported (Lunet runs PyTorch's single-tensor CPU algorithm)")
          :format(name, k, tostring(v)), 3)
      end
    elseif self._spec.defaults[k] == nil and k ~= "lr" then
      error(name .. ": unknown option '" .. tostring(k) .. "'", 3)
    else
      defaults[k] = v
    end
  end
  self.defaults, self.param_groups, self.state = defaults, {}, {}
  if #params == 0 then error("optimizer got an empty parameter list", 3) end
  local groups = params
  if lunet.is_tensor(params[1]) then groups = {{params = params}} end
  for _, g in ipairs(groups) do self:add_param_group(g, 4) end
  return self
end

-- Adds a group {params = {...}, option = value, ...}; options it lacks come from the defaults.
function Optimizer:add_param_group(g, level)
  level = level or 2
  local name = getmetatable(self).__name
  if type(g) ~= "table" or type(g.params) ~= "table" then
    error(name .. ": a parameter group must be a table with a 'params' list", level)
  end
  local group = {params = {}}
  for k, v in pairs(g) do if k ~= "params" then group[k] = v end end
  for k, v in pairs(self.defaults) do if group[k] == nil then group[k] = copy(v) end end
  if group.lr == nil then
    error("parameter group didn't specify a value of required optimization parameter lr", level)
  end
  local ok, err = pcall(self._spec.check, group, name)
  if not ok then error(err, level) end
  local seen = {}
  for _, other in ipairs(self.param_groups) do
    for _, p in ipairs(other.params) do seen[p] = true end
  end
  for i, p in ipairs(g.params) do
    if not lunet.is_tensor(p) then error(("%s: params[%d] is not a tensor"):format(name, i), level) end
    if not p.is_leaf then error("can't optimize a non-leaf Tensor", level) end
    if seen[p] then error("some parameters appear in more than one parameter group", level) end
    seen[p] = true
    group.params[#group.params + 1] = p
  end
  -- the group's parameters (those no other tensor shares) move into one slab per dtype, so
  -- that zero_grad is one memset and SGD's step one loop (runtime/slab.c)
  C.slab_pack(group.params)
  self.param_groups[#self.param_groups + 1] = group
end

-- One step over every parameter that has a gradient (params whose .grad is nil are skipped).
function Optimizer:step(closure)
  local loss
  if closure then loss = lunet.enable_grad and lunet.enable_grad(closure) or closure() end
  local state, update, step_group = self.state, self._spec.update, self._spec.step_group
  for _, group in ipairs(self.param_groups) do
    if step_group then step_group(group.params, state, group) goto next_group end
    for _, p in ipairs(group.params) do
      local g = p.grad
      if g ~= nil then
        local st = state[p]
        if st == nil then st = {} state[p] = st end
        update(p, g, st, group)
      end
    end
    ::next_group::
  end
  return loss
end

-- PyTorch 1.13's default: gradients are zero-filled in place; {set_to_none = true} drops them.
function Optimizer:zero_grad(opts)
  for _, group in ipairs(self.param_groups) do nn._zero_grads(group.params, opts) end
end

-- {state = {[i] = {momentum_buffer = T} or {step =, exp_avg =, ...}},
--  param_groups = {{lr = ..., params = {i, ...}}, ...}}, parameters numbered from 0.
function Optimizer:state_dict()
  local index, n = {}, 0
  local groups, state = {}, {}
  for gi, group in ipairs(self.param_groups) do
    local g = {params = {}}
    for k, v in pairs(group) do if k ~= "params" then g[k] = copy(v) end end
    for _, p in ipairs(group.params) do
      index[p] = n
      g.params[#g.params + 1] = n
      n = n + 1
    end
    groups[gi] = g
  end
  for p, st in pairs(self.state) do
    if index[p] ~= nil then state[index[p]] = copy(st) end
  end
  return {state = state, param_groups = groups}
end

-- Restores options and state saved by state_dict (possibly through lunet.save/lunet.load);
-- state tensors are copied and cast to their parameter's dtype.
function Optimizer:load_state_dict(sd)
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
    for k, v in pairs(saved) do if k ~= "params" then group[k] = copy(v) end end
    for i, p in ipairs(group.params) do params[saved.params[i]] = p end
  end
  self.state = {}
  for id, st in pairs(sd.state or {}) do
    local p = params[id]
    if p ~= nil then
      local s = {}
      for k, v in pairs(st) do s[k] = lunet.is_tensor(v) and v:to(p.dtype):clone() or copy(v) end
      self.state[p] = s
    end
  end
end

function Optimizer:__tostring()
  local out = {getmetatable(self).__name .. " ("}
  for gi, group in ipairs(self.param_groups) do
    out[#out + 1] = "Parameter Group " .. (gi - 1)
    local shown, keys = {}, {}
    for k, v in pairs(self._spec.fixed) do shown[k] = {v} end
    for k, v in pairs(group) do if k ~= "params" then shown[k] = {v} end end
    for k in pairs(shown) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = shown[k][1]
      if v == optim.None then v = nil end
      out[#out + 1] = "    " .. k .. ": " .. py_value(v)
    end
  end
  out[#out + 1] = ")"
  return table.concat(out, "\n")
end

-- Stands for Python's None among the printed options (a table field cannot hold nil).
optim.None = setmetatable({}, {__name = "None", __tostring = function() return "None" end})

local function check_number(name, opt, v)
  if type(v) ~= "number" then error(("%s: %s must be a number, got %s"):format(name, opt, type(v)), 0) end
end

-- ---- SGD -------------------------------------------------------------------------------

optim.SGD = class("SGD", {
  defaults = {momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false},
  fixed = {foreach = optim.None, differentiable = false},
  check = function(group, name)
    for _, k in ipairs({"lr", "momentum", "dampening", "weight_decay"}) do check_number(name, k, group[k]) end
    C.sgd_check(group)
  end,
  update = function(p, g, st, group) st.momentum_buffer = C.sgd_update(p, g, st.momentum_buffer, group) end,
  -- the whole group at once: one loop per slab, the per-parameter update for the rest
  step_group = C.sgd_step,
})

-- ---- Adam and AdamW ----------------------------------------------------------------------

-- `not (0 <= x)` rather than `x < 0` so that NaN is refused, as in PyTorch.
-- luacheck: push ignore 581
local function check_adam(group, name)
  for _, k in ipairs({"lr", "eps", "weight_decay"}) do check_number(name, k, group[k]) end
  local betas = group.betas
  if type(betas) ~= "table" or #betas ~= 2 then
    error(name .. ": betas must be a table of two numbers {beta1, beta2}", 0)
  end
  check_number(name, "betas[1]", betas[1])
  check_number(name, "betas[2]", betas[2])
  if not (0.0 <= group.lr) then error("Invalid learning rate: " .. py_repr(group.lr), 0) end
  if not (0.0 <= group.eps) then error("Invalid epsilon value: " .. py_repr(group.eps), 0) end
  for i = 1, 2 do
    if not (0.0 <= betas[i] and betas[i] < 1.0) then
      error(("Invalid beta parameter at index %d: %s"):format(i - 1, py_repr(betas[i])), 0)
    end
  end
  if not (0.0 <= group.weight_decay) then
    error("Invalid weight_decay value: " .. py_repr(group.weight_decay), 0)
  end
end
-- luacheck: pop

optim.Adam = class("Adam", {
  defaults = {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0, amsgrad = false,
              maximize = false},
  fixed = {foreach = optim.None, capturable = false, differentiable = false, fused = false},
  check = check_adam,
  update = function(p, g, st, group) C.adam_update(p, g, st, group, false) end,
})

optim.AdamW = class("AdamW", {
  defaults = {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 1e-2, amsgrad = false,
              maximize = false},
  fixed = {foreach = optim.None, capturable = false},
  check = check_adam,
  update = function(p, g, st, group) C.adam_update(p, g, st, group, true) end,
})

optim.lr_scheduler = require "lunet.optim.lr_scheduler"

return optim
