-- tensor_math_spec.lua - operators, broadcasting, type promotion, element-wise functions,
-- reductions, matmul and in-place ops through the Lua API.  Expected values are PyTorch
-- 1.13's (docs/pytorch-parity.md §10, §11.1, §11.2).
local lunet = require "lunet"

local nan = 0 / 0

describe("lunet math", function()
  describe("operators", function()
    local a = lunet.tensor({ 1., 2., 4. })

    it("+ - * / ^ and unary - with numbers on either side", function()
      assert.are.same({ 2, 3, 5 }, (a + 1):tolist())
      assert.are.same({ 0, -1, -3 }, (1 - a):tolist())
      assert.are.same({ 2, 4, 8 }, (2 * a):tolist())
      assert.are.same({ 0.5, 1, 2 }, (a / 2):tolist())
      assert.are.same({ 2, 1, 0.5 }, (2 / a):tolist())
      assert.are.same({ 1, 4, 16 }, (a ^ 2):tolist())
      assert.are.same({ 2, 4, 16 }, (2 ^ a):tolist())
      assert.are.same({ -1, -2, -4 }, (-a):tolist())
      assert.are.same({ 2, 4, 8 }, (a + a):tolist())
      assert.are.same({ 1, 4, 16 }, (a * a):tolist())
    end)

    it("// is floor division toward -inf on integers", function()
      assert.are.same({ 0, 1, 1 }, (lunet.tensor({ 1, 2, 3 }) // 2):tolist())
      assert.are.equal(-4, (lunet.tensor(-7) // 2):item())
      assert.are.equal(lunet.int64, (lunet.tensor({ 1, 2 }) // 2).dtype)
    end)

    it("a string operand is a bad argument, never a crash", function()
      assert_error_contains(function() return a + "x" end, "tensor or number expected, got string")
      assert_error_contains(function() return a:add("x") end,
        "bad argument #1 to 'add' (tensor or number expected, got string)")
      assert_error_contains(function() return lunet.add(a, "x") end,
        "bad argument #2 to 'add' (tensor or number expected, got string)")
      assert_error_contains(function() return lunet.exp("x") end,
        "bad argument #1 to 'exp' (tensor expected, got string)")
      assert_error_contains(function() return a * {} end, "") -- {} is an empty tensor: shape error
    end)

    it("tables are accepted as tensors", function()
      assert.are.same({ 2, 3, 5 }, a:add({ 1, 1, 1 }):tolist())
      assert.are.same({ 11, 21 }, lunet.add({ 1, 1 }, { 10, 20 }):tolist())
    end)
  end)

  describe("broadcasting (11.1)", function()
    it("aligns shapes at the trailing end", function()
      assert.are.equal("lunet.Size([2, 4, 3])", tostring((lunet.ones(2, 1, 3) + lunet.ones(4, 1)).shape))
      assert.are.equal("lunet.Size([2, 3])", tostring((lunet.ones(3) * lunet.ones(2, 1)).shape))
      assert.are.equal("lunet.Size([0, 3])", tostring((lunet.ones(0, 1) + lunet.ones(3)).shape))
      local r = lunet.tensor({ { 1 }, { 2 } }) + lunet.tensor({ 10, 20, 30 })
      assert.are.same({ { 11, 21, 31 }, { 12, 22, 32 } }, r:tolist())
    end)

    it("reports a mismatch with PyTorch's message", function()
      assert_error_contains(function() return lunet.ones(2, 3) + lunet.ones(4, 3) end,
        "The size of tensor a (2) must match the size of tensor b (4) at non-singleton dimension 0")
      assert_error_contains(function() return lunet.ones(2, 3) + lunet.ones(5, 4, 3) end,
        "The size of tensor a (2) must match the size of tensor b (4) at non-singleton dimension 1")
    end)

    it("in place broadcasts only the other operand", function()
      assert_error_contains(function() lunet.ones(1, 3):add_(lunet.ones(2, 3)) end,
        "output with shape [1, 3] doesn't match the broadcast shape [2, 3]")
      local t = lunet.zeros(2, 3)
      t:add_(lunet.tensor({ 1., 2., 3. }))
      assert.are.same({ { 1, 2, 3 }, { 1, 2, 3 } }, t:tolist())
    end)
  end)

  describe("type promotion (11.2)", function()
    local i64 = lunet.tensor({ 1, 2, 3 })
    local f32 = lunet.tensor({ 1.0, 2.5, 3.0 })
    local f64 = f32:double()
    local b = lunet.tensor({ true, false, true })

    it("follows PyTorch's table", function()
      assert.are.equal(lunet.float32, (f32 + i64).dtype)
      assert.are.equal(lunet.float32, (i64 + f32).dtype)
      assert.are.equal(lunet.float64, (i64 + f64).dtype)
      assert.are.equal(lunet.float64, (f32 + f64).dtype)
      assert.are.equal(lunet.float32, (i64 + 2.5).dtype)
      assert.are.equal(lunet.int64, (i64 * 2).dtype)
      assert.are.equal(lunet.float32, (f32 + 1).dtype)
      assert.are.equal(lunet.float32, (f32 + lunet.tensor(1.0, { dtype = lunet.float64 })).dtype)
      assert.are.equal(lunet.float64, (i64 + lunet.tensor(1.0, { dtype = lunet.float64 })).dtype)
      assert.are.equal(lunet.int64, (b + i64).dtype)
      assert.are.equal(lunet.float32, (b + 1.5).dtype)
      assert.are.equal(lunet.int64, (b * 2).dtype)
      assert.are.equal(lunet.float32, (i64 / i64).dtype)
      assert.are.equal(lunet.bool, i64:eq(f32).dtype)
    end)

    it("gives PyTorch's values", function()
      assert.are.same({ 0.5, 1, 1.5 }, (i64 / 2):tolist())
      assert.are.same({ true, false, true }, i64:eq(f32):tolist())
      assert.are.equal(2, i64:eq(f32):sum():item())
      assert_close(i64:eq(f32):float():mean(), { 0.6666666865348816 })
      -- compared after converting to float32
      assert.are.same({ true }, lunet.tensor({ 16777217 }):eq(lunet.tensor({ 16777216.0 })):tolist())
    end)

    it("in place ops refuse results they cannot store", function()
      assert_error_contains(function() lunet.tensor({ 1, 2 }):add_(2.5) end,
        "result type Float can't be cast to the desired output type Long")
      assert_error_contains(function() lunet.tensor({ 1, 2 }):add_(lunet.ones(2), { alpha = 0.5 }) end,
        "result type Float can't be cast to the desired output type Long")
      local f = lunet.tensor({ 1.0, 2.5, 3.0 })
      f:add_(lunet.tensor({ 1.0, 1.0, 1.0 }, { dtype = lunet.float64 }))
      assert.are.equal(lunet.float32, f.dtype)
      assert.are.same({ 2, 3.5, 4 }, f:tolist())
    end)
  end)

  describe("element-wise functions", function()
    it("exp log sqrt abs neg sigmoid tanh relu", function()
      local x = lunet.tensor({ -1.0, 0.0, 2.0 }, { dtype = lunet.float64 })
      assert_close(x:exp(), { math.exp(-1), 1, math.exp(2) }, 1e-15)
      assert_close(lunet.tensor({ 1.0, 4.0 }):log(), { 0, 1.3862943611198906 })
      assert.are.same({ 1, 2 }, lunet.tensor({ 1.0, 4.0 }):sqrt():tolist())
      assert.are.same({ 1, 0, 2 }, x:abs():tolist())
      assert.are.same({ 1, 0, -2 }, x:neg():tolist())
      assert_close(x:sigmoid(), { 0.2689414213699951, 0.5, 0.8807970779778823 }, 1e-15)
      assert_close(x:tanh(), { -0.7615941559557649, 0, 0.9640275800758169 }, 1e-15)
      assert.are.same({ 0, 0, 2 }, x:relu():tolist())
      assert.are.same({ 0, 0, 2 }, lunet.relu(x):tolist())
      local l = lunet.tensor({ -1.0, 0.0 }):log():tolist()
      assert.is_true(l[1] ~= l[1])
      assert.are.equal(-math.huge, l[2])
    end)

    it("clamp with (min, max), {min=}, {max=}", function()
      local x = lunet.tensor({ -1.0, 0.5, 2.0 })
      assert.are.same({ 0, 0.5, 1 }, x:clamp(0, 1):tolist())
      assert.are.same({ 0, 0.5, 2 }, x:clamp{ min = 0 }:tolist())
      assert.are.same({ -1, 0.5, 1 }, x:clamp{ max = 1 }:tolist())
      assert.are.same({ -1, 0.5, 1 }, x:clamp(nil, 1):tolist())
      assert.has_error(function() x:clamp() end)
    end)

    -- PyTorch 1.13 promotes an integer tensor with its bounds as Python scalars
    it("clamp of integer and bool tensors follows PyTorch's type promotion", function()
      local i = lunet.tensor({ 1, 2, 3 })
      local f = i:clamp(0.5, 2) -- a float bound: the result is float
      assert.are.equal(lunet.float32, f.dtype)
      assert.are.same({ 1, 2, 2 }, f:tolist())
      assert.are.equal(lunet.float32, i:clamp{ max = 1.5 }.dtype)
      assert.are.equal(lunet.int64, i:clamp(0, 2).dtype)
      assert.are.equal(lunet.int64, lunet.tensor({ true }):clamp(0, 1).dtype)
      assert_error_contains(function() i:clamp_(0.5, 2) end,
        "result type Float can't be cast to the desired output type long int")
      assert_error_contains(function() lunet.tensor({ 1 }, { dtype = lunet.uint8 }):clamp_(0.5) end,
        "result type Float can't be cast to the desired output type unsigned char")
      assert_error_contains(function() lunet.tensor({ true }):clamp_(0, 1) end,
        "result type Long can't be cast to the desired output type bool")
      assert.are.same({ 1, 2, 3 }, i:tolist()) -- untouched by the refused in-place calls
      assert.are.same({ 1, 2, 2 }, i:clamp_(0, 2):tolist())
      assert_error_contains(function() lunet.tensor({ true }):abs() end, [["abs_cpu" not implemented for 'Bool']])
      assert_error_contains(function() lunet.tensor({ true }):abs_() end, [["abs_cpu" not implemented for 'Bool']])
      assert_error_contains(function() lunet.tensor({ true }):relu() end, "Boolean inputs not supported for relu")
    end)

    it("maximum / minimum and max(a, b)", function()
      local a, b = lunet.tensor({ 1., 5. }), lunet.tensor({ 3., 2. })
      assert.are.same({ 3, 5 }, a:maximum(b):tolist())
      assert.are.same({ 1, 2 }, lunet.minimum(a, b):tolist())
      assert.are.same({ 3, 5 }, lunet.max(a, b):tolist())
    end)

    it("comparisons give bool tensors", function()
      local a = lunet.tensor({ 1, 2, 3 })
      assert.are.same({ false, true, false }, a:eq(2):tolist())
      assert.are.same({ true, false, true }, a:ne(2):tolist())
      assert.are.same({ true, false, false }, a:lt(2):tolist())
      assert.are.same({ true, true, false }, a:le(2):tolist())
      assert.are.same({ false, false, true }, a:gt(2):tolist())
      assert.are.same({ false, true, true }, a:ge(2):tolist())
    end)

    it("where and masked_fill", function()
      local c = lunet.tensor({ true, false, true })
      assert.are.same({ 1, 20, 3 }, lunet.where(c, lunet.tensor({ 1, 2, 3 }), lunet.tensor({ 10, 20, 30 })):tolist())
      assert.are.same({ 1, 0, 3 }, lunet.where(c, lunet.tensor({ 1., 2., 3. }), 0):tolist())
      -- the method is PyTorch's Tensor.where: x:where(cond, y) = where(cond, x, y)
      assert.are.same({ 1, 20, 3 }, lunet.tensor({ 1, 2, 3 }):where(c, lunet.tensor({ 10, 20, 30 })):tolist())
      assert.are.same({ 1, -1, 3 }, lunet.tensor({ 1., 2., 3. }):where(c, -1):tolist())
      assert.are.same({ -1, 2, -1 }, lunet.tensor({ 1, 2, 3 }):masked_fill(c, -1):tolist())
    end)

    -- PyTorch 1.13 (c10's overflows<uint8_t> of a Python int): u = torch.zeros(3,
    -- dtype=torch.uint8); u.fill_(-255), torch.full((3,), -255, dtype=torch.uint8) and
    -- u.masked_fill(m, -1) wrap (1, 1, 1 / 255 where m); 256 and -256 in fill_, full,
    -- masked_fill, u[0] = v and u[mask] = v raise "value cannot be converted to type uint8_t
    -- without overflow"; u + 256 wraps to 0 (an operand, not an element).
    it("an integer value put into a uint8 tensor: -255..255 wrap, beyond raises", function()
      local m = lunet.tensor({ true, false, true })
      local function u8() return lunet.zeros(3, { dtype = "uint8" }) end
      assert.are.same({ 1, 1, 1 }, u8():fill_(-255):tolist())
      assert.are.same({ 1, 1, 1 }, lunet.full({ 3 }, -255, { dtype = "uint8" }):tolist())
      assert.are.same({ 255, 0, 255 }, u8():masked_fill(m, -1):tolist())
      assert.are.same({ 0, 0, 0 }, (u8() + 256):tolist())
      for _, v in ipairs({ 256, -256 }) do
        for what, f in pairs({
          fill_ = function() return u8():fill_(v) end,
          full = function() return lunet.full({ 3 }, v, { dtype = "uint8" }) end,
          masked_fill = function() return u8():masked_fill(m, v) end,
          setitem = function() local u = u8(); u[0] = v; return u end,
          setmask = function() local u = u8(); u[m] = v; return u end,
        }) do
          local ok, err = pcall(f)
          assert.is_false(ok, what .. " " .. v)
          assert.matches("value cannot be converted to type uint8_t without overflow", err, 1,
            true)
        end
      end
    end)

    it("add and sub with alpha", function()
      local a, b = lunet.tensor({ 1., 2. }), lunet.tensor({ 10., 20. })
      assert.are.same({ 21, 42 }, a:add(b, { alpha = 2 }):tolist())
      assert.are.same({ -4, -8 }, a:sub(b, { alpha = 0.5 }):tolist())
      a:add_(b, { alpha = -0.1 })
      assert_close(a, { 0, 0 })
    end)
  end)

  describe("reductions (§10)", function()
    local x = lunet.tensor({ { 1.0, 5.0, 5.0 }, { 7.0, 2.0, 7.0 } })

    it("sum and mean over everything, a dim, several dims, keepdim", function()
      assert.are.equal(27, x:sum():item())
      assert.are.equal(0, x:sum():dim())
      assert.are.same({ 8, 7, 12 }, x:sum(0):tolist())
      assert.are.same({ 11, 16 }, x:sum(1):tolist())
      assert.are.same({ { 11 }, { 16 } }, x:sum(1, true):tolist())
      assert.are.same({ { 11 }, { 16 } }, x:sum{ dim = 1, keepdim = true }:tolist())
      assert.are.same({ { 11 }, { 16 } }, lunet.sum(x, { axis = 1, keepdims = true }):tolist())
      assert.are.equal(27, x:sum({ 0, 1 }):item())
      assert.are.equal(4.5, x:mean():item())
      assert.are.same({ 4, 3.5, 6 }, x:mean(0):tolist())
      assert.are.same({ 11, 16 }, x:sum(-1):tolist())
    end)

    it("sum dtypes: integers and bools sum to int64; dtype= converts first", function()
      local s = lunet.tensor({ 1, 2, 3 }):sum()
      assert.are.equal(lunet.int64, s.dtype)
      assert.are.equal(6, s:item())
      assert.are.equal(2, lunet.tensor({ true, true, false }):sum():item())
      local d = lunet.tensor({ { 1., 5. }, { 7., 2. } }):sum{ dim = 1, dtype = lunet.float64 }
      assert.are.equal(lunet.float64, d.dtype)
      assert.are.same({ 6, 9 }, d:tolist())
      assert.are.equal(0, lunet.tensor({}):sum():item())
      local m = lunet.tensor({}):mean():item()
      assert.is_true(m ~= m)
    end)

    it("max/min with a dim give values and indices", function()
      local v, i = x:max(1)
      assert.are.same({ 5, 7 }, v:tolist())
      assert.are.same({ 1, 0 }, i:tolist())
      local v0, i0 = x:max(0, true)
      assert.are.same({ { 7, 5, 7 } }, v0:tolist())
      assert.are.same({ { 1, 0, 1 } }, i0:tolist())
      local mv, mi = x:min(1)
      assert.are.same({ 1, 2 }, mv:tolist())
      assert.are.same({ 0, 1 }, mi:tolist())
      assert.are.equal(7, x:max():item())
      assert.are.equal(1, x:min():item())
    end)

    it("argmax/argmin: first index among ties, flattened without a dim", function()
      assert.are.equal(3, x:argmax():item())
      assert.are.same({ 1, 0 }, x:argmax(1):tolist())
      assert.are.same({ 1, 0, 1 }, x:argmax(0):tolist())
      assert.are.equal("lunet.Size([2, 1])", tostring(x:argmax(1, true).shape))
      assert.are.same({ 1, 0 }, x:argmax{ axis = 1 }:tolist())
      assert.are.equal(0, lunet.tensor({ 3., 1., 3., 3. }):argmax():item())
      assert.are.equal(1, lunet.tensor({ 1., 0., 0. }):argmin():item())
      local big = lunet.zeros(3, 50000)
      big:select(1, 7):fill_(1)
      big:select(1, 40000):fill_(1)
      assert.are.same({ 7, 7, 7 }, big:argmax(1):tolist())
    end)

    it("NaN wins max and argmax points at the first NaN", function()
      local m = lunet.tensor({ 1., nan, 3. }):max():item()
      assert.is_true(m ~= m)
      assert.are.equal(1, lunet.tensor({ 1., nan, 3., nan }):argmax():item())
      local _, i = lunet.tensor({ 1., nan, 3. }):max(0)
      assert.are.equal(1, i:item())
    end)

    it("prod, all, any", function()
      assert.are.equal(24, lunet.tensor({ 1, 2, 3, 4 }):prod():item())
      assert.are.same({ 2, 12 }, lunet.tensor({ { 1, 2 }, { 3, 4 } }):prod(1):tolist())
      assert.is_false(lunet.tensor({ true, false }):all():item())
      assert.is_true(lunet.tensor({ true, false }):any():item())
      assert.are.same({ false, true }, lunet.tensor({ { true, false }, { true, true } }):all(1):tolist())
    end)

    it("reports PyTorch's errors", function()
      assert_error_contains(function() lunet.tensor({ 1, 2, 3 }):mean() end,
        "mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. Got: Long")
      assert_error_contains(function() lunet.tensor({}):max() end,
        "max(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim with the 'dim' argument.")
      assert_error_contains(function() lunet.tensor({}):argmax() end,
        "argmax(): Expected reduction dim to be specified for input.numel() == 0.")
      assert_error_contains(function() lunet.zeros(2, 0):max(1) end,
        "max(): Expected reduction dim 1 to have non-zero size.")
      assert_error_contains(function() x:sum(2) end,
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)")
      assert_error_contains(function() x:sum("a") end, "bad argument")
    end)
  end)

  describe("matmul", function()
    it("matmul / mm / addmm", function()
      local a = lunet.tensor({ { 1., 2. }, { 3., 4. } })
      local b = lunet.tensor({ { 5., 6. }, { 7., 8. } })
      assert.are.same({ { 19, 22 }, { 43, 50 } }, a:matmul(b):tolist())
      assert.are.same({ { 19, 22 }, { 43, 50 } }, lunet.mm(a, b):tolist())
      assert.are.same({ { 26, 30 }, { 38, 44 } }, a:t():matmul(b):tolist())
      assert.are.same({ 17, 39 }, a:matmul(lunet.tensor({ 5., 6. })):tolist())
      assert.are.same({ { 20.5, 23.5 }, { 44.5, 51.5 } },
        lunet.addmm(lunet.ones(2), a, b, { beta = 3, alpha = 1 }):sub(1.5):tolist())
      assert.are.same({ { 10.5, 12 }, { 22.5, 26 } },
        lunet.ones(2):addmm(a, b, { alpha = 0.5 }):tolist())
    end)

    it("reports shape mismatches", function()
      assert_error_contains(function() lunet.ones(2, 3):matmul(lunet.ones(4, 5)) end,
        "cannot be multiplied")
    end)
  end)

  describe("in place", function()
    it("returns the tensor itself and writes through views", function()
      local t = lunet.zeros(2, 3)
      assert.are.equal(t, t:fill_(2))
      assert.are.equal(t, t:add_(1))
      t:mul_(2):sub_(1):div_(5)
      assert.are.same({ { 1, 1, 1 }, { 1, 1, 1 } }, t:tolist())
      t[0]:zero_()
      assert.are.same({ { 0, 0, 0 }, { 1, 1, 1 } }, t:tolist())
      t:copy_(lunet.tensor({ 1., 2., 3. }))
      assert.are.same({ { 1, 2, 3 }, { 1, 2, 3 } }, t:tolist())
      t:clamp_(2, 2.5)
      assert.are.same({ { 2, 2, 2.5 }, { 2, 2, 2.5 } }, t:tolist())
      t:copy_({ { 0, 1, 2 }, { 3, 4, 5 } })
      assert.are.same({ { 0, 1, 2 }, { 3, 4, 5 } }, t:tolist())
    end)

    it("in place and out of place refuse the same operands (negating a bool tensor)", function()
      local b = lunet.tensor({ true, false })
      for _, f in ipairs({ b.neg, b.neg_ }) do
        assert_error_contains(function() f(b) end,
          "Negation, the `-` operator, on a bool tensor is not supported.")
      end
      assert.are.same({ true, false }, b:tolist())
      local u = lunet.tensor({ 1, 2 }, { dtype = lunet.uint8 })
      assert.are.same({ 255, 254 }, u:neg_():tolist())
      local c = lunet.tensor({ 1, 7 }, { dtype = lunet.uint8 })
      assert.are.same({ 2, 5 }, c:clamp_(2, 5):tolist())
    end)

    it("refuses to write into an expanded tensor", function()
      assert_error_contains(function() lunet.tensor({ { 1. }, { 2. } }):expand(2, 3):add_(1) end,
        "unsupported operation: more than one element of the written-to tensor refers to a single memory location. Please clone() the tensor before performing the operation.")
    end)
  end)
end)
