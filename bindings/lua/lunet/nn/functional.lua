-- lunet.nn.functional: the stateless layers -- activations, linear, softmax, log_softmax
-- and the losses cross_entropy, nll_loss, mse_loss.  The heavy lifting is C (lunet._c: one
-- GEMM for linear, fused softmax + loss kernels); this file parses PyTorch's options and
-- raises its errors and warnings.  torch.softmax / torch.log_softmax and the tensor methods
-- x:softmax(dim), x:log_softmax(dim) are these same functions.
local lunet = require "lunet"

local C = lunet._c
local F = {}

-- ---------------------------------------------------------------- activations, linear

function F.relu(x) return x:relu() end
function F.sigmoid(x) return x:sigmoid() end
function F.tanh(x) return x:tanh() end
-- lunet._c.linear: one GEMM with the bias added in (the last argument fuses a ReLU)
function F.linear(x, w, b) return C.linear(x, w, b, false) end

-- ---------------------------------------------------------------- helpers

local warned = {}
local function warn_once(key, text)
  if not warned[key] then
    warned[key] = true
    io.stderr:write("UserWarning: ", text, "\n")
  end
end

-- Raises PyTorch's TypeError for an option the function does not take.
local function check_keys(fname, opts, allowed)
  if opts == nil then return end
  if type(opts) ~= "table" then
    error(("%s(): options must be a table, got %s"):format(fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not allowed[k] then
      error(("TypeError: %s() got an unexpected keyword argument '%s'"):format(fname, tostring(k)), 3)
    end
  end
end

-- PyTorch's implicit dim (deprecated): 0 for 0-, 1- and 3-d inputs, else 1, with a warning.
local function implicit_dim(name, x)
  warn_once("implicit:" .. name, ("Implicit dimension choice for %s has been deprecated. "
    .. "Change the call to include dim=X as an argument."):format(name))
  local n = x:dim()
  if n == 0 or n == 1 or n == 3 then return 0 end
  return 1
end

-- softmax(x, dim [, {dtype=}]) or softmax(x, {dim=, dtype=}) or softmax(x, dim, dtype).
local function softmax_args(name, x, dim, opts)
  local dtype
  if type(dim) == "table" then
    dim, opts = nil, dim
  end
  if opts ~= nil then
    if type(opts) == "table" then
      check_keys(name, opts, {dim = true, dtype = true, _stacklevel = true})
      if opts.dim ~= nil then dim = opts.dim end
      dtype = opts.dtype
    else
      dtype = opts -- a dtype given positionally
    end
  end
  if dtype ~= nil then x = x:to(dtype) end
  if dim == nil then dim = implicit_dim(name, x) end
  return x, dim
end

local function make_softmax(name, kernel)
  return function(x, dim, opts)
    local x2, d = softmax_args(name, x, dim, opts)
    return kernel(x2, d)
  end
end

F.softmax = make_softmax("softmax", C.softmax)
F.log_softmax = make_softmax("log_softmax", C.log_softmax)

-- torch.softmax(input, dim, dtype=None) and the tensor methods
lunet.softmax, lunet.log_softmax = F.softmax, F.log_softmax
lunet.Tensor.softmax, lunet.Tensor.log_softmax = F.softmax, F.log_softmax

local CE_KEYS = {weight = true, ignore_index = true, reduction = true, label_smoothing = true}
local NLL_KEYS = {weight = true, ignore_index = true, reduction = true}
local MSE_KEYS = {reduction = true}

function F.cross_entropy(x, y, opts)
  check_keys("cross_entropy", opts, CE_KEYS)
  return C.cross_entropy(x, y, opts)
end

function F.nll_loss(x, y, opts)
  check_keys("nll_loss", opts, NLL_KEYS)
  return C.nll_loss(x, y, opts)
end

function F.mse_loss(x, y, opts)
  check_keys("mse_loss", opts, MSE_KEYS)
  local xs, ys = x:size(), y:size()
  if tostring(xs) ~= tostring(ys) then
    warn_once("mse_size", ("Using a target size (%s) that is different to the input size (%s). "
      .. "This will likely lead to incorrect results due to broadcasting. Please ensure they "
      .. "have the same size."):format(tostring(ys), tostring(xs)))
  end
  return C.mse_loss(x, y, opts and opts.reduction)
end

-- For the loss modules of lunet.nn: the options each loss takes, and their check.
F._loss_options = {cross_entropy = CE_KEYS, nll_loss = NLL_KEYS, mse_loss = MSE_KEYS}
F._check_keys = check_keys

-- conv2d, pooling, dropout, batch_norm and the CNN activations (lunet.nn.cnn)
require("lunet.nn.cnn")(F)

return F
