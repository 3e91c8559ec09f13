-- lunet.plot: line charts written as standalone SVG files (no dependencies, deterministic:
-- the same calls give the same bytes).
--
--   local fig = lunet.plot.figure{width = 960, height = 360, title = "MLP", cols = 2}
--   local ax = fig:panel{title = "loss", xlabel = "epoch", ylabel = "loss",
--                        xlim = {1, 10}, ylim = {0, nil}, legend = "upper right"}
--   ax:line(xs, ys, {label = "train", color = "#1f77b4", dash = "--", width = 2})
--   ax:line(ys)                                 -- xs = 1, 2, ..., #ys
--   fig:save("out/curves.svg")                  -- temp file + rename; fig:svg() gives the text
--
-- Panels fill a grid of `cols` columns (default: all in one row).  xs / ys are Lua arrays or
-- 1-D tensors; non-finite points are skipped.  Each series is one <polyline> (a series with a
-- single point also gets a <circle>).  Axes get "nice" ticks (steps of 1, 2 or 5 times a power
-- of ten) with labels; a legend lists the series that have a label.
local lunet = require "lunet"

local C = lunet._c
local plot = {}

-- matplotlib's tab10, the colours d2l's figures use
plot.colors = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"}

local DASH = {["-"] = nil, ["--"] = "6,4", ["-."] = "6,3,1.5,3", [":"] = "1.5,3"}

local is_tensor = lunet.is_tensor

local function escape(s)
  return (tostring(s):gsub("[&<>\"']", {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                        ['"'] = "&quot;", ["'"] = "&#39;"}))
end

-- coordinates with two decimals, never "-0.00"
local function num(v)
  local s = string.format("%.2f", v)
  if s == "-0.00" then s = "0.00" end
  return (s:gsub("%.?0+$", ""))
end

local function to_array(v, what)
  if is_tensor(v) then
    if v:dim() ~= 1 then error(("plot: %s must be 1-D, got a %d-D tensor"):format(what, v:dim()), 3) end
    v = v:tolist()
  end
  if type(v) ~= "table" then error(("plot: %s must be an array of numbers or a 1-D tensor"):format(what), 3) end
  local out = {}
  for i = 1, #v do
    local x = v[i]
    if type(x) ~= "number" then
      error(("plot: %s[%d] is not a number (%s)"):format(what, i, type(x)), 3)
    end
    out[i] = x
  end
  return out
end

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- Nice ticks for [lo, hi]: step 1, 2 or 5 x 10^k giving about `target` intervals.
-- Returns the widened limits, the tick values and the number of decimals for labels.
function plot.nice_ticks(lo, hi, target)
  target = target or 5
  if not (finite(lo) and finite(hi)) then lo, hi = 0, 1 end
  if lo > hi then lo, hi = hi, lo end
  if lo == hi then
    local d = lo == 0 and 1 or math.abs(lo) * 0.1
    lo, hi = lo - d, hi + d
  end
  local raw = (hi - lo) / target
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step
  for _, m in ipairs({1, 2, 5, 10}) do
    step = m * mag
    if step >= raw * (1 - 1e-9) then break end
  end
  local first = math.floor(lo / step + 1e-9) * step
  local last = math.ceil(hi / step - 1e-9) * step
  local ticks = {}
  local n = math.floor((last - first) / step + 0.5)
  for i = 0, n do
    local t = first + i * step
    if math.abs(t) < step * 1e-9 then t = 0 end
    ticks[#ticks + 1] = t
  end
  local decimals = math.max(0, -math.floor(math.log(step, 10) + 1e-9))
  return first, last, ticks, decimals
end

local function tick_label(v, decimals)
  local a = math.abs(v)
  if a ~= 0 and (a >= 1e6 or a < 1e-4) then return string.format("%.3g", v) end
  local s = string.format("%." .. decimals .. "f", v)
  if s:match("^%-0%.?0*$") then s = s:sub(2) end
  return s
end

-- Figure and panels --------------------------------------------------------------------

local Figure = {}
Figure.__index = Figure
local Panel = {}
Panel.__index = Panel

function plot.figure(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("plot.figure: expected an options table", 2) end
  local fig = setmetatable({
    width = opts.width or 640,
    height = opts.height or 420,
    title = opts.title,
    cols = opts.cols,
    panels = {},
  }, Figure)
  if type(fig.width) ~= "number" or type(fig.height) ~= "number" or fig.width <= 0 or fig.height <= 0 then
    error("plot.figure: width and height must be positive numbers", 2)
  end
  return fig
end

function Figure:panel(opts)
  opts = opts or {}
  local p = setmetatable({
    title = opts.title, xlabel = opts.xlabel, ylabel = opts.ylabel,
    xlim = opts.xlim, ylim = opts.ylim,
    legend = opts.legend == nil and "upper right" or opts.legend,
    series = {},
    figure = self,
  }, Panel)
  self.panels[#self.panels + 1] = p
  return p
end

function Panel:line(xs, ys, opts)
  -- ax:line(ys [, opts]): xs = 1..#ys
  if ys == nil or (type(ys) == "table" and not is_tensor(ys) and ys[1] == nil and next(ys) ~= nil) then
    xs, ys, opts = nil, xs, ys
  end
  ys = to_array(ys, "ys")
  if xs == nil then
    xs = {}
    for i = 1, #ys do xs[i] = i end
  else
    xs = to_array(xs, "xs")
  end
  if #xs ~= #ys then
    error(("plot: xs has %d values but ys has %d"):format(#xs, #ys), 2)
  end
  opts = opts or {}
  local k = #self.series + 1
  local s = {
    xs = xs, ys = ys, label = opts.label,
    color = opts.color or plot.colors[(k - 1) % #plot.colors + 1],
    dash = opts.dash, width = opts.width or 1.5,
  }
  if s.dash ~= nil and DASH[s.dash] == nil and s.dash ~= "-" then
    error(("plot: unknown dash %q (use \"-\", \"--\", \"-.\" or \":\")"):format(tostring(s.dash)), 2)
  end
  self.series[k] = s
  return self
end

-- data limits of a panel along "xs" or "ys", with lim = {lo, hi} overriding either end
local function data_range(p, field, lim)
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(p.series) do
    local xs, ys = s.xs, s.ys
    for i = 1, #xs do
      local v = s[field][i]
      if finite(xs[i]) and finite(ys[i]) then
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
    end
  end
  if lo > hi then lo, hi = 0, 1 end
  if lim then
    if lim[1] ~= nil then lo = lim[1] end
    if lim[2] ~= nil then hi = lim[2] end
  end
  return lo, hi
end

local function render_panel(p, idx, out, x0, y0, w, h)
  local ml, mr, mt, mb = 62, 14, p.title and 28 or 12, p.xlabel and 46 or 30
  local px, py, pw, ph = x0 + ml, y0 + mt, w - ml - mr, h - mt - mb
  if pw < 10 then pw = 10 end
  if ph < 10 then ph = 10 end
  local xlo, xhi = data_range(p, "xs", p.xlim)
  local ylo, yhi = data_range(p, "ys", p.ylim)
  local xa, xb, xticks, xdec = plot.nice_ticks(xlo, xhi)
  local ya, yb, yticks, ydec = plot.nice_ticks(ylo, yhi)
  -- explicit limits are kept as given; otherwise the axis ends on ticks
  if p.xlim and p.xlim[1] ~= nil then xa = p.xlim[1] end
  if p.xlim and p.xlim[2] ~= nil then xb = p.xlim[2] end
  if p.ylim and p.ylim[1] ~= nil then ya = p.ylim[1] end
  if p.ylim and p.ylim[2] ~= nil then yb = p.ylim[2] end
  if xb == xa then xb = xa + 1 end
  if yb == ya then yb = ya + 1 end
  local function sx(v) return px + (v - xa) / (xb - xa) * pw end
  local function sy(v) return py + ph - (v - ya) / (yb - ya) * ph end
  local eps = 1e-9

  out[#out + 1] = '<g class="panel">'
  out[#out + 1] = ('<rect x="%s" y="%s" width="%s" height="%s" fill="#ffffff" stroke="#444444" stroke-width="1"/>')
    :format(num(px), num(py), num(pw), num(ph))
  -- grid lines and tick labels
  for _, t in ipairs(xticks) do
    if t >= xa - eps * math.abs(xb - xa) and t <= xb + eps * math.abs(xb - xa) then
      local x = num(sx(t))
      out[#out + 1] = ('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd" stroke-width="0.8"/>')
        :format(x, num(py), x, num(py + ph))
      out[#out + 1] = ('<text x="%s" y="%s" font-size="11" text-anchor="middle">%s</text>')
        :format(x, num(py + ph + 15), escape(tick_label(t, xdec)))
    end
  end
  for _, t in ipairs(yticks) do
    if t >= ya - eps * math.abs(yb - ya) and t <= yb + eps * math.abs(yb - ya) then
      local y = num(sy(t))
      out[#out + 1] = ('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd" stroke-width="0.8"/>')
        :format(num(px), y, num(px + pw), y)
      out[#out + 1] = ('<text x="%s" y="%s" font-size="11" text-anchor="end">%s</text>')
        :format(num(px - 6), num(sy(t) + 4), escape(tick_label(t, ydec)))
    end
  end
  if p.title then
    out[#out + 1] = ('<text x="%s" y="%s" font-size="13" font-weight="bold" text-anchor="middle">%s</text>')
      :format(num(px + pw / 2), num(py - 9), escape(p.title))
  end
  if p.xlabel then
    out[#out + 1] = ('<text x="%s" y="%s" font-size="12" text-anchor="middle">%s</text>')
      :format(num(px + pw / 2), num(py + ph + 34), escape(p.xlabel))
  end
  if p.ylabel then
    local cx, cy = num(x0 + 14), num(py + ph / 2)
    out[#out + 1] = ('<text x="%s" y="%s" font-size="12" text-anchor="middle" transform="rotate(-90 %s %s)">%s</text>')
      :format(cx, cy, cx, cy, escape(p.ylabel))
  end
  -- the series, clipped to the plot area
  local clip = "clip" .. idx
  out[#out + 1] = ('<clipPath id="%s"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath>')
    :format(clip, num(px), num(py), num(pw), num(ph))
  for _, s in ipairs(p.series) do
    local pts = {}
    for i = 1, #s.xs do
      local x, y = s.xs[i], s.ys[i]
      if finite(x) and finite(y) then pts[#pts + 1] = num(sx(x)) .. "," .. num(sy(y)) end
    end
    local dash = DASH[s.dash or "-"]
    out[#out + 1] = ('<polyline clip-path="url(#%s)" fill="none" stroke="%s" stroke-width="%s"%s points="%s"/>')
      :format(clip, escape(s.color), num(s.width), dash and (' stroke-dasharray="' .. dash .. '"') or "",
              table.concat(pts, " "))
    if #pts == 1 then
      local x, y = pts[1]:match("([^,]+),(.+)")
      out[#out + 1] = ('<circle cx="%s" cy="%s" r="2.5" fill="%s"/>'):format(x, y, escape(s.color))
    end
  end
  -- legend
  local labeled = {}
  for _, s in ipairs(p.series) do if s.label ~= nil then labeled[#labeled + 1] = s end end
  if #labeled > 0 and p.legend ~= false and p.legend ~= "none" then
    local longest = 0
    for _, s in ipairs(labeled) do longest = math.max(longest, utf8.len(tostring(s.label)) or #tostring(s.label)) end
    local lw, lh = 34 + longest * 6.6, 8 + 16 * #labeled
    local pos = type(p.legend) == "string" and p.legend or "upper right"
    local lx = pos:find("left") and px + 8 or px + pw - lw - 8
    local ly = pos:find("lower") and py + ph - lh - 8 or py + 8
    out[#out + 1] = ('<g class="legend"><rect x="%s" y="%s" width="%s" height="%s" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb"/>')
      :format(num(lx), num(ly), num(lw), num(lh))
    for i, s in ipairs(labeled) do
      local yy = ly + 4 + 16 * (i - 1) + 8
      local dash = DASH[s.dash or "-"]
      out[#out + 1] = ('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"%s/>')
        :format(num(lx + 6), num(yy), num(lx + 26), num(yy), escape(s.color), num(s.width),
                dash and (' stroke-dasharray="' .. dash .. '"') or "")
      out[#out + 1] = ('<text x="%s" y="%s" font-size="11">%s</text>'):format(num(lx + 30), num(yy + 4), escape(s.label))
    end
    out[#out + 1] = "</g>"
  end
  out[#out + 1] = "</g>"
end

function Figure:svg()
  local n = #self.panels
  local cols = self.cols or math.max(n, 1)
  local rows = math.max(1, math.ceil(n / cols))
  local top = self.title and 30 or 0
  local cw, ch = self.width / cols, (self.height - top) / rows
  local out = {
    '<?xml version="1.0" encoding="UTF-8"?>',
    ('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="sans-serif">')
      :format(num(self.width), num(self.height), num(self.width), num(self.height)),
    ('<rect width="%s" height="%s" fill="#ffffff"/>'):format(num(self.width), num(self.height)),
  }
  if self.title then
    out[#out + 1] = ('<text x="%s" y="21" font-size="15" font-weight="bold" text-anchor="middle">%s</text>')
      :format(num(self.width / 2), escape(self.title))
  end
  for i, p in ipairs(self.panels) do
    local r, c = (i - 1) // cols, (i - 1) % cols
    render_panel(p, i, out, c * cw, top + r * ch, cw, ch)
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n") .. "\n"
end

function Figure:save(path)
  if type(path) ~= "string" then error("plot: save(path): path must be a string", 2) end
  C.write_file_atomic(path, self:svg())
  return path
end

return plot
