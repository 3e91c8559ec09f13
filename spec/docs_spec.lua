-- docs_spec.lua - the reference covers the API: every public Lua function (the tables of the
-- loaded `lunet` module, the Tensor methods, the methods of a few objects the module makes)
-- has an entry in docs/lua-api.md, and every function declared in runtime/lunet.h and
-- bindings/lunet_embed.h has one in docs/c-api.md.  It also fails on entries naming functions
-- that no longer exist, so renames reach the docs.
--
-- What counts as an entry: a code span whose text starts with the name followed by `(` or
-- `{`, e.g. `lunet.zeros(size... [, opts])`, `Tensor:sum(dim [, keepdim])`,
-- `nn.Linear(in, out [, opts])`, `lunet_tensor_zeros(out, dt, ndim, shape)`.  In the Lua
-- reference `nn.`, `optim.`, `data.`, ... stand for `lunet.nn.`, ...; `F.` for
-- `lunet.nn.functional.`; `Tensor:` for the tensor methods (lunet.Tensor).  Names starting
-- with `_` are internal and not checked.  A method a class inherits or overrides (`forward`
-- of every layer) is covered by its base class's entry; `init` / `new` by the constructor's.
local lunet = require "lunet"

-- read_file, run_command and make_tmpdir come from spec/helper.lua

-- Names the document gives entries: the leading dotted name of every code span followed by
-- `(` or `{`, outside fenced code blocks, with ':' read as '.'.  The second table holds the
-- qualified ones (`a.b(`, `a:b(`), which must name something that exists.
local function documented(path, normalize)
  local text = must_read(path):gsub("\n```.-\n```", "\n")
  local names, qualified = {}, {}
  for span in text:gmatch("`([^`\n]+)`") do
    local name, after = span:match("^([%a_][%w_]*[%w_%.:]*)([({]?)")
    if name and after ~= "" then
      local n = normalize((name:gsub(":", ".")))
      names[n] = true
      if name:find("[.:]") then qualified[n] = true end
    end
  end
  return names, qualified
end

local function lua_doc_name(name)
  local head, rest = name:match("^([%a_][%w_]*)(.*)$")
  if head == "lunet" or head == "Tensor" then return name end
  if head == "F" then return "lunet.nn.functional" .. rest end
  if head == "transforms" then return "lunet.data.transforms" .. rest end
  return "lunet." .. name
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

-- The class a table inherits from (its metatable's __index, when that is a table).
local function parent_of(t)
  local mt = getmetatable(t)
  local idx = type(mt) == "table" and rawget(mt, "__index")
  if type(idx) == "table" and idx ~= t then return idx end
  return nil
end

local function inherited(t, k)
  local p, guard = parent_of(t), 0
  while p and guard < 32 do
    if type(rawget(p, k)) == "function" then return true end
    p, guard = parent_of(p), guard + 1
  end
  return false
end

-- The public Lua functions: name -> true, and the walked tables: name -> table.
local function lua_api()
  local expected, tables = {}, {}
  local tensor_methods = lunet.Tensor or getmetatable(lunet.zeros(1)).__methods
  local seen = {[tensor_methods] = "Tensor"}
  local queue = {{lunet, "lunet"}, {tensor_methods, "Tensor"}}
  seen[lunet] = "lunet"
  -- modules registered under their own names (require "lunet.nn") but not reachable above;
  -- preloaded ones nothing has required yet are loaded first
  for _, name in ipairs(sorted_keys(package.preload)) do
    if name:match("^lunet%.") and package.loaded[name] == nil then pcall(require, name) end
  end
  for _, name in ipairs(sorted_keys(package.loaded)) do
    local m = package.loaded[name]
    if name:match("^lunet%.") and type(m) == "table" then queue[#queue + 1] = {m, name} end
  end
  -- objects whose methods live on a class table the module does not export
  local function probe(name, make)
    local ok, obj = pcall(make)
    local mt = ok and getmetatable(obj)
    if type(mt) == "table" then
      local idx = rawget(mt, "__index")
      if type(idx) == "table" then queue[#queue + 1] = {idx, name} end
    end
  end
  probe("lunet.data.TensorDataset", function()
    return lunet.data.TensorDataset(lunet.zeros(2, 1), lunet.zeros(2))
  end)
  probe("lunet.data.DataLoader", function()
    return lunet.data.DataLoader(lunet.data.TensorDataset(lunet.zeros(2, 1), lunet.zeros(2)))
  end)
  probe("lunet.data.MNIST", function()
    -- a two-image dataset in four tiny IDX files
    local dir = make_tmpdir()
    local images, labels = lunet.zeros({2, 28, 28}, {dtype = lunet.uint8}), lunet.tensor({1, 2})
    for _, split in ipairs({"train", "t10k"}) do
      lunet.data.write_idx(dir .. "/" .. split .. "-images-idx3-ubyte", images)
      lunet.data.write_idx(dir .. "/" .. split .. "-labels-idx1-ubyte", labels:byte())
    end
    local ds = lunet.data.MNIST{root = dir}
    os.execute("rm -rf '" .. dir .. "'")
    return ds
  end)
  probe("lunet.plot.Figure", function() return lunet.plot.figure{} end)
  probe("lunet.plot.Panel", function() return lunet.plot.figure{}:panel{} end)
  probe("lunet.progress.Progress", function()
    return lunet.progress.new{total = 1, tty = false, stream = {write = function() end}}
  end)
  local i = 1
  while i <= #queue do
    local t, path = queue[i][1], queue[i][2]
    i = i + 1
    tables[path] = tables[path] or t
    for _, k in ipairs(sorted_keys(t)) do
      local v = rawget(t, k)
      if not k:match("^_") then
        if type(v) == "function" then
          local mt = getmetatable(t)
          if (k == "init" or k == "new") and type(mt) == "table" and rawget(mt, "__call") then
            expected[path] = true -- the constructor of a class
          elseif not inherited(t, k) then
            expected[path .. "." .. k] = true
          end
        elseif type(v) == "table" and not seen[v] then
          local mt = getmetatable(v)
          if type(mt) == "table" and rawget(mt, "__call") then
            expected[path .. "." .. k] = true -- a class: its constructor
          end
          seen[v] = path .. "." .. k
          queue[#queue + 1] = {v, path .. "." .. k}
        end
      end
    end
  end
  if getmetatable(lunet.zeros(1)) then
    for _, k in ipairs(sorted_keys(getmetatable(lunet.zeros(1)))) do
      if not k:match("^_") and type(getmetatable(lunet.zeros(1))[k]) == "function" then
        expected["Tensor." .. k] = true
      end
    end
  end
  return expected, tables
end

-- Functions declared in a C header (comments and preprocessor lines removed).
local function c_functions(path, out)
  local text = must_read(path):gsub("/%*.-%*/", " "):gsub("//[^\n]*", ""):gsub("\n#[^\n]*", "\n")
  for name in text:gmatch("([%a_][%w_]*)%s*%(") do
    if name:match("^lunet_") or name:match("^luaopen_") then out[name] = true end
  end
  return out
end

local function missing_from(expected, have)
  local miss = {}
  for name in pairs(expected) do
    if not have[name] then miss[#miss + 1] = name end
  end
  table.sort(miss)
  return miss
end

local function report(what, list)
  return ("%d %s:\n  %s"):format(#list, what, table.concat(list, "\n  "))
end

describe("the reference (docs/)", function()
  it("has an entry in docs/lua-api.md for every public Lua function", function()
    local expected = lua_api()
    local have = documented("docs/lua-api.md", lua_doc_name)
    local miss = missing_from(expected, have)
    assert(#miss == 0, report("public Lua functions without an entry in docs/lua-api.md "
      .. "(a code span `name(...)`)", miss))
  end)

  it("names no Lua function that does not exist", function()
    local _, tables = lua_api()
    local _, have = documented("docs/lua-api.md", lua_doc_name)
    local stale = {}
    for name in pairs(have) do
      local parent, key = name:match("^(.+)%.([%a_][%w_]*)$")
      local t = parent and tables[parent]
      if t and not key:match("^_") then
        local ok, v = pcall(function() return t[key] end)
        if not ok or v == nil then stale[#stale + 1] = name end
      end
    end
    table.sort(stale)
    assert(#stale == 0, report("entries in docs/lua-api.md naming no function", stale))
  end)

  it("documents every option `lunet --help` lists", function()
    local bin = LUNET_BIN or ((os.getenv("LUNET_BUILD") or "build") .. "/lunet")
    local _, help = run_command(bin .. " --help")
    local doc = must_read("docs/lua-api.md")
    local miss = {}
    for line in help:gmatch("[^\n]+") do
      -- an option line: two spaces, the option column ("-l g=mod", "-v, --version"), then
      -- two or more spaces before its description
      local opts = line:match("^  (%-.-)  +%S")
      for opt in (opts or ""):gmatch("(%-[%w%-]*)") do
        if not (doc:find("`" .. opt .. "`", 1, true) or doc:find("`" .. opt .. " ", 1, true)) then
          miss[#miss + 1] = opt
        end
      end
    end
    assert(help:find("%-%-help"), "lunet --help printed no options:\n" .. help)
    assert(#miss == 0, report("options of `lunet --help` missing from docs/lua-api.md §2", miss))
  end)

  it("names every LUNET_* environment variable the sources read", function()
    local _, found = run_command("git grep -h -o -e 'getenv(\"LUNET_[A-Z_]*\")' -- runtime bindings cli")
    local doc = must_read("docs/lua-api.md")
    local miss, seen = {}, {}
    for name in found:gmatch("(LUNET_[A-Z_]+)") do
      if not seen[name] and not doc:find("`" .. name .. "`", 1, true) then
        miss[#miss + 1] = name
      end
      seen[name] = true
    end
    assert(#miss == 0, report("environment variables missing from docs/lua-api.md", miss))
  end)

  it("has an entry in docs/c-api.md for every function of lunet.h and lunet_embed.h", function()
    local expected = c_functions("bindings/lunet_embed.h", c_functions("runtime/lunet.h", {}))
    local have = documented("docs/c-api.md", function(n) return n end)
    local miss = missing_from(expected, have)
    assert(#miss == 0, report("C functions without an entry in docs/c-api.md "
      .. "(a code span `name(...)`)", miss))
  end)

  it("names no C function that the headers do not declare", function()
    local declared = c_functions("bindings/lunet_embed.h", c_functions("runtime/lunet.h", {}))
    local stale = {}
    for name in pairs(documented("docs/c-api.md", function(n) return n end)) do
      if (name:match("^lunet_") or name:match("^luaopen_")) and not declared[name] then
        stale[#stale + 1] = name
      end
    end
    table.sort(stale)
    assert(#stale == 0, report("entries in docs/c-api.md naming no declared function", stale))
  end)

  -- GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
  local function slug(heading)
    return (heading:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-"))
  end

  it("lists every section in each document's contents", function()
    local miss = {}
    for _, doc in ipairs({"docs/lua-api.md", "docs/c-api.md", "docs/pytorch-parity.md"}) do
      local text = must_read(doc):gsub("\n```.-\n```", "\n")
      for heading in text:gmatch("\n## ([^\n]+)") do
        if heading ~= "Contents" and not text:find("(#" .. slug(heading) .. ")", 1, true) then
          miss[#miss + 1] = doc .. ": " .. heading .. " (#" .. slug(heading) .. ")"
        end
      end
    end
    assert(#miss == 0, report("sections missing from their document's contents list", miss))
  end)

  -- A `|` inside a table cell, even in a code span, splits the cell: write `abs(x)` or `\|`.
  it("has tables whose rows all have the header's number of cells", function()
    local bad = {}
    for _, doc in ipairs({"docs/lua-api.md", "docs/c-api.md", "docs/pytorch-parity.md",
                          "docs/FORMAT.md"}) do
      local ncols, n = nil, 0
      for line in (must_read(doc) .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        if line:sub(1, 1) == "|" then
          local unescaped = line:gsub("\\|", "") -- `\|` does not split a cell
          local cells = select(2, unescaped:gsub("|", "")) - 1
          ncols = ncols or cells
          if cells ~= ncols then
            bad[#bad + 1] = ("%s:%d: %d cells, the header has %d"):format(doc, n, cells, ncols)
          end
        else
          ncols = nil
        end
      end
    end
    assert(#bad == 0, report("table rows with a stray `|`", bad))
  end)

  it("is what the README points to", function()
    local readme = must_read("README.md")
    for _, doc in ipairs({"docs/lua-api.md", "docs/c-api.md", "docs/pytorch-parity.md",
                          "docs/FORMAT.md"}) do
      assert.truthy(readme:find(doc, 1, true), "README.md does not mention " .. doc)
    end
  end)

  -- The project carries its own docs: nothing cites the old spec outside the repository.
  -- (The patterns are built from pieces so that this file does not match them.)
  it("is the only documentation the sources cite", function()
    local ok, files = run_command("git ls-files")
    if not ok or files == "" then return end -- not a git checkout (an unpacked release): nothing to scan
    local patterns = {"%.%./" .. "shared", "[Pp]arity " .. "spec"}
    local hits = {}
    for path in files:gmatch("[^\n]+") do
      local text = read_file(path) or "" -- nil for a submodule or a removed file
      local n = 0
      for line in text:gmatch("[^\n]*") do
        n = n + 1
        for _, pat in ipairs(patterns) do
          if line:find(pat) then hits[#hits + 1] = ("%s:%d: %s"):format(path, n, line) end
        end
      end
    end
    assert(#hits == 0, report("lines citing documentation outside docs/ (cite "
      .. "docs/pytorch-parity.md §N or docs/lua-api.md instead)", hits))
  end)
end)
