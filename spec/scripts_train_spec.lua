-- scripts_train_spec.lua: the training scripts.  perception.lua prints PyTorch's values;
-- mnist_mlp.lua and softmax_regression.lua run one short epoch on a slice of the real data
-- (make data) and learn; a checkpointed run resumed gives the uninterrupted run's numbers.
local bin = LUNET_BIN or ((os.getenv("LUNET_BUILD") or "build") .. "/lunet")

local run, read, tmpdir = run_command, read_file, make_tmpdir -- spec/helper.lua

local have_fashion = read("data/FashionMNIST/raw/t10k-labels-idx1-ubyte") ~= nil
local have_mnist = read("data/MNIST/raw/t10k-labels-idx1-ubyte") ~= nil
  or read("data/MNIST/raw/t10k-labels-idx1-ubyte.gz") ~= nil

describe("scripts/perception.lua", function()
  it("prints PyTorch's parameters, outputs and the same loss three ways", function()
    local ok, out = run(bin .. " scripts/perception.lua")
    assert.is_true(ok, out)
    for line in read("spec/fixtures/perception.txt"):gmatch("([^\n]+)") do
      local want = line:gsub("torch%.", "lunet."):gsub("^(layer%d%.%a) ", "%1\t")
      assert.is_truthy(out:find(want, 1, true), "missing line: " .. want)
    end
    assert.matches("Perception%(\n  %(layer1%): Linear%(%)\n  %(layer2%): Linear%(%)\n%)", out)
    assert.matches("three steps 0%.730329, CrossEntropyLoss 0%.730329", out)
  end)
end)

-- metrics.csv rows as tables of numbers
local function csv(path)
  local text = assert(read(path), "no " .. path)
  local rows, header = {}, nil
  for line in text:gmatch("([^\n]+)") do
    local cells = {}
    for c in line:gmatch("[^,]+") do cells[#cells + 1] = c end
    if not header then header = cells else
      local r = {}
      for i, k in ipairs(header) do r[k] = tonumber(cells[i]) end
      rows[#rows + 1] = r
    end
  end
  return rows, header
end

describe("scripts/mnist_mlp.lua", function()
  local it_data = have_fashion and it or pending

  it_data("learns in one short epoch and writes metrics, figure and checkpoint", function()
    local out = tmpdir()
    local ok, text = run(("%s scripts/mnist_mlp.lua --dataset fashion --epochs 2 --limit 6400 --no-progress --out %s")
      :format(bin, out))
    assert.is_true(ok, text)
    local rows, header = csv(out .. "/metrics.csv")
    assert.are.same({"epoch", "train_loss", "test_acc", "epoch_seconds"}, header)
    assert.are.equal(2, #rows)
    assert.is_true(rows[2].train_loss < rows[1].train_loss)
    assert.is_true(rows[2].test_acc > 0.3, "accuracy " .. rows[2].test_acc .. " is near chance (0.1)")
    assert.is_true(rows[1].epoch_seconds > 0)
    local svg = assert(read(out .. "/curves.svg"))
    local _, polylines = svg:gsub("<polyline", "")
    assert.are.equal(2, polylines)
    assert.is_truthy(read(out .. "/checkpoint.lnt"))
    assert.matches("Accuracy on test set: %d+%.%d+%%", text)
  end)

  it_data("resumed from a checkpoint, continues exactly as the uninterrupted run", function()
    local a, b = tmpdir(), tmpdir()
    local common = ("%s scripts/mnist_mlp.lua --dataset fashion --limit 3200 --no-progress "):format(bin)
    local ok, full = run(common .. "--epochs 3 --out " .. a)
    assert.is_true(ok, full)
    ok = run(common .. "--epochs 1 --out " .. b)
    assert.is_true(ok)
    local ok2, resumed = run(common .. "--epochs 3 --out " .. b .. " --resume " .. b .. "/checkpoint.lnt")
    assert.is_true(ok2, resumed)
    local ra, rb = csv(a .. "/metrics.csv"), csv(b .. "/metrics.csv")
    assert.are.equal(3, #rb)
    for i = 1, 3 do
      assert.are.equal(ra[i].train_loss, rb[i].train_loss)
      assert.are.equal(ra[i].test_acc, rb[i].test_acc)
    end
    -- the printed lines of epochs 2 and 3 are the same too
    local function tail(s) return s:match("(%[epoch=2.*)Accuracy on test set[^\n]*\n[^\n]*$") or s:match("(epoch=2,.*)") end
    assert.is_truthy(resumed:find("resumed from", 1, true))
    assert.are.equal(full:match("epoch=3, total loss=([%d%.]+)"), resumed:match("epoch=3, total loss=([%d%.]+)"))
    assert.is_truthy(tail(full))
  end)

  it_data("with --optimizer adamw reaches PyTorch's losses and accuracies, and resumes exactly", function()
    -- spec/fixtures/mlp_adamw.lua: the same run in PyTorch 1.13 (spec/fixtures/gen_mlp_adamw.py)
    local want = dofile("spec/fixtures/mlp_adamw.lua")
    local a, b = tmpdir(), tmpdir()
    local common = ("%s scripts/mnist_mlp.lua --dataset fashion --optimizer adamw --limit 3200 --no-progress ")
      :format(bin)
    local ok, text = run(common .. "--epochs 2 --out " .. a)
    assert.is_true(ok, text)
    local rows = csv(a .. "/metrics.csv")
    assert.are.equal(2, #rows)
    for i = 1, 2 do
      assert_close(rows[i].train_loss, want.train_loss[i], 1e-5)
      assert.are.equal(("%.4f"):format(want.test_acc[i]), ("%.4f"):format(rows[i].test_acc))
    end
    assert.is_truthy(assert(read(a .. "/curves.svg")):find("AdamW, batch 64, lr 0.001", 1, true))
    ok = run(common .. "--epochs 1 --out " .. b)
    assert.is_true(ok)
    local ok2, resumed = run(common .. "--epochs 2 --out " .. b .. " --resume " .. b .. "/checkpoint.lnt")
    assert.is_true(ok2, resumed)
    local rb = csv(b .. "/metrics.csv")
    for i = 1, 2 do
      assert.are.same({rows[i].train_loss, rows[i].test_acc}, {rb[i].train_loss, rb[i].test_acc})
    end
    local sgd = common:gsub("adamw", "sgd")
    local ok3, wrong = run(sgd .. "--epochs 2 --out " .. b .. " --resume " .. b .. "/checkpoint.lnt")
    assert.is_falsy(ok3)
    assert.is_truthy(wrong:find("was trained with --optimizer adamw, not sgd", 1, true))
  end)

  local it_mnist = have_mnist and it or pending
  it_mnist("trains on the MNIST digits", function()
    local out = tmpdir()
    local ok, text = run(("%s scripts/mnist_mlp.lua --epochs 2 --lr 0.05 --no-progress --out %s"):format(bin, out))
    assert.is_true(ok, text)
    local rows = csv(out .. "/metrics.csv")
    assert.is_true(rows[1].test_acc > 0.5, text)
  end)
end)

describe("scripts/softmax_regression.lua", function()
  local it_data = have_fashion and it or pending
  it_data("learns in one epoch on a slice and draws the three curves", function()
    local out = tmpdir()
    local ok, text = run(("%s scripts/softmax_regression.lua --epochs 2 --limit 12000 --out %s"):format(bin, out))
    assert.is_true(ok, text)
    local rows, header = csv(out .. "/metrics.csv")
    assert.are.same({"epoch", "train_loss", "train_acc", "test_acc", "epoch_seconds"}, header)
    assert.is_true(rows[2].train_loss < rows[1].train_loss)
    assert.is_true(rows[2].test_acc > 0.6, text)
    local svg = assert(read(out .. "/curves.svg"))
    local _, polylines = svg:gsub("<polyline", "")
    assert.are.equal(3, polylines)
    assert.matches("epoch 1, train loss %d%.%d+, train acc %d%.%d+, test acc %d%.%d+", text)
  end)
end)
