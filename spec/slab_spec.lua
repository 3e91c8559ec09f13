-- slab_spec.lua: the parameter slab (runtime/slab.c; docs/lua-api.md, optim.SGD).  An
-- optimizer moves its groups' parameters into one storage, their gradients and momentum
-- buffers into two more laid out alike; zero_grad is one memset and SGD's step one loop.
-- The trajectories must be the per-parameter path's bit for bit (that path is PyTorch's,
-- spec/optim_spec.lua and tests/test_nn.c) on 1, 2 and 3 threads, and every case the slab
-- cannot take (a replaced .grad, set_to_none, a tied weight, groups, a resumed state) must
-- fall back with the same numbers.  The reference run keeps a view of every parameter, which
-- keeps them out of the slab.
local lunet = require "lunet"
local nn, F, optim = lunet.nn, lunet.nn.functional, lunet.optim

-- l1's weight (300 x 250 = 75000 elements) is more than one 65536-element block of the pool.
local function make_model()
  lunet.manual_seed(7)
  return nn.Sequential(nn.Linear(300, 250), nn.ReLU(), nn.Linear(250, 40), nn.ReLU(),
    nn.Linear(40, 7))
end

local function batch(step)
  lunet.manual_seed(100 + step)
  return lunet.randn(32, 300), lunet.randint(0, 7, {32})
end

-- Trains `steps` steps; packed = false keeps a view of every parameter (no slab).
-- hook(step, model, opt) runs before each step's zero_grad.  Returns the model, the
-- optimizer and the views held.
local function train(packed, steps, make_opt, hook)
  local model = make_model()
  local held = {}
  if not packed then
    for i, p in ipairs(model:parameters()) do held[i] = p:view(-1) end
  end
  local opt = make_opt(model)
  for step = 1, steps do
    if hook then hook(step, model, opt) end
    opt:zero_grad()
    local x, y = batch(step)
    F.cross_entropy(model(x), y):backward()
    opt:step()
  end
  return model, opt, held
end

local function sgd(cfg)
  return function(model) return optim.SGD(model:parameters(), cfg) end
end

-- every element of a and b has the same bits (read as doubles, float32 widens exactly)
local function same_bits(a, b, what)
  local x, y = a:detach():contiguous():view(-1):tolist(), b:detach():contiguous():view(-1):tolist()
  assert.are.equal(#y, #x)
  for i = 1, #y do
    if x[i] ~= y[i] and not (x[i] ~= x[i] and y[i] ~= y[i]) then
      error(("%s: element %d: got %.17g, expected %.17g"):format(what, i - 1, x[i], y[i]), 2)
    end
  end
end

local function same_params(got, want, what)
  local g, w = got:parameters(), want:parameters()
  assert.are.equal(#w, #g)
  for i = 1, #w do
    same_bits(g[i], w[i], what .. " parameter " .. i)
    if w[i].grad ~= nil then same_bits(g[i].grad, w[i].grad, what .. " grad " .. i) end
  end
end

-- the parameters' places in their storage: 0 then each one's end rounded up to 16 floats
local function expect_packed(params)
  local off = 0
  for i, p in ipairs(params) do
    assert.are.equal(off, p:storage_offset(), "parameter " .. i .. "'s place in the slab")
    off = off + (p:numel() + 15) // 16 * 16
  end
end

local CONFIGS = {
  {lr = 0.01, momentum = 0.5},
  {lr = 0.05},
  {lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 1e-3},
  {lr = 0.03, momentum = 0.9, dampening = 0.3, weight_decay = 1e-2, maximize = true},
}

local function cfg_name(cfg)
  local keys = {}
  for k, v in pairs(cfg) do keys[#keys + 1] = k .. "=" .. tostring(v) end
  table.sort(keys)
  return "{" .. table.concat(keys, " ") .. "}"
end

describe("the parameter slab", function()
  local threads
  before_each(function() threads = lunet.get_num_threads() end)
  after_each(function() lunet.set_num_threads(threads) end)

  it("moves an optimizer's parameters into one storage, keeping the objects and values", function()
    local model = make_model()
    local w = model["0"].weight
    local before = {}
    for i, p in ipairs(model:parameters()) do before[i] = p:clone() end
    local opt = optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.9})
    assert.are.equal(w, model["0"].weight)
    local params = model:parameters()
    expect_packed(params)
    for i, p in ipairs(params) do
      same_bits(p, before[i], "parameter " .. i)
      assert.is_nil(p.grad)
      assert.is_true(p.requires_grad and p.is_leaf)
      if i > 1 then
        assert.are.equal(p:storage_offset() * 4, p:data_ptr() - params[1]:data_ptr())
      end
    end
    local x, y = batch(1)
    F.cross_entropy(model(x), y):backward()
    opt:step()
    for i, p in ipairs(params) do
      assert.are.equal(p:storage_offset(), p.grad:storage_offset(), "grad " .. i)
      assert.are.equal(p:storage_offset(), opt.state[p].momentum_buffer:storage_offset())
      assert.are.equal(p.grad:storage_offset() * 4, p.grad:data_ptr() - params[1].grad:data_ptr())
    end
  end)

  it("trains bit for bit as the per-parameter path, on 1, 2 and 3 threads", function()
    for _, cfg in ipairs(CONFIGS) do
      lunet.set_num_threads(1)
      local want = train(false, 6, sgd(cfg))
      for n = 1, 3 do
        lunet.set_num_threads(n)
        local got = train(true, 6, sgd(cfg))
        expect_packed(got:parameters())
        same_params(got, want, ("SGD %s on %d threads"):format(cfg_name(cfg), n))
      end
    end
  end)

  it("zero_grad zero-fills the same .grad tensors; set_to_none leaves nil", function()
    local model, opt = train(true, 2, sgd(CONFIGS[1]))
    local grads = {}
    for i, p in ipairs(model:parameters()) do grads[i] = p.grad end
    opt:zero_grad()
    for i, p in ipairs(model:parameters()) do
      assert.are.equal(grads[i], p.grad)
      assert.are.equal(0, p.grad:abs():sum():item())
    end
    model:zero_grad({set_to_none = true})
    for _, p in ipairs(model:parameters()) do assert.is_nil(p.grad) end
  end)

  it("falls back with the same numbers when a .grad is replaced or set to nil", function()
    local function replace(step, model)
      if step == 3 then model["2"].weight.grad = lunet.ones(40, 250) end
      if step == 4 then model["0"].bias.grad = nil end
    end
    local want = train(false, 6, sgd(CONFIGS[3]), replace)
    local got = train(true, 6, sgd(CONFIGS[3]), replace)
    same_params(got, want, "replaced grads")
    local function to_none(_, _, opt) opt:zero_grad({set_to_none = true}) end
    want = train(false, 5, sgd(CONFIGS[1]), to_none)
    got = train(true, 5, sgd(CONFIGS[1]), to_none)
    same_params(got, want, "set_to_none")
  end)

  it("falls back with the same numbers for groups, tied weights and shared parameters", function()
    local function groups(model)
      local p = model:parameters()
      return optim.SGD({{params = {p[1], p[2]}, lr = 0.1}, {params = {p[3], p[4], p[5], p[6]}}},
        {lr = 0.01, momentum = 0.9})
    end
    same_params(train(true, 5, groups), train(false, 5, groups), "two groups")
    local _, opt = train(true, 1, groups)
    expect_packed(opt.param_groups[1].params)
    expect_packed(opt.param_groups[2].params)

    local function tied(model)
      model["2"].weight = nn.Parameter(lunet.randn(40, 250) * 0.01)
      local ps = model:parameters()
      -- the same tensor twice in the list is refused; the tied weight sits in a second module
      local extra = nn.Linear(250, 40)
      extra.weight = model["2"].weight
      return optim.SGD(ps, {lr = 0.05, momentum = 0.5})
    end
    same_params(train(true, 4, tied), train(false, 4, tied), "tied weight")

    local shared
    local function with_view(model)
      shared = model["0"].weight:view(-1) -- a live view: l1.weight must stay where it is
      return optim.SGD(model:parameters(), {lr = 0.05, momentum = 0.5})
    end
    local got = train(true, 3, with_view)
    assert.are.equal(0, got["0"].weight:storage_offset())
    same_bits(shared, got["0"].weight:view(-1), "the view still sees the trained weight")
    same_params(got, train(false, 3, with_view), "shared parameter")
  end)

  it("resumes from lunet.save / lunet.load of both state dicts as if never stopped", function()
    local cfg = {lr = 0.02, momentum = 0.9, nesterov = true}
    local want = train(false, 6, sgd(cfg))
    local model, opt = train(true, 3, sgd(cfg))
    local path = os.tmpname()
    lunet.save({model = model:state_dict(), opt = opt:state_dict()}, path)
    local saved = lunet.load(path)
    os.remove(path)
    local model2 = make_model()
    model2:load_state_dict(saved.model)
    local opt2 = optim.SGD(model2:parameters(), cfg)
    opt2:load_state_dict(saved.opt)
    for step = 4, 6 do
      opt2:zero_grad()
      local x, y = batch(step)
      F.cross_entropy(model2(x), y):backward()
      opt2:step()
    end
    same_params(model2, want, "resumed")
    expect_packed(model2:parameters())
    for _, p in ipairs(model2:parameters()) do
      assert.are.equal(p:storage_offset(), opt2.state[p].momentum_buffer:storage_offset())
    end
  end)

  it("writing one packed parameter between forward and backward fails only if it was saved", function()
    local model = make_model()
    optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.9})
    expect_packed(model:parameters())
    local x, y = batch(1)
    -- a Linear saves its input and weight, not its bias (as PyTorch's addmm)
    local loss = F.cross_entropy(model(x), y)
    lunet.no_grad(function() model["4"].bias:add_(1) end)
    loss:backward() -- PyTorch: fine, the bias was not saved
    assert.is_not_nil(model["0"].weight.grad)
    loss = F.cross_entropy(model(x), y)
    lunet.no_grad(function() model["2"].weight:add_(1) end)
    local ok, err = pcall(function() loss:backward() end)
    assert.is_false(ok)
    assert.matches("modified by an inplace operation", err, 1, true)
  end)

  it("follows the per-parameter path through random sequences of grad surgery", function()
    -- each seed draws one sequence of actions; both runs replay it, so they must agree
    local actions = {"zero", "none", "replace", "nil_one", "view_grad", "accumulate", "reload",
      "second_opt", "lr"}
    for seed = 1, 12 do
      local rng = seed
      local function draw(n)
        rng = (rng * 1103515245 + 12345) % 2147483648
        return rng % n + 1
      end
      local plan = {}
      for step = 1, 6 do plan[step] = actions[draw(#actions)] end
      local cfg = CONFIGS[draw(#CONFIGS)]
      local function make_opt(model)
        local o = {}
        for k, v in pairs(cfg) do o[k] = v end
        return optim.SGD(model:parameters(), o)
      end
      local function hook(step, model, opt)
        local a, ps = plan[step], model:parameters()
        local p = ps[(step % #ps) + 1]
        if a == "none" then opt:zero_grad({set_to_none = true})
        elseif a == "replace" and p.grad ~= nil then p.grad = p.grad * 0.5
        elseif a == "nil_one" then p.grad = nil
        elseif a == "view_grad" and p.grad ~= nil then p.grad:view(-1):mul_(2)
        elseif a == "accumulate" then
          local x, y = batch(50 + step) -- a second backward before the step's own
          F.cross_entropy(model(x), y):backward()
        elseif a == "reload" then opt:load_state_dict(opt:state_dict())
        elseif a == "lr" then opt.param_groups[1].lr = opt.param_groups[1].lr * 0.5
        elseif a == "second_opt" then
          optim.SGD(ps, {lr = 0.1}) -- made and dropped: must not disturb the first
        end
      end
      local want = train(false, 6, make_opt, hook)
      local got = train(true, 6, make_opt, hook)
      same_params(got, want, ("seed %d: %s, %s"):format(seed, cfg_name(cfg), table.concat(plan, " ")))
    end
  end)

  it("a second optimizer over packed parameters, and Adam, give the same numbers", function()
    local function second(model)
      optim.SGD(model:parameters(), {lr = 1})
      return optim.SGD(model:parameters(), {lr = 0.05, momentum = 0.9})
    end
    same_params(train(true, 4, second), train(false, 4, second), "second optimizer")
    local function adam(model) return optim.Adam(model:parameters(), {lr = 1e-3}) end
    same_params(train(true, 4, adam), train(false, 4, adam), "Adam")
  end)
end)
