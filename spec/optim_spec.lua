-- optim_spec.lua: optim.Adam / optim.AdamW and lunet.optim.lr_scheduler against PyTorch 1.13
-- (spec/fixtures/optim_golden.lua, written by tests/fixtures/gen_optim.py): trajectories bit
-- for bit, option errors word for word, scheduler lr sequences exactly, and state_dicts that
-- resume the same trajectory after lunet.save / lunet.load.
local lunet = require "lunet"
local optim = lunet.optim
local sched = require "lunet.optim.lr_scheduler"
local golden = dofile("spec/fixtures/optim_golden.lua")

local function dtype_of(name) return name == "float64" and lunet.float64 or lunet.float32 end

local function describe_run(run)
  local keys, parts = {}, {}
  for k in pairs(run.opts) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = run.opts[k]
    if type(v) == "table" then v = "{" .. table.concat(v, ", ") .. "}" end
    parts[#parts + 1] = k .. "=" .. tostring(v)
  end
  return ("%s %s %s"):format(run.optim, run.dtype, table.concat(parts, " "))
end

-- Every element of t equals want[] bit for bit (both read as doubles).
local function bits_equal(t, want, what)
  local got = t:tolist()
  assert.are.equal(#want, #got)
  for i = 1, #want do
    if got[i] ~= want[i] then
      error(("%s: element %d: got %.17g, expected %.17g"):format(what, i - 1, got[i], want[i]), 2)
    end
  end
end

local function copy_opts(o)
  local t = {}
  for k, v in pairs(o) do t[k] = type(v) == "table" and {v[1], v[2]} or v end
  return t
end

describe("optim.Adam and optim.AdamW", function()
  local A = golden.adam

  it("follow PyTorch's 5-step trajectories bit for bit (float32 and float64)", function()
    for _, run in ipairs(A.runs) do
      local dt = dtype_of(run.dtype)
      local p = lunet.tensor(A.p0, {dtype = dt}):requires_grad_()
      local opt = optim[run.optim]({p}, copy_opts(run.opts))
      for k, g in ipairs(A.grads) do
        p.grad = lunet.tensor(g, {dtype = dt})
        opt:step()
        bits_equal(p, run.steps[k], describe_run(run) .. " step " .. k)
      end
      local st = opt:state_dict().state[0]
      assert.are.equal(run.step, st.step)
      bits_equal(st.exp_avg, run.exp_avg, describe_run(run) .. " exp_avg")
      bits_equal(st.exp_avg_sq, run.exp_avg_sq, describe_run(run) .. " exp_avg_sq")
      assert.are.equal(run.opts.amsgrad == true, st.max_exp_avg_sq ~= nil)
    end
  end)

  it("reject invalid options with PyTorch's messages", function()
    local q = lunet.zeros(2, {requires_grad = true})
    for _, e in ipairs(golden.errors) do
      local ok, err = pcall(optim[e.optim], {q}, copy_opts(e.opts))
      assert.is_false(ok)
      err = tostring(err):gsub("^.-:%d+: ", "")
      assert.are.equal(e.message, err)
    end
    assert_error_contains(function() optim.Adam({q}, {betas = 0.9}) end,
      "Adam: betas must be a table of two numbers {beta1, beta2}")
    assert_error_contains(function() optim.AdamW({q}, {lr = "x"}) end, "AdamW: lr must be a number, got string")
    assert_error_contains(function() optim.Adam({q}, {momentum = 0.9}) end, "Adam: unknown option 'momentum'")
    assert.has_no.errors(function() optim.Adam({q}, {foreach = false, capturable = false, fused = false}) end)
    assert_error_contains(function() optim.Adam({q}, {fused = true}) end,
      "Adam: fused = true is not supported (Lunet runs PyTorch's single-tensor CPU algorithm)")
    assert_error_contains(function() optim.AdamW({q}, {differentiable = false}) end,
      "AdamW: unknown option 'differentiable'")
    assert_error_contains(function() optim.Adam({}, {}) end, "optimizer got an empty parameter list")
    assert_error_contains(function() optim.Adam({q * 2}) end, "can't optimize a non-leaf Tensor")
    assert_error_contains(function() optim.Adam({{params = {q}}, {params = {q}}}) end,
      "some parameters appear in more than one parameter group")
  end)

  it("run each parameter group with its own options", function()
    local runs = {}
    for _, run in ipairs(A.runs) do
      if run.optim == "Adam" and run.dtype == "float32" then runs[#runs + 1] = run end
    end
    local groups, params = {}, {}
    for i, run in ipairs(runs) do
      params[i] = lunet.tensor(A.p0):requires_grad_()
      local g = copy_opts(run.opts)
      g.params = {params[i]}
      groups[i] = g
    end
    local opt = optim.Adam(groups)
    for k, g in ipairs(A.grads) do
      for i = 1, #runs do params[i].grad = lunet.tensor(g) end
      opt:step()
      for i, run in ipairs(runs) do bits_equal(params[i], run.steps[k], describe_run(run) .. " in group " .. i) end
    end
    -- add_param_group takes the defaults for what the group leaves out
    local extra = lunet.zeros(1, {requires_grad = true})
    opt = optim.Adam({params[1]}, {lr = 0.5, betas = {0.1, 0.2}})
    opt:add_param_group({params = {extra}, eps = 1e-3})
    local last = opt.param_groups[2]
    assert.are.same({0.5, {0.1, 0.2}, 1e-3}, {last.lr, last.betas, last.eps})
    assert_error_contains(function() opt:add_param_group({params = {extra}}) end,
      "some parameters appear in more than one parameter group")
  end)

  it("resume the same trajectory from a state_dict saved with lunet.save", function()
    local path = os.tmpname()
    for _, run in ipairs(A.runs) do
      if run.opts.amsgrad or run.optim == "AdamW" then
        local dt = dtype_of(run.dtype)
        local p = lunet.tensor(A.p0, {dtype = dt}):requires_grad_()
        local opt = optim[run.optim]({p}, copy_opts(run.opts))
        for k = 1, 2 do
          p.grad = lunet.tensor(A.grads[k], {dtype = dt})
          opt:step()
        end
        lunet.save({param = p, optimizer = opt:state_dict()}, path)
        local ck = lunet.load(path)
        local q = ck.param:requires_grad_()
        local fresh = optim[run.optim]({q}, {lr = 123.0}) -- options come back from the checkpoint
        fresh:load_state_dict(ck.optimizer)
        assert.are.equal(run.opts.lr or 1e-3, fresh.param_groups[1].lr)
        for k = 3, 5 do
          q.grad = lunet.tensor(A.grads[k], {dtype = dt})
          fresh:step()
          bits_equal(q, run.steps[k], describe_run(run) .. " resumed, step " .. k)
        end
      end
    end
    os.remove(path)
  end)

  it("print as PyTorch prints them", function()
    local p = lunet.zeros(2, {requires_grad = true})
    assert_lines(tostring(optim.Adam({p})), {"Adam (", "Parameter Group 0", "    amsgrad: False",
      "    betas: (0.9, 0.999)", "    capturable: False", "    differentiable: False", "    eps: 1e-08",
      "    foreach: None", "    fused: False", "    lr: 0.001", "    maximize: False", "    weight_decay: 0", ")"})
    assert_lines(tostring(optim.AdamW({p}, {lr = 0.1, betas = {0.5, 0.9}})), {"AdamW (", "Parameter Group 0",
      "    amsgrad: False", "    betas: (0.5, 0.9)", "    capturable: False", "    eps: 1e-08",
      "    foreach: None", "    lr: 0.1", "    maximize: False", "    weight_decay: 0.01", ")"})
  end)

  it("formats numbers as Python's repr", function()
    local r = lunet.py.repr
    assert.are.same({"1.0", "-1", "0.001", "1e-08", "123456.0", "1e+16", "1000000000000000.0", "0.1", "-0.0",
                     "nan", "inf"},
      {r(1.0), r(-1), r(1e-3), r(1e-8), r(123456.0), r(1e16), r(1e15), r(0.1), r(-0.0), r(0 / 0), r(math.huge)})
  end)
end)

describe("optim.lr_scheduler", function()
  local function make(case, opt, last_epoch)
    local a = case.args
    if case.kind == "StepLR" then return sched.StepLR(opt, a[1], a[2], last_epoch) end
    if case.kind == "MultiStepLR" then return sched.MultiStepLR(opt, a[1], a[2], last_epoch) end
    return optim.lr_scheduler.CosineAnnealingLR(opt, a[1], a[2], last_epoch)
  end

  local function optimizer_for(case)
    local groups = {}
    for i, lr in ipairs(case.groups) do groups[i] = {params = {lunet.zeros(1, {requires_grad = true})}, lr = lr} end
    return optim.SGD(groups, {lr = case.groups[1]})
  end

  it("give PyTorch's lr sequences exactly (recursive, closed form, resumed)", function()
    for ci, case in ipairs(golden.schedulers) do
      local opt = optimizer_for(case)
      local s
      if case.resume then
        make(case, opt)
        s = make(case, opt, case.resume)
      else
        s = make(case, opt)
      end
      local function check(k)
        local got = s:get_last_lr()
        for i, want in ipairs(case.lrs[k]) do
          if got[i] ~= want then
            error(("case %d %s: after step %d group %d: lr %.17g, expected %.17g"):format(
              ci, case.kind, k - 1, i - 1, got[i], want))
          end
          assert.are.equal(want, opt.param_groups[i].lr)
        end
      end
      check(1)
      for k = 1, case.steps do
        opt:step()
        s:step(case.epochs and case.epochs[k] or nil)
        check(k + 1)
      end
      local sd = s:state_dict()
      local keys = {}
      for k in pairs(sd) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same(case.keys, keys)
      assert.are.equal(case.last_epoch, sd.last_epoch)
      assert.are.equal(case.step_count, sd._step_count)
    end
  end)

  it("resume from a state_dict saved with lunet.save, the optimizer's lr included", function()
    local path = os.tmpname()
    for _, case in ipairs(golden.schedulers) do
      if not case.epochs and not case.resume then
        local opt = optimizer_for(case)
        local s = make(case, opt)
        local half = case.steps // 2
        for _ = 1, half do opt:step() s:step() end
        lunet.save({optimizer = opt:state_dict(), scheduler = s:state_dict()}, path)
        local ck = lunet.load(path)
        local opt2 = optimizer_for(case)
        opt2:load_state_dict(ck.optimizer)
        local s2 = make(case, opt2)
        s2:load_state_dict(ck.scheduler)
        for k = half + 1, case.steps do
          opt2:step()
          s2:step()
          assert.are.same(case.lrs[k + 1], s2:get_last_lr())
        end
      end
    end
    os.remove(path)
  end)

  it("checks its arguments with PyTorch's messages", function()
    local opt = optim.SGD({lunet.zeros(1, {requires_grad = true})}, {lr = 0.1})
    assert_error_contains(function() sched.StepLR(opt, 2, 0.1, 3) end,
      "param 'initial_lr' is not specified in param_groups[0] when resuming an optimizer")
    assert_error_contains(function() sched.StepLR({}, 2) end, "table is not an Optimizer")
    assert_error_contains(function() sched.StepLR(opt, 2.5) end, "StepLR: step_size must be an integer")
    assert_error_contains(function() sched.MultiStepLR(opt, {1.5}) end, "MultiStepLR: milestones must be integers")
  end)

  it("raises Python's errors for a zero step_size or T_max", function()
    for _, e in ipairs(golden.sched_errors) do
      local opt = optim.SGD({lunet.zeros(1, {requires_grad = true})}, {lr = 0.1})
      local s = sched[e.kind](opt, e.args[1])
      local ok, err = pcall(s.step, s, e.epoch)
      assert.is_false(ok)
      assert.are.equal(e.message, (tostring(err):gsub("^.-:%d+: ", "")))
    end
  end)

  it("drives Adam's lr", function()
    local p = lunet.tensor({1.0, -1.0}, {requires_grad = true})
    local opt = optim.Adam({p}, {lr = 0.1})
    local s = sched.StepLR(opt, 1, 0.5)
    p.grad = lunet.tensor({1.0, -1.0})
    opt:step() -- lr 0.1: both elements move by 0.1 on Adam's first step
    s:step()
    assert.are.equal(0.05, opt.param_groups[1].lr)
    assert_close(p, {0.9, -0.9}, 1e-6)
  end)
end)

-- t.data = w:t() makes a strided parameter: PyTorch steps it; Lunet steps a contiguous copy
-- and writes it back, so the bits are those of the same values laid out contiguously.
describe("optimizers over a strided parameter (t.data = w:t())", function()
  it("step it as they step the contiguous one, bit for bit", function()
    for _, make in ipairs{
      function(ps) return lunet.optim.SGD(ps, {lr = 0.1, momentum = 0.9, weight_decay = 0.01}) end,
      function(ps) return lunet.optim.Adam(ps, {lr = 0.01, amsgrad = true}) end,
    } do
      lunet.manual_seed(7)
      local w, x = lunet.randn(4, 3), lunet.randn(5, 3)
      local a, b = lunet.nn.Linear(3, 4), lunet.nn.Linear(3, 4)
      b:load_state_dict(a:state_dict())
      a.weight.data = w:t():contiguous():t()   -- strided: (4, 3) with strides (1, 4)
      b.weight.data = w:clone()
      assert.is_false(a.weight:is_contiguous())
      local oa, ob = make(a:parameters()), make(b:parameters())
      for _ = 1, 3 do
        oa:zero_grad(); ob:zero_grad()
        a(x):pow(2):sum():backward(); b(x):pow(2):sum():backward()
        oa:step(); ob:step()
      end
      assert.is_false(a.weight:is_contiguous())
      assert.is_true(lunet.equal(a.weight, b.weight), tostring(a.weight - b.weight))
      assert.is_true(lunet.equal(a.bias, b.bias))
    end
  end)
end)
