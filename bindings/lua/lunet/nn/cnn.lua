-- lunet.nn.cnn: the functional side of the CNN layers -- conv2d, max_pool2d, avg_pool2d,
-- adaptive_avg_pool2d, dropout, batch_norm and the activations leaky_relu, elu, gelu,
-- softplus, logsigmoid.  The module is one function that lunet.nn.functional calls with its
-- own table, so the functions are F.conv2d, ... (and the helpers the modules of
-- lunet.nn.cnn_layers share, F._options, ...).  The kernels are C (lunet._c,
-- bindings/l_nn.c); this file parses PyTorch's positional or named options, applies
-- their defaults and raises the errors PyTorch raises in Python.
local lunet = require "lunet"

local C = lunet._c
local M = {}

local function is_int(v) return math.type(v) == "integer" end

local function list_str(v)
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for i = 1, #v do parts[i] = tostring(v[i]) end
  return "[" .. table.concat(parts, ", ") .. "]"
end

-- Options after the fixed arguments: either one table of named options ({stride = 2}) or
-- PyTorch's positional order (names).  Unknown names raise PyTorch's TypeError.
local function options(fname, names, ...)
  local n, first = select("#", ...), ...
  if n == 1 and type(first) == "table" and first[1] == nil and next(first) ~= nil then
    local known = {}
    for _, k in ipairs(names) do known[k] = true end
    for k in pairs(first) do
      if not known[k] then
        error(("%s() got an unexpected keyword argument '%s'"):format(fname, tostring(k)), 3)
      end
    end
    return first
  end
  local o = {}
  for i = 1, math.min(n, #names) do o[names[i]] = (select(i, ...)) end
  return o
end

-- PyTorch's _pair: an int gives (v, v), a list of one or two ints gives the pair.
local function pair(fname, what, v)
  if is_int(v) then return v, v end
  if type(v) == "table" and #v == 2 and is_int(v[1]) and is_int(v[2]) then return v[1], v[2] end
  if type(v) == "table" and #v == 1 and is_int(v[1]) then return v[1], v[1] end
  error(("%s: %s must be an int or a list of two ints, got %s"):format(fname, what,
    list_str(v)), 3)
end

-- Convolution arguments: PyTorch's own message for a list of the wrong length.
local function conv_pair(what, v)
  if type(v) == "table" and #v ~= 1 and #v ~= 2 then
    error(("expected %s to be a single integer value or a list of 2 values to match the "
      .. "convolution dimensions, but got %s=%s"):format(what, what, list_str(v)), 3)
  end
  return pair("conv2d", what, v)
end

-- padding = "same" pads dilation (k - 1) in total, the odd one at the bottom / right.
local function same_padding(dilation, k)
  local total = dilation * (k - 1)
  local before = total // 2
  return before, total - 2 * before
end

local CONV_NAMES = {"stride", "padding", "dilation", "groups"}

-- F.conv2d(input, weight [, bias [, stride [, padding [, dilation [, groups]]]]]), or
-- F.conv2d(input, weight, bias, {stride =, padding =, dilation =, groups =}).
function M.conv2d(x, w, b, ...)
  local o = options("conv2d", CONV_NAMES, ...)
  local sh, sw = conv_pair("stride", o.stride or 1)
  local dh, dw = conv_pair("dilation", o.dilation or 1)
  local padding = o.padding or 0
  local ph, pw, eh, ew = 0, 0, 0, 0
  if type(padding) == "string" then
    if padding == "same" then
      if sh ~= 1 or sw ~= 1 then
        error("padding='same' is not supported for strided convolutions", 2)
      end
      if lunet.is_tensor(w) and w:dim() == 4 then
        ph, eh = same_padding(dh, w:size(2))
        pw, ew = same_padding(dw, w:size(3))
      end
    elseif padding ~= "valid" then
      error(("Invalid padding string: '%s'"):format(padding), 2)
    end
  else
    ph, pw = conv_pair("padding", padding)
  end
  return C.conv2d(x, w, b, sh, sw, ph, pw, eh, ew, dh, dw, o.groups or 1)
end

local MAXPOOL_NAMES = {"stride", "padding", "dilation", "ceil_mode", "return_indices"}

-- stride defaults to the kernel (None or an empty list in PyTorch)
local function pool_stride(fname, stride, kh, kw)
  if stride == nil or (type(stride) == "table" and #stride == 0) then return kh, kw end
  return pair(fname, "stride", stride)
end

-- F.max_pool2d(input, kernel_size [, stride [, padding [, dilation [, ceil_mode
-- [, return_indices]]]]]) or with a table of named options; returns y (and the indices).
function M.max_pool2d(x, kernel_size, ...)
  local o = options("max_pool2d", MAXPOOL_NAMES, ...)
  local kh, kw = pair("max_pool2d", "kernel_size", kernel_size)
  local sh, sw = pool_stride("max_pool2d", o.stride, kh, kw)
  local ph, pw = pair("max_pool2d", "padding", o.padding or 0)
  local dh, dw = pair("max_pool2d", "dilation", o.dilation or 1)
  local y, idx = C.max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, o.ceil_mode == true)
  if o.return_indices then return y, idx end
  return y
end

local AVGPOOL_NAMES = {"stride", "padding", "ceil_mode", "count_include_pad",
  "divisor_override"}

-- F.avg_pool2d(input, kernel_size [, stride [, padding [, ceil_mode [, count_include_pad
-- [, divisor_override]]]]]) or with a table of named options.
function M.avg_pool2d(x, kernel_size, ...)
  local o = options("avg_pool2d", AVGPOOL_NAMES, ...)
  local kh, kw = pair("avg_pool2d", "kernel_size", kernel_size)
  local sh, sw = pool_stride("avg_pool2d", o.stride, kh, kw)
  local ph, pw = pair("avg_pool2d", "padding", o.padding or 0)
  local div = o.divisor_override
  if div == 0 then error("divisor must be not zero", 2) end
  return C.avg_pool2d(x, kh, kw, sh, sw, ph, pw, o.ceil_mode == true,
    o.count_include_pad ~= false, div or 0)
end

-- F.adaptive_avg_pool2d(input, output_size): an int, or a pair whose entries may be nil
-- (lunet.None / a hole) to keep the input's size.
function M.adaptive_avg_pool2d(x, output_size)
  local oh, ow
  if type(output_size) == "table" then
    oh, ow = output_size[1], output_size[2]
    if oh == nil then oh = x:size(-2) end
    if ow == nil then ow = x:size(-1) end
  else
    oh, ow = output_size, output_size
  end
  if not is_int(oh) or not is_int(ow) then
    error("adaptive_avg_pool2d: output_size must be an int or a pair of ints", 2)
  end
  return C.adaptive_avg_pool2d(x, oh, ow)
end

-- Python's repr of a number (one implementation, in lunet.optim; required lazily because
-- lunet.optim itself requires lunet.nn)
local py_repr = require("lunet.py").repr

local function check_p(p)
  if type(p) ~= "number" or p < 0 or p > 1 then
    error(("dropout probability has to be between 0 and 1, but got %s"):format(
      type(p) == "number" and py_repr(p) or tostring(p)), 3)
  end
end

-- F.dropout(input [, p [, training [, inplace]]]): PyTorch 1.13's CPU dropout, the same
-- mask under the same seed (lunet.manual_seed).
function M.dropout(x, ...)
  local o = options("dropout", {"p", "training", "inplace"}, ...)
  local p = o.p == nil and 0.5 or o.p
  check_p(p)
  if o.training == false or p == 0 or x:numel() == 0 then return x end
  local mask = C.dropout_mask(x, p)
  if o.inplace then return x:mul_(mask) end
  return x * mask
end

local BN_NAMES = {"running_mean", "running_var", "weight", "bias", "training", "momentum",
  "eps"}

-- F.batch_norm(input, running_mean, running_var [, weight [, bias [, training
-- [, momentum [, eps]]]]]).
function M.batch_norm(x, ...)
  local o = options("batch_norm", BN_NAMES, ...)
  if o.training then
    local n = x:size(0)
    for d = 2, x:dim() - 1 do n = n * x:size(d) end
    if n == 1 then
      error(("Expected more than 1 value per channel when training, got input size %s")
        :format(tostring(x:size())), 2)
    end
  end
  return C.batch_norm(x, o.running_mean, o.running_var, o.weight, o.bias, o.training == true,
    o.momentum or 0.1, o.eps or 1e-5)
end

-- In place: the result copied into x (PyTorch's inplace=True).
local function maybe_inplace(x, y, inplace)
  if inplace then return x:copy_(y) end
  return y
end

-- F.leaky_relu(input [, negative_slope [, inplace]])
function M.leaky_relu(x, ...)
  local o = options("leaky_relu", {"negative_slope", "inplace"}, ...)
  return maybe_inplace(x, C.leaky_relu(x, o.negative_slope or 0.01), o.inplace)
end

-- F.elu(input [, alpha [, inplace]])
function M.elu(x, ...)
  local o = options("elu", {"alpha", "inplace"}, ...)
  return maybe_inplace(x, C.elu(x, o.alpha or 1.0), o.inplace)
end

-- F.gelu(input [, approximate]) with approximate "none" (default) or "tanh"
function M.gelu(x, ...)
  local o = options("gelu", {"approximate"}, ...)
  local a = o.approximate or "none"
  if a ~= "none" and a ~= "tanh" then
    error("approximate argument must be either none or tanh.", 2)
  end
  return C.gelu(x, a == "tanh")
end

-- F.softplus(input [, beta [, threshold]])
function M.softplus(x, ...)
  local o = options("softplus", {"beta", "threshold"}, ...)
  return C.softplus(x, o.beta or 1, o.threshold or 20)
end

function M.logsigmoid(x) return C.log_sigmoid(x) end

return function(F)
  for name, fn in pairs(M) do F[name] = fn end
  F._options, F._pair, F._py_repr, F._check_dropout_p = options, pair, py_repr, check_p
end
