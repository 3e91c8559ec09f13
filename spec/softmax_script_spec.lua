-- softmax_script_spec.lua - scripts/softmax.lua prints what the notebooks' softmax cells
-- printed in PyTorch (spec/fixtures/softmax_script.txt, written by gen_softmax_script.py).
local bin = LUNET_BIN or ((os.getenv("LUNET_BUILD") or "build") .. "/lunet")
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"

describe("scripts/softmax.lua", function()
  it("prints the notebooks' values in PyTorch's format", function()
    local f = assert(io.popen(bin .. " " .. here .. "../scripts/softmax.lua 2>&1"))
    local out = f:read("a")
    local ok = f:close()
    assert.is_true(ok)
    local want = {}
    for line in must_read(here .. "fixtures/softmax_script.txt"):gmatch("(.-)\n") do
      want[#want + 1] = line
    end
    assert_lines(out, want)
  end)
end)
