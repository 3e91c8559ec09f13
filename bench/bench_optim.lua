-- bench_optim.lua (make bench): one optimizer step over the MNIST MLP's parameters
-- (784-512-256-128-64-10, 575,050 float32 values) for SGD(momentum), Adam, AdamW and
-- AdamW(amsgrad); bench/bench_optim_torch.py times the same steps in PyTorch.
local lunet = require "lunet"
local nn, optim = lunet.nn, lunet.optim

lunet.manual_seed(0)
local model = nn.MLP({784, 512, 256, 128, 64, 10})
local params = model:parameters()
for _, p in ipairs(params) do p.grad = lunet.randn(table.unpack(p:size())) end
local cases = {
  {"SGD(momentum=0.5)", function() return optim.SGD(params, {lr = 0.01, momentum = 0.5}) end},
  {"Adam", function() return optim.Adam(params) end},
  {"AdamW", function() return optim.AdamW(params) end},
  {"AdamW(amsgrad)", function() return optim.AdamW(params, {amsgrad = true}) end},
}
for _, case in ipairs(cases) do
  local opt = case[2]()
  for _ = 1, 10 do opt:step() end
  local best = math.huge
  for _ = 1, 5 do
    local t0 = lunet.monotonic()
    for _ = 1, 50 do opt:step() end
    best = math.min(best, (lunet.monotonic() - t0) / 50)
  end
  print(("Lunet   %-18s step: %8.1f us"):format(case[1], best * 1e6))
end
