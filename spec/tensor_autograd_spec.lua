-- tensor_autograd_spec.lua - the autograd surface of tensors: requires_grad, grad, grad_fn,
-- is_leaf, backward, no_grad, detach (docs/pytorch-parity.md §8).
local lunet = require "lunet"

describe("lunet autograd surface", function()
  it("leaves, grad_fn and requires_grad", function()
    local a = lunet.tensor({ 1.0, 2.0, 3.0 }, { requires_grad = true })
    assert.is_true(a.is_leaf)
    assert.is_nil(a.grad)
    assert.is_nil(a.grad_fn)
    local m = a * 2
    assert.is_false(m.is_leaf)
    assert.is_true(m.requires_grad)
    assert.are.equal("<MulBackward0>", tostring(m.grad_fn))
    assert.are.equal("MulBackward0", m.grad_fn.name)
    assert.is_false(lunet.tensor({ 1.0 }).requires_grad)
    assert.are.equal("tensor([1., 2., 3.], requires_grad=True)", tostring(a))
    assert.are.equal("tensor([2., 4., 6.], grad_fn=<MulBackward0>)", tostring(m))
  end)

  it("gradients accumulate across backward calls", function()
    local a = lunet.tensor({ 1.0, 2.0, 3.0 }, { requires_grad = true })
    ;(a * a):sum():backward()
    assert.are.same({ 2, 4, 6 }, a.grad:tolist())
    ;(a * a):sum():backward()
    assert.are.same({ 4, 8, 12 }, a.grad:tolist())
    local g = a.grad
    assert.are.equal(g, a.grad) -- the same object each time
    g:zero_()
    assert.are.same({ 0, 0, 0 }, a.grad:tolist())
    a.grad = nil
    assert.is_nil(a.grad)
  end)

  it("backward with an explicit gradient (tensor or table)", function()
    local a = lunet.tensor({ 1.0, 2.0, 3.0 }, { requires_grad = true })
    assert_error_contains(function() (a * 2):backward() end,
      "grad can be implicitly created only for scalar outputs")
    ;(a * 2):backward(lunet.tensor({ 1.0, 0.1, 0.01 }))
    assert_close(a.grad, { 2.0, 0.20000000298023224, 0.019999999552965164 })
    a.grad = nil
    ;(a * 2):backward({ 1.0, 0.1, 0.01 })
    assert_close(a.grad, { 2.0, 0.20000000298023224, 0.019999999552965164 })
    assert_error_contains(function() (a * 2):backward(lunet.ones(4)) end, "Mismatch in shape")
  end)

  it("retain_graph", function()
    local a = lunet.tensor({ 1.0, 2.0 }, { requires_grad = true })
    local z = (a * a):sum()
    z:backward({ retain_graph = true })
    z:backward()
    assert.are.same({ 4, 8 }, a.grad:tolist())
    z = (a * a):sum()
    z:backward()
    assert_error_contains(function() z:backward() end,
      "Trying to backward through the graph a second time")
  end)

  it("reports PyTorch's errors", function()
    assert_error_contains(function() lunet.tensor({ 1.0 }):sum():backward() end,
      "element 0 of tensors does not require grad and does not have a grad_fn")
    local a = lunet.tensor({ 1.0, 2.0 }, { requires_grad = true })
    assert_error_contains(function() a:add_(1) end,
      "a leaf Variable that requires grad is being used in an in-place operation.")
    assert_error_contains(function() a.grad = lunet.zeros(3) end,
      "assigned grad has data of a different size")
    assert_error_contains(function() a:backward("x") end, "bad argument")
    assert_error_contains(function() lunet.tensor({1, 2}, {requires_grad = true}) end,
      "Only Tensors of floating point and complex dtype can require gradients")
    local b = lunet.tensor({1.0, 2.0, 3.0}, {requires_grad = true})
    local y = b:sigmoid()
    local s = y:sum()
    lunet.no_grad(function() y:mul_(2) end)
    assert_error_contains(function() s:backward() end,
      "one of the variables needed for gradient computation has been modified by an inplace " ..
      "operation: [torch.FloatTensor [3]], which is output 0 of SigmoidBackward0, is at version 1; " ..
      "expected version 0 instead.")
    -- PyTorch 1.13 names the saved tensor's own grad_fn, and none for a leaf or a tensor
    -- without history: a = torch.tensor([1., 2.], requires_grad=True); c = torch.tensor([3.,
    -- 4.]); s = (a * c).sum(); c.add_(1); s.backward() raises "...inplace operation:
    -- [torch.FloatTensor [2]] is at version 1; expected version 0 instead.", and so does
    -- a.add_(1) under no_grad when c requires grad too (c's gradient needs a); with z = a * 1,
    -- s = z.exp().log().sum() and z.exp() changed in place, "..., which is output 0 of
    -- ExpBackward0, is at version 1; ..." (LogBackward0 saved it).
    for _, c_grad in ipairs({ false, true }) do
      local a2 = lunet.tensor({ 1.0, 2.0 }, { requires_grad = true })
      local c = lunet.tensor({ 3.0, 4.0 }, { requires_grad = c_grad })
      local s2 = (a2 * c):sum()
      local change = c_grad and function() a2:add_(1) end or function() c:add_(1) end
      lunet.no_grad(change)
      assert_error_contains(function() s2:backward() end,
        "modified by an inplace operation: [torch.FloatTensor [2]] is at version 1; " ..
        "expected version 0 instead.")
    end
    -- Factories start at version 0, their fill not counting as an in-place write: in PyTorch
    -- 1.13, t = torch.randn(3) (or rand, normal, full, ones, ones_like), then
    -- t.requires_grad_(True); s = (t * t).sum(); t.add_(1) under no_grad; s.backward() says
    -- "is at version 1; expected version 0 instead." for every one of them.
    for name, make in pairs({
      randn = function() return lunet.randn(3) end,
      rand = function() return lunet.rand(3) end,
      normal = function() return lunet.normal(0, 1, { 3 }) end,
      uniform = function() return lunet.uniform(0, 1, { 3 }) end,
      full = function() return lunet.full({ 3 }, 2.0) end,
      ones = function() return lunet.ones(3) end,
      ones_like = function() return lunet.ones_like(lunet.zeros(3)) end,
      randint = function() return lunet.randint(0, 5, { 3 }, { dtype = "float32" }) end,
    }) do
      local t = make():requires_grad_(true)
      local s4 = (t * t):sum()
      lunet.no_grad(function() t:add_(1) end)
      local ok, err = pcall(function() s4:backward() end)
      assert.is_false(ok, name)
      assert.truthy(tostring(err):find("is at version 1; expected version 0 instead.", 1, true),
        name .. ": " .. tostring(err))
    end
    -- A product keeps each operand only for the other's gradient, as PyTorch's saved
    -- variables do, so an operand whose partner needs no gradient may change before backward:
    -- a = torch.tensor([[1., 2.], [3., 4.]], requires_grad=True); b = torch.tensor([[0.5,
    -- -1.], [2., 0.25]]); y = f(a, b).sum(); a.add_(1) under no_grad; y.backward() runs, and
    -- a.grad is as listed (PyTorch 1.13).
    local F = lunet.nn.functional
    for _, c in ipairs({
      { "mul", function(p, q) return p * q end, { { 0.5, -1.0 }, { 2.0, 0.25 } } },
      { "mm", function(p, q) return lunet.mm(p, q) end, { { -0.5, 2.25 }, { -0.5, 2.25 } } },
      { "mm (right)", function(p, q) return lunet.mm(q, p) end, { { 2.5, 2.5 }, { -0.75, -0.75 } } },
      { "linear (weight)", function(w, x) return F.linear(x, w) end, { { 2.5, -0.75 }, { 2.5, -0.75 } } },
      { "linear (input)", function(x, w) return F.linear(x, w, lunet.zeros(2)) end,
        { { 2.5, -0.75 }, { 2.5, -0.75 } } },
      { "addmm", function(p, q) return lunet.addmm(lunet.zeros(2, 2), p, q) end,
        { { -0.5, 2.25 }, { -0.5, 2.25 } } },
      { "bmm", function(p, q) return lunet.matmul(p:unsqueeze(0), q:unsqueeze(0)) end,
        { { -0.5, 2.25 }, { -0.5, 2.25 } } },
    }) do
      local pa = lunet.tensor({ { 1.0, 2.0 }, { 3.0, 4.0 } }, { requires_grad = true })
      local pb = lunet.tensor({ { 0.5, -1.0 }, { 2.0, 0.25 } })
      local py = c[2](pa, pb):sum()
      lunet.no_grad(function() pa:add_(1) end)
      local ok, err = pcall(function() py:backward() end)
      assert.is_true(ok, c[1] .. ": " .. tostring(err))
      assert.are.same(c[3], pa.grad:tolist(), c[1])
    end
    local e = (lunet.tensor({ 1.0, 2.0 }, { requires_grad = true }) * 1):exp()
    local s3 = e:log():sum()
    lunet.no_grad(function() e:mul_(2) end)
    assert_error_contains(function() s3:backward() end,
      "modified by an inplace operation: [torch.FloatTensor [2]], which is output 0 of " ..
      "ExpBackward0, is at version 1; expected version 0 instead.")
    assert_error_contains(function() (b * 2):requires_grad_(false) end,
      "you can only change requires_grad flags of leaf variables.")
    lunet.no_grad(function() b:add_(1) end) -- allowed without grad mode
    assert_close(b, {2, 3, 4}, 0)
  end)

  it("no_grad returns the function's results and restores the mode", function()
    local a = lunet.tensor({ 1.0, 2.0, 3.0 }, { requires_grad = true })
    assert.is_true(lunet.is_grad_enabled())
    local d, extra = lunet.no_grad(function(k)
      assert.is_false(lunet.is_grad_enabled())
      a:add_(1)
      return a * k, "x"
    end, 2)
    assert.are.equal("x", extra)
    assert.is_false(d.requires_grad)
    assert.is_nil(d.grad_fn)
    assert.are.same({ 4, 6, 8 }, d:tolist())
    assert.is_true(a.is_leaf)
    assert.is_true(lunet.is_grad_enabled())
    local ok, err = pcall(lunet.no_grad, function() error("inside", 0) end)
    assert.is_false(ok)
    assert.are.equal("inside", err)
    assert.is_true(lunet.is_grad_enabled())
    assert.is_true(lunet.set_grad_enabled(false))
    assert.is_false(lunet.is_grad_enabled())
    lunet.set_grad_enabled(true)
  end)

  it("detach shares storage and is a leaf without grad", function()
    local a = lunet.tensor({ 1.0, 2.0, 3.0 }, { requires_grad = true })
    local e = a:detach()
    e[0] = 100
    assert.is_false(e.requires_grad)
    assert.are.equal("tensor([100.,   2.,   3.], requires_grad=True)", tostring(a))
    local f = a:detach():requires_grad_()
    assert.is_true(f.is_leaf)
    assert.is_true(f.requires_grad)
    a.requires_grad = false
    assert.is_false(a.requires_grad)
  end)

  it("gradient of a broadcast operand is summed back", function()
    local w = lunet.ones(3, { requires_grad = true })
    ;(lunet.ones(2, 3) * w):sum():backward()
    assert.are.same({ 2, 2, 2 }, w.grad:tolist())
  end)

  it("the seed's from-scratch sgd (§8.1)", function()
    local w = lunet.tensor({ { 0.5 }, { -0.3 } }, { requires_grad = true })
    local b = lunet.tensor({ 0.0 }, { requires_grad = true })
    local X = lunet.tensor({ { 1., 2. }, { 3., 4. } })
    local y = lunet.tensor({ { 1. }, { 2. } })
    local l = (X:matmul(w) + b - y) ^ 2 / 2
    l:sum():backward()
    assert_close(w.grad, { -6.2, -9 })
    assert_close(b.grad, { -2.8 })
    lunet.no_grad(function()
      for _, p in ipairs({ w, b }) do
        p:sub_(0.1 * p.grad / 2)
        p.grad:zero_()
      end
    end)
    assert.are.same({ 0.8100000619888306, 0.15000000596046448 }, w:view(-1):tolist())
    assert.are.same({ 0.14000001549720764 }, b:tolist())
    assert.is_true(w.is_leaf)
  end)

  it("keeps the gradient of a non-leaf after retain_grad", function()
    local a = lunet.tensor({1.0, 2.0, 3.0}, {requires_grad = true})
    local b = a * 2
    assert.is_false(b.retains_grad)
    b:retain_grad()
    assert.is_true(b.retains_grad)
    assert.is_false(a.retains_grad) -- a leaf keeps its grad anyway (PyTorch: False)
    assert.has_error(function() b.retains_grad = false end,
      "attribute 'retains_grad' of a tensor is read-only")
    local c = b * 3
    assert.is_nil(c.grad)
    ;(b * b):sum():backward()
    assert_close(b.grad, {4, 8, 12}, 0)
    assert_close(a.grad, {8, 16, 24}, 0)
    assert.has_error(function() lunet.zeros(2):retain_grad() end,
      "can't retain_grad on Tensor that has requires_grad=False")
    -- t.grad assignment goes through lunet_tensor_set_grad's checks
    assert.has_error(function() a.grad = lunet.zeros(2) end, "assigned grad has data of a different size")
    assert.has_error(function() a.grad = lunet.zeros(3, {dtype = lunet.float64}) end,
      "assigned grad has data of a different type")
    a.grad = nil
    assert.is_nil(a.grad)
  end)

  it("records in-place operations on non-leaf tensors (§8.2)", function()
    local x = lunet.tensor({1.0, 2.0}, {requires_grad = true})
    local a = x * 2
    a:add_(1)
    a:mul_(3)
    assert.are.equal("<MulBackward0>", tostring(a.grad_fn))
    a:sum():backward()
    assert_close(x.grad, {6, 6}, 0)
    local e = x:exp()  -- exp keeps its output for backward: changing it in place is refused
    assert_error_contains(function() e:add_(1) end, "shares its memory with another")
  end)
end)

-- t.data = u rebinds t to u's memory (PyTorch's set_data); expected values from PyTorch 1.13.
describe("t.data = u", function()
  it("a parameter takes the new tensor's memory and keeps requires_grad", function()
    local lin = lunet.nn.Linear(3, 2)
    local w = lunet.ones(2, 3)
    lin.weight.data = w
    assert.are.same({{1, 1, 1}, {1, 1, 1}}, lin.weight:tolist())
    assert.are.equal(w:data_ptr(), lin.weight:data_ptr())
    assert.is_true(lin.weight.requires_grad)
    w[0][0] = 5  -- shared memory, as in PyTorch
    assert.are.equal(5, lin.weight[0][0])
  end)

  it("may change the shape; a view rebinds without touching its base", function()
    local x = lunet.ones(3, {requires_grad = true})
    x.data = lunet.zeros(5)
    assert.are.same({5}, x.shape)
    assert.is_true(x.requires_grad)
    local v = lunet.ones(4)
    local vv = v:narrow(0, 1, 2)
    vv.data = lunet.zeros(7)
    assert.are.same({0, 0, 0, 0, 0, 0, 0}, vv:tolist())
    assert.are.same({1, 1, 1, 1}, v:tolist())
  end)

  it("keeps the graph: gradients still reach the tensor", function()
    local y = lunet.ones(3, {requires_grad = true})
    local z = y * 2
    y.data = lunet.zeros(3)
    z:sum():backward()
    assert.are.same({2, 2, 2}, y.grad:tolist())
  end)

  it("refuses what PyTorch refuses", function()
    local x = lunet.ones(3, {requires_grad = true})
    assert_error_contains(function() x.data = lunet.zeros(5, {dtype = lunet.int64}) end,
      "data set to a tensor that requires gradients must be floating point or complex dtype")
    assert_error_contains(function() x.data = 5 end, "Variable data has to be a tensor, but got number")
    assert.are.same({1, 1, 1}, x:tolist())
  end)

  it("a packed parameter leaves its slab and still trains", function()
    lunet.manual_seed(0)
    local lin = lunet.nn.Linear(4, 3)
    local opt = lunet.optim.SGD(lin:parameters(), {lr = 0.5, momentum = 0.9})
    local x = lunet.ones(2, 4)
    lin(x):sum():backward(); opt:step(); opt:zero_grad()
    lin.weight.data = lunet.zeros(3, 4)
    lin(x):sum():backward()
    assert.are.same({{2, 2, 2, 2}, {2, 2, 2, 2}, {2, 2, 2, 2}}, lin.weight.grad:tolist())
    opt:step()
    -- the momentum buffer holds the first step's grad (2): buf = 0.9 * 2 + 2 = 3.8; w = 0 - 0.5 * 3.8
    for _, row in ipairs(lin.weight:tolist()) do
      for _, v in ipairs(row) do assert.is_true(math.abs(v + 1.9) < 1e-6, "got " .. v) end
    end
  end)
end)
