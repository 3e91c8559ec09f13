-- ddp_parity.lua - DistributedDataParallel against plain training, in one mpirun job:
-- every rank trains its DDP replica on its share of each global batch of 64 (64/W rows),
-- while rank 0 also trains a plain copy on the whole batch.  After 50 SGD steps:
--   W = 1: losses and weights bit-identical;
--   W > 1: losses within 1e-5 relative, weights within 1e-5, and every rank's replica
--          identical to rank 0's (their parameters started different: DDP broadcast them);
-- then no_sync leaves one backward's gradients local, and the next backward reduces them.
local lunet = lunet or require "lunet"
local nn, optim, dist = lunet.nn, lunet.optim, lunet.distributed

local STEPS, BATCH, IN, HIDDEN, CLASSES = 50, 64, 20, 32, 5
dist.init_process_group{backend = "mpi"}
local R, W = dist.get_rank(), dist.get_world_size()
assert(BATCH % W == 0, "the global batch must split evenly")
local per_rank = BATCH // W

local function make_model()
  return nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                       nn.Linear(HIDDEN, CLASSES))
end

-- the data, the same on every rank
lunet.manual_seed(7)
local X = lunet.randn(STEPS * BATCH, IN)
local Y = lunet.randint(0, CLASSES, {STEPS * BATCH})

-- rank 0's seed gives the reference weights; the other ranks start elsewhere
lunet.manual_seed(42 + R)
-- `ddp_parity.lua view`: the same with gradient_as_bucket_view (same numbers, bit for bit)
local as_view = arg[1] == "view"
local ddp = nn.parallel.DistributedDataParallel(make_model(), {gradient_as_bucket_view = as_view})
local opt = optim.SGD(ddp:parameters(), {lr = 0.1, momentum = 0.5})
local ref, ref_opt
if R == 0 then
  lunet.manual_seed(42)
  ref = make_model()
  ref_opt = optim.SGD(ref:parameters(), {lr = 0.1, momentum = 0.5})
end
local criterion = nn.CrossEntropyLoss()

local worst_loss, worst_weight = 0, 0
for s = 0, STEPS - 1 do
  local x = X:narrow(0, s * BATCH + R * per_rank, per_rank)
  local y = Y:narrow(0, s * BATCH + R * per_rank, per_rank)
  opt:zero_grad()
  local loss = criterion(ddp(x), y)
  loss:backward() -- averages the gradients over the ranks
  opt:step()
  local global = loss:detach():clone()
  dist.all_reduce(global, {op = "avg"})
  if R == 0 then
    ref_opt:zero_grad()
    local rl = criterion(ref(X:narrow(0, s * BATCH, BATCH)), Y:narrow(0, s * BATCH, BATCH))
    rl:backward()
    ref_opt:step()
    local a, b = global:item(), rl:item()
    if W == 1 and a ~= b then
      error(("step %d: loss %.17g with DDP on 1 rank, %.17g without (not bit-identical)"):format(s, a, b))
    end
    worst_loss = math.max(worst_loss, math.abs(a - b) / math.max(math.abs(b), 1e-30))
  end
end

-- replicas identical on every rank: elementwise max == min over the ranks
for name, p in ddp:named_parameters() do
  local hi, lo = p:detach():clone(), p:detach():clone()
  dist.all_reduce(hi, "max")
  dist.all_reduce(lo, "min")
  if not hi:equal(lo) then error(("rank %d: replica parameter %s differs between ranks"):format(R, name)) end
end

-- no_sync: a backward inside it leaves the gradients local (they differ between ranks when
-- the ranks' data do) and counts no reduction; the next backward outside reduces again
local function grads_same_everywhere()
  local same = true
  for _, p in ipairs(ddp:parameters()) do
    local hi, lo = p.grad:clone(), p.grad:clone()
    dist.all_reduce(hi, "max")
    dist.all_reduce(lo, "min")
    same = same and hi:equal(lo)
  end
  return same
end
local steps0 = ddp:comm_stats().steps
local x = X:narrow(0, R * per_rank, per_rank)
local y = Y:narrow(0, R * per_rank, per_rank)
opt:zero_grad()
ddp:no_sync(function() criterion(ddp(x), y):backward() end)
if ddp:comm_stats().steps ~= steps0 then error("no_sync: a reduction happened") end
if W > 1 and grads_same_everywhere() then error("no_sync: the gradients were averaged") end
criterion(ddp(x), y):backward()
if ddp:comm_stats().steps ~= steps0 + 1 then error("after no_sync: no reduction") end
if not grads_same_everywhere() then error("after no_sync: the gradients differ between ranks") end

-- a parameter that took no part in the forward gets zero gradients, and a non-contiguous
-- .grad is reduced through a contiguous copy: both averaged like the others
local Two = nn.Module:extend("Two")
function Two:init() self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2) end
function Two:forward(v) return self.a(v) end
local two = Two()
local d2 = nn.parallel.DistributedDataParallel(two)
two.a.weight.grad = lunet.zeros(3, 2):t()
d2(lunet.full({1, 3}, R + 1.0)):sum():backward()
local mean = (W + 1) / 2 -- of R + 1 over the ranks
if not two.a.weight.grad:equal(lunet.full({2, 3}, mean)) then
  error(("rank %d: non-contiguous grad: %s, expected all %g"):format(R, tostring(two.a.weight.grad), mean))
end
if two.b.weight.grad == nil or not two.b.weight.grad:equal(lunet.zeros(2, 3)) then
  error(("rank %d: unused parameter's grad: %s, expected zeros"):format(R, tostring(two.b.weight.grad)))
end

-- buffers (BatchNorm's running statistics, say) start as rank 0's too
local holder = nn.Sequential(nn.Linear(2, 2))
holder:register_buffer("stat", lunet.full({3}, R + 0.5))
local hd = nn.parallel.DistributedDataParallel(holder)
local function expect_stat(v, when)
  if not holder.stat:equal(lunet.full({3}, v)) then
    error(("rank %d: %s: buffer %s, expected %s"):format(R, when, tostring(holder.stat), v))
  end
end
expect_stat(0.5, "buffer not broadcast from rank 0 at construction")
-- and again before every forward that follows a synchronised forward (PyTorch 1.13's
-- require_forward_param_sync): buffers that drifted apart are rank 0's again
local z = lunet.zeros(1, 2)
holder.stat:fill_(R + 1.5)
hd(z)
expect_stat(1.5, "forward with grad did not broadcast rank 0's buffer")
holder.stat:fill_(R + 2.5)
lunet.no_grad(function() hd(z) end)
expect_stat(2.5, "forward under no_grad after a synchronised one did not broadcast")
holder.stat:fill_(R + 3.5)
hd(z) -- the previous forward had no grad: no broadcast this time, as in PyTorch
expect_stat(R + 3.5, "forward after a no_grad forward broadcast the buffer")
hd(z)
expect_stat(3.5, "forward after a synchronised forward did not broadcast")
local nb = nn.parallel.DistributedDataParallel(holder, {broadcast_buffers = false})
holder.stat:fill_(R + 4.5)
nb(z)
expect_stat(R + 4.5, "broadcast_buffers = false still broadcast in forward")

if R == 0 then
  local mine = ddp:state_dict()
  for name, p in ref:named_parameters() do
    local q = mine["module." .. name]
    assert(q, "DDP's state_dict lacks module." .. name)
    local d = (q - p):abs():max():item()
    if W == 1 and d ~= 0 then error(("%s differs by %g on 1 rank (not bit-identical)"):format(name, d)) end
    worst_weight = math.max(worst_weight, d)
  end
  if worst_loss > 1e-5 then error(("losses differ by %.3g relative (limit 1e-5)"):format(worst_loss)) end
  if worst_weight > 1e-5 then error(("weights differ by %.3g (limit 1e-5)"):format(worst_weight)) end
  local st = ddp:comm_stats()
  local numel = 0
  for _, p in ipairs(ddp:parameters()) do numel = numel + p:numel() end
  local steps = STEPS + 1 -- the one after no_sync
  if st.steps ~= steps or st.elements ~= steps * numel or st.calls ~= steps * st.buckets then
    error(("comm_stats: %d steps, %d calls, %d elements; expected %d steps of %d elements"):format(
      st.steps, st.calls, st.elements, steps, numel))
  end
  print(("ddp parity on %d rank(s)%s: %d steps, max loss difference %.3g relative, max weight difference %.3g, %d all-reduce(s) of %d elements per step")
    :format(W, as_view and " (grads as bucket views)" or "", STEPS, worst_loss, worst_weight, st.buckets, numel))
end
