-- mnist_mlp.lua - the MNIST notebook (seed 002) as a Lunet script: a 784-512-256-128-64-10
-- ReLU network, ToTensor + Normalize((0.1307,), (0.3081,)), batches of 64 shuffled,
-- cross-entropy, SGD(lr = 0.01, momentum = 0.5), 10 epochs, test accuracy after each epoch.
--
--   build/lunet scripts/mnist_mlp.lua [--dataset mnist|fashion] [--epochs 10] [--out DIR]
--                                      [--optimizer sgd|adam|adamw] [--lr LR] [--weight-decay WD]
--
-- Writes into --out: metrics.csv (one row per epoch), curves.svg (loss and accuracy per
-- epoch) and checkpoint.lnt (model, optimizer, random state and history), rewritten after
-- every epoch; --resume CHECKPOINT continues a run exactly where it stopped.  Seeded like
-- the notebook's PyTorch run (torch.manual_seed before building the model), the weights and
-- the shuffles are PyTorch's own.
--
-- --model picks the network: mlp (the notebook's, default), cnn (the course's CNN:
-- Conv2d(1, 10, 5) -> MaxPool2d(2) -> ReLU -> Conv2d(10, 20, 5) -> MaxPool2d(2) -> ReLU ->
-- Linear(320, 10)) or lenet (d2l's LeNet-5: sigmoid, average pooling, xavier_uniform_
-- weights).  scripts/mnist_cnn.lua and scripts/lenet.lua run this loop with their settings.
--
-- --distributed trains data-parallel on the ranks mpirun started (lunet.distributed):
--   mpirun -np 2 build/lunet scripts/mnist_mlp.lua --distributed --dataset fashion
-- The global --batch-size is split across the ranks (DistributedSampler, seeded with --seed),
-- the model is wrapped in DistributedDataParallel, the test set is split and the counts
-- all-reduced; only rank 0 prints and writes the metrics, the figure and the checkpoint.
local lunet = lunet or require "lunet"
local argparse = require "argparse"
local nn, optim, data = lunet.nn, lunet.optim, lunet.data
local clock = lunet.monotonic
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
package.path = here .. "?.lua;" .. package.path

-- scripts/mnist_cnn.lua and scripts/lenet.lua run this file as loadfile(...)(settings):
-- settings.name names the script, settings.defaults lists {option [, value]} pairs used when
-- the command line does not give that option.
local settings = type((...)) == "table" and (...) or {defaults = {}}
local argv = {}
do
  local given = {}
  for i, a in ipairs(arg) do
    argv[i] = a
    given[a:match("^(%-%-[%w-]+)") or ""] = true
  end
  for _, d in ipairs(settings.defaults) do
    if not given[d[1]] then table.insert(argv, d[1]); argv[#argv + 1] = d[2] end
  end
end

local parser = argparse(settings.name or "mnist_mlp.lua", settings.description
  or "Train the MNIST notebook's MLP with Lunet.")
parser:option("--model", "Network: mlp (the notebook's), cnn (the course's CNN) or lenet (d2l's LeNet-5).",
  "mlp"):choices({"mlp", "cnn", "lenet"})
parser:option("--dataset", "Data set: mnist or fashion.", "mnist"):choices({"mnist", "fashion"})
parser:option("--data", "Folder holding MNIST/raw and FashionMNIST/raw (make data).", "data")
parser:option("--epochs", "Number of epochs.", "10"):convert(math.tointeger)
parser:option("--batch-size", "Training batch size.", "64"):convert(math.tointeger)
parser:option("--test-batch-size", "Test batch size.", "1000"):convert(math.tointeger)
parser:option("--optimizer", "Optimizer: sgd (with --momentum), adam or adamw.", "sgd")
  :choices({"sgd", "adam", "adamw"})
parser:option("--lr", "Learning rate (default 0.01 for sgd, 0.001 for adam and adamw)."):convert(tonumber)
parser:option("--momentum", "SGD momentum.", "0.5"):convert(tonumber)
parser:option("--weight-decay", "Weight decay (default: the optimizer's, 0.01 for adamw, else 0).")
  :convert(tonumber)
parser:option("--seed", "Seed of the random generator.", "0"):convert(math.tointeger)
parser:option("--out", "Output folder.", "out/mnist_mlp")
parser:option("--resume", "Checkpoint to continue from.")
parser:option("--limit", "Use only the first N training images (and N/6 test images).")
  :convert(math.tointeger)
parser:flag("--no-progress", "No progress line during an epoch.")
parser:flag("--distributed", "Data-parallel over the ranks of mpirun: --batch-size is split across them.")
parser:flag("--no-normalize", "ToTensor only, without Normalize((0.1307,), (0.3081,)) (d2l's LeNet).")
local args = parser:parse(argv)
args.lr = args.lr or (args.optimizer == "sgd" and 0.01 or 0.001)

-- one rank, or one of several: rank 0 alone prints and writes
local dist = lunet.distributed
local rank, world = 0, 1
if args.distributed then
  dist.init_process_group{backend = "mpi"}
  rank, world = dist.get_rank(), dist.get_world_size()
  if args.batch_size % world ~= 0 then
    error(("--batch-size %d does not split across %d ranks"):format(args.batch_size, world))
  end
end
local function print0(...) if rank == 0 then print(...) end end

-- ---------------------------------------------------------------- the model

local models = require "mnist_models" -- mlp, cnn, lenet
local model_names = {mlp = "MLP", cnn = "CNN", lenet = "LeNet-5"}

-- ---------------------------------------------------------------- data

local transform = data.transforms.Compose(args.no_normalize and {data.transforms.ToTensor()} or {
  data.transforms.ToTensor(), data.transforms.Normalize({0.1307}, {0.3081}),
})
local Dataset = args.dataset == "fashion" and data.FashionMNIST or data.MNIST

-- --limit n: a quick run on the first n training samples (and n/6 test samples)
local train_dataset = Dataset{root = args.data, train = true, transform = transform, limit = args.limit}
local test_dataset = Dataset{root = args.data, train = false, transform = transform,
  limit = args.limit and math.max(args.limit // 6, 1)}

-- the random stream: seed, then the weights, then each epoch's loader draws (PyTorch's order)
lunet.manual_seed(args.seed)
local net = models[args.model]()
local model = args.distributed and nn.parallel.DistributedDataParallel(net) or net
local criterion = nn.CrossEntropyLoss()
local optimizer
if args.optimizer == "sgd" then
  optimizer = optim.SGD(model:parameters(),
    {lr = args.lr, momentum = args.momentum, weight_decay = args.weight_decay})
else
  optimizer = (args.optimizer == "adam" and optim.Adam or optim.AdamW)(model:parameters(),
    {lr = args.lr, weight_decay = args.weight_decay})
end
local train_loader, test_loader, train_sampler
if args.distributed then
  -- each rank reads its share; the test set is cut in strides (rank, rank + world, ...)
  -- without padding, so that the all-reduced counts cover every test image once
  train_sampler = data.DistributedSampler(train_dataset, {shuffle = true, seed = args.seed})
  train_loader = data.DataLoader(train_dataset, {batch_size = args.batch_size // world,
                                                 sampler = train_sampler})
  local n_test = #test_dataset
  local stride = setmetatable({indices = function() return lunet.arange(rank, n_test, world) end},
    {__len = function() return (n_test - rank + world - 1) // world end})
  test_loader = data.DataLoader(test_dataset, {batch_size = args.test_batch_size, sampler = stride})
else
  train_loader = data.DataLoader(train_dataset, {batch_size = args.batch_size, shuffle = true})
  test_loader = data.DataLoader(test_dataset, {batch_size = args.test_batch_size, shuffle = false})
end

-- ---------------------------------------------------------------- output

local function mkdir(path)
  local ok = os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
  if not ok then error("cannot create the output folder " .. path) end
end
if rank == 0 then mkdir(args.out) end
local csv_path, svg_path = args.out .. "/metrics.csv", args.out .. "/curves.svg"
local ckpt_path = args.out .. "/checkpoint.lnt"

-- rewritten whole through a temporary file, so a crash never leaves half a file
local function write_file(path, text)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  assert(f:write(text))
  assert(f:close())
  assert(os.rename(tmp, path))
end

local history = {epoch = {}, train_loss = {}, test_acc = {}, epoch_seconds = {}}

local function write_metrics()
  local rows = {"epoch,train_loss,test_acc,epoch_seconds"}
  for i, e in ipairs(history.epoch) do
    rows[#rows + 1] = ("%d,%.6f,%.4f,%.3f"):format(e, history.train_loss[i], history.test_acc[i],
      history.epoch_seconds[i])
  end
  write_file(csv_path, table.concat(rows, "\n") .. "\n")
  local fig = lunet.plot.figure{width = 900, height = 360,
    title = ("%s %s, %s, batch %d, lr %g%s"):format(train_dataset.name, model_names[args.model],
      tostring(optimizer):match("^%w+"),
      args.batch_size, args.lr, args.optimizer == "sgd" and (", momentum %g"):format(args.momentum) or "")}
  fig:panel{title = "Loss", xlabel = "epoch", ylabel = "loss"}
    :line(history.epoch, history.train_loss, {label = "train loss"})
  fig:panel{title = "Accuracy", xlabel = "epoch", ylabel = "accuracy", legend = "lower right"}
    :line(history.epoch, history.test_acc, {label = "test accuracy"})
  fig:save(svg_path)
end

local start_epoch = 1
if args.resume then
  local ck = lunet.load(args.resume)
  if (ck.args.model or "mlp") ~= args.model then
    error(("%s was trained with --model %s, not %s"):format(args.resume, ck.args.model or "mlp", args.model))
  end
  if (ck.args.optimizer or "sgd") ~= args.optimizer then
    error(("%s was trained with --optimizer %s, not %s"):format(args.resume, ck.args.optimizer or "sgd",
      args.optimizer))
  end
  net:load_state_dict(ck.model)
  optimizer:load_state_dict(ck.optimizer)
  lunet.set_rng_state(ck.rng)
  history = ck.history
  start_epoch = ck.epoch + 1
  print0(("resumed from %s after epoch %d"):format(args.resume, ck.epoch))
end

-- ---------------------------------------------------------------- train and test

-- a number's mean over the ranks (each rank's running loss sum, say)
local function all_ranks_mean(x)
  local t = lunet.tensor({x}, {dtype = lunet.float64})
  dist.all_reduce(t, {op = "avg"})
  return t:tolist()[1]
end

local function train(epoch)
  model:train()
  local running, total, batches = 0.0, 0.0, 0
  if train_sampler then train_sampler:set_epoch(epoch) end
  local comm0 = args.distributed and model:comm_stats()
  local bar = rank == 0 and not args.no_progress and lunet.progress.new{total = #train_loader,
    desc = ("epoch %d"):format(epoch), batch_size = args.batch_size} or nil
  local t0 = clock()
  for inputs, target in train_loader:iter() do
    optimizer:zero_grad()
    local outputs = model(inputs)
    local loss = criterion(outputs, target)
    loss:backward()
    optimizer:step()
    local l = loss:item()
    running, total, batches = running + l, total + l, batches + 1
    if bar then bar:update(1, {loss = l}) end
    if batches % 300 == 0 then
      -- the mean of the last 300 batches (the notebook forgot to reset its sum)
      if args.distributed then running = all_ranks_mean(running) end
      local line = ("[epoch=%d, batch=%d] loss: %3f"):format(epoch, batches, running / 300)
      if bar then bar:print(line) else print0(line) end
      running = 0.0
    end
  end
  local seconds = clock() - t0
  if bar then bar:close() end
  if args.distributed then total = all_ranks_mean(total) end
  print0(("epoch=%d, total loss=%.4f, mean loss=%.4f, %.2f s"):format(epoch, total, total / batches, seconds))
  if args.distributed then
    local c = model:comm_stats()
    local steps = c.steps - comm0.steps
    local per_step = (c.elements - comm0.elements) // math.max(steps, 1)
    print0(("all-reduce on %d ranks: %d call(s) of %d values in all per step, %.3f ms per step (%.1f%% of the epoch)")
      :format(world, c.buckets, per_step, 1000 * (c.seconds - comm0.seconds) / math.max(steps, 1),
              100 * (c.seconds - comm0.seconds) / seconds))
  end
  return total / batches, seconds
end

local function test()
  model:eval()
  local correct, count = 0, 0
  lunet.no_grad(function()
    for images, labels in test_loader:iter() do
      local outputs = model(images)
      local _, predicted = outputs:max(1)
      count = count + labels:size(0)
      correct = correct + predicted:eq(labels):sum():item()
    end
  end)
  if args.distributed then -- the whole test set: every rank's counts added up
    local t = lunet.tensor({correct, count}, {dtype = lunet.int64})
    dist.all_reduce(t)
    correct, count = table.unpack(t:tolist())
  end
  print0(("Accuracy on test set: %.2f%%"):format(100 * correct / count))
  return correct / count
end

for epoch = start_epoch, args.epochs do
  local loss, seconds = train(epoch)
  local acc = test()
  local n = #history.epoch + 1
  history.epoch[n], history.train_loss[n] = epoch, loss
  history.test_acc[n], history.epoch_seconds[n] = acc, seconds
  if rank == 0 then
    write_metrics()
    lunet.save({model = net:state_dict(), optimizer = optimizer:state_dict(), epoch = epoch,
                rng = lunet.get_rng_state(), history = history,
                args = {dataset = args.dataset, seed = args.seed, lr = args.lr, optimizer = args.optimizer,
                        model = args.model, world_size = world}}, ckpt_path)
  end
end

print0(("metrics: %s\nfigure: %s\ncheckpoint: %s"):format(csv_path, svg_path, ckpt_path))
