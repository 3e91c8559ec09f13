-- repl_spec.lua - lunet.repl, the prompt's Lua half (shared by the `lunet` prompt and any
-- other front end): compiling a line, completeness, printing results, completion.
local lunet = require "lunet"
local repl = require "lunet.repl"

describe("lunet.repl", function()
  it("compiles an expression so that its values are the results", function()
    local fn, silent = repl.compile("1 + 2, 'x'")
    assert.is_function(fn)
    assert.is_false(silent)
    assert.are.same({3, "x"}, {fn()})
    fn, silent = repl.compile("40 + 2;  ")
    assert.is_true(silent)
    assert.are.equal(42, fn())
    fn = repl.compile("=7")
    assert.are.equal(7, fn())
  end)

  it("compiles statements, which return only what they return", function()
    local env = {}
    local fn = repl.compile("y = 5", nil, env)
    assert.are.equal(0, select("#", fn()))
    assert.are.equal(5, env.y)
  end)

  it("tells incomplete input from invalid input", function()
    local fn, msg, incomplete = repl.compile("for i = 1, 2 do")
    assert.is_nil(fn)
    assert.matches("<eof>$", msg)
    assert.is_true(incomplete)
    fn, msg, incomplete = repl.compile("1 +* 2")
    assert.is_nil(fn)
    assert.matches("^stdin:1:", msg)
    assert.is_false(incomplete)
    assert.are.equal("complete", repl.is_complete("x = 1"))
    assert.are.equal("incomplete", repl.is_complete("function f()\n  return 1"))
    assert.are.equal("incomplete", repl.is_complete("s = [[abc"))
    assert.are.equal("invalid", repl.is_complete("x = = 1"))
  end)

  it("formats results as the prompt prints them", function()
    assert.is_nil(repl.format())
    assert.are.equal("2\ttwo\t{2, a = 1}", repl.format(2, "two", {2, a = 1}))
    assert.are.equal('{"s", [true] = 1, ["end"] = 2}', repl.format({"s", ["end"] = 2, [true] = 1}))
    local t = {}
    t.self = t
    assert.are.equal("{self = {<cycle>}}", repl.format(t))
    assert.are.equal("{{{{{...}}}}}", repl.format({{{{{1}}}}}))
    local big = {}
    for i = 1, 35 do big[i] = i end
    assert.matches("30, %.%.%. %(5 more%)\n}$", repl.format(big))
    assert.are.equal("tensor([1., 1.])", repl.format(lunet.ones(2)))
    assert.are.equal("tensor(1.)\ttensor(2.)", repl.format(lunet.tensor(1.0), lunet.tensor(2.0)))
    assert.are.equal("tensor([[1.],\n        [1.]])\n1", repl.format(lunet.ones(2, 1), 1)) -- one per line
  end)

  it("keeps only the traceback frames that matter", function()
    local msg = "stdin:1: boom\nstack traceback:\n\t[C]: in function 'error'\n"
      .. "\tx.lua:3: in function 'f'\n\tstdin:1: in main chunk\n\t[C]: in ?"
    assert.are.equal("stdin:1: boom\nstack traceback:\n\tx.lua:3: in function 'f'",
                     repl.trim_traceback(msg))
    assert.are.equal("stdin:1: boom", repl.trim_traceback("stdin:1: boom\nstack traceback:\n\t[C]: in ?"))
    assert.are.equal("plain", repl.trim_traceback("plain"))
  end)

  it("completes globals, fields, methods and tensor properties", function()
    local env = {lunet = lunet, x = lunet.zeros(2, 3), net = lunet.nn.Linear(2, 2), value = 1}
    assert.are.same({"lunet.nn.Linear("}, repl.complete("lunet.nn.Lin", env))
    assert.are.same({"x:unsqueeze("}, repl.complete("x:unsq", env))
    assert.are.same({"x.shape"}, repl.complete("x.sha", env))
    assert.are.same({"net:forward("}, repl.complete("net:forw", env))
    assert.are.same({"net.weight"}, repl.complete("net.wei", env))
    assert.are.same({"value"}, repl.complete("valu", env))
    assert.are.same({"while"}, repl.complete("whil", env))
    assert.are.same({}, repl.complete("nothing.here", env))
    assert.are.same({}, repl.complete("x:size:", env))
  end)

  it("finds the word before the cursor, as readline splits it", function()
    assert.are.equal(5, (repl.word_start("y = x:unsq", 10)))
    local start, in_string = repl.word_start('f("data/Fa', 10)
    assert.are.equal(4, start)
    assert.is_true(in_string)
    assert.are.equal(1, (repl.word_start("lunet.nn.Li")))
    assert.are.equal(" \t\n\"'", repl.word_breaks('f("data/Fa', 10))
    assert.is_truthy(repl.word_breaks("x = a.b", 7):find("(", 1, true))
    assert.are.equal(repl.word_breaks(""), repl.word_breaks("x:y"))
  end)
end)
