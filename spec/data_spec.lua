-- data_spec.lua - lunet.data: IDX files, transforms, TensorDataset, DataLoader (shuffle order
-- of docs/pytorch-parity.md §14.6), and with `make data` done, Fashion-MNIST / MNIST against
-- torchvision.
-- Fixture: spec/fixtures/data_fixture.lua, written by tests/fixtures/gen_data.py.
local lunet = require "lunet"
local data = lunet.data
local T = data.transforms

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local fx = dofile(here .. "fixtures/data_fixture.lua")

local ROOT = os.getenv("LUNET_DATA_ROOT") or "data"
local function have_fashion()
  local f = io.open(ROOT .. "/FashionMNIST/raw/train-images-idx3-ubyte", "rb")
    or io.open(ROOT .. "/FashionMNIST/raw/train-images-idx3-ubyte.gz", "rb")
  if f then f:close() return true end
  return false
end
local SKIP = "Fashion-MNIST not found under " .. ROOT .. "/FashionMNIST/raw (run `make data`); skipped"

local function errmsg(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return tostring(err)
end

local function tmpfile(suffix)
  local p = os.tmpname()
  os.remove(p)
  return p .. (suffix or "")
end

describe("data.read_idx / write_idx", function()
  it("round-trips every dtype, plain and gzip", function()
    local cases = {
      {lunet.tensor({{0, 1, 255}, {7, 8, 9}}, {dtype = lunet.uint8}), lunet.uint8},
      {lunet.tensor({-2147483648, 2147483647, 0}), lunet.int64},
      {lunet.tensor({1.5, -0.25, 3}, {dtype = lunet.float32}), lunet.float32},
      {lunet.tensor({0.1, -1e300, 2}, {dtype = lunet.float64}), lunet.float64},
    }
    for _, c in ipairs(cases) do
      for _, gz in ipairs {false, true} do
        local p = tmpfile(gz and ".gz" or "")
        data.write_idx(p, c[1], {gzip = gz})
        local f = assert(io.open(p, "rb"))
        local head = f:read(2)
        f:close()
        assert.are.equal(gz, head == "\31\139")
        local r = data.read_idx(p)
        os.remove(p)
        assert.are.equal(c[2], r.dtype)
        assert.are.same(c[1]:size(), r:size())
        assert.are.same(c[1]:tolist(), r:tolist())
      end
    end
  end)

  it("writes the type code asked for and checks the values fit", function()
    local p = tmpfile()
    data.write_idx(p, lunet.tensor({1, -2, 3}), {type_code = 0x0B})
    local f = assert(io.open(p, "rb"))
    local bytes = f:read("a")
    f:close()
    assert.are.equal("\0\0\11\1\0\0\0\3\0\1\255\254\0\3", bytes)
    assert.are.same({1, -2, 3}, data.read_idx(p):tolist())
    local e = errmsg(data.write_idx, p, lunet.tensor({1, 300}), {type_code = 0x08})
    assert.truthy(e:find("element 1 = 300 does not fit type unsigned byte (0x08)", 1, true))
    assert.are.same({1, -2, 3}, data.read_idx(p):tolist()) -- old file kept
    os.remove(p)
  end)

  it("rejects lying files with a message naming the file", function()
    local p = tmpfile()
    local cases = {
      {"", "file is empty"},
      {"\1\0\8\1\0\0\0\1\0", "bad magic 01 00 08 01"},
      {"\0\0\10\1\0\0\0\1\0", "unknown type code 0x0a"},
      {"\0\0\8\0\5", "zero dims"},
      {"\0\0\8\1\0\0\0\5\1\2\3", "body is shorter than the header says"},
      {"\0\0\8\1\0\0\0\2\1\2\3", "body is longer than the header says"},
      {"\31\139\8\0\0\0\0\0\0\3\255\1\2\3", "corrupt gzip stream"},
    }
    for _, c in ipairs(cases) do
      local f = assert(io.open(p, "wb"))
      f:write(c[1])
      f:close()
      local e = errmsg(data.read_idx, p)
      assert.truthy(e:find(c[2], 1, true), e)
      assert.truthy(e:find(p, 1, true), e)
    end
    os.remove(p)
    assert.truthy(errmsg(data.read_idx, "/nonexistent/x"):find("cannot open /nonexistent/x", 1, true))
  end)
end)

describe("data.transforms", function()
  it("ToTensor: uint8 (H, W) -> float32 (1, H, W), one float32 division", function()
    local img = lunet.tensor({{0, 51, 255}, {1, 128, 254}}, {dtype = lunet.uint8})
    local x = T.ToTensor()(img)
    assert.are.equal(lunet.float32, x.dtype)
    assert.are.same({1, 2, 3}, {x:size(0), x:size(1), x:size(2)})
    local want = {}
    for _, v in ipairs {0, 51, 255, 1, 128, 254} do
      want[#want + 1] = lunet.tensor(v, {dtype = lunet.float32}) / lunet.tensor(255, {dtype = lunet.float32})
    end
    local got = x:flatten():tolist()
    for i = 1, 6 do assert.are.equal(want[i]:item(), got[i]) end
    assert.are.equal(1.0, got[3])
    assert.truthy(errmsg(T.ToTensor(), {1, 2}):find("pic should be PIL Image or ndarray. Got <class 'table'>", 1, true))
  end)

  it("Normalize: (x - f32(mean)) / f32(std), torchvision's errors and reprs", function()
    local n = T.Normalize({0.1307}, {0.3081})
    local x = lunet.tensor({{{0, 1}}}, {dtype = lunet.float32})
    local y = n(x)
    assert.are.equal(-0.4242129623889923, y:flatten():tolist()[1])
    assert.are.equal(2.821486711502075, y:flatten():tolist()[2])
    assert.are.equal(0, x:flatten():tolist()[1]) -- input untouched
    assert.are.equal("Normalize(mean=(0.1307,), std=(0.3081,))", tostring(n))
    assert.are.equal("Normalize(mean=(0.5, 0.25), std=(1, 2.0))", tostring(T.Normalize({0.5, 0.25}, {1, 2.0})))
    assert.truthy(errmsg(n, lunet.zeros({1, 2, 2}, {dtype = lunet.uint8}))
      :find("Input tensor should be a float tensor. Got torch.uint8.", 1, true))
    assert.truthy(errmsg(n, lunet.zeros(2, 2))
      :find("Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = torch.Size([2, 2])", 1, true))
    assert.truthy(errmsg(T.Normalize({0.5}, {0.0}), lunet.zeros(1, 2, 2))
      :find("std evaluated to zero after conversion to torch.float32, leading to division by zero.", 1, true))
    local c = T.Compose{T.ToTensor(), n}
    assert.are.equal("Compose(\n    ToTensor()\n    Normalize(mean=(0.1307,), std=(0.3081,))\n)", tostring(c))
    local z = c(lunet.tensor({{0, 255}}, {dtype = lunet.uint8}))
    assert.are.same({-0.4242129623889923, 2.821486711502075}, z:flatten():tolist())
  end)
end)

describe("data.DataLoader", function()
  it("shuffles exactly as PyTorch: manual_seed(0), N = 10, batch 4, two epochs", function()
    lunet.manual_seed(0)
    local ld = data.DataLoader(data.TensorDataset(lunet.arange(10)), {batch_size = 4, shuffle = true})
    assert.are.equal(3, #ld)
    for _, want in ipairs {{{6, 7, 1, 4}, {2, 0, 9, 8}, {3, 5}}, {{2, 4, 7, 0}, {8, 9, 5, 3}, {6, 1}}} do
      local got = {}
      for x in ld:iter() do got[#got + 1] = x:tolist() end
      assert.are.same(want, got)
    end
  end)

  it("60000 items, manual_seed(123): the first batch starts as PyTorch's", function()
    lunet.manual_seed(123)
    local ld = data.DataLoader(data.TensorDataset(lunet.arange(60000)), {batch_size = 256, shuffle = true})
    local x = ld:iter()()
    assert.are.same({22758, 49438, 54276, 22526, 52956}, x:narrow(0, 0, 5):tolist())
    assert.are.equal(256, x:size(0))
  end)

  it("an unshuffled iterator also draws the base seed from the global generator", function()
    lunet.manual_seed(0)
    local _ = data.DataLoader(data.TensorDataset(lunet.arange(10)), {batch_size = 4}):iter()
    assert.are.equal(fx.rand_after_unshuffled_iter, lunet.rand(1):item())
  end)

  it("batches, drop_last, #loader, several tensors, Lua function transforms", function()
    local X, y = lunet.arange(10):view(5, 2), lunet.tensor({0, 1, 2, 3, 4})
    local ds = data.TensorDataset(X, y)
    assert.are.equal(5, #ds)
    local a, b = ds:get(1)
    assert.are.same({2, 3}, a:tolist())
    assert.are.equal(1, b)
    local ld = data.DataLoader(ds, {batch_size = 2})
    assert.are.equal(3, #ld)
    assert.are.equal(2, #data.DataLoader(ds, {batch_size = 2, drop_last = true}))
    local got = {}
    for xb, yb in ld:iter() do got[#got + 1] = {xb:tolist(), yb:tolist()} end
    assert.are.same({{{{0, 1}, {2, 3}}, {0, 1}}, {{{4, 5}, {6, 7}}, {2, 3}}, {{{8, 9}}, {4}}}, got)
    local n = 0
    for _ in data.DataLoader(ds, {batch_size = 2, drop_last = true}):iter() do n = n + 1 end
    assert.are.equal(2, n)
    assert.truthy(errmsg(data.DataLoader, ds, {batch_size = 0})
      :find("batch_size should be a positive integer value, but got batch_size=0", 1, true))
    -- a dataset written in Lua goes through the per-sample path
    local custom = setmetatable({get = function(_, i) return lunet.full({2}, i), i * 10 end},
                                {__len = function() return 3 end})
    local xs, ys = data.DataLoader(custom, {batch_size = 3}):iter()()
    assert.are.same({{0, 0}, {1, 1}, {2, 2}}, xs:tolist())
    assert.are.same({0, 10, 20}, ys:tolist())
  end)
end)

describe("Fashion-MNIST and MNIST (needs make data)", function()
  local tf = T.Compose{T.ToTensor(), T.Normalize({0.1307}, {0.3081})}

  it("train: 60000 images, labels, classes, repr", function()
    if not have_fashion() then pending(SKIP) return end
    local ds = data.FashionMNIST{root = ROOT, train = true}
    assert.are.equal(60000, #ds)
    assert.are.equal(lunet.uint8, ds.data.dtype)
    assert.are.same({60000, 28, 28}, {ds.data:size(0), ds.data:size(1), ds.data:size(2)})
    assert.are.equal(lunet.int64, ds.targets.dtype)
    assert.are.same(fx.train.first_labels, ds.targets:narrow(0, 0, 10):tolist())
    assert.are.equal(fx.train.pixel_sum, ds.data:long():sum():item())
    assert.are.same({"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"}, ds.classes)
    assert.are.equal(9, ds.class_to_idx["Ankle boot"])
    local img, lab = ds:get(0)
    assert.are.equal(9, lab)
    assert.are.equal(math.type(lab), "integer")
    assert.are.same({28, 28}, {img:size(0), img:size(1)})
    assert.are.equal("Dataset FashionMNIST\n    Number of datapoints: 60000\n    Root location: "
                     .. ROOT .. "\n    Split: Train", tostring(ds))
    local test = data.FashionMNIST{root = ROOT, train = false}
    assert.are.equal(10000, #test)
    assert.are.same(fx.test.first_labels, test.targets:narrow(0, 0, 10):tolist())
  end)

  it("limit keeps the first n samples (views of the full files)", function()
    if not have_fashion() then pending(SKIP) return end
    local ds = data.FashionMNIST{root = ROOT, train = true, limit = 10}
    assert.are.equal(10, #ds)
    assert.are.same({10, 28, 28}, {ds.data:size(0), ds.data:size(1), ds.data:size(2)})
    assert.are.same(fx.train.first_labels, ds.targets:tolist())
    assert.has_error(function() ds:get(10) end, "index 10 is out of bounds for dimension 0 with size 10")
    assert.are.equal(60000, #data.FashionMNIST{root = ROOT, train = true, limit = 70000})
    assert.has_error(function() data.FashionMNIST{root = ROOT, limit = -1} end,
      "FashionMNIST: limit must be a non-negative integer, got -1")
    local xs, ys = data.DataLoader(ds, {batch_size = 4}):iter()()
    assert.are.same({4, 28, 28}, {xs:size(0), xs:size(1), xs:size(2)})
    assert.are.same({table.unpack(fx.train.first_labels, 1, 4)}, ys:tolist())
  end)

  it("first batch, unshuffled: torchvision's values after ToTensor + Normalize", function()
    if not have_fashion() then pending(SKIP) return end
    local ds = data.FashionMNIST{root = ROOT, train = true, transform = tf}
    local ld = data.DataLoader(ds, {batch_size = 256})
    assert.are.equal(235, #ld)
    assert.are.equal(234, #data.DataLoader(ds, {batch_size = 256, drop_last = true}))
    local X, y = ld:iter()()
    assert.are.equal("lunet.Size([256, 1, 28, 28]) lunet.Size([256])", tostring(X:size()) .. " " .. tostring(y:size()))
    assert.are.equal(lunet.float32, X.dtype)
    assert.are.same(fx.batch0_labels, y:tolist())
    for b = 0, 255 do
      assert_close(X[b]:double():sum():item(), fx.batch0_sums[b + 1], 1e-12)
    end
    for _, p in ipairs(fx.batch0_pixels) do
      assert.are.equal(p[4], X[p[1]][0][p[2]][p[3]]) -- bit-exact
    end
    -- the per-sample path gives the same values
    local img = ds:get(5)
    assert.are.same(X[5]:tolist(), img:tolist())
  end)

  it("first batch, shuffled after manual_seed(0), and the next epoch's order", function()
    if not have_fashion() then pending(SKIP) return end
    local ds = data.FashionMNIST{root = ROOT, train = true, transform = tf}
    lunet.manual_seed(0)
    local ld = data.DataLoader(ds, {batch_size = 256, shuffle = true})
    local X, y = ld:iter()()
    assert.are.same(fx.shuffle_labels, y:narrow(0, 0, 16):tolist())
    for b = 0, 15 do
      assert_close(X[b]:double():sum():item(), fx.shuffle_sums[b + 1], 1e-12)
    end
    lunet.manual_seed(0)
    local idx = data.DataLoader(data.TensorDataset(lunet.arange(60000)), {batch_size = 256, shuffle = true})
    assert.are.same(fx.shuffle_ep1, idx:iter()():narrow(0, 0, 16):tolist())
    assert.are.same(fx.shuffle_ep2, idx:iter()():narrow(0, 0, 16):tolist())
  end)

  it("test split with ToTensor only; last batch size", function()
    if not have_fashion() then pending(SKIP) return end
    local ds = data.FashionMNIST{root = ROOT, train = false, transform = T.ToTensor()}
    local X = data.DataLoader(ds, {batch_size = 16}):iter()()
    for b = 0, 15 do
      assert_close(X[b]:double():sum():item(), fx.test_totensor_sums[b + 1], 1e-12)
    end
    local last
    for Xb in data.DataLoader(ds, {batch_size = 256}):iter() do last = Xb end
    assert.are.equal(16, last:size(0))
  end)

  it("MNIST from make data: 8000 / 2000 digits, classes", function()
    local f = io.open(ROOT .. "/MNIST/raw/train-images-idx3-ubyte", "rb")
    if not f then pending("MNIST not found under " .. ROOT .. "/MNIST/raw (run `make data`); skipped") return end
    f:close()
    local tr = data.MNIST{root = ROOT, train = true}
    local te = data.MNIST{root = ROOT, train = false}
    assert.are.equal(8000, #tr)
    assert.are.equal(2000, #te)
    assert.are.equal("0 - zero", tr.classes[1])
    assert.are.equal("9 - nine", tr.classes[10])
  end)

  it("reports a missing dataset with torchvision's text", function()
    local e = errmsg(data.FashionMNIST, {root = "/nonexistent"})
    assert.truthy(e:find("Dataset not found. You can use download=True to download it", 1, true))
  end)
end)
