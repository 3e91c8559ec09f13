-- softmax.lua - the softmax cells of the notebooks (seeds 000 and 001), as a Lunet script.
-- Run: build/lunet scripts/softmax.lua
-- Each printed block is what the notebook cell displayed (dtypes print as lunet.float64).
local lunet = lunet or require "lunet"

-- Jupyter's display of a tuple of tensors: one per line, continuation lines indented by one.
local function show_tuple(...)
  local parts = {}
  for i, v in ipairs({ ... }) do
    parts[i] = tostring(v):gsub("\n", "\n ")
  end
  print("(" .. table.concat(parts, ",\n ") .. ")")
end

-- The notebooks' hand-written softmax (seed 000): exp, then divide by the row sums.
-- Naive on purpose: lunet.nn.functional.softmax is the numerically stable one.
local function softmax(x)
  local exp_x = x:exp()
  return exp_x / exp_x:sum{dim = 1, keepdim = true}
end

-- seed 000: softmax of a 2x3 matrix, applied once, twice and three times;
-- every row sums to 1 and repeated application flattens towards 1/3.
local test_x = lunet.tensor({{0.5, 0.8, 1}, {1.2, 1.5, 1.6}})
local x_softmax = softmax(test_x)
print(x_softmax)
print(softmax(x_softmax))
print(softmax(softmax(x_softmax)))

-- seed 001: sums over each dim with keepdim (arange with dtype=float is float64)
local X = lunet.arange(1, 7, {dtype = lunet.float64})
print(X)
X = X:reshape(2, 3)
show_tuple(X, X:sum(0, true), X:sum(1, true))

-- seed 001: softmax rows of a normal (2, 5) tensor sum to 1.  The notebook was not seeded;
-- seed 0 makes the output reproducible (the same numbers as torch.manual_seed(0)).
lunet.manual_seed(0)
local Y = lunet.normal(0, 1, {2, 5})
local Y_prob = softmax(Y)
print(Y_prob)
print(Y_prob:sum(1))
