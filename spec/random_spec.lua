-- random_spec.lua: the generator through the Lua API, against PyTorch 1.13's numbers
-- (docs/pytorch-parity.md §14; values from torch on the CPU, see tests/fixtures/gen_random.py).
local lunet = require "lunet"

-- Every element equal as a double (float32 values convert exactly).
local function same(got, want)
  assert.are.equal(#want, #got)
  for i = 1, #want do
    if got[i] ~= want[i] then
      error(string.format("element %d: got %.17g, expected %.17g", i - 1, got[i], want[i]), 2)
    end
  end
end

describe("lunet random", function()
  describe("seeding", function()
    it("manual_seed(0); rand(3) gives PyTorch's values bit for bit", function()
      lunet.manual_seed(0)
      same(lunet.rand(3):tolist(), {0.49625658988952637, 0.7682217955589294, 0.08847743272781372})
    end)

    it("the same seed gives the same numbers, another seed others", function()
      lunet.manual_seed(123)
      local a = lunet.rand(10):tolist()
      lunet.manual_seed(123)
      same(lunet.rand(10):tolist(), a)
      lunet.manual_seed(124)
      assert.are_not.equal(a[1], lunet.rand(10):tolist()[1])
    end)

    it("initial_seed returns the seed, modulo 2^64 as a Lua integer", function()
      lunet.manual_seed(123)
      assert.are.equal(123, lunet.initial_seed())
      lunet.manual_seed(-1)
      assert.are.equal(-1, lunet.initial_seed())
      assert.is_true(math.type(lunet.initial_seed()) == "integer")
    end)
  end)

  describe("uniform", function()
    it("rand takes varargs or a size table and options", function()
      lunet.manual_seed(0)
      local t = lunet.rand(2, 3)
      assert.are.equal(2, t:dim())
      assert.are.equal(6, t:numel())
      assert.are.equal(lunet.float32, t.dtype)
      same(t:tolist()[1], {0.49625658988952637, 0.7682217955589294, 0.08847743272781372})
      local d = lunet.rand({2, 3}, {dtype = lunet.float64})
      assert.are.equal(lunet.float64, d.dtype)
      assert.is_true(lunet.rand(3, {requires_grad = true}).requires_grad)
    end)

    it("float64 rand uses 53-bit draws", function()
      lunet.manual_seed(5)
      same(lunet.rand(4, {dtype = lunet.float64}):tolist(),
           {0.6420150066280941, 0.2597579151763153, 0.36082761942715424, 0.31513260814905053})
    end)

    it("t:uniform_(a, b) fills in place and returns t (nn.Linear(4, 3) weights, seed 42)", function()
      lunet.manual_seed(42)
      local t = lunet.empty(4)
      local r = t:uniform_(-0.5, 0.5)
      assert.are.equal(t, r)
      same(t:tolist(), {0.3822692632675171, 0.4150039553642273, -0.11713624000549316,
                        0.45930564403533936})
    end)

    it("uniform(a, b, size) matches uniform_ on a fresh tensor", function()
      lunet.manual_seed(7)
      local a = lunet.uniform(0.1, 0.7, {100}):tolist()
      lunet.manual_seed(7)
      same(lunet.empty(100):uniform_(0.1, 0.7):tolist(), a)
      for i = 1, #a do assert.is_true(a[i] >= 0.1 - 1e-7 and a[i] < 0.7) end
    end)
  end)

  describe("normal", function()
    it("randn(5) uses the small Box-Muller path", function()
      lunet.manual_seed(0)
      same(lunet.randn(5):tolist(), {1.5409960746765137, -0.293428897857666, -2.1787893772125244,
                                     0.5684312582015991, -1.0845223665237427})
    end)

    it("normal(0, 0.01, {3})", function()
      lunet.manual_seed(0)
      same(lunet.normal(0, 0.01, {3}):tolist(),
           {0.015409961342811584, -0.002934289164841175, -0.021787893027067184})
    end)

    it("keeps the second Box-Muller value for the next call until manual_seed", function()
      lunet.manual_seed(0)
      same(lunet.normal(0, 1, {1}):tolist(), {1.5409960746765137})
      same(lunet.normal(0, 1, {1}):tolist(), {-0.293428897857666})
      lunet.manual_seed(0)
      lunet.randn(1)
      lunet.manual_seed(0)
      same(lunet.randn(1):tolist(), {1.5409960746765137})
    end)

    it("16 or more elements use the block scheme, bit-exact too", function()
      lunet.manual_seed(0)
      local t = lunet.randn(16):tolist()
      same({t[1], t[2], t[3], t[16]},
           {-1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.2472781538963318})
      lunet.manual_seed(0)
      same(lunet.empty(16):normal_():tolist(), t)
    end)

    it("t:normal_(mean, std) returns t", function()
      lunet.manual_seed(0)
      local t = lunet.empty(3)
      assert.are.equal(t, t:normal_(0, 0.01))
      same(t:tolist(), {0.015409961342811584, -0.002934289164841175, -0.021787893027067184})
    end)
  end)

  describe("integers", function()
    it("randperm(10)", function()
      lunet.manual_seed(0)
      local p = lunet.randperm(10)
      assert.are.equal(lunet.int64, p.dtype)
      same(p:tolist(), {4, 1, 7, 5, 3, 9, 0, 8, 6, 2})
    end)

    it("randperm(60000) starts as PyTorch's", function()
      lunet.manual_seed(0)
      local p = lunet.randperm(60000):tolist()
      same({p[1], p[2], p[3], p[4], p[5]}, {36044, 10678, 57327, 55074, 21567})
    end)

    it("randint(low, high, size) and randint(high, size)", function()
      lunet.manual_seed(0)
      local t = lunet.randint(3, 10, {8})
      assert.are.equal(lunet.int64, t.dtype)
      same(t:tolist(), {7, 6, 3, 5, 4, 5, 9, 6})
      lunet.manual_seed(0)
      same(lunet.randint(0, 10, {4}, {dtype = lunet.float32}):tolist(), {4, 9, 3, 0})
      lunet.manual_seed(0)
      local u = lunet.randint(10, {4}):tolist()
      lunet.manual_seed(0)
      same(lunet.randint(0, 10, {4}):tolist(), u)
    end)
  end)

  describe("errors", function()
    it("negative sizes", function()
      assert_error_contains(function() lunet.rand(-1) end,
                            "Trying to create tensor with negative dimension -1: [-1]")
      assert_error_contains(function() lunet.randn(2, -3) end,
                            "Trying to create tensor with negative dimension -3: [2, -3]")
      assert_error_contains(function() lunet.randperm(-1) end,
                            "Trying to create tensor with negative dimension -1: [-1]")
    end)

    it("bad bounds", function()
      assert_error_contains(function() lunet.randint(5, 5, {3}) end,
                            "random_ expects 'from' to be less than 'to', but got from=5 >= to=5")
      assert_error_contains(function() lunet.normal(0, -1, {3}) end,
                            "normal expects std >= 0.0, but found std -1")
      assert_error_contains(function() lunet.empty(3):uniform_(2, 1) end,
                            "uniform_ expects to return a [from, to) range, but found from=2 > to=1")
      assert_error_contains(function() lunet.rand(3, {dtype = lunet.int64}) end,
                            "\"check_uniform_bounds\" not implemented for 'Long'")
    end)

    it("a leaf that requires grad cannot be filled in place", function()
      local w = lunet.zeros(3, {requires_grad = true})
      assert_error_contains(function() w:uniform_(0, 1) end,
                            "a leaf Variable that requires grad is being used in an in-place operation.")
      lunet.no_grad(function() w:uniform_(0, 1) end)
    end)
  end)
end)
