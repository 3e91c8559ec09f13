-- lunet.metrics: d2l's accuracy and Accumulator (seed 001), as the training scripts use them.
--
--   lunet.metrics.accuracy(y_hat, y) -> number of correct predictions (a float, as d2l's
--     float(cmp.sum())).  y_hat (N, C) is reduced with argmax over dim 1 (0-based, as PyTorch's
--     argmax(axis=1)); a 1-D y_hat (or (N, 1)) is compared directly after conversion to
--     y's dtype, exactly as d2l does.
--   local acc = lunet.metrics.Accumulator(n)
--     acc:add(a, b, ...)   adds numbers (or 0-d / one-element tensors) to the n sums
--     acc:reset()          back to zeros
--     acc[i], acc.data[i]  the i-th sum, 1-based like every Lua array: acc[1] is d2l's metric[0]
--     acc:get(i)           0-based, like d2l's metric[i] and lunet's other get(i) methods
--     #acc                 n
local lunet = require "lunet"

local metrics = {}

local is_tensor = lunet.is_tensor

function metrics.accuracy(y_hat, y)
  if not is_tensor(y_hat) then error("accuracy: y_hat must be a tensor", 2) end
  if not is_tensor(y) then error("accuracy: y must be a tensor", 2) end
  if y_hat:dim() > 1 and y_hat:size(1) > 1 then
    y_hat = y_hat:argmax(1)
  end
  local cmp = y_hat:to(y.dtype):eq(y)
  return cmp:sum():item() + 0.0
end

-- Accumulator -------------------------------------------------------------------------

local Accumulator = {}
Accumulator.__name = "lunet.metrics.Accumulator"

local methods = {}

local function number_of(v, i)
  if type(v) == "number" then return v end
  if is_tensor(v) then return v:item() end
  error(("Accumulator:add: argument %d must be a number or a tensor, got %s"):format(i, type(v)), 3)
end

function methods:add(...)
  local d = rawget(self, "data")
  local n = select("#", ...)
  -- d2l zips: extra arguments are ignored, missing ones leave their sums alone
  for i = 1, math.min(n, #d) do
    d[i] = d[i] + number_of((select(i, ...)), i)
  end
  return self
end

function methods:reset()
  local d = rawget(self, "data")
  for i = 1, #d do d[i] = 0.0 end
  return self
end

function methods:get(i)
  local d = rawget(self, "data")
  if math.type(i) ~= "integer" or i < 0 or i >= #d then
    error(("Accumulator:get: index %s out of range for %d sums (get is 0-based)"):format(tostring(i), #d), 2)
  end
  return d[i + 1]
end

Accumulator.__index = function(self, k)
  if type(k) == "number" then return rawget(self, "data")[k] end
  return methods[k]
end

Accumulator.__len = function(self) return #rawget(self, "data") end

Accumulator.__tostring = function(self)
  local parts = {}
  for i, v in ipairs(rawget(self, "data")) do parts[i] = string.format("%.17g", v) end
  return "Accumulator(" .. table.concat(parts, ", ") .. ")"
end

function metrics.Accumulator(n)
  if math.type(n) ~= "integer" or n < 0 then
    error("Accumulator(n): n must be a non-negative integer", 2)
  end
  local d = {}
  for i = 1, n do d[i] = 0.0 end
  return setmetatable({data = d}, Accumulator)
end

return metrics
