-- The Jupyter kernel's logos: a gold crescent moon ("lune") on a dark rounded square,
-- antialiased by 4 x 4 supersampling, written with lunet's own PNG writer.
-- Usage: lunet tools/kernel_logo.lua OUT_DIR   (writes logo-32x32.png and logo-64x64.png)
local lunet = require "lunet"
local data = require "lunet.data"

local out = assert(arg[1], "usage: lunet tools/kernel_logo.lua OUT_DIR")
local BG, FG = {31, 42, 68}, {245, 197, 66}

-- coverage of the shapes at a point of the unit square: background (rounded), moon
local function shapes(x, y)
  local r = 0.18 -- corner radius
  local cx, cy = math.min(math.max(x, r), 1 - r), math.min(math.max(y, r), 1 - r)
  local inside = (x - cx) ^ 2 + (y - cy) ^ 2 <= r * r
  local moon = (x - 0.5) ^ 2 + (y - 0.5) ^ 2 <= 0.34 ^ 2
    and (x - 0.63) ^ 2 + (y - 0.4) ^ 2 > 0.28 ^ 2
  return inside, moon
end

local function logo(n)
  local rows, S = {}, 4
  for i = 0, n - 1 do
    local row = {}
    for j = 0, n - 1 do
      local bg, fg = 0, 0
      for a = 0, S - 1 do
        for b = 0, S - 1 do
          local inside, moon = shapes((j + (b + 0.5) / S) / n, (i + (a + 0.5) / S) / n)
          if inside then if moon then fg = fg + 1 else bg = bg + 1 end end
        end
      end
      local px = {}
      for c = 1, 3 do
        -- over white where the rounded square leaves the corner empty
        local v = (bg * BG[c] + fg * FG[c] + (S * S - bg - fg) * 255) / (S * S)
        px[c] = math.floor(v + 0.5)
      end
      row[j + 1] = px
    end
    rows[i + 1] = row
  end
  return lunet.tensor(rows, {dtype = "uint8"})
end

os.execute("mkdir -p '" .. out .. "'")
for _, n in ipairs {32, 64} do
  data.write_png(("%s/logo-%dx%d.png"):format(out, n, n), logo(n))
end
