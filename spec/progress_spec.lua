-- lunet.progress: redrawn line on a terminal, plain periodic lines otherwise
local lunet = require "lunet"

-- a stream that records writes, and a clock the test moves by hand
local function fake()
  local s = {writes = {}}
  function s:write(...)
    for i = 1, select("#", ...) do self.writes[#self.writes + 1] = (select(i, ...)) end
    return self
  end
  function s:text() return table.concat(self.writes) end
  local t = {now = 100}
  return s, t, function() return t.now end
end

local function lines(text)
  local out = {}
  for l in text:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

describe("lunet.progress", function()
  it("prints a plain line every 10% when the stream is not a terminal", function()
    local s, t, clock = fake()
    local p = lunet.progress.new{total = 100, desc = "epoch 1", batch_size = 64, stream = s,
                                 tty = false, clock = clock}
    for _ = 1, 100 do
      t.now = t.now + 0.01
      p:update(1, {loss = 2.0})
    end
    local summary = p:close()
    local ls = lines(s:text())
    assert.are.equal(10, #ls)
    assert.is_nil(s:text():find("\r", 1, true))
    assert.is_nil(s:text():find("\27", 1, true))
    assert.are.equal("epoch 1 10/100 (10%) loss 2.0000 | 6400 samples/s | 0:00 ETA 0:01", ls[1])
    assert.are.equal("epoch 1 100/100 (100%) loss 2.0000 | 6400 samples/s | 0:01", ls[10])
    assert_close(summary.elapsed, 1.0, 1e-9)
    assert.are.equal(2.0, summary.loss)
    assert.are.equal(100, summary.batches)
    assert.are.equal(6400, summary.samples)
    assert_close(summary.rate, 6400, 1e-9)
  end)

  it("adds a line after `interval` seconds without one, and a final line on close", function()
    local s, t, clock = fake()
    local p = lunet.progress.new{total = 1000, desc = "slow", stream = s, tty = false,
                                 interval = 5, clock = clock}
    for i = 1, 30 do
      t.now = t.now + 1
      p:update(1, {loss = i})
    end
    -- 30 updates, 1 s apart: no 10% mark reached, one line every 5 s
    assert.are.equal(6, #lines(s:text()))
    p:close()
    assert.are.equal(6, #lines(s:text())) -- the last update already printed
    t.now = t.now + 1
    local s2 = fake()
    local p2 = lunet.progress.new{desc = "no total", stream = s2, tty = false, clock = clock}
    for _ = 1, 7 do p2:update(2) end
    p2:close()
    local ls = lines(s2:text())
    assert.are.equal(1, #ls)
    assert.truthy(ls[1]:find("^no total 14 "))
  end)

  it("redraws one line in place on a terminal, at most every 0.1 s", function()
    local s, t, clock = fake()
    local p = lunet.progress.new{total = 50, desc = "train", stream = s, tty = true, clock = clock}
    for i = 1, 50 do
      t.now = t.now + 0.01
      p:update(1, {loss = 1 / i, samples = 32, acc = 0.5})
    end
    p:close()
    local text = s:text()
    local redraws = select(2, text:gsub("\r\27%[K", ""))
    -- one draw at the first update, then every 10 updates (0.1 s), the last one, close
    assert.is_true(redraws >= 5 and redraws <= 8, "redraws: " .. redraws)
    assert.are.equal(1, select(2, text:gsub("\n", "")))
    local last = text:match("\r\27%[K([^\r]*)\n$")
    assert.truthy(last:find("^train 50/50 %[====================%] 100%% loss "))
    assert.truthy(last:find("acc 0.5", 1, true))
    assert.truthy(last:find("3200 samples/s", 1, true))
    assert.is_nil(last:find("ETA", 1, true))
    -- the running loss is the mean of every loss given
    local mean = 0
    for i = 1, 50 do mean = mean + 1 / i end
    assert.truthy(last:find(("loss %.4f"):format(mean / 50), 1, true))
  end)

  it("shows the time left, and messages above the line", function()
    local s, t, clock = fake()
    local p = lunet.progress.new{total = 10, stream = s, tty = true, clock = clock}
    t.now = t.now + 30
    p:update(1)
    assert.truthy(s:text():find("1/10 [==                  ]  10% | 0.03 batches/s | 0:30 ETA 4:30", 1, true))
    p:print("[1,   300] loss: 0.512")
    assert.truthy(s:text():find("\r\27[K[1,   300] loss: 0.512\n\r\27[K1/10", 1, true))
    p:close()
  end)

  it("writes nothing while an update does not redraw", function()
    local s, _, clock = fake()
    local p = lunet.progress.new{total = 1000, stream = s, tty = false, clock = clock}
    p:update(1, {loss = 1})
    local n = #s.writes
    for _ = 1, 98 do p:update(1, {loss = 1}) end
    assert.are.equal(n, #s.writes)
    p:update(1, {loss = 1}) -- 10%
    assert.is_true(#s.writes > n)
  end)

  it("detects terminals with isatty", function()
    local f = io.tmpfile()
    assert.is_false(lunet._c.isatty(f))
    assert.is_false(lunet.progress.new{stream = f}.tty)
    f:close()
    assert.is_false(lunet._c.isatty(f))
    local a = lunet._c.monotonic()
    assert.is_true(lunet._c.monotonic() >= a)
  end)
end)
