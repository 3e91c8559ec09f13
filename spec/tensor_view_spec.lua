-- tensor_view_spec.lua - views (sharing storage), t[i] indexing, advanced indexing, gather,
-- index_select, and their errors (docs/pytorch-parity.md §11.3-§11.5).
local lunet = require "lunet"

describe("lunet views and indexing", function()
  describe("views", function()
    it("view / reshape infer -1 and share storage", function()
      local t = lunet.arange(6)
      assert.are.equal("lunet.Size([2, 3])", tostring(t:view(2, -1).shape))
      assert.are.equal("lunet.Size([2, 3])", tostring(t:view(-1, 3).shape))
      assert.are.equal("lunet.Size([1, 3, 2])", tostring(t:view({ 1, -1, 2 }).shape))
      local v = t:view(2, 3)
      v[1][2] = 50
      assert.are.equal(50, t[5])
      assert.are.same({ 2, 3 }, { t:reshape(2, 3):size(0), t:reshape({ 2, 3 }):size(1) })
      assert.are.equal("lunet.Size([3, 2])", tostring(t:view_as(lunet.zeros(3, 2)).shape))
    end)

    it("view errors", function()
      local t = lunet.arange(6)
      assert_error_contains(function() t:view(4, -1) end, "shape '[4, -1]' is invalid for input of size 6")
      assert_error_contains(function() t:view(-1, -1) end, "only one dimension can be inferred")
      assert_error_contains(function() lunet.empty(0, 3):view(0, -1) end,
        "cannot reshape tensor of 0 elements into shape [0, -1] because the unspecified dimension size -1 can be any value and is ambiguous")
      local m = lunet.arange(6.):reshape(2, 3):t()
      assert_error_contains(function() m:view(-1) end,
        "view size is not compatible with input tensor's size and stride (at least one dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
      -- reshape copies instead
      assert.are.same({ 0, 3, 1, 4, 2, 5 }, m:reshape(-1):tolist())
    end)

    it("a view of a view writes through to the base", function()
      local base = lunet.zeros(3, 4)
      local v1 = base:narrow(0, 1, 2)         -- rows 1..2
      local v2 = v1:transpose(0, 1):select(0, 3) -- column 3 of those rows
      v2:fill_(9)
      assert.are.same({ { 0, 0, 0, 0 }, { 0, 0, 0, 9 }, { 0, 0, 0, 9 } }, base:tolist())
      v1:narrow(1, 0, 1):add_(1)
      assert.are.same({ { 0, 0, 0, 0 }, { 1, 0, 0, 9 }, { 1, 0, 0, 9 } }, base:tolist())
    end)

    it("t, transpose, permute, squeeze, unsqueeze, flatten", function()
      local x = lunet.arange(6):view(2, 3)
      assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, x:t():tolist())
      assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, x:transpose(0, 1):tolist())
      assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, x:permute(1, 0):tolist())
      assert.are.same({ 0, 1 }, lunet.arange(2):t():tolist())
      assert_error_contains(function() lunet.zeros(2, 2, 2):t() end, "t() expects a tensor with <= 2 dimensions")
      assert.are.equal("lunet.Size([4, 3, 2])", tostring(lunet.zeros(2, 3, 4):permute({ 2, 1, 0 }).shape))
      assert.are.equal("lunet.Size([2, 3])", tostring(lunet.zeros(2, 1, 3):squeeze().shape))
      assert.are.equal("lunet.Size([2, 3])", tostring(lunet.zeros(2, 1, 3):squeeze(1).shape))
      assert.are.equal("lunet.Size([2, 1, 3])", tostring(lunet.zeros(2, 1, 3):squeeze(0).shape))
      assert.are.equal("lunet.Size([1, 2, 3])", tostring(x:unsqueeze(0).shape))
      assert.are.equal("lunet.Size([2, 3, 1])", tostring(x:unsqueeze(-1).shape))
      assert.are.equal("lunet.Size([24])", tostring(lunet.zeros(2, 3, 4):flatten().shape))
      assert.are.equal("lunet.Size([2, 12])", tostring(lunet.zeros(2, 3, 4):flatten(1).shape))
      assert.are.equal("lunet.Size([6, 4])", tostring(lunet.zeros(2, 3, 4):flatten(0, 1).shape))
    end)

    it("narrow and select", function()
      local x = lunet.arange(12):view(3, 4)
      assert.are.same({ { 4, 5, 6, 7 }, { 8, 9, 10, 11 } }, x:narrow(0, 1, 2):tolist())
      assert.are.same({ { 1, 2 }, { 5, 6 }, { 9, 10 } }, x:narrow(1, 1, 2):tolist())
      assert.are.same({ 2, 6, 10 }, x:select(1, 2):tolist())
      assert.are.same({ 8, 9, 10, 11 }, x:select(0, -1):tolist())
      assert.has_error(function() x:select(0, 3) end)
      assert.has_error(function() x:narrow(0, 2, 5) end)
    end)

    it("integer-argument shape ops: lunet.<name> forms, defaults and argument errors", function()
      local x = lunet.arange(12):view(3, 1, 4)
      assert.are.same(x:transpose(0, 2):tolist(), lunet.transpose(x, 0, 2):tolist())
      assert.are.equal("lunet.Size([3, 4])", tostring(lunet.squeeze(x).shape))
      assert.are.equal("lunet.Size([3, 1, 4])", tostring(lunet.squeeze(x, 0).shape))
      assert.are.equal("lunet.Size([1, 3, 1, 4])", tostring(lunet.unsqueeze(x, 0).shape))
      assert.are.equal("lunet.Size([12])", tostring(lunet.flatten(x).shape))
      assert.are.equal("lunet.Size([3, 4])", tostring(lunet.flatten(x, 1).shape))
      assert.are.same({ { { 5, 6 } } }, lunet.narrow(x, 2, 1, 2):narrow(0, 1, 1):tolist())
      assert.are.same({ 8, 9, 10, 11 }, lunet.select(x, 0, 2):squeeze():tolist())
      assert.are.same({ 4, 4, 1 }, x:stride())
      assert.are.equal(4, x:stride(0))
      assert_error_contains(function() lunet.narrow(x, 0, 1) end, "bad argument #4")
      assert_error_contains(function() x:transpose(0) end, "bad argument #2")
      assert_error_contains(function() x:squeeze(0.5) end, "number has no integer representation")
    end)

    it("expand and expand_as use stride 0", function()
      local a = lunet.tensor({ { 1. }, { 2. } })
      local e = a:expand_as(lunet.zeros(2, 3))
      assert.are.same({ { 1, 1, 1 }, { 2, 2, 2 } }, e:tolist())
      assert.are.same({ 1, 0 }, e:stride())
      assert.is_false(e:is_contiguous())
      assert.are.equal("lunet.Size([4, 2, 3])", tostring(a:expand(4, -1, 3).shape))
      assert.are.equal("lunet.Size([2, 3])", tostring(a:expand({ 2, 3 }).shape))
      assert_error_contains(function() lunet.tensor({ 1., 2. }):expand(3, 3) end,
        "The expanded size of the tensor (3) must match the existing size (2) at non-singleton dimension 1.  Target sizes: [3, 3].  Tensor sizes: [2]")
    end)
  end)

  describe("t[i]", function()
    it("selects along dim 0: a view, or a number for 1-D", function()
      local x = lunet.tensor({ { 1, 2 }, { 3, 4 } })
      assert.is_true(lunet.is_tensor(x[0]))
      assert.are.same({ 3, 4 }, x[1]:tolist())
      assert.are.equal(4, x[1][1])
      assert.are.equal(4, x[-1][-1])
      assert.are.equal("integer", math.type(x[0][0]))
      assert.are.equal(true, lunet.tensor({ true })[0])
      assert.are.equal(0.5, lunet.tensor({ 0.5 })[0])
    end)

    it("reads out of range with an error", function()
      local x = lunet.tensor({ 1, 2, 3 })
      assert_error_contains(function() return x[3] end, "out of")
      assert_error_contains(function() return x[1.5] end, "tensor index must be an integer")
    end)

    it("t[i] = number | table | tensor writes through", function()
      local x = lunet.zeros(2, 3)
      x[0] = 1
      x[1] = { 4, 5, 6 }
      assert.are.same({ { 1, 1, 1 }, { 4, 5, 6 } }, x:tolist())
      x[1] = lunet.tensor({ 7., 8., 9. })
      x[0][1] = -1
      assert.are.same({ { 1, -1, 1 }, { 7, 8, 9 } }, x:tolist())
      assert_error_contains(function() x[0] = "a" end, "cannot assign a string")
    end)

    it("a bool mask reads and fills", function()
      local x = lunet.tensor({ 1., 2., 3. })
      local m = lunet.tensor({ true, false, true })
      assert.are.same({ 1, 3 }, x[m]:tolist())
      x[m] = 0
      assert.are.same({ 0, 2, 0 }, x:tolist())
    end)

    it("iterates with # and 0-based indices", function()
      local x = lunet.tensor({ 10, 20, 30 })
      local s = 0
      for i = 0, #x - 1 do s = s + x[i] end
      assert.are.equal(60, s)
    end)
  end)

  describe("advanced indexing (11.4)", function()
    local y_hat = lunet.tensor({ { 0.1, 0.3, 0.6 }, { 0.3, 0.2, 0.5 } })
    local y = lunet.tensor({ 0, 2 })

    it("pairs index lists element-wise", function()
      assert_close(y_hat:index{ { 0, 1 }, y }, { 0.1, 0.5 })
      assert_close(y_hat:index{ lunet.arange(2), y }, { 0.1, 0.5 })
      assert_close(y_hat:index({ 0, 1 }, { 0, -1 }), { 0.1, 0.5 })
      local r = y_hat:index{ { { 0 }, { 1 } }, { 0, 2 } }
      assert.are.equal("lunet.Size([2, 2])", tostring(r.shape))
      assert_close(r, { 0.1, 0.6, 0.3, 0.5 })
      assert_close(y_hat:index{ { 1 } }, { 0.3, 0.2, 0.5 })
      assert_close(y_hat:index{ lunet.tensor({ false, true }) }, { 0.3, 0.2, 0.5 })
    end)

    it("reports PyTorch's errors", function()
      assert_error_contains(function() y_hat:index{ { 0, 1 }, lunet.tensor({ 0, 3 }) } end,
        "index 3 is out of bounds for dimension 1 with size 3")
      assert_error_contains(function() y_hat:index{ { 0, 1, 1 }, y } end,
        "shape mismatch: indexing tensors could not be broadcast together with shapes [3], [2]")
      assert_error_contains(function() y_hat:index{ { 0, 1 }, y:float() } end,
        "tensors used as indices must be long, byte or bool tensors")
      assert_error_contains(function() y_hat:index{ { 0 }, { 0 }, { 0 } } end, "too many indices")
      assert_error_contains(function() y_hat:index{ "a" } end, "each index must be")
    end)
  end)

  describe("gather and index_select (11.3)", function()
    local y_hat = lunet.tensor({ { 0.1, 0.3, 0.6 }, { 0.3, 0.2, 0.5 } })

    it("gathers along a dim", function()
      local y = lunet.tensor({ 0, 2 })
      assert_close(y_hat:gather(1, y:view(-1, 1)):squeeze(1), { 0.1, 0.5 })
      assert_close(y_hat:gather(0, lunet.tensor({ { 1, 0, 1 } })), { 0.3, 0.3, 0.5 })
      assert_close(lunet.gather(y_hat, 1, lunet.tensor({ { 2, 2, 1, 0 } })), { 0.6, 0.6, 0.3, 0.1 })
    end)

    it("gather errors", function()
      local y = lunet.tensor({ 0, 2 })
      assert_error_contains(function() y_hat:gather(1, y) end,
        "Index tensor must have the same number of dimensions as input tensor")
      assert_error_contains(function() y_hat:gather(1, y:float():unsqueeze(1)) end,
        "gather(): Expected dtype int64 for index")
      assert_error_contains(function() y_hat:gather(1, lunet.tensor({ { 3 }, { 0 } })) end,
        "index 3 is out of bounds for dimension 1 with size 3")
      assert_error_contains(function() y_hat:gather(1, lunet.tensor({ { -1 }, { 0 } })) end,
        "index -1 is out of bounds for dimension 1 with size 3")
      assert_error_contains(function() y_hat:gather(1, lunet.tensor({ { 0, 1, 2, 0 }, { 0, 1, 2, 0 }, { 0, 1, 2, 0 } })) end,
        "Size does not match at dimension 0 expected index [3, 4] to be smaller than self [2, 3] apart from dimension 1")
      assert_error_contains(function() y_hat:gather(1, "x") end, "bad argument")
    end)

    it("index_select with a tensor or a table", function()
      assert_close(y_hat:index_select(1, lunet.tensor({ 2, 0 })), { 0.6, 0.1, 0.5, 0.3 })
      assert_close(y_hat:index_select(0, { 1 }), { 0.3, 0.2, 0.5 })
    end)

    -- PyTorch 1.13 (x = torch.randn(2, 3)): x.gather(1, torch.zeros(5, 0)) is an empty float
    -- tensor of shape (5, 0) (an empty index is checked for neither dtype nor shape);
    -- x.index_select(1, torch.zeros(1, 1)) raises "index_select(): Index is supposed to be a
    -- vector" (the shape first) and x.index_select(1, torch.zeros(2)) "index_select():
    -- Expected dtype int32 or int64 for index".
    it("gather's empty index and index_select's checks, in PyTorch's order", function()
      for _, index in ipairs({ lunet.zeros(5, 0), lunet.zeros(0), lunet.zeros(4, 0, { dtype = "int64" }) }) do
        local x = lunet.zeros(2, 3, { requires_grad = true })
        local r = x:gather(1, index)
        assert.are.same(index:size(), r:size(), "gather's result takes the empty index's shape")
        assert.are.equal(lunet.float32, r.dtype)
        r:sum():backward()
        assert.is_true(lunet.equal(x.grad, lunet.zeros(2, 3)), tostring(x.grad))
      end
      assert_error_contains(function() y_hat:index_select(1, lunet.zeros(1, 1)) end,
        "index_select(): Index is supposed to be a vector")
      assert_error_contains(function() y_hat:index_select(1, lunet.zeros(2)) end,
        "index_select(): Expected dtype int32 or int64 for index")
      assert_error_contains(function() y_hat:index_select(1, lunet.zeros(0)) end,
        "index_select(): Expected dtype int32 or int64 for index")
    end)

    -- PyTorch 1.13, x = torch.tensor([[1., 2., 3.], [4., 5., 6.]], requires_grad=True): a 0-d
    -- index keeps the dim, of length 1: x.index_select(1, torch.tensor(2)) is [[3.], [6.]]
    -- (x.grad after .sum().backward(): [[0, 0, 1], [0, 0, 1]]), index_select(0, 1) is
    -- [[4., 5., 6.]], index_select(-1, 0) [[1.], [4.]]; torch.tensor([1., 2., 3.]) gives
    -- tensor([3.]) with index_select(0, torch.tensor(2)) and tensor(3.) with gather.
    it("index_select with a 0-d index keeps the dim", function()
      for _, c in ipairs({
        { 1, 2, { 2, 1 }, { 3, 6 }, { 0, 0, 1, 0, 0, 1 } },
        { 0, 1, { 1, 3 }, { 4, 5, 6 }, { 0, 0, 0, 1, 1, 1 } },
        { -1, 0, { 2, 1 }, { 1, 4 }, { 1, 0, 0, 1, 0, 0 } },
      }) do
        local x = lunet.tensor({ { 1.0, 2.0, 3.0 }, { 4, 5, 6 } }, { requires_grad = true })
        local y = x:index_select(c[1], lunet.tensor(c[2]))
        assert.are.same(c[3], y:size(), "dim " .. c[1])
        assert_close(y, c[4], 0)
        y:sum():backward()
        assert_close(x.grad, c[5], 0)
      end
      local v = lunet.tensor({ 1.0, 2.0, 3.0 })
      assert.are.same({ 1 }, v:index_select(0, lunet.tensor(2)):size())
      assert.are.equal(3.0, v:index_select(0, lunet.tensor(2))[0])
      assert.are.equal(0, v:gather(0, lunet.tensor(2)):dim())
      assert.are.equal(3.0, v:gather(0, lunet.tensor(2)):item())
    end)

    -- PyTorch 1.13: x = torch.tensor(2., requires_grad=True); x.index_select(0, torch.tensor([0]))
    -- is tensor(2., grad_fn=<IndexSelectBackward0>) and backward() leaves x.grad = tensor(1.)
    it("a 0-d tensor: index_select and gather record their own node", function()
      for _, c in ipairs({
        { "index_select", lunet.tensor({ 0 }), "IndexSelectBackward0" },
        { "index_select", lunet.tensor(0, { dtype = "int64" }), "IndexSelectBackward0" },
        { "gather", lunet.tensor(0, { dtype = "int64" }), "GatherBackward0" },
      }) do
        local x = lunet.tensor(2.0, { requires_grad = true })
        local y = x[c[1]](x, 0, c[2])
        assert.are.equal(0, y:dim(), c[1])
        assert.are.equal("<" .. c[3] .. ">", tostring(y.grad_fn), c[1])
        y:backward()
        assert.are.equal(1.0, x.grad:item(), c[1] .. "'s gradient")
      end
    end)
  end)
end)
