-- lunet.optim.lr_scheduler: PyTorch 1.13's StepLR, MultiStepLR and CosineAnnealingLR
-- (docs/pytorch-parity.md §19).
--
-- Decisions:
--  - step() uses PyTorch's recursive ("chainable") form, each lr computed from the group's
--    current lr with the same operations in the same order, so the sequences are PyTorch's
--    to the last bit; step(epoch) uses the closed form, as PyTorch's deprecated path does.
--  - state_dict() holds the same fields as PyTorch's (everything but the optimizer), and
--    round-trips through lunet.save/lunet.load.
--  - PyTorch's warnings about the order of optimizer.step() and scheduler.step() are not
--    reproduced.
local lunet = require "lunet"

local M = {}

local LRScheduler = {__name = "LRScheduler"}
LRScheduler.__index = LRScheduler
M.LRScheduler = LRScheduler

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

local function class(name)
  local cls = setmetatable({__name = name}, {__index = LRScheduler,
    __call = function(c, ...) return c.new(...) end})
  cls.__index = cls
  return cls
end

-- Attaches to the optimizer and takes the first step (last_epoch -1 -> 0), as PyTorch does.
local function init(self, optimizer, last_epoch)
  if type(optimizer) ~= "table" or type(optimizer.param_groups) ~= "table" then
    error(("%s is not an Optimizer"):format(lunet.is_tensor(optimizer) and "Tensor" or type(optimizer)), 3)
  end
  last_epoch = last_epoch or -1
  if math.type(last_epoch) ~= "integer" then
    error(getmetatable(self).__name .. ": last_epoch must be an integer", 3)
  end
  self.optimizer = optimizer
  if last_epoch == -1 then
    for _, group in ipairs(optimizer.param_groups) do
      if group.initial_lr == nil then group.initial_lr = group.lr end
    end
  else
    for i, group in ipairs(optimizer.param_groups) do
      if group.initial_lr == nil then
        error(("param 'initial_lr' is not specified in param_groups[%d] when resuming an optimizer"):format(i - 1), 3)
      end
    end
  end
  self.base_lrs = {}
  for i, group in ipairs(optimizer.param_groups) do self.base_lrs[i] = group.initial_lr end
  self.last_epoch = last_epoch
  self.verbose = false
  self._get_lr_called_within_step = false
  self._step_count = 0
  self:step()
  return self
end

-- Advances one epoch (or jumps to `epoch`, closed form) and sets every group's lr.
function LRScheduler:step(epoch)
  self._step_count = self._step_count + 1
  local values
  if epoch == nil then
    self.last_epoch = self.last_epoch + 1
    values = self:get_lr()
  else
    self.last_epoch = epoch
    values = self:_get_closed_form_lr()
  end
  self._last_lr = {}
  for i, group in ipairs(self.optimizer.param_groups) do
    group.lr = values[i]
    self._last_lr[i] = values[i]
  end
end

-- The learning rates the last step set, one per parameter group.
function LRScheduler:get_last_lr() return copy(self._last_lr) end

-- Every field but the optimizer, as PyTorch's state_dict.
function LRScheduler:state_dict()
  local sd = {}
  for k, v in pairs(self) do if k ~= "optimizer" then sd[k] = copy(v) end end
  return sd
end

function LRScheduler:load_state_dict(sd)
  if type(sd) ~= "table" then error("load_state_dict: expected a scheduler state dict (a table)", 2) end
  for k, v in pairs(sd) do if k ~= "optimizer" then self[k] = copy(v) end end
end

-- Python's a % b, a // b and a / b, which raise on a zero divisor where Lua would give NaN
-- or fail with its own text; the messages are Python's.
local function py_mod(a, b)
  if b == 0 then
    error(math.type(a) == "integer" and math.type(b) == "integer" and "integer modulo by zero" or "float modulo", 0)
  end
  return a % b
end

local function py_floordiv(a, b)
  if b == 0 then
    error(math.type(a) == "integer" and math.type(b) == "integer" and "integer division or modulo by zero"
      or "float floor division by zero", 0)
  end
  return a // b
end

local function py_div(a, b)
  if b == 0 then error("float division by zero", 0) end
  return a / b
end

local function current_lrs(self)
  local lrs = {}
  for i, group in ipairs(self.optimizer.param_groups) do lrs[i] = group.lr end
  return lrs
end

-- StepLR and MultiStepLR multiply the lr by gamma^n: the chainable step takes the group's lr
-- and n = the decays that fall on this epoch, the closed form the base lr and n = those on it
-- and before.  A class gives those two counts as decays_at(self, epoch) and
-- decays_through(self, epoch).
local function gamma_decay_class(name, decays_at, decays_through)
  local cls = class(name)

  function cls:get_lr()
    local n = decays_at(self, self.last_epoch)
    local lrs = current_lrs(self)
    if n == 0 then return lrs end
    -- one decay multiplies by gamma itself, as PyTorch's StepLR does (an integer stays one)
    local f = n == 1 and self.gamma or self.gamma ^ n
    for i, lr in ipairs(lrs) do lrs[i] = lr * f end
    return lrs
  end

  function cls:_get_closed_form_lr()
    local n = decays_through(self, self.last_epoch)
    local lrs = {}
    for i, base_lr in ipairs(self.base_lrs) do lrs[i] = base_lr * self.gamma ^ n end
    return lrs
  end
  return cls
end

-- ---- StepLR: lr * gamma every step_size epochs -----------------------------------------

local StepLR = gamma_decay_class("StepLR",
  function(self, e) return (e ~= 0 and py_mod(e, self.step_size) == 0) and 1 or 0 end,
  function(self, e) return py_floordiv(e, self.step_size) end)
M.StepLR = StepLR

-- StepLR(optimizer, step_size [, gamma = 0.1 [, last_epoch = -1]])
function StepLR.new(optimizer, step_size, gamma, last_epoch)
  if math.type(step_size) ~= "integer" then error("StepLR: step_size must be an integer", 2) end
  local self = setmetatable({step_size = step_size, gamma = gamma or 0.1}, StepLR)
  return init(self, optimizer, last_epoch)
end

-- ---- MultiStepLR: lr * gamma at each milestone ------------------------------------------

-- milestones is PyTorch's Counter {[epoch] = times listed}; the closed form is its
-- bisect_right over the sorted milestones, repeats counted.
local MultiStepLR = gamma_decay_class("MultiStepLR",
  function(self, e) return self.milestones[e] or 0 end,
  function(self, e)
    local passed = 0
    for m, times in pairs(self.milestones) do
      if m <= e then passed = passed + times end
    end
    return passed
  end)
M.MultiStepLR = MultiStepLR

-- MultiStepLR(optimizer, milestones [, gamma = 0.1 [, last_epoch = -1]]); milestones is a
-- list of epochs.
function MultiStepLR.new(optimizer, milestones, gamma, last_epoch)
  if type(milestones) ~= "table" then error("MultiStepLR: milestones must be a list of epochs", 2) end
  local counter = {}
  for _, m in ipairs(milestones) do
    if math.type(m) ~= "integer" then error("MultiStepLR: milestones must be integers", 2) end
    counter[m] = (counter[m] or 0) + 1
  end
  local self = setmetatable({milestones = counter, gamma = gamma or 0.1}, MultiStepLR)
  return init(self, optimizer, last_epoch)
end

-- ---- CosineAnnealingLR ---------------------------------------------------------------------

local CosineAnnealingLR = class("CosineAnnealingLR")
M.CosineAnnealingLR = CosineAnnealingLR

-- CosineAnnealingLR(optimizer, T_max [, eta_min = 0 [, last_epoch = -1]])
function CosineAnnealingLR.new(optimizer, T_max, eta_min, last_epoch)
  if type(T_max) ~= "number" then error("CosineAnnealingLR: T_max must be a number", 2) end
  local self = setmetatable({T_max = T_max, eta_min = eta_min or 0}, CosineAnnealingLR)
  return init(self, optimizer, last_epoch)
end

-- PyTorch's chainable form, expression for expression (the operation order fixes the bits).
function CosineAnnealingLR:get_lr()
  local e, T, eta_min, pi, cos = self.last_epoch, self.T_max, self.eta_min, math.pi, math.cos
  local lrs = current_lrs(self)
  if e == 0 then return lrs end
  for i, lr in ipairs(lrs) do
    local base_lr = self.base_lrs[i]
    if self._step_count == 1 and e > 0 then
      lrs[i] = eta_min + (base_lr - eta_min) * (1 + cos(py_div((e) * pi, T))) / 2
    elseif py_mod(e - 1 - T, 2 * T) == 0 then
      lrs[i] = lr + (base_lr - eta_min) * (1 - cos(py_div(pi, T))) / 2
    else
      lrs[i] = (1 + cos(py_div(pi * e, T))) / (1 + cos(py_div(pi * (e - 1), T))) * (lr - eta_min) + eta_min
    end
  end
  return lrs
end

function CosineAnnealingLR:_get_closed_form_lr()
  local lrs = {}
  for i, base_lr in ipairs(self.base_lrs) do
    lrs[i] = self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(py_div(math.pi * self.last_epoch, self.T_max))) / 2
  end
  return lrs
end

return M
