-- hardening_spec.lua - hostile sizes, indices and integers (issue 10): shape arithmetic that
-- would overflow int64 is refused with PyTorch 1.13's messages before any memory is touched.
-- Expected texts are PyTorch 1.13's (checked with torch 1.13 on the same calls).
local lunet = require "lunet"

local BIG = math.maxinteger

describe("hardening", function()
  describe("overflow-checked shapes (item 1)", function()
    it("view and reshape refuse sizes whose product wraps", function()
      assert_error_contains(function() lunet.zeros(0):view(1 << 32, 1 << 32) end,
        "numel: integer multiplication overflow")
      assert_error_contains(function() lunet.zeros(0):reshape(16, 1 << 62) end,
        "numel: integer multiplication overflow")
      assert_error_contains(function() lunet.zeros(0):view(-1, 1 << 62, 4) end,
        "cannot reshape tensor of 0 elements into shape [-1, 4611686018427387904, 4] because " ..
        "the unspecified dimension size -1 can be any value and is ambiguous")
      assert_error_contains(function() lunet.zeros(2, 3):view(1 << 62, 1 << 62, 0) end,
        "shape '[4611686018427387904, 4611686018427387904, 0]' is invalid for input of size 6")
      -- what PyTorch allows stays allowed
      assert.are.equal("lunet.Size([4611686018427387904, 0])",
        tostring(lunet.zeros(0):view(1 << 62, -1).shape))
    end)

    it("narrow checks start + length without overflow", function()
      local t = lunet.zeros(16)
      assert_error_contains(function() t:narrow(0, 2, BIG) end,
        "start (2) + length (9223372036854775807) exceeds dimension size (16).")
      assert_error_contains(function() t:narrow(0, 2, 15) end,
        "start (2) + length (15) exceeds dimension size (16).")
      assert_error_contains(function() t:narrow(0, 3, -1) end,
        "start (3) + length (-1) exceeds dimension size (16).")
      assert_error_contains(function() t:narrow(0, -20, 1) end,
        "Dimension out of range (expected to be in range of [-16, 15], but got -20)")
      assert_error_contains(function() t:narrow(0, BIG, 1) end,
        "but got 9223372036854775807)")
      assert_error_contains(function() t:narrow(0, math.mininteger, 1) end,
        "but got -9223372036854775808)")
      assert.are.equal(0, t:narrow(0, 16, 0):numel())
      assert.are.equal(0, t:narrow(0, -16, 0):numel())
      assert.are.equal(14, t:narrow(0, 2, 14):numel())
      -- the view stays inside its storage: writing its last element touches t[15] only
      local v = t:narrow(0, 2, 14)
      v[13] = 7
      assert.are.equal(7, t[15])
      assert.are.equal(7, t:sum():item())
    end)

    it("expand refuses a wrapping element count", function()
      assert_error_contains(function() lunet.ones(1):expand(1 << 32, 1 << 32) end,
        "numel: integer multiplication overflow")
      assert_error_contains(function() lunet.ones(1):expand(1 << 62, 4) end,
        "numel: integer multiplication overflow")
      assert_error_contains(function() lunet.zeros(2, 0):expand(1 << 62, 1 << 62, 2, 0) end,
        "numel: integer multiplication overflow")
      assert.are.equal(1 << 62, lunet.ones(1):expand(1 << 31, 1 << 31):numel())
    end)

    it("creation refuses a byte size that does not fit", function()
      assert_error_contains(function() lunet.empty(1 << 32, 1 << 32) end,
        "Storage size calculation overflowed with sizes=[4294967296, 4294967296]")
      assert_error_contains(function() lunet.zeros(1 << 62, 4) end,
        "Storage size calculation overflowed with sizes=[4611686018427387904, 4]")
      assert_error_contains(function() lunet.full({ 1 << 62, 4 }, 1) end,
        "Storage size calculation overflowed")
      assert_error_contains(function() lunet.zeros(1 << 60, 4, { dtype = lunet.float32 }) end,
        "Storage size calculation overflowed")
      assert_error_contains(function() lunet.empty(-1) end,
        "Trying to create tensor with negative dimension -1: [-1]")
    end)

    it("arange with a step too small for the range says so", function()
      assert_error_contains(function() lunet.arange(0, 1, 5e-324) end,
        "invalid size, possible overflow?")
      assert_error_contains(function() lunet.arange(-1e308, 1e308, 1e-300) end,
        "invalid size, possible overflow?")
    end)

    it("index_select and gather size their result before scanning a huge index", function()
      -- results of 2^62 bytes: no machine allocates them, even with overcommit, so these
      -- fail at once; the index is valid, so a scan first would take hours
      local x = lunet.zeros(3, 1 << 20)
      local i1 = lunet.zeros(1, { dtype = lunet.int64 }):expand(1 << 40)
      assert.is_false(pcall(function() x:index_select(0, i1) end))
      local i2 = lunet.zeros(1, 1, { dtype = lunet.int64 }):expand(1 << 40, 1 << 20)
      assert.is_false(pcall(function() x:gather(0, i2) end))
      local i3 = lunet.zeros(1, 1, { dtype = lunet.int64 }):expand(1 << 30, 1 << 30)
      assert_error_contains(function() return lunet.zeros(3)[i3] end,
        "Storage size calculation overflowed")
      local i4 = lunet.zeros(1, { dtype = lunet.int64 }):expand(1 << 62)
      assert_error_contains(function() lunet.zeros(3, 4):index_select(0, i4) end,
        "Storage size calculation overflowed")
    end)

    it("indexing error texts print the index the user gave", function()
      assert_error_contains(function() return lunet.zeros(16)[BIG] end,
        "index 9223372036854775807 is out of bounds for dimension 0 with size 16")
      assert_error_contains(function() return lunet.zeros(16)[math.mininteger] end,
        "index -9223372036854775808 is out of bounds for dimension 0 with size 16")
    end)
  end)
  describe("int64 arithmetic (item 2)", function()
    local MIN = math.mininteger
    local function long(t) return lunet.tensor(t, { dtype = lunet.int64 }) end

    it("wraps modulo 2^64 as PyTorch does on x86", function()
      assert.are.same({ MIN }, (long({ BIG }) + 1):tolist())
      assert.are.same({ BIG }, (long({ MIN }) - 1):tolist())
      assert.are.same({ -2 }, (long({ BIG }) * 2):tolist())
      assert.are.same({ MIN }, (-long({ MIN })):tolist())
      assert.are.same({ MIN }, long({ MIN }):abs():tolist())
      assert.are.same({ 1 }, (long({ BIG }) ^ 2):tolist())
      assert.are.same({ -3237885987332494933 }, (long({ 3 }) ^ 63):tolist())
      assert.are.same({ 0 }, long({ 2 }):pow(BIG):tolist())
      assert.are.equal(MIN, long({ BIG, 1 }):sum():item())
      assert.are.equal(-2, long({ BIG, 2 }):prod():item())
      assert.are.same({ -2 }, long({ { BIG, BIG } }):sum(1):tolist())
    end)

    it("floor division by -1 is defined: INT64_MIN // -1 is INT64_MIN, no SIGFPE", function()
      assert.are.equal(MIN, (lunet.tensor(MIN) // -1):item())
      assert.are.equal(-BIG, lunet.floor_divide(BIG, -1):item())
      assert.are.same({ MIN, -7, 3 }, lunet.floor_divide(long({ MIN, 7, -3 }), -1):tolist())
      assert_error_contains(function() return long({ 1 }) // 0 end, "ZeroDivisionError")
    end)

    it("max, min, argmax stay exact beyond 2^53", function()
      assert.are.equal(BIG, long({ BIG, BIG - 1 }):max():item())
      assert.are.equal(BIG - 1, long({ BIG, BIG - 1 }):min():item())
      assert.are.equal(0, long({ BIG, BIG - 1 }):argmax():item())
    end)

    it("int64 matmul is exact and wraps (no trip through double)", function()
      assert.are.same({ { 9007199254740993 } }, lunet.tensor({ { 9007199254740993 } }):mm(lunet.tensor({ { 1 } })):tolist())
      assert.are.same({ { -2 } }, lunet.tensor({ { BIG } }):mm(lunet.tensor({ { 2 } })):tolist())
      assert.are.same({ { 53 }, { 83 } }, lunet.tensor({ { 3, 4 }, { 5, 6 } }):matmul(lunet.tensor({ { 7 }, { 8 } })):tolist())
      assert.are.same({ { MIN } }, lunet.tensor({ { BIG, 1 } }):mm(lunet.tensor({ { 1 }, { 1 } })):tolist())
      assert.are.same({ { 1, 3 }, { 2, 4 } },
        lunet.tensor({ { 1, 2 }, { 3, 4 } }):t():mm(lunet.tensor({ { 1, 0 }, { 0, 1 } })):tolist())
    end)

    it("clamp takes the whole int64 range as bounds", function()
      assert.are.same({ 5 }, long({ 5 }):clamp(MIN, BIG):tolist())
      assert.are.same({ -5 }, long({ MIN }):clamp(-5, 5):tolist())
    end)

    it("float to int casts out of range give PyTorch's x86 values", function()
      assert.are.same({ MIN, MIN, MIN }, lunet.tensor({ 1e300, -1e300, 0 / 0 }):to(lunet.int64):tolist())
      assert.are.same({ 44, 255, 0, 1 },
        lunet.tensor({ 300.0, -1.5, 1e300, 4294967297.0 }, { dtype = lunet.float64 }):to(lunet.uint8):tolist())
    end)
  end)

  describe("exact Lua integers (item 3)", function()
    it("full, fill_, masked_fill and t[i] = v keep the integer", function()
      assert.are.same({ BIG }, lunet.full({ 1 }, BIG, { dtype = lunet.int64 }):tolist())
      assert.are.same({ BIG }, lunet.full({ 1 }, BIG):tolist())
      assert.are.same({ BIG }, lunet.zeros(1, { dtype = lunet.int64 }):fill_(BIG):tolist())
      assert.are.same({ BIG, 0 },
        lunet.zeros(2, { dtype = lunet.int64 }):masked_fill(lunet.tensor({ true, false }), BIG):tolist())
      local t = lunet.zeros(2, { dtype = lunet.int64 })
      t[1] = 9007199254740993
      t[lunet.tensor({ true, false })] = BIG - 1
      assert.are.same({ BIG - 1, 9007199254740993 }, t:tolist())
      assert.are.same({ BIG }, lunet.full_like(t:narrow(0, 0, 1), BIG):tolist())
    end)

    it("arithmetic and comparison with a Lua integer are exact", function()
      assert.are.same({ 9007199254740993 }, (lunet.tensor({ 0 }) + 9007199254740993):tolist())
      assert.are.same({ BIG }, lunet.tensor({ 1 }):mul(BIG):tolist())
      assert.are.same({ true }, lunet.tensor({ BIG }):eq(BIG):tolist())
      assert.are.same({ false }, lunet.tensor({ BIG - 1 }):eq(BIG):tolist())
      assert.are.same({ true }, lunet.tensor({ BIG - 1 }):lt(BIG):tolist())
      -- an integer alpha stays exact too (PyTorch 1.13: -2 and 1)
      assert.are.same({ -2 }, lunet.tensor({ BIG }):add(lunet.tensor({ 1 }), { alpha = BIG }):tolist())
      assert.are.same({ 1 }, lunet.tensor({ BIG }):sub(lunet.tensor({ 1 }), { alpha = BIG - 1 }):tolist())
      assert.are.same({ 7.5 }, lunet.tensor({ 1.5 }):add(lunet.tensor({ 2.0 }), { alpha = 3 }):tolist())
    end)
  end)
  describe("smaller ones (item 6)", function()
    it("a DataLoader with a huge batch_size has one batch", function()
      local data = require "lunet.data"
      local ds = data.TensorDataset(lunet.arange(10):reshape(5, 2), lunet.arange(5))
      local dl = data.DataLoader(ds, { batch_size = BIG })
      assert.are.equal(1, #dl)
      local n, rows = 0, 0
      for x in dl:iter() do n, rows = n + 1, rows + x:size(0) end
      assert.are.same({ 1, 5 }, { n, rows })
      assert.are.equal(0, #data.DataLoader(ds, { batch_size = BIG, drop_last = true }))
      assert.are.equal(3, #data.DataLoader(ds, { batch_size = 2 }))
      assert.are.equal(2, #data.DataLoader(ds, { batch_size = 2, drop_last = true }))
    end)

    it("a broadcast error names the trailing mismatch first, as PyTorch does", function()
      assert_error_contains(function() return lunet.ones(2, 3) + lunet.ones(4, 5) end,
        "The size of tensor a (3) must match the size of tensor b (5) at non-singleton dimension 1")
      assert_error_contains(function() return lunet.ones(2, 3, 4) + lunet.ones(5, 3, 6) end,
        "The size of tensor a (4) must match the size of tensor b (6) at non-singleton dimension 2")
      assert_error_contains(function() return lunet.ones(2, 3) + lunet.ones(4, 3) end,
        "The size of tensor a (2) must match the size of tensor b (4) at non-singleton dimension 0")
    end)
  end)
  describe("found by the API fuzzer", function()
    it("retain_grad then an in-place op: the gradient follows the tensor, no use after free", function()
      local a = lunet.randn(3, { requires_grad = true })
      local y = a * 2
      y:retain_grad()
      y:mul_(3)
      y:sum():backward()
      assert.are.same({ 1, 1, 1 }, y.grad:tolist()) -- PyTorch 1.13 gives the same
      assert.are.same({ 6, 6, 6 }, a.grad:tolist())
      -- the tensor collected before backward: its old node must not write into it
      local b = lunet.randn(3, { requires_grad = true })
      local w = b * 2
      w:retain_grad()
      w:mul_(3)
      local z = w:sum()
      w = nil -- luacheck: ignore 311 (dropping the last reference is the point)
      collectgarbage()
      collectgarbage()
      z:backward()
      assert.are.same({ 6, 6, 6 }, b.grad:tolist())
    end)
  end)
  describe("in-place ops on partly overlapping memory (review)", function()
    it("raise PyTorch's error instead of giving results that depend on the thread count", function()
      local msg = "unsupported operation: some elements of the input tensor and the written-to " ..
        "tensor refer to a single memory location. Please clone() the tensor before performing the operation."
      local x = lunet.ones(10)
      assert_error_contains(function() x:narrow(0, 1, 9):add_(x:narrow(0, 0, 9)) end, msg)
      assert_error_contains(function() x:narrow(0, 1, 9):copy_(x:narrow(0, 0, 9)) end, msg)
      assert_error_contains(function() x:narrow(0, 1, 9):mul_(x:narrow(0, 0, 9)) end, msg)
      local y = lunet.ones(4, 4)
      assert_error_contains(function() y:add_(y:t()) end, msg)
      -- what PyTorch 1.13 allows: the same elements, disjoint parts, non-dense inputs
      x:add_(x)
      x:narrow(0, 1, 9):add_(x:narrow(0, 1, 9))
      x:narrow(0, 0, 5):add_(x:narrow(0, 5, 5))
      y[0]:add_(y:select(1, 0))
      x:narrow(0, 1, 9):add_(x:narrow(0, 0, 1):expand(9))
      assert.are.same({ 6, 14, 14, 14, 14, 10, 10, 10, 10, 10 }, x:tolist()) -- PyTorch's values
    end)
  end)
end)
