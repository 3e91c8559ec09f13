-- bench_allreduce.lua - under mpirun: the time of one all-reduce of the seed MLP's gradients
-- (575,050 float32) between ranks that are already in step (a barrier before each), as
-- DistributedDataParallel does it: one call over a flat buffer, gradients packed and scaled
-- by 1/world; the same with gradient_as_bucket_view (no packing); and the naive
-- alternative, one all-reduce per parameter tensor.
--   mpirun -np 2 build/lunet bench/bench_allreduce.lua [repeats]
local lunet = lunet or require "lunet"
local dist, nn = lunet.distributed, lunet.nn
dist.init_process_group{backend = "mpi"}
local R, W = dist.get_rank(), dist.get_world_size()
local reps = tonumber(arg[1]) or 50
local clock = lunet.monotonic

local function mlp()
  return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
    nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
end
local model, model_v = mlp(), mlp()
local ddp = nn.parallel.DistributedDataParallel(model)
local ddp_v = nn.parallel.DistributedDataParallel(model_v, {gradient_as_bucket_view = true})
local params = model:parameters()
local numel = 0
for i, p in ipairs(params) do
  p.grad = lunet.randn(p:size())
  model_v:parameters()[i].grad:copy_(p.grad)
  numel = numel + p:numel()
end

-- best and median of reps timings (the median shrugs off a rank the OS preempted)
local function timed(fn)
  local ts = {}
  for i = 1, reps do
    dist.barrier()
    local t0 = clock()
    fn()
    ts[i] = clock() - t0
  end
  table.sort(ts)
  return ts[1], ts[(reps + 1) // 2]
end

local b1, m1 = timed(function() ddp:_reduce_gradients() end)
local b3, m3 = timed(function() ddp_v:_reduce_gradients() end)
local b2, m2 = timed(function() for _, p in ipairs(params) do dist.all_reduce(p.grad, {op = "avg"}) end end)
if R == 0 then
  local mb = numel * 4 / 1e6
  print(("all-reduce of %d float32 (%.1f MB) on %d ranks, %d repeats:"):format(numel, mb, W, reps))
  print(("  DDP, one bucket:        %.3f ms median, %.3f ms best (%.2f GB/s at best)"):format(
    1e3 * m1, 1e3 * b1, mb / 1e3 / b1))
  print(("  DDP, grads as bucket views: %.3f ms median, %.3f ms best (no packing)"):format(1e3 * m3, 1e3 * b3))
  print(("  one call per parameter: %.3f ms median, %.3f ms best (%d calls)"):format(1e3 * m2, 1e3 * b2, #params))
end
