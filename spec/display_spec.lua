-- lunet.display outside a notebook: the MIME bundles it would send (the kernel's own tests,
-- tests/kernel/test_kernel.py, check them on the wire), and its text fallback.
local lunet = require "lunet"
local display = lunet.display

-- RFC 4648 base64 decoding, to look inside the PNG bundles
local function unbase64(s)
  local B = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  s = s:gsub("=+$", "")
  local bits, nbits = 0, 0
  for c in s:gmatch(".") do
    bits = bits << 6 | (B:find(c, 1, true) - 1)
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char(bits >> nbits & 255)
    end
  end
  return table.concat(out)
end

-- width and height from a PNG's IHDR chunk
local function png_size(bytes)
  assert(bytes:sub(1, 8) == "\137PNG\r\n\26\n", "not a PNG")
  return ((">I4"):unpack(bytes, 17)), ((">I4"):unpack(bytes, 21))
end

describe("lunet.display", function()
  it("shows a figure as SVG and text", function()
    local fig = lunet.plot.figure{width = 300, height = 200}
    fig:panel{}:line({1, 2, 3})
    local data = display.bundle(fig)
    assert.are.equal(fig:svg(), data["image/svg+xml"])
    assert.are.equal("<lunet.plot figure 300x200, 1 panel>", data["text/plain"])
  end)

  it("shows a (C, H, W) image tensor as a PNG, enlarged when small", function()
    local data, meta = display.bundle(lunet.full({1, 8, 6}, 0.5))
    local w, h = png_size(unbase64(data["image/png"]))
    assert.are.same({6, 8}, {w, h})
    assert.are.equal(6 * 18, meta["image/png"].width)
    assert.are.equal(tostring(lunet.full({1, 8, 6}, 0.5)), data["text/plain"])
    local rgb = display.bundle(lunet.zeros(3, 5, 4, {dtype = lunet.uint8}))
    assert.are.same({4, 5}, {png_size(unbase64(rgb["image/png"]))})
  end)

  it("does not take other 3-D tensors for images", function()
    assert.is_nil(display.bundle(lunet.full({1, 8, 8}, 2.0))["image/png"]) -- outside [0, 1]
    assert.is_nil(display.bundle(lunet.zeros(2, 8, 8))["image/png"])      -- 2 channels
  end)

  it("gives 1-D and 2-D tensors an HTML table, elided past 20 cells", function()
    local html = display.bundle(lunet.arange(6):view(2, 3))["text/html"]
    assert.truthy(html:find("<caption>tensor 2 x 3, int64</caption>", 1, true))
    assert.truthy(html:find("<td>5</td>", 1, true))
    local big = display.bundle(lunet.arange(100))["text/html"]
    assert.truthy(big:find("&hellip;", 1, true))
    assert.falsy(big:find("<td>50</td>", 1, true))
    assert.truthy(big:find("<td>99</td>", 1, true))
  end)

  it("rescales display.image and lays out display.grid as make_grid", function()
    local data = display.bundle(display.image(lunet.arange(16.0):view(4, 4)))
    assert.are.same({4, 4}, {png_size(unbase64(data["image/png"]))})
    local g = display.grid(lunet.zeros(5, 1, 4, 4), {nrow = 3, padding = 2})
    assert.are.same({1, 2 * 6 + 2, 3 * 6 + 2}, g.tensor:size())
    assert.has_error(function() display.image(lunet.zeros(2, 4, 4)) end,
      "display.image: 2 channels (1 or 3 expected)")
  end)

  it("uses __mimebundle when a value has one", function()
    local v = setmetatable({}, {__mimebundle = function() return {["text/markdown"] = "*hi*"} end})
    local data = display.bundle(v)
    assert.are.equal("*hi*", data["text/markdown"])
    assert.is_string(data["text/plain"])
  end)

  it("prints the text outside a notebook, and returns a handle only with display_id", function()
    local real = io.stdout
    local got = {}
    io.stdout = {write = function(self, ...) for _, s in ipairs({...}) do got[#got + 1] = s end return self end}
    local ok, h1 = pcall(display, 42)
    local _, h2 = pcall(display, "x", {display_id = "d"})
    io.stdout = real
    assert.is_true(ok)
    assert.are.equal("42\nx\n", table.concat(got))
    assert.is_nil(h1)
    assert.are.equal("d", h2.display_id)
  end)
end)
