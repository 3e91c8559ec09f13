-- lunet.data.distributed -- DistributedSampler: each rank of a distributed job reads its own
-- share of a dataset, in PyTorch 1.13's order (torch.utils.data.distributed): every epoch
-- one permutation from a generator seeded with seed + epoch (the same on every rank), padded
-- by repeating it from its start up to a multiple of num_replicas (or cut, with drop_last),
-- of which rank r takes positions r, r + R, r + 2R, ...  Also data.DistributedSampler.
local lunet = require "lunet"
local dist = require "lunet.distributed"

local C = lunet._c
local M = {}

local DistributedSampler = {__name = "DistributedSampler"}
DistributedSampler.__index = DistributedSampler

local function check_int(v, name, level)
  if math.type(v) ~= "integer" then
    error(("DistributedSampler: %s must be an integer, got %s"):format(name, tostring(v)), level + 1)
  end
  return v
end

-- DistributedSampler(dataset, {num_replicas =, rank =, shuffle = true, seed = 0,
-- drop_last = false}); num_replicas and rank default to the process group's.
function M.DistributedSampler(dataset, opts)
  opts = opts or {}
  if type(dataset) ~= "table" and type(dataset) ~= "userdata" then
    error("DistributedSampler: the first argument must be a dataset (with #dataset)", 2)
  end
  local reps, rank = opts.num_replicas, opts.rank
  if reps == nil then reps = dist.get_world_size() end
  if rank == nil then rank = dist.get_rank() end
  check_int(reps, "num_replicas", 2)
  check_int(rank, "rank", 2)
  if reps <= 0 then
    error(("DistributedSampler: num_replicas must be positive, got %d"):format(reps), 2)
  end
  if rank >= reps or rank < 0 then
    error(("Invalid rank %d, rank should be in the interval [0, %d]"):format(rank, reps - 1), 2)
  end
  local seed = check_int(opts.seed == nil and 0 or opts.seed, "seed", 2)
  local drop_last = opts.drop_last and true or false
  local n = #dataset
  local num_samples
  if drop_last and n % reps ~= 0 then
    num_samples = -((reps - n) // reps) -- ceil((n - R) / R), 0 when n < R
  else
    num_samples = -((-n) // reps) -- ceil(n / R)
  end
  return setmetatable({dataset = dataset, num_replicas = reps, rank = rank, epoch = 0,
                       drop_last = drop_last, num_samples = num_samples,
                       total_size = num_samples * reps,
                       shuffle = opts.shuffle ~= false, seed = seed}, DistributedSampler)
end

-- The epoch whose permutation indices() gives (call it before each epoch, as in PyTorch).
function DistributedSampler:set_epoch(epoch)
  self.epoch = check_int(epoch, "epoch", 2)
end

-- This rank's sample positions for the current epoch: an int64 tensor of num_samples.
function DistributedSampler:indices()
  return C.distributed_sampler_indices(#self.dataset, self.shuffle, self.seed + self.epoch,
                                       self.num_replicas, self.rank, self.num_samples)
end

-- for i in sampler:iter() do ... end: the positions as Lua integers.
function DistributedSampler:iter()
  local idx, k = self:indices():tolist(), 0
  return function()
    k = k + 1
    return idx[k]
  end
end

DistributedSampler.__len = function(self) return self.num_samples end
DistributedSampler.__tostring = function(self)
  return ("<lunet.data.DistributedSampler rank %d of %d, %d samples, shuffle=%s, seed=%d, epoch=%d>")
    :format(self.rank, self.num_replicas, self.num_samples, tostring(self.shuffle), self.seed,
            self.epoch)
end

M._DistributedSampler = DistributedSampler
return M
