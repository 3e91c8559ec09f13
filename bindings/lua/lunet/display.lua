-- lunet.display: rich output of values, for the Jupyter kernel (`lunet --kernel`).
--
--   lunet.display(x)                     -- show x below the cell (text, SVG, PNG, HTML)
--   local h = lunet.display(x, {display_id = "loss"})   -- or display_id = true
--   h:update(y)                          -- redraw that output in place
--   lunet.display.bundle(x)              --> {["text/plain"] = ..., ["image/svg+xml"] = ...}
--   lunet.display.image(t)               -- a (C, H, W) / (H, W) tensor as a PNG
--   lunet.display.grid(batch, {nrow = 8, padding = 2})  -- (N, C, H, W) -> one (C, H', W') image
--   lunet.display.clear(wait)            -- clear the cell's output (wait: at the next output)
--
-- What a value shows as (the richest one a frontend knows wins; text/plain is always there):
--  - a lunet.plot figure: image/svg+xml (fig:svg());
--  - a 3-D tensor (C, H, W) with C = 1 or 3, H and W >= 4, of dtype uint8 or with every value
--    in [0, 1]: image/png (small images are shown enlarged: metadata width);
--  - any other tensor: text/plain (PyTorch's format) and, for 1-D and 2-D tensors, a compact
--    text/html table (at most 20 x 20 cells shown, the rest elided);
--  - anything with a metatable field __mimebundle(v) -> {mime = text}: that bundle.
-- Outside a notebook (no kernel running) display(x) prints text/plain to io.stdout.
local lunet = require "lunet"

local C = lunet._c
local M = {}

-- Set by the kernel: _publish(msg_type, content) sends display_data / update_display_data /
-- clear_output; _text(v) is the REPL's printer (tostring until then).
M._publish = nil
M._text = function(v) return tostring(v) end

local function is_tensor(v) return lunet.is_tensor(v) end

local figure_mt
local function is_figure(v)
  if type(v) ~= "table" then return false end
  if not figure_mt then figure_mt = getmetatable(require("lunet.plot").figure{}) end
  return getmetatable(v) == figure_mt
end

-- RFC 4648 base64 (what the protocol wants for binary MIME types), in C
local base64 = C.base64

-- A (C, H, W) or (H, W) tensor as uint8 (H, W) or (H, W, 3), ready for the PNG writer.
local function to_u8_image(t)
  if t:dim() == 3 and t:size(0) == 1 then t = t:select(0, 0) end
  if t:dim() == 3 then t = t:permute(1, 2, 0) end
  if t.dtype ~= "uint8" then t = (t:float() * 255 + 0.5):clamp(0, 255):byte() end
  return t:contiguous()
end

local function looks_like_image(t)
  if t:dim() ~= 3 then return false end
  local c, h, w = t:size(0), t:size(1), t:size(2)
  if not (c == 1 or c == 3) or h < 4 or w < 4 then return false end
  if t.dtype == "uint8" then return true end
  if not t:is_floating_point() then return false end
  return t:min():item() >= 0 and t:max():item() <= 1
end

-- PNG bytes of an image tensor, through the project's PNG writer (it writes files).
local function png(t)
  local img = to_u8_image(t)
  local path = os.tmpname()
  local ok, err = pcall(C.write_png, path, img)
  local bytes
  if ok then
    local f = io.open(path, "rb")
    if f then bytes = f:read("a"); f:close() end
  end
  os.remove(path)
  if not ok then error(err, 2) end
  return bytes, img:size(1), img:size(0)
end

local function html_escape(s)
  return (tostring(s):gsub("[&<>\"]", {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;"}))
end

local MAXCELLS = 20

local function cell(v)
  if math.type(v) == "float" then return ("%.4g"):format(v) end
  return tostring(v)
end

-- positions shown along a dimension of size n: all, or the first and last halves of MAXCELLS
local function shown(n)
  local idx = {}
  if n <= MAXCELLS then
    for i = 0, n - 1 do idx[#idx + 1] = i end
  else
    for i = 0, MAXCELLS // 2 - 1 do idx[#idx + 1] = i end
    idx[#idx + 1] = false
    for i = n - MAXCELLS // 2, n - 1 do idx[#idx + 1] = i end
  end
  return idx
end

-- A compact HTML table of a 1-D or 2-D tensor (index headers, elided middle).
local function html_table(t)
  local x = t:dim() == 1 and t:view(1, -1) or t
  local rows, cols = shown(x:size(0)), shown(x:size(1))
  local out = {'<table class="lunet-tensor" style="font-family:monospace;font-size:small">',
               "<caption>", html_escape(("tensor %s, %s"):format(
                 table.concat(t:size(), " x "), t.dtype)), "</caption><tr><th></th>"}
  for _, j in ipairs(cols) do out[#out + 1] = "<th>" .. (j and j or "&hellip;") .. "</th>" end
  out[#out + 1] = "</tr>"
  for _, i in ipairs(rows) do
    out[#out + 1] = "<tr><th>" .. (i and i or "&vellip;") .. "</th>"
    for _, j in ipairs(cols) do
      local s = (i and j) and cell(x[i][j]) or "&hellip;"
      out[#out + 1] = "<td>" .. s .. "</td>"
    end
    out[#out + 1] = "</tr>"
  end
  out[#out + 1] = "</table>"
  return table.concat(out)
end

-- An image to display: display.image(t) shows t as a PNG whatever its values' range.
local Image = {}
Image.__index = Image
Image.__name = "lunet.display.Image"
Image.__tostring = function(self)
  return ("<image %s>"):format(table.concat(self.tensor:size(), "x"))
end
Image.__mimebundle = function(self)
  local bytes, w = png(self.tensor)
  local meta = {}
  if w < 112 then meta["image/png"] = {width = w * math.max(1, 112 // w)} end
  return {["image/png"] = base64(bytes), ["text/plain"] = tostring(self)}, meta
end

function M.image(t, opts)
  if not is_tensor(t) or (t:dim() ~= 2 and t:dim() ~= 3) then
    error("display.image: expected a (C, H, W) or (H, W) tensor", 2)
  end
  if t:dim() == 3 and t:size(0) ~= 1 and t:size(0) ~= 3 then
    error(("display.image: %d channels (1 or 3 expected)"):format(t:size(0)), 2)
  end
  opts = opts or {}
  if t.dtype ~= "uint8" and opts.normalize ~= false then
    local lo, hi = t:min():item(), t:max():item()
    if lo < 0 or hi > 1 then t = (t - lo) / math.max(hi - lo, 1e-12) end
  end
  return setmetatable({tensor = t}, Image)
end

-- torchvision.utils.make_grid: (N, C, H, W) -> (C, rows * (H + p) + p, nrow * (W + p) + p)
function M.grid(batch, opts)
  opts = opts or {}
  if not is_tensor(batch) or batch:dim() ~= 4 then error("display.grid: expected an (N, C, H, W) tensor", 2) end
  local nrow, pad = opts.nrow or 8, opts.padding or 2
  local n, c, h, w = batch:size(0), batch:size(1), batch:size(2), batch:size(3)
  local cols = math.min(nrow, n)
  local rows = (n + cols - 1) // cols
  local g = lunet.full({c, rows * (h + pad) + pad, cols * (w + pad) + pad}, opts.pad_value or 0,
                       {dtype = batch.dtype})
  for i = 0, n - 1 do
    local r, q = i // cols, i % cols
    g:narrow(1, pad + r * (h + pad), h):narrow(2, pad + q * (w + pad), w):copy_(batch[i])
  end
  return M.image(g, opts)
end

-- The MIME bundle (and metadata) of a value.
function M.bundle(v)
  local mt = getmetatable(v)
  local data, meta = {}, {}
  if type(mt) == "table" and type(rawget(mt, "__mimebundle")) == "function" then
    data, meta = mt.__mimebundle(v)
    meta = meta or {}
  elseif is_figure(v) then
    data["image/svg+xml"] = v:svg()
    data["text/plain"] = ("<lunet.plot figure %gx%g, %d panel%s>"):format(v.width, v.height,
      #v.panels, #v.panels == 1 and "" or "s")
  elseif is_tensor(v) then
    if looks_like_image(v) then
      local d = Image.__mimebundle({tensor = v})
      data["image/png"] = d["image/png"]
      local w = v:size(2)
      if w < 112 then meta["image/png"] = {width = w * math.max(1, 112 // w)} end
    elseif (v:dim() == 1 or v:dim() == 2) and v:numel() > 0 then
      data["text/html"] = html_table(v)
    end
  end
  if data["text/plain"] == nil then data["text/plain"] = M._text(v) end
  return data, meta
end

local Handle = {}
Handle.__index = Handle
Handle.__name = "lunet.display.Handle"
Handle.__tostring = function(self) return ("<display %s>"):format(self.display_id) end

local next_id = 0

-- Shows v.  With opts.display_id (a string, or true for a fresh one) it returns a handle
-- whose :update(w) redraws that output; opts.update = true redraws an earlier output with
-- that display_id instead of adding one.
local function display(v, opts)
  opts = opts or {}
  local id = opts.display_id
  if id == nil or id == true then
    next_id = next_id + 1
    id = ("lunet-%d-%d"):format(os.time(), next_id)
  end
  local h = setmetatable({display_id = tostring(id)}, Handle)
  if M._publish then
    local data, meta = M.bundle(v)
    M._publish(opts.update and "update_display_data" or "display_data",
              {data = data, metadata = meta, transient = {display_id = h.display_id}})
  elseif not opts.update then
    io.stdout:write(M._text(v), "\n")
  end
  if opts.display_id ~= nil then return h end
end

function Handle:update(v) display(v, {display_id = self.display_id, update = true}) end

function M.clear(wait)
  if M._publish then M._publish("clear_output", {wait = wait and true or false}) end
end

return setmetatable(M, {__call = function(_, v, opts) return display(v, opts) end})
