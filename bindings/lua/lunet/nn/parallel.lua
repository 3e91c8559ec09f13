-- lunet.nn.parallel -- DistributedDataParallel (also nn.parallel): data-parallel training on
-- the ranks of lunet.distributed, as PyTorch 1.13's torch.nn.parallel.DistributedDataParallel.
--
-- Decisions:
--  - Construction broadcasts rank 0's parameters and buffers to every rank, so every
--    replica starts equal.  With broadcast_buffers (the default) rank 0's buffers (BatchNorm's
--    running statistics) are broadcast again before every forward that follows a forward
--    with gradient sync, as PyTorch 1.13's forward does (require_forward_param_sync): the
--    replicas' buffers never drift apart.
--  - The parameters are grouped into buckets of at most bucket_cap_mb (25 MB), in reverse
--    order as PyTorch does, one dtype per bucket; each bucket owns one persistent flat
--    buffer.  After backward() each bucket is ONE all-reduce: every gradient times
--    1/world_size is packed into the buffer (PyTorch divides while copying into its
--    bucket), summed over the ranks and copied back -- the all-reduced bytes per step are
--    the model's gradients once.  With one rank nothing changes a bit.
--  - The trigger: forward() marks the wrapper pending when grad mode is on, and a hook that
--    Tensor:backward() runs at its end reduces every pending wrapper (PyTorch hooks the
--    autograd engine the same way).  The reduction is not overlapped with the backward
--    pass: on one machine it is a small part of a step (see README).
--  - No per-step heap allocation in the runtime: the gradients are read from the
--    parameters in C, the buffers are reused.  gradient_as_bucket_view = true (PyTorch's
--    option) makes each .grad a view of the bucket, which saves the two copies per step.
local lunet = require "lunet"
local nn = require "lunet.nn"
local dist = require "lunet.distributed"

local C = lunet._c
local clock = lunet.monotonic
local M = {}

-- wrappers whose forward ran with grad on since their last reduction (weak: dropped
-- wrappers are forgotten)
local pending = setmetatable({}, {__mode = "k"})

local function after_backward()
  for ddp in pairs(pending) do
    pending[ddp] = nil
    ddp:_reduce_gradients()
  end
end

local DDP = nn.Module:extend("DistributedDataParallel")
M.DistributedDataParallel = DDP

-- DistributedDataParallel(module [, {bucket_cap_mb = 25, broadcast_buffers = true,
-- gradient_as_bucket_view = false}])
function DDP:init(module, opts)
  opts = opts or {}
  if not nn.is_module(module) then
    error("DistributedDataParallel: expected an nn.Module, got " .. type(module), 3)
  end
  local world, rank = dist.get_world_size(), dist.get_rank() -- raise before init
  local cap = opts.bucket_cap_mb or 25
  if type(cap) ~= "number" or cap <= 0 then
    error("DistributedDataParallel: bucket_cap_mb must be a positive number", 3)
  end
  self.module = module
  rawset(self, "world_size", world)
  rawset(self, "rank", rank)
  rawset(self, "require_backward_grad_sync", true)
  rawset(self, "require_forward_param_sync", true)
  rawset(self, "broadcast_buffers", opts.broadcast_buffers ~= false)
  rawset(self, "_stats", {steps = 0, calls = 0, elements = 0, seconds = 0.0})

  -- every rank starts from rank 0's values (a shape that differs raises on every rank)
  local function sync(name, t)
    local ok, err = pcall(dist.broadcast, t, 0)
    if not ok then error(("DistributedDataParallel: %s: %s"):format(name, err), 4) end
  end
  lunet.no_grad(function()
    for name, p in module:named_parameters() do sync(name, p) end
    for name, b in module:named_buffers() do sync(name, b) end
  end)

  -- buckets in reverse parameter order, one dtype each, at most cap MB (one parameter at
  -- least)
  local params = {}
  for _, p in ipairs(module:parameters()) do
    if p.requires_grad then params[#params + 1] = p end
  end
  local buckets, cur = {}, nil
  local limit = cap * 1024 * 1024
  for i = #params, 1, -1 do
    local p = params[i]
    local bytes = p:numel() * p:element_size()
    if cur == nil or cur.dtype ~= p.dtype or (cur.bytes + bytes > limit and #cur.params > 0) then
      cur = {params = {}, dtype = p.dtype, bytes = 0, numel = 0}
      buckets[#buckets + 1] = cur
    end
    cur.params[#cur.params + 1] = p
    cur.bytes, cur.numel = cur.bytes + bytes, cur.numel + p:numel()
  end
  for _, b in ipairs(buckets) do
    b.flat = lunet.zeros(b.numel, {dtype = b.dtype})
    if opts.gradient_as_bucket_view then
      -- each .grad becomes a view of its place in the bucket: backward accumulates there
      -- and the reduction neither packs nor unpacks (zero_grad keeps the views; a grad
      -- set to nil comes back as a separate tensor and is copied, as without the option)
      local off = 0
      lunet.no_grad(function()
        for _, p in ipairs(b.params) do
          local view = b.flat:narrow(0, off, p:numel()):view(p:size())
          if p.grad ~= nil then view:copy_(p.grad) end
          p.grad = view
          off = off + p:numel()
        end
      end)
    end
  end
  rawset(self, "_buckets", buckets)
  C.set_post_backward(after_backward)
end

-- rank 0's buffers to every rank (PyTorch's _sync_buffers before the forward; a collective
-- records no autograd)
local function sync_buffers(module)
  for name, b in module:named_buffers() do
    local ok, err = pcall(dist.broadcast, b, 0)
    if not ok then error(("DistributedDataParallel: buffer %s: %s"):format(name, err), 0) end
  end
end

function DDP:forward(...)
  if self.require_forward_param_sync and self.broadcast_buffers then sync_buffers(self.module) end
  local sync = self.require_backward_grad_sync and lunet.is_grad_enabled()
  if sync then pending[self] = true end
  rawset(self, "require_forward_param_sync", sync)
  return self.module(...)
end

-- Averages the gradients over the ranks now (backward() calls it; exposed for loops that
-- accumulate gradients themselves).
function DDP:_reduce_gradients()
  local t0 = clock()
  local scale = 1 / self.world_size
  for _, b in ipairs(self._buckets) do C.all_reduce_grads(b.flat, b.params, scale) end
  local s = self._stats
  s.seconds = s.seconds + (clock() - t0)
  s.steps, s.calls = s.steps + 1, s.calls + #self._buckets
  for _, b in ipairs(self._buckets) do s.elements = s.elements + b.numel end
end

-- ddp:no_sync(fn): runs fn (forward and backward of micro-batches) without reducing, so
-- gradients accumulate locally until the next synchronised backward.
function DDP:no_sync(fn)
  local was = self.require_backward_grad_sync
  rawset(self, "require_backward_grad_sync", false)
  local ok, err = pcall(fn)
  rawset(self, "require_backward_grad_sync", was)
  if not ok then error(err, 0) end
end

-- {steps =, calls =, elements =, seconds =, buckets =, bucket_elements = {...}}: the
-- reductions so far (all-reduce calls, elements summed, seconds spent in them).
function DDP:comm_stats()
  local s = self._stats
  local sizes = {}
  for i, b in ipairs(self._buckets) do sizes[i] = b.numel end
  return {steps = s.steps, calls = s.calls, elements = s.elements, seconds = s.seconds,
          buckets = #self._buckets, bucket_elements = sizes}
end

function DDP:extra_repr()
  return ("world_size=%d, rank=%d"):format(self.world_size, self.rank)
end

return M
