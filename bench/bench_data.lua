-- bench_data.lua - Fashion-MNIST loading and one DataLoader epoch (issue 5).
--   build/lunet bench/bench_data.lua [data_root]
-- Compare with bench/bench_data_torch.py (torchvision, same machine).  Times are CPU seconds
-- of this single-threaded process (os.clock), best of several runs, in ms.
local lunet = rawget(_G, "lunet") or require "lunet"
local data = lunet.data
local root = arg and arg[1] or "data"

local function best(n, f)
  local b = math.huge
  for _ = 1, n do
    local t0 = os.clock()
    f()
    local dt = os.clock() - t0
    if dt < b then b = dt end
  end
  return b * 1000
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

local gz = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
if not exists(gz) then gz = root .. "/FashionMNIST/raw/train-images-idx3-ubyte.gz" end
local plain = root .. "/FashionMNIST/raw/train-images-idx3-ubyte"
local results = {}
if exists(gz) then
  results[#results + 1] = {"read_idx train-images .gz (gunzip + parse)", best(5, function() data.read_idx(gz) end)}
end
if exists(plain) then
  results[#results + 1] = {"read_idx train-images plain", best(5, function() data.read_idx(plain) end)}
end
if not exists(plain) and not exists(root .. "/FashionMNIST/raw/train-images-idx3-ubyte.gz") then
  print("Fashion-MNIST not found under " .. root .. "/FashionMNIST/raw (run `make data`)")
  return
end
results[#results + 1] = {"FashionMNIST{train = true} (both files + checks)",
                         best(5, function() data.FashionMNIST {root = root, train = true} end)}

local T = data.transforms
local ds = data.FashionMNIST {root = root, train = true,
                              transform = T.Compose {T.ToTensor(), T.Normalize({0.1307}, {0.3081})}}
local ld = data.DataLoader(ds, {batch_size = 64, shuffle = true})
lunet.manual_seed(0)
local nb = 0
results[#results + 1] = {"one epoch, batch 64, shuffle, ToTensor+Normalize (938 batches)", best(5, function()
  nb = 0
  for _ in ld:iter() do nb = nb + 1 end
end)}
assert(nb == 938)
local slow = data.FashionMNIST {root = root, train = true,
                                transform = function(img) return T.Normalize({0.1307}, {0.3081})(T.ToTensor()(img)) end}
results[#results + 1] = {"same epoch, Lua function transform (per-sample path)", best(1, function()
  for _ in data.DataLoader(slow, {batch_size = 64, shuffle = true}):iter() do end
end)}

for _, r in ipairs(results) do print(string.format("%-70s %9.1f ms", r[1], r[2])) end
