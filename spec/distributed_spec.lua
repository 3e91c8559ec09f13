-- distributed_spec.lua - lunet.distributed in one process, without starting MPI: the module
-- and its names, and PyTorch's error for everything used before init_process_group
-- (the collectives themselves run under mpirun: tests/mpi/, make test-mpi).
local lunet = require "lunet"
local dist = require "lunet.distributed"

local NOT_INIT = "Default process group has not been initialized, please make sure to call init_process_group."

local function fails_with(fn, text)
  local ok, msg = pcall(fn)
  assert.is_false(ok, "expected an error containing: " .. text)
  assert.truthy(tostring(msg):find(text, 1, true), ("got %q, expected it to contain %q"):format(tostring(msg), text))
end

describe("lunet.distributed before init_process_group", function()
  it("is the same table as lunet.distributed, with ReduceOp", function()
    assert.are.equal(lunet.distributed, dist)
    assert.are.same({SUM = "sum", AVG = "avg", MAX = "max", MIN = "min"}, dist.ReduceOp)
    assert.are.equal(dist.is_available(), dist.is_mpi_available())
    assert.is_false(dist.is_initialized())
  end)

  it("raises PyTorch's message from every call", function()
    local t = lunet.ones(3)
    fails_with(dist.get_rank, NOT_INIT)
    fails_with(dist.get_world_size, NOT_INIT)
    fails_with(function() dist.all_reduce(t, {op = "max"}) end, NOT_INIT)
    fails_with(function() dist.broadcast(t, 0) end, NOT_INIT)
    fails_with(function() dist.all_gather({lunet.ones(3)}, t) end, NOT_INIT)
    fails_with(dist.barrier, NOT_INIT)
    fails_with(dist.destroy_process_group, NOT_INIT)
    fails_with(function() lunet.nn.parallel.DistributedDataParallel(lunet.nn.Linear(2, 2)) end, NOT_INIT)
    fails_with(function() lunet.data.DistributedSampler(lunet.data.TensorDataset(t)) end, NOT_INIT)
  end)

  it("checks its arguments before anything else", function()
    fails_with(function() dist.all_reduce(lunet.ones(2), "prod") end,
      "all_reduce: unknown op 'prod' (expected sum, avg, max or min)")
    fails_with(function() dist.all_reduce(lunet.ones(2), {async_op = true}) end,
      "async_op is not supported")
    fails_with(function() dist.init_process_group{backend = "nccl"} end,
      "init_process_group: Lunet has only the mpi backend, not 'nccl'")
    fails_with(function() dist.init_process_group("bogus") end, "Invalid backend: 'bogus'")
    fails_with(function() lunet.nn.parallel.DistributedDataParallel(42) end,
      "DistributedDataParallel: expected an nn.Module")
    assert.is_false(dist.is_initialized())
  end)
end)
