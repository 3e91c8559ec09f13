-- lunet.progress: a progress display for training loops.
--
--   local p = lunet.progress.new{total = #loader, desc = "epoch 1", batch_size = 64,
--                                stream = io.stderr}
--   for X, y in loader:iter() do ...; p:update(1, {loss = l:item()}) end
--   p:close()                      --> {elapsed =, loss =, batches =, samples =, rate =}
--
-- On a terminal the line is redrawn in place ("\r" + ANSI erase-line), at most every
-- `redraw` seconds (0.1): batches done / total, a bar, the running mean of `loss`, samples (or
-- batches) per second and the time left.  When the stream is not a terminal (a log file, a
-- pipe, TERM=dumb) it prints a plain line each time another 10% of `total` is done, or after
-- `interval` seconds (default 30) without a line, so logs stay readable.
--
-- Options: total (batches, may be nil), desc, stream (anything with :write; default
-- io.stderr), batch_size (samples per batch, for the rate; update may pass samples = n
-- instead), tty (force true/false), interval, redraw, clock (a function returning seconds,
-- for tests).  update(n, info): n batches more (default 1); info.loss is averaged (weighted
-- by n), other numeric fields of info are shown as their latest value.  p:print(text) writes
-- a line above the progress line.  Updates that do not redraw build no strings.
local lunet = require "lunet"

local C = lunet._c
local progress = {}

local Progress = {}
Progress.__index = Progress

local function fmt_time(s)
  if s ~= s or s == math.huge or s < 0 then return "?" end
  s = math.floor(s + 0.5)
  local h, m, sec = s // 3600, (s // 60) % 60, s % 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, sec) end
  return string.format("%d:%02d", m, sec)
end

local function fmt_rate(r)
  if r >= 100 then return string.format("%.0f", r) end
  if r >= 10 then return string.format("%.1f", r) end
  return string.format("%.2f", r)
end

function progress.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("progress.new: expected an options table", 2) end
  local stream = opts.stream or io.stderr
  if type(stream) ~= "table" and io.type(stream) ~= "file" and type(stream) ~= "userdata" then
    error("progress.new: stream must be a file or an object with a write method", 2)
  end
  local tty = opts.tty
  if tty == nil then
    tty = io.type(stream) == "file" and C.isatty(stream) and os.getenv("TERM") ~= "dumb"
  end
  local total = opts.total
  if total ~= nil and (type(total) ~= "number" or total < 0) then
    error("progress.new: total must be a non-negative number", 2)
  end
  local clock = opts.clock or C.monotonic
  local now = clock()
  return setmetatable({
    total = total, desc = opts.desc, stream = stream, tty = tty and true or false,
    batch_size = opts.batch_size, interval = opts.interval or 30, redraw = opts.redraw or 0.1,
    clock = clock, t0 = now, last_out = now, last_draw = -math.huge,
    done = 0, samples = 0, loss_sum = 0, loss_n = 0, info = nil,
    next_mark = total and total > 0 and 0.1 or math.huge, printed_done = -1, closed = false,
  }, Progress)
end

function Progress:update(n, info)
  n = n or 1
  self.done = self.done + n
  if info ~= nil then
    local l = info.loss
    if l ~= nil then
      if type(l) ~= "number" then l = l:item() end
      self.loss_sum = self.loss_sum + l * n
      self.loss_n = self.loss_n + n
    end
    self.samples = self.samples + (info.samples or (self.batch_size and self.batch_size * n or 0))
    self.info = info
  elseif self.batch_size then
    self.samples = self.samples + self.batch_size * n
  end
  local now = self.clock()
  local total = self.total
  if self.tty then
    if now - self.last_draw >= self.redraw or (total and self.done >= total) then
      self.last_draw = now
      self:_draw(now)
    end
  else
    local frac = total and total > 0 and self.done / total or 0
    if frac >= self.next_mark - 1e-12 or now - self.last_out >= self.interval then
      while self.next_mark <= frac + 1e-12 do self.next_mark = self.next_mark + 0.1 end
      self:_line(now)
    end
  end
end

-- "desc 300/938 (32%) loss 0.5123 acc 0.81 | 2345 samples/s | 0:03 elapsed, ETA 0:07"
function Progress:_text(now, bar)
  local parts = {}
  if self.desc then parts[#parts + 1] = tostring(self.desc) end
  local total = self.total
  if total then
    local pct = total > 0 and math.floor(100 * self.done / total) or 100
    local count = ("%d/%d"):format(self.done, total)
    if bar then
      local w = 20
      local fill = total > 0 and math.min(w, math.floor(w * self.done / total)) or w
      count = count .. " [" .. string.rep("=", fill) .. string.rep(" ", w - fill) .. "]"
      parts[#parts + 1] = count .. (" %3d%%"):format(pct)
    else
      parts[#parts + 1] = count .. (" (%d%%)"):format(pct)
    end
  else
    parts[#parts + 1] = ("%d"):format(self.done)
  end
  if self.loss_n > 0 then parts[#parts + 1] = ("loss %.4f"):format(self.loss_sum / self.loss_n) end
  if self.info then
    local keys = {}
    for k, v in pairs(self.info) do
      if k ~= "loss" and k ~= "samples" and type(k) == "string" and type(v) == "number" then
        keys[#keys + 1] = k
      end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = ("%s %.4g"):format(k, self.info[k]) end
  end
  local elapsed = now - self.t0
  if elapsed > 0 then
    if self.samples > 0 then
      parts[#parts + 1] = "| " .. fmt_rate(self.samples / elapsed) .. " samples/s"
    else
      parts[#parts + 1] = "| " .. fmt_rate(self.done / elapsed) .. " batches/s"
    end
  end
  local tail = "| " .. fmt_time(elapsed)
  if total and self.done > 0 and self.done < total then
    tail = tail .. " ETA " .. fmt_time(elapsed / self.done * (total - self.done))
  end
  parts[#parts + 1] = tail
  return table.concat(parts, " ")
end

function Progress:_draw(now)
  self.stream:write("\r\27[K", self:_text(now, true))
  if self.stream.flush then self.stream:flush() end
end

function Progress:_line(now)
  self.last_out = now
  self.printed_done = self.done
  self.stream:write(self:_text(now, false), "\n")
  if self.stream.flush then self.stream:flush() end
end

-- A message above the progress line (on a terminal the line is redrawn below it).
function Progress:print(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  local text = table.concat(parts, "\t")
  if self.tty then
    self.stream:write("\r\27[K", text, "\n")
    if not self.closed and self.done > 0 then self:_draw(self.clock()) end
  else
    self.stream:write(text, "\n")
  end
  if self.stream.flush then self.stream:flush() end
end

function Progress:close()
  if self.closed then return self.summary end
  self.closed = true
  local now = self.clock()
  if self.tty then
    self:_draw(now)
    self.stream:write("\n")
    if self.stream.flush then self.stream:flush() end
  elseif self.printed_done ~= self.done then
    self:_line(now)
  end
  local elapsed = now - self.t0
  self.summary = {
    elapsed = elapsed, batches = self.done, samples = self.samples,
    loss = self.loss_n > 0 and self.loss_sum / self.loss_n or nil,
    rate = elapsed > 0 and (self.samples > 0 and self.samples or self.done) / elapsed or nil,
  }
  return self.summary
end

Progress.__close = function(self) self:close() end
Progress.__name = "lunet.Progress"

return progress
