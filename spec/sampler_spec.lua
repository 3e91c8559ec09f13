-- sampler_spec.lua - data.DistributedSampler gives PyTorch 1.13's index order (fixtures from
-- real PyTorch: spec/fixtures/gen_sampler.py), and DataLoader{sampler =} reads it.
local lunet = require "lunet"
local data = lunet.data
local golden = dofile("spec/fixtures/sampler_golden.lua")

local function fake_dataset(n)
  return setmetatable({}, {__len = function() return n end})
end

local function describe_case(c, rank)
  return ("size %d, %d replicas, rank %d, shuffle %s, seed %d, epoch %d, drop_last %s"):format(
    c.size, c.num_replicas, rank, tostring(c.shuffle), c.seed, c.epoch, tostring(c.drop_last))
end

describe("data.DistributedSampler", function()
  it("gives PyTorch's index order for every case and rank of the fixture", function()
    local compared = 0
    for _, c in ipairs(golden) do
      for rank = 0, c.num_replicas - 1 do
        local want = c.ranks[rank + 1]
        local s = data.DistributedSampler(fake_dataset(c.size), {num_replicas = c.num_replicas,
          rank = rank, shuffle = c.shuffle, seed = c.seed, drop_last = c.drop_last})
        s:set_epoch(c.epoch)
        local what = describe_case(c, rank)
        assert.are.equal(want.n, #s, what .. ": length")
        local got = s:indices():tolist()
        assert.are.equal(want.n, #got, what .. ": indices")
        local sum, check = 0, 0
        for i, v in ipairs(got) do
          sum = sum + v
          check = (check + i * v) % 2147483647
        end
        local expected = want.indices or want.head
        for i = 1, #expected do
          if got[i] ~= expected[i] then
            error(("%s: position %d: got %d, expected %d"):format(what, i - 1, got[i], expected[i]))
          end
        end
        assert.are.equal(want.sum, sum, what .. ": sum of indices")
        assert.are.equal(want.checksum, check, what .. ": position-weighted checksum")
        compared = compared + 1
      end
    end
    assert.is_true(compared >= 25)
  end)

  it("iterates the same indices and counts the epoch", function()
    local s = data.DistributedSampler(fake_dataset(10), {num_replicas = 3, rank = 0})
    local list = {}
    for i in s:iter() do list[#list + 1] = i end
    assert.are.same(golden[1].ranks[1].indices, list)
    s:set_epoch(5)
    assert.are.equal(5, s.epoch)
    assert.are_not.same(list, s:indices():tolist())
  end)

  it("raises PyTorch's errors", function()
    local ds = fake_dataset(4)
    assert.has_error(function() data.DistributedSampler(ds, {num_replicas = 2, rank = 2}) end,
      "Invalid rank 2, rank should be in the interval [0, 1]")
    assert.has_error(function() data.DistributedSampler(ds, {num_replicas = 2, rank = -1}) end,
      "Invalid rank -1, rank should be in the interval [0, 1]")
    local ok, msg = pcall(data.DistributedSampler, ds)
    assert.is_false(ok)
    assert.truthy(msg:find("Default process group has not been initialized", 1, true), msg)
  end)
end)

describe("DataLoader{sampler =}", function()
  it("reads the sampler's positions in order, in batches", function()
    local ds = data.TensorDataset(lunet.arange(10) * 10)
    local s = data.DistributedSampler(ds, {num_replicas = 3, rank = 1, seed = 0})
    local loader = data.DataLoader(ds, {batch_size = 3, sampler = s})
    assert.are.equal(2, #loader) -- 4 samples, batches of 3
    local got = {}
    for x in loader:iter() do
      for _, v in ipairs(x:tolist()) do got[#got + 1] = v // 10 end
    end
    assert.are.same(golden[1].ranks[2].indices, got)
  end)

  it("refuses shuffle with a sampler, as PyTorch does", function()
    local ds = data.TensorDataset(lunet.arange(4))
    local s = data.DistributedSampler(ds, {num_replicas = 2, rank = 0})
    assert.has_error(function() data.DataLoader(ds, {sampler = s, shuffle = true}) end,
      "sampler option is mutually exclusive with shuffle")
  end)

  it("draws the loader's base seed from the global generator, as without a sampler", function()
    local ds = data.TensorDataset(lunet.arange(4))
    local s = data.DistributedSampler(ds, {num_replicas = 2, rank = 0})
    lunet.manual_seed(3)
    for _ in data.DataLoader(ds, {sampler = s}):iter() do end
    local after_sampler = lunet.rand(1):item()
    lunet.manual_seed(3)
    for _ in data.DataLoader(ds):iter() do end
    assert.are.equal(lunet.rand(1):item(), after_sampler)
  end)
end)
