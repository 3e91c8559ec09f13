-- lunet.nn.cnn_layers: the CNN modules of lunet.nn -- Conv2d, MaxPool2d, AvgPool2d,
-- AdaptiveAvgPool2d, Dropout, BatchNorm1d, BatchNorm2d, LeakyReLU, GELU, ELU, Softplus,
-- LogSigmoid.  The module returns one function, called by lunet.nn with its own table once
-- nn.Module exists (the classes need it, and nn needs them as fields).  Each forward is the
-- F.* function of lunet.nn.cnn; the constructors take PyTorch's arguments, positional or
-- as one table of named options, check them with PyTorch's messages, and print as PyTorch.
-- (`cnn` below is lunet.nn.functional, where lunet.nn.cnn put the functions.)
local lunet = require "lunet"
local cnn = require "lunet.nn.functional"

local options, pair, py_repr = cnn._options, cnn._pair, cnn._py_repr

-- Python's repr of an int, a float, a string or a tuple of numbers.
local function repr(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  if type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = repr(v[i]) end
    return "(" .. table.concat(parts, ", ") .. (#parts == 1 and ",)" or ")")
  end
  if v == nil then return "None" end
  if type(v) == "boolean" then return v and "True" or "False" end
  return py_repr(v)
end

-- An int or pair argument kept as PyTorch keeps it after _pair: a tuple of two.
local function tuple2(fname, what, v)
  local a, b = pair(fname, what, v)
  return {a, b}
end

return function(nn)
  local Module = nn.Module

  -- A new nn.<name> module class.
  local function layer_class(name)
    local cls = Module:extend(name)
    nn[name] = cls
    return cls
  end

  -- ------------------------------------------------------------ Conv2d

  local Conv2d = layer_class("Conv2d")
  local CONV_NAMES = {"stride", "padding", "dilation", "groups", "bias", "padding_mode",
    "dtype"}
  local PADDING_MODES = {zeros = true, reflect = true, replicate = true, circular = true}

  -- nn.Conv2d(in_channels, out_channels, kernel_size [, stride [, padding [, dilation
  -- [, groups [, bias [, padding_mode]]]]]]) or (in, out, kernel_size, {named options}).
  function Conv2d:init(in_channels, out_channels, kernel_size, ...)
    local o = options("Conv2d", CONV_NAMES, ...)
    if math.type(in_channels) ~= "integer" or math.type(out_channels) ~= "integer" then
      error("nn.Conv2d(in_channels, out_channels, kernel_size): expected integers", 3)
    end
    local groups = o.groups or 1
    if math.type(groups) ~= "integer" or groups <= 0 then
      error("groups must be a positive integer", 3)
    end
    if in_channels % groups ~= 0 then error("in_channels must be divisible by groups", 3) end
    if out_channels % groups ~= 0 then error("out_channels must be divisible by groups", 3) end
    local stride = tuple2("Conv2d", "stride", o.stride or 1)
    local padding = o.padding or 0
    if type(padding) == "string" then
      if padding ~= "same" and padding ~= "valid" then
        error(("Invalid padding string '%s', should be one of {'valid', 'same'}"):format(padding), 3)
      end
      if padding == "same" and (stride[1] ~= 1 or stride[2] ~= 1) then
        error("padding='same' is not supported for strided convolutions", 3)
      end
    else
      padding = tuple2("Conv2d", "padding", padding)
    end
    local mode = o.padding_mode or "zeros"
    if not PADDING_MODES[mode] then
      error(("padding_mode must be one of {'circular', 'reflect', 'zeros', 'replicate'}, but "
        .. "got padding_mode='%s'"):format(tostring(mode)), 3)
    elseif mode ~= "zeros" then
      error(("nn.Conv2d: padding_mode='%s' is not supported by Lunet (only 'zeros')"):format(mode), 3)
    end
    self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
    self.kernel_size = tuple2("Conv2d", "kernel_size", kernel_size)
    self.stride, self.padding, self.padding_mode = stride, padding, mode
    self.dilation = tuple2("Conv2d", "dilation", o.dilation or 1)
    local dtype = o.dtype or lunet.get_default_dtype()
    self.weight = nn.Parameter(lunet.empty({out_channels, in_channels // groups,
      self.kernel_size[1], self.kernel_size[2]}, {dtype = dtype}))
    if o.bias ~= false then
      self.bias = nn.Parameter(lunet.empty({out_channels}, {dtype = dtype}))
    end
    self:reset_parameters()
  end

  -- PyTorch's _ConvNd.reset_parameters is nn.Linear's: kaiming_uniform_(a=sqrt(5)), then the
  -- bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups kh kw
  Conv2d.reset_parameters = nn.Linear.reset_parameters

  function Conv2d:forward(x)
    return cnn.conv2d(x, self.weight, self.bias, {stride = self.stride, padding = self.padding,
      dilation = self.dilation, groups = self.groups})
  end

  function Conv2d:extra_repr()
    local s = ("%d, %d, kernel_size=%s, stride=%s"):format(self.in_channels, self.out_channels,
      repr(self.kernel_size), repr(self.stride))
    local p = self.padding
    if type(p) == "string" or p[1] ~= 0 or p[2] ~= 0 then s = s .. ", padding=" .. repr(p) end
    if self.dilation[1] ~= 1 or self.dilation[2] ~= 1 then
      s = s .. ", dilation=" .. repr(self.dilation)
    end
    if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
    if self.bias == nil then s = s .. ", bias=False" end
    return s
  end

  -- ------------------------------------------------------------ pooling

  -- An option given (or nil) as the module keeps it: a boolean default coerces the value as
  -- PyTorch's truth test of that flag would (only true turns a false flag on, only false
  -- turns a true flag off); any other default stands in for nil.
  local function option_value(v, default)
    if default == true then return v ~= false end
    if default == false then return v == true end
    if v == nil then return default end
    return v
  end

  -- The shared constructor and repr of MaxPool2d and AvgPool2d (PyTorch's _MaxPoolNd,
  -- _AvgPoolNd): `params` are the arguments after kernel_size and stride, in PyTorch's order,
  -- each {name, default}; stride defaults to kernel_size; extra_repr prints kernel_size,
  -- stride and the names in `shown`.  The caller writes forward.
  local function pool_class(name, params, shown)
    local cls = layer_class(name)
    local names = {"stride"}
    for i, p in ipairs(params) do names[i + 1] = p[1] end
    local fields = {"kernel_size", "stride", table.unpack(shown)}

    function cls:init(kernel_size, ...)
      local o = options(name, names, ...)
      self.kernel_size = kernel_size
      self.stride = o.stride == nil and kernel_size or o.stride
      for _, p in ipairs(params) do self[p[1]] = option_value(o[p[1]], p[2]) end
    end

    function cls:extra_repr()
      local parts = {}
      for i, f in ipairs(fields) do parts[i] = f .. "=" .. repr(self[f]) end
      return table.concat(parts, ", ")
    end
    return cls
  end

  -- nn.MaxPool2d(kernel_size [, stride [, padding [, dilation [, return_indices
  -- [, ceil_mode]]]]]) or (kernel_size, {named options}).
  local MaxPool2d = pool_class("MaxPool2d", {{"padding", 0}, {"dilation", 1},
    {"return_indices", false}, {"ceil_mode", false}}, {"padding", "dilation", "ceil_mode"})

  function MaxPool2d:forward(x)
    return cnn.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
      self.ceil_mode, self.return_indices)
  end

  -- nn.AvgPool2d(kernel_size [, stride [, padding [, ceil_mode [, count_include_pad
  -- [, divisor_override]]]]]) or (kernel_size, {named options}).
  local AvgPool2d = pool_class("AvgPool2d", {{"padding", 0}, {"ceil_mode", false},
    {"count_include_pad", true}, {"divisor_override"}}, {"padding"})

  function AvgPool2d:forward(x)
    return cnn.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
      self.count_include_pad, self.divisor_override)
  end

  local AdaptiveAvgPool2d = layer_class("AdaptiveAvgPool2d")

  -- nn.AdaptiveAvgPool2d(output_size): an int or a pair
  function AdaptiveAvgPool2d:init(output_size) self.output_size = output_size end
  function AdaptiveAvgPool2d:forward(x) return cnn.adaptive_avg_pool2d(x, self.output_size) end
  function AdaptiveAvgPool2d:extra_repr() return "output_size=" .. repr(self.output_size) end

  -- ------------------------------------------------------------ Dropout

  local Dropout = layer_class("Dropout")

  -- nn.Dropout([p [, inplace]]): active in training mode only
  function Dropout:init(...)
    local o = options("Dropout", {"p", "inplace"}, ...)
    self.p = o.p == nil and 0.5 or o.p
    cnn._check_dropout_p(self.p)
    self.inplace = o.inplace == true
  end

  function Dropout:forward(x) return cnn.dropout(x, self.p, self.training, self.inplace) end

  function Dropout:extra_repr()
    return ("p=%s, inplace=%s"):format(repr(self.p), repr(self.inplace))
  end

  -- ------------------------------------------------------------ BatchNorm

  local BN_NAMES = {"eps", "momentum", "affine", "track_running_stats", "dtype"}

  -- the shared constructor and forward of BatchNorm1d / BatchNorm2d (PyTorch's _BatchNorm)
  local function batch_norm_class(name, check_dim)
    local cls = layer_class(name)

    -- nn.BatchNorm2d(num_features [, eps [, momentum [, affine [, track_running_stats]]]])
    function cls:init(num_features, ...)
      local o = options(name, BN_NAMES, ...)
      if math.type(num_features) ~= "integer" then
        error(("nn.%s(num_features): expected an integer"):format(name), 3)
      end
      self.num_features = num_features
      self.eps = o.eps or 1e-5
      -- momentum = false gives the cumulative average (PyTorch's momentum=None)
      if o.momentum == false then self.momentum = nil else self.momentum = o.momentum or 0.1 end
      self.affine = o.affine ~= false
      self.track_running_stats = o.track_running_stats ~= false
      local dt = {dtype = o.dtype or lunet.get_default_dtype()}
      if self.affine then
        self.weight = nn.Parameter(lunet.ones({num_features}, dt))
        self.bias = nn.Parameter(lunet.zeros({num_features}, dt))
      end
      if self.track_running_stats then
        self:register_buffer("running_mean", lunet.zeros({num_features}, dt))
        self:register_buffer("running_var", lunet.ones({num_features}, dt))
        self:register_buffer("num_batches_tracked", lunet.tensor(0, {dtype = lunet.int64}))
      end
    end

    function cls:reset_running_stats()
      if not self.track_running_stats then return end
      lunet.no_grad(function()
        self.running_mean:zero_()
        self.running_var:fill_(1)
        self.num_batches_tracked:zero_()
      end)
    end

    function cls:forward(x)
      check_dim(x)
      local factor = self.momentum or 0.0
      if self.training and self.track_running_stats then
        lunet.no_grad(function() self.num_batches_tracked:add_(1) end)
        if self.momentum == nil then factor = 1.0 / self.num_batches_tracked:item() end
      end
      local use_batch = self.training or not self.track_running_stats
      local keep = not self.training or self.track_running_stats
      return cnn.batch_norm(x, keep and self.running_mean or nil,
        keep and self.running_var or nil, self.weight, self.bias, use_batch, factor, self.eps)
    end

    function cls:extra_repr()
      return ("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s"):format(
        self.num_features, repr(self.eps), repr(self.momentum), repr(self.affine),
        repr(self.track_running_stats))
    end
    return cls
  end

  batch_norm_class("BatchNorm1d", function(x)
    if x:dim() ~= 2 and x:dim() ~= 3 then
      error(("expected 2D or 3D input (got %dD input)"):format(x:dim()), 4)
    end
  end)
  batch_norm_class("BatchNorm2d", function(x)
    if x:dim() ~= 4 then error(("expected 4D input (got %dD input)"):format(x:dim()), 4) end
  end)

  -- ------------------------------------------------------------ activations

  -- nn.<name>([<param> [, inplace]]): an activation with one parameter (default when nil) and
  -- inplace, computed by cnn[fn](x, param, inplace)
  local function param_inplace_activation(name, param, default, fn)
    local M = layer_class(name)
    function M:init(...)
      local o = options(name, {param, "inplace"}, ...)
      self[param], self.inplace = o[param] or default, o.inplace == true
    end
    function M:forward(x) return cnn[fn](x, self[param], self.inplace) end
    function M:extra_repr()
      return param .. "=" .. repr(self[param]) .. (self.inplace and ", inplace=True" or "")
    end
  end
  -- nn.LeakyReLU([negative_slope [, inplace]])
  param_inplace_activation("LeakyReLU", "negative_slope", 0.01, "leaky_relu")
  -- nn.ELU([alpha [, inplace]])
  param_inplace_activation("ELU", "alpha", 1.0, "elu")

  local GELU = layer_class("GELU")
  -- nn.GELU([approximate]) with "none" or "tanh"
  function GELU:init(...)
    self.approximate = options("GELU", {"approximate"}, ...).approximate or "none"
  end
  function GELU:forward(x) return cnn.gelu(x, self.approximate) end
  function GELU:extra_repr() return "approximate=" .. repr(self.approximate) end

  local Softplus = layer_class("Softplus")
  -- nn.Softplus([beta [, threshold]])
  function Softplus:init(...)
    local o = options("Softplus", {"beta", "threshold"}, ...)
    self.beta, self.threshold = o.beta or 1, o.threshold or 20
  end
  function Softplus:forward(x) return cnn.softplus(x, self.beta, self.threshold) end
  function Softplus:extra_repr()
    return ("beta=%s, threshold=%s"):format(repr(self.beta), repr(self.threshold))
  end

  local LogSigmoid = layer_class("LogSigmoid")
  function LogSigmoid:forward(x) return cnn.logsigmoid(x) end
end
