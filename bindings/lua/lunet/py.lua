-- lunet.py: numbers and lines as Python prints them, for the printed forms that follow
-- PyTorch (module and optimizer reprs, transforms) and for scripts that print what a Python
-- notebook printed.
--
--   py.repr(v)      Python's repr of a number: an integer as an integer; a float as the
--                   shortest text that reads back the same double, in Python's layout
--                   ("1.0", "0.001", "1e-08", "1e+16", "nan", "-inf"); anything else by
--                   tostring
--   py.print(...)   Python's print: the values separated by one space, numbers by py.repr,
--                   then a newline, on io.stdout
local py = {}

function py.repr(v)
  if type(v) ~= "number" then return tostring(v) end
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
  local s, prec
  for p = 1, 17 do
    prec, s = p, ("%." .. (p - 1) .. "e"):format(v)
    if tonumber(s) == v then break end
  end
  local exp10 = tonumber(s:match("e([-+]%d+)$"))
  if exp10 < -4 or exp10 >= 16 then return s end
  local decimals = math.max(prec - 1 - exp10, 0)
  s = ("%." .. decimals .. "f"):format(v)
  return decimals == 0 and s .. ".0" or s
end

function py.print(...)
  local n, parts = select("#", ...), {}
  for i = 1, n do
    local v = (select(i, ...))
    parts[i] = type(v) == "number" and py.repr(v) or tostring(v)
  end
  io.stdout:write(table.concat(parts, " "), "\n")
end

return py
