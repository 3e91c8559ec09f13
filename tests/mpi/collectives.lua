-- collectives.lua - every collective of lunet.distributed, every op and dtype, on contiguous,
-- offset and strided tensors, checked exactly against values computed here for every rank;
-- then the errors (calls before init, shapes/dtypes/ops/roots that differ between ranks,
-- bad arguments), after each of which the group must still work.
--   mpirun -np N build/lunet tests/mpi/collectives.lua     (tests/mpi/run.sh runs it)
local lunet = lunet or require "lunet"
local dist = lunet.distributed

local checks = 0
local rank_label = "?"

local function fail(what, got, want)
  error(("rank %s: %s: got %s, expected %s"):format(rank_label, what, tostring(got), tostring(want)), 2)
end

-- exact comparison of a tensor with a flat list of expected values (row-major order)
local function check_tensor(what, t, want)
  local got = t:reshape(-1):tolist()
  if #got ~= #want then fail(what .. " (length)", #got, #want) end
  for i = 1, #want do
    if got[i] ~= want[i] then
      fail(("%s [%d] in %s"):format(what, i - 1, tostring(t)), got[i], want[i])
    end
  end
  checks = checks + 1
end

local function check_error(what, fn, pattern)
  local ok, msg = pcall(fn)
  if ok then fail(what, "no error", pattern) end
  if not tostring(msg):find(pattern, 1, true) then fail(what, msg, pattern) end
  checks = checks + 1
end

-- ---------------------------------------------------------------- before init

check_error("get_rank before init", dist.get_rank,
  "Default process group has not been initialized, please make sure to call init_process_group.")
check_error("all_reduce before init", function() dist.all_reduce(lunet.ones(2)) end,
  "Default process group has not been initialized")
check_error("barrier before init", dist.barrier, "Default process group has not been initialized")
check_error("unknown backend", function() dist.init_process_group{backend = "smoke"} end,
  "Invalid backend: 'smoke'")
check_error("gloo backend", function() dist.init_process_group{backend = "gloo"} end,
  "Lunet has only the mpi backend, not 'gloo'")
if dist.is_initialized() then fail("is_initialized before init", true, false) end

dist.init_process_group{backend = "mpi"}
local R, W = dist.get_rank(), dist.get_world_size()
rank_label = tostring(R)
if not dist.is_initialized() then fail("is_initialized", false, true) end
check_error("second init", function() dist.init_process_group{backend = "mpi"} end,
  "trying to initialize the default process group twice!")

-- ---------------------------------------------------------------- values per rank

local f32 = function(x) return (string.unpack("f", string.pack("f", x))) end

-- value of element i (0-based) on rank r, as Lua sees it after tolist()
local value = {
  float32 = function(r, i) return ((i % 5) - 2) * (r + 1) * 0.25 + r end,
  float64 = function(r, i) return ((i % 7) - 3) * (r + 1) * 0.125 - r * 1e6 end,
  int64 = function(r, i) return (i - 3) * 1000003 * (r + 1) + r * (1 << 40) end,
  uint8 = function(r, i) return (i * 37 + r * 101) % 256 end,
  bool = function(r, i) return (i + r) % 3 == 0 end,
}
local dtypes = {"float32", "float64", "int64", "uint8", "bool"}

local function reduce(dt, op, i)
  local acc
  for r = 0, W - 1 do
    local v = value[dt](r, i)
    if acc == nil then acc = v
    elseif dt == "bool" then
      if op == "min" then acc = acc and v else acc = acc or v end
    elseif op == "sum" or op == "avg" then acc = acc + v
    elseif op == "max" then acc = math.max(acc, v)
    else acc = math.min(acc, v) end
  end
  if dt == "uint8" and op == "sum" then acc = acc % 256 end
  if op == "avg" then acc = acc / W end
  if dt == "float32" then acc = f32(acc) end
  return acc
end

-- a tensor of n elements holding rank r's values, in one of three layouts:
-- "contiguous", "offset" (a narrow of a larger tensor) or "strided" (a transposed view)
local function make(dt, r, n, layout)
  local vals = {}
  for i = 0, n - 1 do vals[#vals + 1] = value[dt](r, i) end
  local t = lunet.tensor(vals, {dtype = lunet[dt]})
  if layout == "offset" then
    local big = lunet.zeros(n + 5, {dtype = lunet[dt]})
    local part = big:narrow(0, 3, n)
    part:copy_(t)
    return part, big
  elseif layout == "strided" then -- n = 12: a (4, 3) view of a (3, 4) tensor, row-major = vals
    local base = lunet.zeros(3, 4, {dtype = lunet[dt]})
    local view = base:t()
    view:copy_(t:view(4, 3))
    if view:is_contiguous() then fail("strided view", "contiguous", "strided") end
    return view, base
  end
  return t
end

local function expected(_, n, fn)
  local out = {}
  for i = 0, n - 1 do out[#out + 1] = fn(i) end
  return out
end

-- ---------------------------------------------------------------- all_reduce

for _, dt in ipairs(dtypes) do
  local ops = {"sum", "max", "min"}
  if dt == "float32" or dt == "float64" then ops[#ops + 1] = "avg" end
  for _, op in ipairs(ops) do
    for _, layout in ipairs({"contiguous", "offset", "strided"}) do
      local n = 12
      local t, base = make(dt, R, n, layout)
      dist.all_reduce(t, {op = op})
      check_tensor(("all_reduce %s %s %s"):format(dt, op, layout), t,
        expected(dt, n, function(i) return reduce(dt, op, i) end))
      if layout == "offset" then -- the elements around the slice are untouched
        local zero = 0
        if dt == "bool" then zero = false end
        check_tensor("all_reduce offset: untouched head", base:narrow(0, 0, 3), {zero, zero, zero})
      end
    end
  end
end
-- the op as a plain string and as ReduceOp, a 0-d tensor, an empty tensor
local s = lunet.tensor(R + 1.5)
dist.all_reduce(s, dist.ReduceOp.MAX)
check_tensor("all_reduce 0-d max", s, {W + 0.5})
local e = lunet.zeros(0)
dist.all_reduce(e, "sum")
check_tensor("all_reduce empty", e, {})
local g = lunet.ones(3, {requires_grad = true}) -- a leaf requiring grad, as DDP's parameters
dist.all_reduce(g)
check_tensor("all_reduce leaf requiring grad", g, {W, W, W})

-- ---------------------------------------------------------------- broadcast

for _, dt in ipairs(dtypes) do
  for src = 0, W - 1 do
    for _, layout in ipairs({"contiguous", "strided"}) do
      local t = make(dt, R, 12, layout)
      dist.broadcast(t, src)
      check_tensor(("broadcast %s from %d %s"):format(dt, src, layout), t,
        expected(dt, 12, function(i) return value[dt](src, i) end))
    end
  end
end
local b = lunet.full({2}, R)
dist.broadcast(b, {src = W - 1})
check_tensor("broadcast {src=}", b, {W - 1, W - 1})

-- ---------------------------------------------------------------- all_gather

for _, dt in ipairs(dtypes) do
  for _, layout in ipairs({"contiguous", "strided"}) do
    local list = {}
    for r = 1, W do
      list[r] = layout == "strided" and lunet.zeros(3, 4, {dtype = lunet[dt]}):t()
                or lunet.zeros(4, 3, {dtype = lunet[dt]})
    end
    dist.all_gather(list, make(dt, R, 12, layout == "strided" and "strided" or "offset"):reshape(4, 3))
    for r = 0, W - 1 do
      check_tensor(("all_gather %s %s from rank %d"):format(dt, layout, r), list[r + 1],
        expected(dt, 12, function(i) return value[dt](r, i) end))
    end
  end
end

dist.barrier()

-- ---------------------------------------------------------------- errors (on every rank)

-- each must fail on every rank at once; the group works afterwards (checked after each)
local function still_works(what)
  local t = lunet.ones(2)
  dist.all_reduce(t)
  check_tensor("group works after " .. what, t, {W, W})
end

if W > 1 then
  check_error("shape differs", function() dist.all_reduce(lunet.zeros(R + 1)) end,
    ("all_reduce: the tensor's shape differs between ranks (this rank: [%d])"):format(R + 1))
  still_works("shape differs")
  check_error("dtype differs", function()
    dist.all_reduce(lunet.zeros(2, {dtype = R == 0 and lunet.float32 or lunet.int64}))
  end, "all_reduce: the tensor's dtype differs between ranks (this rank: " ..
       (R == 0 and "float32" or "int64") .. ")")
  still_works("dtype differs")
  check_error("op differs", function() dist.all_reduce(lunet.zeros(2), R == 0 and "sum" or "max") end,
    "all_reduce: the ranks passed different ops (this rank: " .. (R == 0 and "sum" or "max") .. ")")
  still_works("op differs")
  check_error("src differs", function() dist.broadcast(lunet.zeros(2), R == 0 and 0 or 1) end,
    "broadcast: the ranks passed different src ranks")
  still_works("src differs")
  check_error("different collectives", function()
    if R == 0 then dist.barrier() else dist.all_reduce(lunet.zeros(2)) end
  end, "the ranks called different collectives at the same time (this rank called " ..
       (R == 0 and "barrier" or "all_reduce") .. ")")
  still_works("different collectives")
  -- a bad argument on rank 1 only: rank 1 says why, the others name rank 1
  check_error("bad argument on one rank", function()
    dist.all_reduce(lunet.zeros(2, {dtype = R == 1 and lunet.int64 or lunet.float32}), "avg")
  end, R == 1 and "all_reduce: op avg needs a floating point tensor, got int64"
              or "all_reduce: the call failed on rank 1 (its error says why)")
  still_works("bad argument on one rank")
  -- arguments the binding itself refuses, on one rank only: that rank still takes part in
  -- the collective, so the others fail at once instead of waiting for it forever
  check_error("unknown op on one rank", function()
    dist.all_reduce(lunet.zeros(2), R == 1 and "product" or "sum")
  end, R == 1 and "all_reduce: unknown op 'product' (expected sum, avg, max or min)"
              or "all_reduce: the call failed on rank 1 (its error says why)")
  still_works("unknown op on one rank")
  check_error("not a tensor on one rank", function()
    dist.all_reduce(R == 1 and {} or lunet.zeros(2))
  end, R == 1 and "bad argument #1 to 'all_reduce'" or "all_reduce: the call failed on rank 1")
  still_works("not a tensor on one rank")
  check_error("src out of range on one rank", function()
    dist.broadcast(lunet.zeros(2), R == 1 and (1 << 40) or 0)
  end, R == 1 and "src out of range" or "broadcast: the call failed on rank 1")
  still_works("src out of range on one rank")
  check_error("all_gather list entry on one rank", function()
    local list = {}
    for r = 1, W do list[r] = lunet.zeros(2) end
    if R == 1 then list[1] = "x" end
    dist.all_gather(list, lunet.zeros(2))
  end, R == 1 and "entry 1 is string" or "all_gather: the call failed on rank 1")
  still_works("all_gather list entry on one rank")
end
check_error("avg on integers", function() dist.all_reduce(lunet.zeros(2, {dtype = lunet.int64}), "avg") end,
  "all_reduce: op avg needs a floating point tensor, got int64")
check_error("unknown op", function() dist.all_reduce(lunet.zeros(2), "product") end,
  "all_reduce: unknown op 'product' (expected sum, avg, max or min)")
check_error("invalid root", function() dist.broadcast(lunet.zeros(2), W) end,
  ("broadcast: invalid root rank: %d (world size %d)"):format(W, W))
check_error("all_gather list size", function()
  dist.all_gather({lunet.zeros(2), lunet.zeros(2), lunet.zeros(2), lunet.zeros(2)}, lunet.zeros(2))
end, ("all_gather: tensor_list has 4 tensors, expected one per rank (%d)"):format(W))
still_works("argument errors")
check_error("all_gather shape", function()
  local list = {}
  for r = 1, W do list[r] = lunet.zeros(3) end
  dist.all_gather(list, lunet.zeros(2))
end, "all_gather: tensor_list[0] is float32 [3], the input tensor is float32 [2]")
check_error("expanded tensor", function() dist.all_reduce(lunet.zeros(1):expand(3)) end,
  "unsupported operation")
still_works("all_gather/expand errors")

dist.destroy_process_group()
if dist.is_initialized() then fail("is_initialized after destroy", true, false) end
check_error("get_rank after destroy", dist.get_rank, "Default process group has not been initialized")
print(("collectives: rank %d of %d: %d checks passed"):format(R, W, checks))
