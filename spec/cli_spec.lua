-- cli_spec.lua - the `lunet` program ($LUNET_BUILD/lunet): scripts, arg, -e, -i, stdin,
-- --version, --help, and the exit status of a failing script.
local bin = LUNET_BIN or ((os.getenv("LUNET_BUILD") or "build") .. "/lunet")

-- Runs a shell command; returns stdout+stderr and the exit code.
local function run(cmd)
  local f = assert(io.popen(cmd .. " 2>&1"))
  local out = f:read("a")
  local _, _, code = f:close()
  return out, code
end

local function tmpfile(contents)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(contents)
  f:close()
  return name
end

describe("the lunet program", function()
  it("runs a script with lunet preloaded and arg set as lua does", function()
    local script = tmpfile([[
print(type(lunet), lunet == require "lunet", arg[0] ~= nil, arg[1], arg[2], #arg, ...)
print(lunet.ones(2, 2):sum())
]])
    local out, code = run(bin .. " " .. script .. " a 'b c'")
    os.remove(script)
    assert.are.equal(0, code)
    assert_lines(out, { "table\ttrue\ttrue\ta\tb c\t2\ta\tb c", "tensor(4.)" })
  end)

  it("-e runs code, and the interpreter name is arg[-1]", function()
    local out, code = run(bin .. [[ -e 'print(lunet.arange(3), arg[0] ~= nil)']])
    assert.are.equal(0, code)
    assert_lines(out, { "tensor([0, 1, 2])\ttrue" })
  end)

  it("--version names Lunet, Lua and the BLAS", function()
    local out, code = run(bin .. " --version")
    assert.are.equal(0, code)
    assert.truthy(out:match("^Lunet 0%.1%.0 %(Lua 5%.4, [^)]+%)\n$"))
    local v = run(bin .. " -v")
    assert.are.equal(out, v)
  end)

  it("--help describes the usage", function()
    local out, code = run(bin .. " --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("usage: lunet [options] [script [args]]", 1, true))
    for _, opt in ipairs({ "-e stat", "-i", "-l mod", "--version", "--help" }) do
      assert.truthy(out:find(opt, 1, true), opt)
    end
  end)

  it("a failing script prints 'lunet: msg' with a traceback and exits with 1", function()
    local script = tmpfile("local t = lunet.ones(2, 3) + lunet.ones(4, 3)\n")
    local out, code = run(bin .. " " .. script)
    os.remove(script)
    assert.are.equal(1, code)
    assert.truthy(out:find("lunet: The size of tensor a (2) must match the size of tensor b (4) " ..
                           "at non-singleton dimension 0", 1, true))
    assert.truthy(out:find("stack traceback:", 1, true))
  end)

  it("a syntax error and a missing script fail with status 1", function()
    local _, code = run(bin .. [[ -e 'x =']])
    assert.are.equal(1, code)
    local out, code2 = run(bin .. " /nonexistent/script.lua")
    assert.are.equal(1, code2)
    assert.truthy(out:find("cannot open /nonexistent/script.lua", 1, true))
  end)

  it("an unknown option prints the usage and fails", function()
    local out, code = run(bin .. " --bogus")
    assert.are.equal(1, code)
    assert.truthy(out:find("unrecognized option '--bogus'", 1, true))
  end)

  it("reads the script from stdin with '-'", function()
    local out, code = run("echo 'print(lunet.zeros(1))' | " .. bin .. " -")
    assert.are.equal(0, code)
    assert_lines(out, { "tensor([0.])" })
  end)

  it("the prompt prints expression values and continues incomplete lines", function()
    local hist = os.tmpname()
    local out, code = run("printf 'x = lunet.eye(2)\\nx:sum()\\nfor i = 1, 2 do\\nprint(i)\\nend\\nerror(\"boom\")\\n1 + 1\\n' | LUNET_HISTORY=" ..
                          hist .. " " .. bin .. " -i")
    os.remove(hist)
    assert.are.equal(0, code)
    assert.truthy(out:find("tensor(2.)", 1, true))
    assert.truthy(out:find("1\n2\n", 1, true))
    assert.truthy(out:find("boom", 1, true))
    assert.truthy(out:find("\n2\n", 1, true))
  end)
end)
