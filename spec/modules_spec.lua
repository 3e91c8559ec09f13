-- modules_spec.lua - the Lua layer is modules (bindings/lua/lunet/*.lua, in package.preload):
-- require "lunet.nn" and friends give the same tables as the fields of lunet, and each
-- module loads on its own, before lunet, in a fresh lua5.4.
local lunet = require "lunet"

local FIELDS = {nn = "lunet.nn", optim = "lunet.optim", data = "lunet.data",
                metrics = "lunet.metrics", plot = "lunet.plot", progress = "lunet.progress"}

describe("Lua modules", function()
  it("require gives the same tables as lunet's fields", function()
    for field, name in pairs(FIELDS) do
      assert.are.equal(lunet[field], require(name), name)
      assert.is_function(package.preload[name], name)
    end
    assert.are.equal(lunet.nn.functional, require "lunet.nn.functional")
    assert.are.equal(lunet.softmax, lunet.nn.functional.softmax)
    assert.is_function(lunet.monotonic)
  end)

  it("each module loads first in a fresh lua5.4, and lunet is then the same table", function()
    local names = {"lunet.nn.functional"}
    for _, name in pairs(FIELDS) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      local code = ("package.cpath = %q .. '/?.so;' .. package.cpath; "
        .. "local m = require %q; local l = require 'lunet'; "
        .. "assert(type(m) == 'table'); assert(l.nn.Linear and l.optim.SGD); io.write('ok')")
        :format(LUNET_BUILD, name)
      local p = assert(io.popen("lua5.4 -e " .. ("%q"):format(code) .. " 2>&1"))
      local out = p:read("a")
      p:close()
      assert.are.equal("ok", out, name .. ": " .. out)
    end
  end)

  it("functions carry their file as chunk name (tracebacks point at it)", function()
    assert.are.equal("=lunet/nn.lua", debug.getinfo(lunet.nn.Linear.forward, "S").source)
    assert.are.equal("=lunet/nn/functional.lua", debug.getinfo(lunet.nn.functional.relu, "S").source)
    assert.are.equal("=lunet/optim.lua", debug.getinfo(lunet.optim.SGD.step, "S").source)
  end)
end)
