-- lunet.save / lunet.load (runtime/serialize.c, docs/FORMAT.md)
local lunet = require "lunet"

local dir = make_tmpdir()
local function tmp(name) return dir .. "/" .. name end

local function write_all(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function leftover_temp_files()
  local p = io.popen("ls -a '" .. dir .. "'")
  local n = 0
  for line in p:lines() do if line:find(".tmp.", 1, true) then n = n + 1 end end
  p:close()
  return n
end

describe("lunet.save / lunet.load", function()
  teardown(function()
    lunet._c.save_fault(nil)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("round-trips numbers, strings, booleans and nested tables exactly", function()
    local v = {
      i = 42, f = 42.0, neg = -7, big = math.mininteger, pi = math.pi, tiny = 5e-324,
      inf = math.huge, s = "a\0b\255", empty = "", yes = true, no = false,
      arr = {10, 20, 30, [5] = 50, [-1] = "minus", [0] = "zero"},
      nested = {a = {b = {c = {d = "deep"}}}},
      mixed = {1, 2, x = "y"},
      ["key with spaces & <xml>"] = 1,
      nan = 0 / 0,
    }
    local path = tmp("v.lunet")
    lunet.save(v, path)
    local r = lunet.load(path)
    assert.are.equal("integer", math.type(r.i))
    assert.are.equal(42, r.i)
    assert.are.equal("float", math.type(r.f))
    assert.are.equal(42.0, r.f)
    assert.are.equal(-7, r.neg)
    assert.are.equal(math.mininteger, r.big)
    assert.are.equal(math.pi, r.pi)
    assert.are.equal(5e-324, r.tiny)
    assert.are.equal(math.huge, r.inf)
    assert.is_true(r.nan ~= r.nan)
    assert.are.equal("a\0b\255", r.s)
    assert.are.equal("", r.empty)
    assert.is_true(r.yes)
    assert.is_false(r.no)
    assert.are.same({10, 20, 30, [5] = 50, [-1] = "minus", [0] = "zero"}, r.arr)
    assert.are.equal(nil, r.arr[4])
    assert.are.equal("deep", r.nested.a.b.c.d)
    assert.are.same({1, 2, x = "y"}, r.mixed)
    assert.are.equal(1, r["key with spaces & <xml>"])
    -- top-level scalars
    lunet.save("just a string", path)
    assert.are.equal("just a string", lunet.load(path))
    lunet.save(3, path)
    assert.are.equal("integer", math.type(lunet.load(path)))
    lunet.save({}, path)
    assert.are.same({}, lunet.load(path))
  end)

  it("round-trips tensors of every dtype and rank, with requires_grad", function()
    local path = tmp("t.lunet")
    local v = {
      f32 = lunet.tensor({{1.5, -2.25}, {3.0, 4.125}}, {requires_grad = true}),
      f64 = lunet.tensor({0.1, 0.2, 0.3}, {dtype = lunet.float64}),
      i64 = lunet.tensor({-9007199254740993, 0, 9007199254740993}),
      u8 = lunet.tensor({0, 128, 255}, {dtype = lunet.uint8}),
      b = lunet.tensor({true, false, true}),
      zero_d = lunet.tensor(2.5),
      four_d = lunet.arange(24):view(2, 3, 2, 2),
      empty = lunet.zeros(0, 3),
      -- a non-contiguous view is written in logical order
      tr = lunet.arange(6, {dtype = lunet.float32}):view(2, 3):t(),
    }
    lunet.save(v, path)
    local r = lunet.load(path)
    for k, t in pairs(v) do
      assert.are.equal(t.dtype, r[k].dtype, k)
      assert.are.same(t:size(), r[k]:size(), k)
      assert.are.same(t:tolist(), r[k]:tolist(), k)
      assert.is_true(r[k]:is_contiguous(), k)
    end
    assert.is_true(r.f32.requires_grad)
    assert.is_true(r.f32.is_leaf)
    assert.is_false(r.f64.requires_grad)
    assert.are.same({{0, 3}, {1, 4}, {2, 5}}, r.tr:tolist())
    -- loaded tensors own their data: changing them leaves the originals alone
    lunet.no_grad(function() r.f32:fill_(0) end)
    assert.are.equal(1.5, v.f32:tolist()[1][1])
    -- a non-leaf is saved as data, requires_grad kept
    local y = v.f32 * 2
    lunet.save({y = y}, path)
    local ry = lunet.load(path).y
    assert.is_true(ry.requires_grad)
    assert.is_true(ry.is_leaf)
    assert.are.same(y:tolist(), ry:tolist())
  end)

  it("writes the same bytes for the same state (keys are sorted)", function()
    local a, b = {}, {}
    for i = 1, 50 do a["k" .. i] = i end
    for i = 50, 1, -1 do b["k" .. i] = i end
    lunet.save(a, tmp("a.lunet"))
    lunet.save(b, tmp("b.lunet"))
    assert.are.equal(must_read(tmp("a.lunet")), must_read(tmp("b.lunet")))
    assert.are.equal("LUNET\0\1\0", must_read(tmp("a.lunet")):sub(1, 8))
  end)

  it("refuses code, other userdata, bad keys and cycles, naming the key path", function()
    local path = tmp("bad.lunet")
    assert_error_contains(function() lunet.save({opt = {hook = print}}, path) end,
      "save: cannot save a function at key 'opt.hook'")
    assert_error_contains(function() lunet.save({param_groups = {{lr = 0.1, fn = function() end}}}, path) end,
      "cannot save a function at key 'param_groups[1].fn'")
    assert_error_contains(function() lunet.save(print, path) end, "save: cannot save a function")
    assert_error_contains(function() lunet.save({f = io.stdout}, path) end,
      "cannot save a userdata (only tensors) at key 'f'")
    assert_error_contains(function() lunet.save({co = coroutine.create(print)}, path) end,
      "cannot save a thread at key 'co'")
    assert_error_contains(function() lunet.save({a = {[true] = 1}}, path) end,
      "cannot save a table key of type boolean at key 'a'")
    assert_error_contains(function() lunet.save({[1.5] = 1}, path) end,
      "cannot save a table key of type float (1.5)")
    local c = {x = {}}
    c.x.back = c
    assert_error_contains(function() lunet.save(c, path) end,
      "cannot save a table that contains itself (a cycle) at key 'x.back'")
    -- the same table twice (no cycle) is fine and loads as two copies
    local shared = {1, 2}
    lunet.save({a = shared, b = shared}, path)
    local r = lunet.load(path)
    assert.are.same({1, 2}, r.a)
    assert.are.same({1, 2}, r.b)
    assert_error_contains(function() lunet.save({}, dir .. "/no/such/dir/x.lunet") end,
      "no/such/dir/x.lunet")
    assert.are.equal(0, leftover_temp_files())
  end)

  it("gives clear errors for missing, foreign, truncated and corrupt files", function()
    assert_error_contains(function() lunet.load(tmp("missing.lunet")) end,
      "load: cannot open " .. tmp("missing.lunet"))
    write_all(tmp("text.txt"), "hello world, this is not a checkpoint at all")
    assert_error_contains(function() lunet.load(tmp("text.txt")) end,
      "load: " .. tmp("text.txt") .. ": not a Lunet file")
    write_all(tmp("empty"), "")
    assert_error_contains(function() lunet.load(tmp("empty")) end, "not a Lunet file (the file is empty)")
    local path = tmp("good.lunet")
    lunet.save({w = lunet.ones(10), step = 3}, path)
    local bytes = must_read(path)
    for _, len in ipairs({5, 20, 36, 40, #bytes - 1}) do
      write_all(tmp("cut.lunet"), bytes:sub(1, len))
      assert_error_contains(function() lunet.load(tmp("cut.lunet")) end, "truncated")
    end
    write_all(tmp("v9.lunet"), bytes:sub(1, 6) .. "\9\0" .. bytes:sub(9))
    assert_error_contains(function() lunet.load(tmp("v9.lunet")) end,
      "unsupported version 9 (this build reads version 1)")
    local flipped = bytes:sub(1, 50) .. string.char(bytes:byte(51) ~ 0xff) .. bytes:sub(52)
    write_all(tmp("flip.lunet"), flipped)
    assert_error_contains(function() lunet.load(tmp("flip.lunet")) end, "corrupt data")
  end)

  it("keeps the previous checkpoint when a save fails midway", function()
    local path = tmp("ckpt.lunet")
    lunet.save({epoch = 1, w = lunet.full({100}, 1.0)}, path)
    local before = must_read(path)
    for _, n in ipairs({0, 10, 36, 60, 200}) do
      lunet._c.save_fault(n)
      assert_error_contains(function()
        lunet.save({epoch = 2, w = lunet.randn(5000)}, path)
      end, "simulated write failure after " .. n .. " bytes")
      lunet._c.save_fault(nil)
      assert.are.equal(before, must_read(path))
      local r = lunet.load(path)
      assert.are.equal(1, r.epoch)
      assert.are.equal(100, r.w:numel())
      assert.are.equal(0, leftover_temp_files())
    end
    lunet.save({epoch = 2}, path)
    assert.are.equal(2, lunet.load(path).epoch)
  end)

  it("honours LUNET_FAULT_SAVE_AFTER in a separate process", function()
    local path = tmp("env.lunet")
    lunet.save({epoch = 1}, path)
    local code = ("lunet.save({epoch = 2, w = lunet.zeros(1000)}, %q)"):format(path)
    local cmd = ("LUNET_FAULT_SAVE_AFTER=40 %s -e %q 2>&1"):format(LUNET_BIN, code)
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    assert.is_falsy(ok)
    assert.truthy(out:find("simulated write failure after 40 bytes", 1, true))
    assert.are.equal(1, lunet.load(path).epoch)
    assert.are.equal(0, leftover_temp_files())
  end)

  it("save -> load -> resume gives the same numbers as an uninterrupted run", function()
    local nn, optim = lunet.nn, lunet.optim
    local function make()
      local model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
      local opt = optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.5})
      return model, opt
    end
    lunet.manual_seed(0)
    local X = lunet.randn(16, 4)
    local y = lunet.randint(0, 3, {16})
    local loss_fn = nn.CrossEntropyLoss()
    local function step(model, opt)
      opt:zero_grad()
      local loss = loss_fn(model(X), y)
      loss:backward()
      opt:step()
      return loss:item()
    end
    -- uninterrupted: 6 steps
    lunet.manual_seed(1)
    local m1, o1 = make()
    local full = {}
    for i = 1, 6 do full[i] = step(m1, o1) end
    -- interrupted after 3 steps: checkpoint, new objects, load, 3 more steps
    lunet.manual_seed(1)
    local m2, o2 = make()
    local part = {}
    for i = 1, 3 do part[i] = step(m2, o2) end
    local path = tmp("resume.lunet")
    lunet.save({model = m2:state_dict(), optimizer = o2:state_dict(), epoch = 3}, path)
    lunet.manual_seed(99) -- a different init, overwritten by the checkpoint
    local m3, o3 = make()
    local ck = lunet.load(path)
    m3:load_state_dict(ck.model)
    o3:load_state_dict(ck.optimizer)
    assert.are.equal(3, ck.epoch)
    assert.are.equal(0.5, ck.optimizer.param_groups[1].momentum)
    assert.are.same({0, 1, 2, 3}, ck.optimizer.param_groups[1].params)
    for i = 4, 6 do part[i] = step(m3, o3) end
    for i = 1, 6 do assert.are.equal(full[i], part[i]) end
    local p1, p3 = m1:parameters(), m3:parameters()
    assert.are.equal(4, #p3)
    for i = 1, #p1 do assert.are.same(p1[i]:tolist(), p3[i]:tolist()) end
  end)
end)
