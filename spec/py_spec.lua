-- py_spec.lua - lunet.py: numbers and lines as Python prints them.
local lunet = require "lunet"
local py = require "lunet.py"

describe("lunet.py", function()
  it("is the field lunet.py", function()
    assert.are.equal(lunet.py, py)
  end)

  it("repr: Python's repr of numbers, tostring of anything else", function()
    assert.are.same({"2.0", "7", "0.30000000000000004", "0.0001", "1e-05", "1.5e+300", "-0.0", "-inf",
                     "x", "true"},
      {py.repr(2.0), py.repr(7), py.repr(0.1 + 0.2), py.repr(1e-4), py.repr(1e-5), py.repr(1.5e300),
       py.repr(-0.0), py.repr(-math.huge), py.repr("x"), py.repr(true)})
  end)

  it("print: space-separated, numbers by repr, one newline", function()
    local out = {}
    local real = io.stdout
    io.stdout = {write = function(_, ...) for _, s in ipairs({...}) do out[#out + 1] = s end end}
    local ok, err = pcall(py.print, "loss:", 0.5, 3, lunet.tensor(1.0))
    io.stdout = real
    assert.is_true(ok, err)
    assert.are.equal("loss: 0.5 3 tensor(1.)\n", table.concat(out))
  end)
end)
