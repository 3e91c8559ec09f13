-- lunet.data: IDX files, MNIST / Fashion-MNIST, TensorDataset, transforms and DataLoader
-- (docs/pytorch-parity.md §12-§14; the functions are in docs/lua-api.md §22).
--
-- For an image dataset whose transform is ToTensor, or Compose{ToTensor(), Normalize(...)},
-- every DataLoader batch is ONE C call (gather by index + uint8 -> float32 + normalize,
-- bit-exact with torchvision).  Any other transform (a Lua function, a custom pipeline)
-- runs per sample and the results are stacked: correct, slower.
local lunet = require "lunet"
local distributed = require "lunet.data.distributed"

local C = lunet._c
local data = {}

-- ---------------------------------------------------------------- helpers -------------

local is_tensor = lunet.is_tensor

local pyrepr = require("lunet.py").repr

-- a number or an array of numbers, shown as Python shows a tuple: (0.1307,), (0.5, 0.5)
local function tuple_repr(v)
  if type(v) == "number" then return pyrepr(v) end
  local parts = {}
  for i = 1, #v do parts[i] = pyrepr(v[i]) end
  if #parts == 1 then return "(" .. parts[1] .. ",)" end
  return "(" .. table.concat(parts, ", ") .. ")"
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function class(name)
  local cls = {__name = name}
  cls.__index = cls
  return cls
end

-- ---------------------------------------------------------------- IDX ------------------

function data.read_idx(path)
  return C.read_idx(path)
end

-- opts: gzip (default false), type_code (default from the dtype)
function data.write_idx(path, t, opts)
  opts = opts or {}
  C.write_idx(path, t, opts.type_code, opts.gzip and true or false)
end

-- A uint8 (H, W) or (H, W, 3) image as a PNG file.
function data.write_png(path, img)
  C.write_png(path, img)
end

-- ---------------------------------------------------------------- transforms -----------

local transforms = {}
data.transforms = transforms

local ToTensor = class("ToTensor")
ToTensor.__tostring = function() return "ToTensor()" end
ToTensor.__call = function(_, pic)
  if not is_tensor(pic) then
    error("pic should be PIL Image or ndarray. Got <class '" .. type(pic) .. "'>", 2)
  end
  if pic.dtype == lunet.float32 or pic.dtype == lunet.float64 then
    -- like an ndarray of floats: channels first, values unchanged
    if pic:dim() == 2 then return pic:unsqueeze(0):clone() end
    return pic:permute(2, 0, 1):contiguous()
  end
  return C.to_tensor(pic)
end
function transforms.ToTensor()
  return setmetatable({kind = "ToTensor"}, ToTensor)
end

local Normalize = class("Normalize")
Normalize.__tostring = function(self)
  return "Normalize(mean=" .. tuple_repr(self.mean) .. ", std=" .. tuple_repr(self.std) .. ")"
end
Normalize.__call = function(self, x)
  if not is_tensor(x) then
    error("img should be Tensor Image. Got " .. type(x), 2)
  end
  return C.normalize(x, self.mean, self.std)
end
-- Normalize(mean, std [, {inplace = false}]): mean and std are numbers or arrays (one per channel)
function transforms.Normalize(mean, std, opts)
  for _, v in ipairs {{mean, "mean"}, {std, "std"}} do
    local x, what = v[1], v[2]
    if type(x) ~= "number" and type(x) ~= "table" then
      error("Normalize: " .. what .. " must be a number or an array of numbers", 2)
    end
  end
  return setmetatable({kind = "Normalize", mean = mean, std = std,
                       inplace = opts and opts.inplace or false}, Normalize)
end

local Compose = class("Compose")
Compose.__tostring = function(self)
  local s = "Compose("
  for _, t in ipairs(self.transforms) do s = s .. "\n    " .. tostring(t) end
  return s .. "\n)"
end
Compose.__call = function(self, x)
  for _, t in ipairs(self.transforms) do x = t(x) end
  return x
end
function transforms.Compose(list)
  if type(list) ~= "table" then error("Compose expects an array of transforms", 2) end
  local ts = {}
  for i, t in ipairs(list) do ts[i] = t end
  return setmetatable({kind = "Compose", transforms = ts}, Compose)
end

-- The batch plan of a transform: {div = 255, mean = ..., std = ...} when one C call per batch
-- does it exactly (ToTensor, optionally then one Normalize), else nil.
local function fast_plan(tf)
  if tf == nil then return nil end
  local mt = getmetatable(tf)
  if mt == ToTensor then return {div = 255} end
  if mt ~= Compose then return nil end
  local ts = tf.transforms
  if #ts >= 1 and getmetatable(ts[1]) == ToTensor then
    if #ts == 1 then return {div = 255} end
    if #ts == 2 and getmetatable(ts[2]) == Normalize then
      local m, s = ts[2].mean, ts[2].std
      if type(m) == "number" then m = {m} end
      if type(s) == "number" then s = {s} end
      if #m == 1 and #s == 1 then return {div = 255, mean = m, std = s} end
    end
  end
  return nil
end

-- ---------------------------------------------------------------- image datasets -------

local FILES = {
  train = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
  test = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
}

-- The directory holding all four files (plain or .gz), and the chosen split's two paths.
local function locate(root, name, train)
  for _, dir in ipairs {root .. "/" .. name .. "/raw", root} do
    local found = {}
    local all = true
    for split, pair in pairs(FILES) do
      for k, f in ipairs(pair) do
        local p = dir .. "/" .. f
        if file_exists(p) then found[split .. k] = p
        elseif file_exists(p .. ".gz") then found[split .. k] = p .. ".gz"
        else all = false end
      end
    end
    if all then
      local s = train and "train" or "test"
      return found[s .. 1], found[s .. 2]
    end
  end
  return nil
end

local ImageDataset = class("ImageDataset")

ImageDataset.__len = function(self) return self.n end

ImageDataset.__tostring = function(self)
  local lines = {"Dataset " .. self.name, "    Number of datapoints: " .. self.n,
                 "    Root location: " .. self.root, "    Split: " .. (self.train and "Train" or "Test")}
  if self.transform ~= nil or self.target_transform ~= nil then
    local body = {"StandardTransform"}
    local function add(t, head)
      local tl = {}
      for line in (tostring(t) .. "\n"):gmatch("(.-)\n") do tl[#tl + 1] = line end
      body[#body + 1] = head .. tl[1]
      for i = 2, #tl do body[#body + 1] = string.rep(" ", #head) .. tl[i] end
    end
    if self.transform ~= nil then add(self.transform, "Transform: ") end
    if self.target_transform ~= nil then add(self.target_transform, "Target transform: ") end
    -- torchvision indents only the first line of this block (it is one string there)
    lines[#lines + 1] = "    " .. table.concat(body, "\n")
  end
  return table.concat(lines, "\n")
end

-- ds:get(i) -> image, label (0-based i).  Without a transform the image is the uint8 (28, 28)
-- tensor (a view of ds.data); the label is a Lua integer.
function ImageDataset:get(i)
  if math.type(i) ~= "integer" then
    local j = math.tointeger(i)
    if j == nil then error("dataset index must be an integer, got " .. tostring(i), 2) end
    i = j
  end
  if i < 0 then i = i + self.n end
  if i < 0 or i >= self.n then
    error(string.format("index %d is out of bounds for dimension 0 with size %d", i, self.n), 2)
  end
  local img = self.data:select(0, i)
  local label = math.tointeger(self.targets[i]) or self.targets[i]
  if self.transform ~= nil then img = self.transform(img) end
  if self.target_transform ~= nil then label = self.target_transform(label) end
  return img, label
end

-- torchvision's checks of an IDX file: uint8, with ndim dims (3 for images, 1 for labels).
local function check_idx(t, path, ndim)
  if t.dtype ~= lunet.uint8 then
    error(string.format("%s: x should be of dtype torch.uint8 instead of torch.%s", path, tostring(t.dtype)), 3)
  end
  if t:dim() ~= ndim then
    error(string.format("%s: x should have %d dimension instead of %d", path, ndim, t:dim()), 3)
  end
end

local function make_image_dataset(name, classes)
  return function(opts, more)
    if type(opts) == "string" then
      more = more or {}
      more.root = opts
      opts = more
    end
    opts = opts or {}
    local root = opts.root or "data"
    local train = opts.train
    if train == nil then train = true end
    if opts.download then
      error(name .. ": download=True is not supported by Lunet; run `make data` (see README)", 2)
    end
    local limit = opts.limit
    if limit ~= nil and (math.type(limit) ~= "integer" or limit < 0) then
      error(name .. ": limit must be a non-negative integer, got " .. tostring(limit), 2)
    end
    local img_path, lab_path = locate(root, name, train)
    if not img_path then
      error("Dataset not found. You can use download=True to download it (Lunet does not "
            .. "download: run `make data`, or put train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            .. "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, plain or .gz, in "
            .. root .. "/" .. name .. "/raw or " .. root .. ")", 2)
    end
    local images = C.read_idx(img_path)
    check_idx(images, img_path, 3)
    local labels8 = C.read_idx(lab_path)
    check_idx(labels8, lab_path, 1)
    local n, nl = images:size(0), labels8:size(0)
    if n ~= nl then
      error(string.format("%s: %s holds %d images but %s holds %d labels", name, img_path, n, lab_path, nl), 2)
    end
    local ok, err = pcall(C.label_histogram, labels8, #classes)
    if not ok then error(name .. ": " .. lab_path .. ": " .. tostring(err), 2) end
    if limit and limit < n then -- the first `limit` samples (views: nothing is copied)
      images, labels8, n = images:narrow(0, 0, limit), labels8:narrow(0, 0, limit), limit
    end
    local class_to_idx = {}
    for k, c in ipairs(classes) do class_to_idx[c] = k - 1 end
    local cls = {}
    for k, c in ipairs(classes) do cls[k] = c end
    return setmetatable({
      name = name, root = root, train = train, n = n,
      data = images, targets = labels8:long(),
      classes = cls, class_to_idx = class_to_idx,
      transform = opts.transform, target_transform = opts.target_transform,
      files = {images = img_path, labels = lab_path},
    }, ImageDataset)
  end
end

-- docs/pytorch-parity.md §13.
data.FashionMNIST = make_image_dataset("FashionMNIST", {"T-shirt/top", "Trouser", "Pullover",
  "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"})
data.MNIST = make_image_dataset("MNIST", {"0 - zero", "1 - one", "2 - two", "3 - three",
  "4 - four", "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"})

-- ---------------------------------------------------------------- TensorDataset --------

local TensorDataset = class("TensorDataset")
TensorDataset.__len = function(self) return self.n end
TensorDataset.__tostring = function(self)
  return "<lunet.data.TensorDataset of " .. #self.tensors .. " tensors, " .. self.n .. " samples>"
end

-- TensorDataset(t1, t2, ...): sample i is (t1[i], t2[i], ...)
function data.TensorDataset(...)
  local ts = table.pack(...)
  if ts.n == 0 then error("TensorDataset needs at least one tensor", 2) end
  local n
  for k = 1, ts.n do
    if not is_tensor(ts[k]) then error("TensorDataset: argument " .. k .. " is not a tensor", 2) end
    if ts[k]:dim() == 0 then error("TensorDataset: argument " .. k .. " is a 0-d tensor", 2) end
    local m = ts[k]:size(0)
    n = n or m
    if m ~= n then error("Size mismatch between tensors", 2) end
  end
  local list = {}
  for k = 1, ts.n do list[k] = ts[k] end
  return setmetatable({tensors = list, n = n}, TensorDataset)
end

function TensorDataset:get(i)
  if i < 0 then i = i + self.n end
  if i < 0 or i >= self.n then
    error(string.format("index %d is out of bounds for dimension 0 with size %d", i, self.n), 2)
  end
  local out = {}
  for k, t in ipairs(self.tensors) do out[k] = t[i] end
  return table.unpack(out, 1, #self.tensors)
end

-- ---------------------------------------------------------------- DataLoader -----------

local DataLoader = class("DataLoader")

-- DataLoader(ds, {batch_size = 1, shuffle = false, drop_last = false, sampler = nil}); a
-- sampler (DistributedSampler, or any object with :indices() giving an int64 tensor of
-- positions and #sampler) chooses the samples and their order instead of shuffle.
function data.DataLoader(ds, opts)
  opts = opts or {}
  if type(ds) ~= "table" or ds.get == nil then
    error("DataLoader: the first argument must be a dataset (with :get(i) and #ds)", 2)
  end
  local bs = opts.batch_size
  if bs == nil then bs = 1 end
  if math.type(bs) ~= "integer" or bs <= 0 then
    error("batch_size should be a positive integer value, but got batch_size=" .. tostring(bs), 2)
  end
  local sampler = opts.sampler
  if sampler ~= nil then
    if opts.shuffle then error("sampler option is mutually exclusive with shuffle", 2) end
    if type(sampler) ~= "table" or type(sampler.indices) ~= "function" then
      error("DataLoader: sampler must have an :indices() method (e.g. data.DistributedSampler)", 2)
    end
  end
  return setmetatable({dataset = ds, batch_size = bs, shuffle = opts.shuffle and true or false,
                       drop_last = opts.drop_last and true or false, sampler = sampler}, DataLoader)
end

-- Batches of n samples: ceil(n / bs) written so that it cannot overflow (n + bs - 1 wraps
-- for batch_size = math.maxinteger), or floor with drop_last.
local function batch_count(n, bs, drop_last)
  if drop_last or n % bs == 0 then return n // bs end
  return n // bs + 1
end

DataLoader.__len = function(self)
  local n = self.sampler and #self.sampler or #self.dataset
  return batch_count(n, self.batch_size, self.drop_last)
end

DataLoader.__tostring = function(self)
  return string.format("<lunet.data.DataLoader batch_size=%d shuffle=%s drop_last=%s, %d batches>",
                       self.batch_size, tostring(self.shuffle), tostring(self.drop_last), #self)
end

-- Stacks per-sample values into one batch value: tensors -> (B, ...), numbers -> 1-D tensor.
local function collate(samples)
  local first = samples[1]
  if is_tensor(first) then
    local shape = {#samples}
    for d = 0, first:dim() - 1 do shape[#shape + 1] = first:size(d) end
    local out = lunet.empty(shape, {dtype = first.dtype})
    for b, s in ipairs(samples) do out:select(0, b - 1):copy_(s) end
    return out
  elseif type(first) == "number" then
    return lunet.tensor(samples)
  end
  return samples
end

-- One batch: positions order[start .. start+count-1] (or start.. when order is nil).
function DataLoader:_batch(order, start, count)
  local ds = self.dataset
  local mt = getmetatable(ds)
  if mt == ImageDataset and ds.target_transform == nil then
    local plan = fast_plan(ds.transform)
    if plan then
      return C.image_batch(ds.data, ds.targets, order, start, count, plan.div, plan.mean, plan.std)
    end
    if ds.transform == nil then
      local idx = C.index_range(order, start, count)
      return ds.data:index_select(0, idx), ds.targets:index_select(0, idx)
    end
  elseif mt == TensorDataset then
    local idx = C.index_range(order, start, count)
    local out = {}
    for k, t in ipairs(ds.tensors) do out[k] = t:index_select(0, idx) end
    return table.unpack(out, 1, #ds.tensors)
  end
  -- general path: one ds:get per sample, then stack each field
  local idx = C.index_range(order, start, count)
  local fields, nf = {}, 0
  for b = 0, count - 1 do
    local vals = table.pack(ds:get(math.tointeger(idx[b])))
    nf = math.max(nf, vals.n)
    for f = 1, vals.n do
      fields[f] = fields[f] or {}
      fields[f][b + 1] = vals[f]
    end
  end
  local out = {}
  for f = 1, nf do out[f] = collate(fields[f]) end
  return table.unpack(out, 1, nf)
end

-- for X, y in loader:iter() do ... end.  Like PyTorch, creating the iterator draws the
-- loader's base seed (random64 % 2^63) from the global generator even when not shuffling;
-- with shuffle the sampler draws its seed and the permutation at the first batch.
function DataLoader:iter()
  C.loader_base_seed()
  local n, bs = #self.dataset, self.batch_size
  local nb = #self
  local b, order, started = 0, nil, false
  return function()
    if not started then
      started = true
      if self.sampler then
        order = self.sampler:indices()
        n = order:numel()
        nb = batch_count(n, bs, self.drop_last)
      elseif self.shuffle then
        order = C.shuffle_order(n)
      end
    end
    if b >= nb then return nil end
    local start = b * bs
    local count = math.min(bs, n - start)
    b = b + 1
    return self:_batch(order, start, count)
  end
end

DataLoader.__call = DataLoader.iter

data.DistributedSampler = distributed.DistributedSampler
data.distributed = distributed

data._ImageDataset, data._TensorDataset, data._DataLoader = ImageDataset, TensorDataset, DataLoader
return data
