-- helper.lua - loaded by busted before the specs (make test-lua: busted --helper=spec/helper.lua).
-- Makes `require "lunet"` load $LUNET_BUILD/lunet.so (default build/) and defines a few
-- global assertion helpers shared by the specs.
local build = os.getenv("LUNET_BUILD") or "build"
package.cpath = build .. "/?.so;" .. package.cpath
LUNET_BUILD = build
LUNET_BIN = build .. "/lunet"

-- flatten(v): the leaves of a nested table (a tensor's tolist()) in row-major order.
function flatten(v, out)
  out = out or {}
  if type(v) == "table" then
    for i = 1, #v do flatten(v[i], out) end
  else
    out[#out + 1] = v
  end
  return out
end

local function values(v)
  local lunet = require "lunet"
  if lunet.is_tensor(v) then v = v:tolist() end
  return flatten(v)
end

-- assert_close(got, want [, tol]): numbers, nested tables or tensors, element by element,
-- |got - want| <= tol * max(1, |want|) (tol defaults to 1e-6, docs/pytorch-parity.md §0.3);
-- NaN matches NaN.
function assert_close(got, want, tol)
  tol = tol or 1e-6
  local g, w = values(got), values(want)
  if #g ~= #w then
    error(string.format("assert_close: got %d values, expected %d", #g, #w), 2)
  end
  for i = 1, #w do
    local a, b = g[i], w[i]
    local ok
    if type(b) ~= "number" or type(a) ~= "number" then
      ok = a == b
    elseif b ~= b then
      ok = a ~= a
    elseif b == math.huge or b == -math.huge then
      ok = a == b
    else
      ok = math.abs(a - b) <= tol * math.max(1, math.abs(b))
    end
    if not ok then
      error(string.format("assert_close: element %d: got %s, expected %s (tol %g)", i - 1,
                          tostring(a), tostring(b), tol), 2)
    end
  end
  return true
end

-- assert_error_contains(fn, text): fn must raise an error whose message contains text (plain).
function assert_error_contains(fn, text)
  local ok, err = pcall(fn)
  if ok then error("expected an error containing: " .. text, 2) end
  err = tostring(err)
  if not err:find(text, 1, true) then
    error(string.format("error message\n  %s\ndoes not contain\n  %s", err, text), 2)
  end
  return err
end

-- assert_lines(text, expected_lines): text split on newlines equals the list.
function assert_lines(text, expected)
  local got = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do got[#got + 1] = line end
  if got[#got] == "" then got[#got] = nil end
  for i = 1, math.max(#got, #expected) do
    if got[i] ~= expected[i] then
      error(string.format("line %d: got %q, expected %q", i, tostring(got[i]),
                          tostring(expected[i])), 2)
    end
  end
  return true
end

-- run_command(cmd): runs a shell command with stderr joined to stdout; returns ok, output.
function run_command(cmd)
  local f = assert(io.popen(cmd .. " 2>&1"))
  local out = f:read("a")
  local ok = f:close()
  return ok, out
end

-- read_file(path): the file's bytes, or nil when it cannot be opened.
function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- must_read(path): the whole file, or an error naming it.
function must_read(path)
  return assert(read_file(path), path .. ": cannot read")
end

-- make_tmpdir(): a new empty directory's path.
function make_tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. p))
  return p
end
