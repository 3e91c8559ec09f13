-- lunet.nn.init: torch.nn.init's initialisations, bit for bit with PyTorch after the same
-- manual_seed.  The gains, fans and Kaiming/Xavier bounds are runtime/init.c (the same code
-- nn.Linear's and nn.Conv2d's reset_parameters use); the plain fills are the tensor methods
-- run without autograd, as PyTorch's torch.no_grad() fills are.
--
-- Optional arguments are positional as in PyTorch (`kaiming_uniform_(w, a, mode,
-- nonlinearity)`) or a table (`kaiming_uniform_(w, {mode = "fan_out", nonlinearity = "relu"})`).
local lunet = require "lunet"

local C = lunet._c
local M = {}

local function check_tensor(fn, t)
  if not lunet.is_tensor(t) then error(("nn.init.%s: expected a tensor, got %s"):format(fn, type(t)), 3) end
end

local function no_grad_fill(t, method, ...)
  local args = table.pack(...)
  lunet.no_grad(function() t[method](t, table.unpack(args, 1, args.n)) end)
  return t
end

-- calculate_gain(nonlinearity [, param]): PyTorch's recommended gain for a nonlinearity.
function M.calculate_gain(nonlinearity, param)
  if param ~= nil and type(param) ~= "number" then
    if nonlinearity == "leaky_relu" then
      local shown = param == true and "True" or param == false and "False" or tostring(param)
      error(("negative_slope %s not a valid number"):format(shown), 2)
    end
    param = nil -- other nonlinearities ignore it, as in PyTorch
  end
  local gain = C.init_gain(tostring(nonlinearity), param)
  if gain == 1 then return 1 end -- Python's int 1 for the linear functions
  return gain
end

-- _calculate_fan_in_and_fan_out(t) -> fan_in, fan_out
function M._calculate_fan_in_and_fan_out(t)
  check_tensor("_calculate_fan_in_and_fan_out", t)
  return C.init_fans(t)
end

function M.uniform_(t, a, b)
  check_tensor("uniform_", t)
  if type(a) == "table" then a, b = a.a, a.b end
  return no_grad_fill(t, "uniform_", a or 0.0, b or 1.0)
end

function M.normal_(t, mean, std)
  check_tensor("normal_", t)
  if type(mean) == "table" then mean, std = mean.mean, mean.std end
  return no_grad_fill(t, "normal_", mean or 0.0, std or 1.0)
end

function M.constant_(t, val)
  check_tensor("constant_", t)
  if type(val) ~= "number" then error("nn.init.constant_: val must be a number", 2) end
  return no_grad_fill(t, "fill_", val)
end

function M.ones_(t)
  check_tensor("ones_", t)
  return no_grad_fill(t, "fill_", 1.0)
end

function M.zeros_(t)
  check_tensor("zeros_", t)
  return no_grad_fill(t, "zero_")
end

local function kaiming(fn, t, a, mode, nonlinearity, normal)
  check_tensor(fn, t)
  if type(a) == "table" then a, mode, nonlinearity = a.a, a.mode, a.nonlinearity end
  a, mode, nonlinearity = a or 0, mode or "fan_in", nonlinearity or "leaky_relu"
  if type(a) ~= "number" then error(("negative_slope %s not a valid number"):format(tostring(a)), 3) end
  C.init_kaiming(t, a, tostring(mode), tostring(nonlinearity), normal)
  return t
end

-- kaiming_uniform_(t [, a = 0 [, mode = "fan_in" [, nonlinearity = "leaky_relu"]]])
function M.kaiming_uniform_(t, a, mode, nonlinearity)
  return kaiming("kaiming_uniform_", t, a, mode, nonlinearity, false)
end

-- kaiming_normal_(t [, a = 0 [, mode = "fan_in" [, nonlinearity = "leaky_relu"]]])
function M.kaiming_normal_(t, a, mode, nonlinearity)
  return kaiming("kaiming_normal_", t, a, mode, nonlinearity, true)
end

local function xavier(fn, t, gain, normal)
  check_tensor(fn, t)
  if type(gain) == "table" then gain = gain.gain end
  gain = gain or 1.0
  if type(gain) ~= "number" then error(("nn.init.%s: gain must be a number"):format(fn), 3) end
  C.init_xavier(t, gain, normal)
  return t
end

-- xavier_uniform_(t [, gain = 1]) and xavier_normal_(t [, gain = 1])
function M.xavier_uniform_(t, gain) return xavier("xavier_uniform_", t, gain, false) end
function M.xavier_normal_(t, gain) return xavier("xavier_normal_", t, gain, true) end

return M
