-- cnn_scripts_spec.lua: scripts/mnist_cnn.lua (the course's CNN) and scripts/lenet.lua (d2l's
-- LeNet-5) run two short epochs on a slice of Fashion-MNIST (make data) and reach the losses
-- and accuracies PyTorch 1.13 reaches on the same slice, seed and shuffles
-- (spec/fixtures/cnn_scripts.lua, from spec/fixtures/gen_cnn_scripts.py).
local bin = LUNET_BIN or ((os.getenv("LUNET_BUILD") or "build") .. "/lunet")
local want = dofile("spec/fixtures/cnn_scripts.lua")

local run, read, tmpdir = run_command, read_file, make_tmpdir -- spec/helper.lua

-- metrics.csv as {train_loss = {...}, test_acc = {...}}
local function metrics(path)
  local text = assert(read(path), "no " .. path)
  local m = {train_loss = {}, test_acc = {}}
  for loss, acc in text:gmatch("\n%d+,([%d%.]+),([%d%.]+),") do
    m.train_loss[#m.train_loss + 1] = tonumber(loss)
    m.test_acc[#m.test_acc + 1] = tonumber(acc)
  end
  return m
end

local it_data = read("data/FashionMNIST/raw/t10k-labels-idx1-ubyte") and it or pending

local function check(script, args, expected, title)
  local out = tmpdir()
  local ok, text = run(("%s scripts/%s %s --epochs 2 --no-progress --out %s"):format(bin, script,
    args, out))
  assert.is_true(ok, text)
  local got = metrics(out .. "/metrics.csv")
  assert.are.equal(2, #got.train_loss)
  for i = 1, 2 do
    -- metrics.csv keeps 6 decimals of the loss and 4 of the accuracy
    assert_close(got.train_loss[i], expected.train_loss[i], 2e-5)
    assert.are.equal(("%.4f"):format(expected.test_acc[i]), ("%.4f"):format(got.test_acc[i]))
  end
  assert.is_truthy(assert(read(out .. "/curves.svg")):find(title, 1, true))
  assert.is_truthy(read(out .. "/checkpoint.lnt"))
  return text
end

describe("scripts/mnist_cnn.lua", function()
  it_data("trains the course's CNN as PyTorch does", function()
    local text = check("mnist_cnn.lua", "--dataset fashion --limit 1280", want.cnn,
      "FashionMNIST CNN, SGD, batch 64, lr 0.01, momentum 0.5")
    assert.matches("epoch=2, total loss=[%d%.]+, mean loss=2%.0951", text)
  end)
end)

describe("scripts/lenet.lua", function()
  it_data("trains d2l's LeNet-5 as PyTorch does", function()
    check("lenet.lua", "--limit 2560", want.lenet, "FashionMNIST LeNet-5, SGD, batch 256, lr 0.9")
  end)

  it("refuses to resume a checkpoint of another model", function()
    if not read("data/FashionMNIST/raw/t10k-labels-idx1-ubyte") then return end
    local out = tmpdir()
    assert.is_true((run(("%s scripts/lenet.lua --epochs 1 --limit 256 --no-progress --out %s")
      :format(bin, out))))
    local ok, text = run(("%s scripts/mnist_cnn.lua --dataset fashion --epochs 2 --limit 256 "
      .. "--no-progress --out %s --resume %s/checkpoint.lnt"):format(bin, out, out))
    assert.is_falsy(ok)
    assert.is_truthy(text:find("was trained with --model lenet, not cnn", 1, true), text)
  end)
end)
