-- Seed 000, "Fashion_MNIST数据集": load Fashion-MNIST with ToTensor, batch 256, shuffled
-- DataLoaders for train and test, print the first batch's shapes and the class names, and
-- write a picture of the first 16 training images with their labels.
--
--   build/lunet scripts/fashion_data.lua [out_dir] [data_root]     (defaults: out, data)
--
-- Needs the data under data/FashionMNIST/raw (`make data`).  Writes
-- <out_dir>/fashion_first16.png (4 x 4 grid, each image 2x with its label digit drawn under
-- it) and <out_dir>/fashion_first16.txt (position, label, class name).
local lunet = rawget(_G, "lunet") or require "lunet"
local data = lunet.data
local C = lunet._c

local out_dir = arg and arg[1] or "out"
local root = arg and arg[2] or "data"

local function load_data_fashion_mnist(batch_size)
  local tf = data.transforms.ToTensor()
  local train = data.FashionMNIST {root = root, train = true, transform = tf}
  local test = data.FashionMNIST {root = root, train = false, transform = tf}
  return data.DataLoader(train, {batch_size = batch_size, shuffle = true}),
         data.DataLoader(test, {batch_size = batch_size, shuffle = true}), train
end

local batch_size = 256
local train_iter, test_iter, train_ds = load_data_fashion_mnist(batch_size)

local X1, y1 = train_iter:iter()() -- the first batch
print(tostring(X1:size()) .. " " .. tostring(y1:size()))
print(string.format("%d training batches, %d test batches", #train_iter, #test_iter))
print("classes:")
for k, name in ipairs(train_ds.classes) do print(string.format("  %d  %s", k - 1, name)) end

-- ---------------------------------------------------------------- picture --------------

-- 3x5 digits, one string of 15 bits per digit, row by row
local FONT = {
  [0] = "111101101101111", "010110010010111", "111001111100111", "111001111001111",
  "101101111001001", "111100111001111", "111100111101111", "111001001010010",
  "111101111101111", "111101111001111",
}

local S, PAD, STRIP = 2, 4, 14          -- image scale, gap, label strip height
local CELL_W, CELL_H = 28 * S, 28 * S + STRIP
local W, H = 4 * (CELL_W + PAD) + PAD, 4 * (CELL_H + PAD) + PAD
local canvas = {}
for i = 1, W * H do canvas[i] = 48 end   -- dark grey background
local function set(x, y, v) canvas[y * W + x + 1] = v end

local function draw_digit(d, x0, y0, scale)
  local bits = FONT[d]
  for r = 0, 4 do
    for c = 0, 2 do
      if bits:sub(r * 3 + c + 1, r * 3 + c + 1) == "1" then
        for dy = 0, scale - 1 do
          for dx = 0, scale - 1 do set(x0 + c * scale + dx, y0 + r * scale + dy, 255) end
        end
      end
    end
  end
end

local caption = {"position label class"}
for i = 0, 15 do
  local img, label = train_ds.data:select(0, i), math.tointeger(train_ds.targets[i])
  local px = C.u8_to_string(img)
  local gx, gy = i % 4, i // 4
  local x0, y0 = PAD + gx * (CELL_W + PAD), PAD + gy * (CELL_H + PAD)
  for r = 0, 27 do
    for c = 0, 27 do
      local v = px:byte(r * 28 + c + 1)
      for dy = 0, S - 1 do
        for dx = 0, S - 1 do set(x0 + c * S + dx, y0 + r * S + dy, v) end
      end
    end
  end
  draw_digit(label, x0 + CELL_W // 2 - 3, y0 + 28 * S + 2, 2)
  caption[#caption + 1] = string.format("%d %d %s", i, label, train_ds.classes[label + 1])
end

os.execute("mkdir -p '" .. out_dir:gsub("'", "'\\''") .. "'")
local bytes = {}
for i = 1, #canvas, 4096 do
  bytes[#bytes + 1] = string.char(table.unpack(canvas, i, math.min(i + 4095, #canvas)))
end
local png = out_dir .. "/fashion_first16.png"
data.write_png(png, C.u8_from_string(table.concat(bytes), H, W))
local f = assert(io.open(out_dir .. "/fashion_first16.txt", "w"))
f:write(table.concat(caption, "\n"), "\n")
f:close()
print("wrote " .. png .. " (" .. W .. "x" .. H .. ") and " .. out_dir .. "/fashion_first16.txt")
