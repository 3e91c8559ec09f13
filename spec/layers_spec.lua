-- layers_spec.lua - the CNN layers from Lua against PyTorch 1.13 (spec/fixtures/
-- layers_golden.lua, written by tests/fixtures/gen_layers.py): every F.* function over the
-- awkward shapes of the goldens, forward and gradients; the modules' options, reprs,
-- seeded init, state_dict buffers and train/eval behaviour; PyTorch's error texts.
local lunet = require "lunet"
local nn, F = lunet.nn, lunet.nn.functional

local golden = dofile("spec/fixtures/layers_golden.lua")
local OPS = {"conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "leaky_relu", "elu",
  "gelu", "softplus", "log_sigmoid", "batch_norm"}

local function tensor(vals, shape, dtype, grad)
  local t = lunet.tensor(vals, {dtype = dtype}):reshape(shape)
  if grad then t = t:detach():requires_grad_() end
  return t
end

-- Runs a golden case through the Lua API (F.* with PyTorch's arguments).
local function run(c, x, w, b, rm, rv)
  local op = OPS[c.op + 1]
  if op == "conv2d" then
    local padding = c.padstr ~= "" and c.padstr or c.padding
    return F.conv2d(x, w, b, c.stride, padding, c.dilation, c.groups)
  elseif op == "max_pool2d" then
    return F.max_pool2d(x, c.kernel, c.stride, c.padding, c.dilation, c.ceil == 1, true)
  elseif op == "avg_pool2d" then
    return F.avg_pool2d(x, c.kernel, {stride = c.stride, padding = c.padding,
      ceil_mode = c.ceil == 1, count_include_pad = c.cip == 1,
      divisor_override = c.divisor ~= 0 and c.divisor or nil})
  elseif op == "adaptive_avg_pool2d" then
    return F.adaptive_avg_pool2d(x, c.osize)
  elseif op == "leaky_relu" then
    return F.leaky_relu(x, c.p0)
  elseif op == "elu" then
    return F.elu(x, {alpha = c.p0})
  elseif op == "gelu" then
    return F.gelu(x, c.flag == 1 and "tanh" or "none")
  elseif op == "softplus" then
    return F.softplus(x, c.p0, c.p1)
  elseif op == "log_sigmoid" then
    return F.logsigmoid(x)
  end
  return F.batch_norm(x, rm, rv, w, b, c.training == 1, c.momentum, c.eps)
end

describe("CNN layers against PyTorch 1.13", function()
  it("forward and gradients of every golden case (float32 and float64)", function()
    for _, c in ipairs(golden.cases) do
      local dt = c.dtype == 1 and lunet.float64 or lunet.float32
      local x = tensor(c.x, c.xshape, dt, true)
      local w, b, rm, rv
      local op = OPS[c.op + 1]
      if op == "conv2d" then
        w = tensor(c.w, c.wshape, dt, true)
        if c.has_b == 1 then b = tensor(c.b, {c.wshape[1]}, dt, true) end
      elseif op == "batch_norm" then
        if c.has_w == 1 then
          w = tensor(c.w, {c.xshape[2]}, dt, true)
          b = tensor(c.b, {c.xshape[2]}, dt, true)
        end
        rm, rv = tensor(c.rm0, {c.xshape[2]}, dt), tensor(c.rv0, {c.xshape[2]}, dt)
      end
      local y, idx = run(c, x, w, b, rm, rv)
      local tol = c.dtype == 1 and 1e-10 or 2e-5
      assert.are.equal(tostring(lunet.Size(c.oshape)), tostring(y:size()), c.name)
      assert_close(y, c.out, tol)
      assert.are.equal("<" .. c.grad_fn .. ">", tostring(y.grad_fn), c.name)
      if op == "max_pool2d" then assert.are.same(c.indices, idx:reshape(-1):tolist()) end
      if op == "batch_norm" and c.training == 1 then
        assert_close(rm, c.rm, tol)
        assert_close(rv, c.rv, tol)
      end
      y:backward(tensor(c.g, c.oshape, dt))
      assert_close(x.grad, c.dx, tol)
      if w then assert_close(w.grad, c.dw, tol) end
      if b then assert_close(b.grad, c.db, tol) end
    end
  end)

  -- a kernel column that sees only padding gives im2col an empty float32 run: it must copy
  -- nothing (it once wrote one float into the next sample's columns)
  it("conv2d float32 equals float64 when a kernel column lies wholly in the padding", function()
    lunet.manual_seed(0)
    for _, c in ipairs{{{3, 2, 1, 1}, {4, 2, 3, 3}, 1}, {{4, 1, 2, 1}, {2, 1, 3, 5}, {1, 2}},
                       {{2, 3, 3, 2}, {5, 3, 3, 7}, {1, 3}}} do
      local x, w = lunet.randn(table.unpack(c[1])), lunet.randn(table.unpack(c[2]))
      local y = F.conv2d(x, w, nil, 1, c[3])
      local y64 = F.conv2d(x:double(), w:double(), nil, 1, c[3])
      local d = (y:double() - y64):abs():max():item()
      assert(d < 1e-5, ("x %s w %s: max |f32 - f64| = %g"):format(x:size(), w:size(), d))
    end
  end)

  it("raises PyTorch's error texts", function()
    local E = golden.errors
    local x, w = lunet.zeros({2, 3, 8, 8}), lunet.zeros({4, 3, 3, 3})
    local function fails(text, f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok, text)
      assert.are.equal(text, tostring(err):gsub("^[^:]*:%d+: ", ""), text)
    end
    fails(E.conv_channels, F.conv2d, x, lunet.zeros({4, 2, 3, 3}))
    fails(E.conv_groups_channels, F.conv2d, x, w, nil, {groups = 2})
    fails(E.conv_kernel_too_big, F.conv2d, lunet.zeros({2, 3, 2, 2}), w)
    fails(E.conv_negative_padding, F.conv2d, x, w, nil, 1, -1)
    fails(E.conv_stride, F.conv2d, x, w, nil, 0)
    fails(E.conv_input_dims, F.conv2d, lunet.zeros({8, 8}), w)
    fails(E.conv_bias, F.conv2d, x, w, lunet.zeros({3}))
    fails(E.conv_same_strided, F.conv2d, x, w, nil, {stride = 2, padding = "same"})
    fails(E.conv_bad_padding, F.conv2d, x, w, nil, {padding = "foo"})
    fails(E.pool_pad_half, F.max_pool2d, x, 3, nil, 2)
    fails(E.pool_too_small, F.max_pool2d, lunet.zeros({1, 1, 2, 2}), 3)
    fails(E.pool_stride_zero, F.max_pool2d, x, 2, 0)
    fails(E.maxpool_dims, F.max_pool2d, lunet.zeros({8, 8}), 2)
    fails(E.avgpool_too_small, F.avg_pool2d, lunet.zeros({1, 1, 2, 2}), 3)
    fails(E.adaptive_dims, F.adaptive_avg_pool2d, lunet.zeros({8, 8}), 2)
    fails(E.dropout_p, F.dropout, x, 1.5)
    fails(E.bn_running_mean, nn.BatchNorm2d(3), lunet.zeros({2, 4, 4, 4}))
    fails(E.bn2d_dims, nn.BatchNorm2d(3), lunet.zeros({2, 3, 4}))
    fails(E.bn1d_dims, nn.BatchNorm1d(3), lunet.zeros({2, 3, 4, 5}))
    -- sizes print as lunet.Size in Lunet's messages
    fails((E.bn_one_value:gsub("torch%.Size", "lunet.Size")), nn.BatchNorm1d(3), lunet.zeros({1, 3}))
    fails(E.conv_module_groups, nn.Conv2d, 3, 4, 3, {groups = 2})
    fails(E.leaky_long, F.leaky_relu, lunet.ones(2, {dtype = lunet.int64}))
  end)
end)

describe("CNN modules", function()
  it("nn.Conv2d initialises from the seed as torch.nn.Conv2d does", function()
    lunet.manual_seed(7)
    local c1 = nn.Conv2d(3, 4, 3)
    local c2 = nn.Conv2d(4, 6, {2, 3}, {groups = 2})
    local c3 = nn.Conv2d(2, 3, 3, {bias = false, dtype = lunet.float64})
    assert_close(c1.weight, golden.init.c1w, 0)
    assert_close(c1.bias, golden.init.c1b, 0)
    assert_close(c2.weight, golden.init.c2w, 0)
    assert_close(c2.bias, golden.init.c2b, 0)
    assert_close(c3.weight, golden.init.c3w, 0)
    assert.is_nil(c3.bias)
  end)

  it("nn.Dropout draws torch's mask in training mode and is the identity in eval mode", function()
    lunet.manual_seed(5)
    local x = lunet.randn({4, 6})
    lunet.manual_seed(5)
    local d = nn.Dropout(0.3)
    assert_close(d(x), golden.dropout.y32, 0)
    local x64 = lunet.randn({3, 5}, {dtype = lunet.float64})
    assert_close(x64, golden.dropout.x64, 0)
    assert_close(F.dropout(x64, {p = 0.5}), golden.dropout.y64, 0)
    d:eval()
    assert.are.equal(x, d(x))
    local y = lunet.ones(3)
    F.dropout(y, 1.0, true, true)
    assert_close(y, {0, 0, 0}, 0)
  end)

  it("BatchNorm keeps its running statistics as buffers in state_dict", function()
    local bn = nn.BatchNorm2d(3)
    local sd = bn:state_dict()
    for _, k in ipairs({"weight", "bias", "running_mean", "running_var",
      "num_batches_tracked"}) do
      assert.is_true(lunet.is_tensor(sd[k]), k)
    end
    assert.are.equal(2, #bn:parameters())
    assert.are.equal(3, #bn:buffers())
    lunet.manual_seed(0)
    local x = lunet.randn({4, 3, 2, 2}) * 2 + 1
    bn(x)
    assert.are.equal(1, bn.num_batches_tracked:item())
    -- running_mean = 0.9 * 0 + 0.1 * batch mean
    assert_close(bn.running_mean, x:mean({0, 2, 3}) * 0.1, 1e-6)
    bn:eval()
    local y = bn(x)
    assert.are.equal(1, bn.num_batches_tracked:item())
    local want = (x - bn.running_mean:reshape({1, 3, 1, 1}))
      / (bn.running_var:reshape({1, 3, 1, 1}) + 1e-5):sqrt()
    assert_close(y, want, 1e-5)
    local copy = nn.BatchNorm2d(3)
    copy:load_state_dict(bn:state_dict())
    assert_close(copy.running_var, bn.running_var, 0)
    assert.are.equal(1, copy.num_batches_tracked:item())
    local cum = nn.BatchNorm1d(2, {momentum = false, affine = false})
    cum(lunet.tensor({{1.0, 2.0}, {3.0, 6.0}}))
    cum(lunet.tensor({{5.0, 2.0}, {7.0, 2.0}}))
    assert_close(cum.running_mean, {4.0, 3.0}, 1e-6) -- the average of the two batch means
  end)

  it("prints as PyTorch prints the modules", function()
    assert.are.equal("Conv2d(1, 10, kernel_size=(5, 5), stride=(1, 1))", tostring(nn.Conv2d(1, 10, 5)))
    assert.are.equal("Conv2d(4, 6, kernel_size=(2, 3), stride=(1, 1), padding='same', groups=2, bias=False)",
      tostring(nn.Conv2d(4, 6, {2, 3}, {groups = 2, padding = "same", bias = false})))
    assert.are.equal("Conv2d(4, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2))",
      tostring(nn.Conv2d(4, 4, 3, 2, 1, 2)))
    assert.are.equal("MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
      tostring(nn.MaxPool2d(2)))
    assert.are.equal("AvgPool2d(kernel_size=2, stride=2, padding=0)", tostring(nn.AvgPool2d(2)))
    assert.are.equal("AdaptiveAvgPool2d(output_size=(5, 7))", tostring(nn.AdaptiveAvgPool2d({5, 7})))
    assert.are.equal("Dropout(p=0.5, inplace=False)", tostring(nn.Dropout()))
    assert.are.equal("BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",
      tostring(nn.BatchNorm2d(3)))
    assert.are.equal("LeakyReLU(negative_slope=0.01)", tostring(nn.LeakyReLU()))
    assert.are.equal("GELU(approximate='tanh')", tostring(nn.GELU("tanh")))
    assert.are.equal("ELU(alpha=1.0)", tostring(nn.ELU()))
    assert.are.equal("Softplus(beta=1, threshold=20)", tostring(nn.Softplus()))
    assert.are.equal("LogSigmoid()", tostring(nn.LogSigmoid()))
  end)

  it("trains the course CNN: the loss goes down on a fixed batch", function()
    lunet.manual_seed(1)
    local net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.MaxPool2d(2), nn.ReLU(),
      nn.Conv2d(4, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    local x = lunet.randn({6, 1, 12, 12})
    local y = lunet.tensor({0, 1, 2, 0, 1, 2})
    local opt = lunet.optim.SGD(net:parameters(), {lr = 0.1, momentum = 0.5})
    local first, last
    for step = 1, 30 do
      opt:zero_grad()
      local loss = F.cross_entropy(net(x), y)
      loss:backward()
      opt:step()
      if step == 1 then first = loss:item() end
      last = loss:item()
    end
    assert.is_true(last < first * 0.7, ("loss %g -> %g"):format(first, last))
  end)
end)
