-- lunet.repl: what an interactive prompt needs, apart from reading keys -- used by the
-- `lunet` program's prompt (cli/repl.c) and by any other front end (a notebook kernel).
--
--   repl.compile(code [, chunkname [, env]]) -> fn, silent | nil, message, incomplete
--       an expression compiles as `return <code>` (its values are the results), anything
--       else as statements; a trailing `;` sets silent (print nothing); a leading `=` is
--       `return` (Lua 5.1's prompt).  incomplete is true when more lines could finish it.
--   repl.is_complete(code) -> "complete" | "incomplete" | "invalid"
--   repl.format(...) -> text of the results, or nil for none: strings as they are at the top
--       level, tensors and modules by tostring, tables readably (depth and size limits,
--       sorted keys, cycles marked); several results tab-separated (one per line when any
--       spans lines).
--   repl.trim_traceback(message) -> the message with only the traceback frames that matter
--       (C frames and the prompt's own chunk dropped)
--   repl.complete(word [, env]) -> sorted array of completions of word (`x:unsq` ->
--       `x:unsqueeze(`): globals and keywords, table fields along a.b.c, methods after `:`;
--       callables end in "(".  Evaluating a.b runs __index, as typing it would.
--   repl.word_start(line, cursor) -> index of the first byte of the word ending at cursor
--       (1-based, cursor = bytes typed), and whether it is inside a string literal
--   repl.word_breaks(line, cursor) -> the characters that end a word there: Lua's
--       punctuation, or inside a string literal only blanks and quotes (a file name)
local repl = {}

local function load_in(code, chunkname, env)
  if env then return load(code, chunkname, "bt", env) end
  return load(code, chunkname, "bt")
end

-- ---------------------------------------------------------------- compiling

local function is_eof_error(msg)
  return type(msg) == "string" and msg:sub(-5) == "<eof>"
end

function repl.compile(code, chunkname, env)
  chunkname = chunkname or "=stdin"
  if code:sub(1, 1) == "=" then code = "return " .. code:sub(2) end -- as lua.c
  local body = code:gsub("[ \t\n]+$", "")
  local silent = body:sub(-1) == ";"
  if silent then body = body:sub(1, -2) end
  local fn = load_in("return " .. body .. "\n", chunkname, env)
  if fn then return fn, silent end
  local err
  fn, err = load_in(code, chunkname, env)
  if fn then return fn, silent end -- statements print only what they `return`
  return nil, err, is_eof_error(err)
end

function repl.is_complete(code)
  local fn, _, incomplete = repl.compile(code)
  if fn then return "complete" end
  return incomplete and "incomplete" or "invalid"
end

-- ---------------------------------------------------------------- printing

local MAXDEPTH, MAXITEMS, WIDTH = 3, 30, 100

local KEYWORDS = {}
for w in ("and break do else elseif end false for function goto if in local nil not "
          .. "or repeat return then true until while"):gmatch("%a+") do
  KEYWORDS[w] = true
end

local function quote(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

local function keyorder(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local repr

local function tbl(t, depth, seen, indent)
  if seen[t] then return "{<cycle>}" end
  if depth > MAXDEPTH then return next(t) == nil and "{}" or "{...}" end
  seen[t] = true
  local inner = indent .. "  "
  local items, len, count = {}, rawlen(t), 0
  for i = 1, len do
    count = count + 1
    if count <= MAXITEMS then items[#items + 1] = repr(rawget(t, i), depth + 1, seen, inner) end
  end
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= len) then keys[#keys + 1] = k end
  end
  table.sort(keys, keyorder)
  for _, k in ipairs(keys) do
    count = count + 1
    if count <= MAXITEMS then
      local ks
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then ks = k
      else ks = "[" .. repr(k, MAXDEPTH + 1, seen, inner) .. "]" end
      local vs = repr(rawget(t, k), depth + 1, seen, inner)
      -- keep a multi-line value (a tensor) aligned under its first line
      if vs:find("\n") then vs = vs:gsub("\n", "\n" .. (" "):rep(#ks + 3)) end
      items[#items + 1] = ks .. " = " .. vs
    end
  end
  seen[t] = nil
  if count > MAXITEMS then items[#items + 1] = "... (" .. (count - MAXITEMS) .. " more)" end
  local one = "{" .. table.concat(items, ", ") .. "}"
  if #indent + #one <= WIDTH and not one:find("\n") then return one end
  if not one:find("\n") then -- short items: as many on a line as fit
    local lines, cur = {}, nil
    for i, it in ipairs(items) do
      local piece = it .. (i < #items and "," or "")
      if cur and #inner + #cur + 1 + #piece <= WIDTH then cur = cur .. " " .. piece
      else
        if cur then lines[#lines + 1] = cur end
        cur = piece
      end
    end
    lines[#lines + 1] = cur
    return "{\n" .. inner .. table.concat(lines, "\n" .. inner) .. "\n" .. indent .. "}"
  end
  return "{\n" .. inner .. table.concat(items, ",\n" .. inner) .. "\n" .. indent .. "}"
end

function repr(v, depth, seen, indent)
  local tv = type(v)
  if tv == "string" then return depth == 0 and v or quote(v) end
  local mt = getmetatable(v)
  if tv == "table" and not (type(mt) == "table" and rawget(mt, "__tostring")) then
    return tbl(v, depth, seen, indent)
  end
  local s = tostring(v)
  if indent ~= "" then s = s:gsub("\n", "\n" .. indent) end
  return s
end

function repl.format(...)
  local n = select("#", ...)
  if n == 0 then return nil end
  local parts, multi = {}, false
  for i = 1, n do
    parts[i] = repr((select(i, ...)), 0, {}, "")
    multi = multi or parts[i]:find("\n") ~= nil
  end
  return table.concat(parts, multi and "\n" or "\t")
end

function repl.trim_traceback(msg)
  local head, tb = msg:match("^(.-)\nstack traceback:\n(.*)$")
  if not head then return msg end
  local keep = {}
  for line in (tb .. "\n"):gmatch("(.-)\n") do
    if not (line:match("^%s*%[C%]:") or line:match("^%s*stdin:%d+: in main chunk$")
            or line:match("^%s*%(%.%.%.tail calls%.%.%.%)$")) then
      keep[#keep + 1] = line
    end
  end
  if #keep == 0 then return head end
  return head .. "\nstack traceback:\n" .. table.concat(keep, "\n")
end

-- ---------------------------------------------------------------- completion

-- Tensor fields that the tensor's __index answers without being in its method table.
local TENSOR_PROPERTIES = {"shape", "dtype", "requires_grad", "grad", "grad_fn", "is_leaf",
                           "retains_grad", "ndim", "data", "device"}

local function is_identifier(s) return s:match("^[%a_][%w_]*$") ~= nil end

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = type(v) == "table" and getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

-- Adds to out the names in v (a table, its __methods / __index chain, an nn.Module's
-- parameters and submodules, a tensor's properties) that start with part.
local function collect(v, prefix, part, methods_only, out, depth)
  if depth > 16 then return end
  if type(v) == "table" then
    for k, x in next, v do
      if type(k) == "string" and is_identifier(k) and k:sub(1, #part) == part
          and (k:sub(1, 1) ~= "_" or part:sub(1, 1) == "_") then
        local fn = is_callable(x)
        if fn or not methods_only then out[prefix .. k .. (fn and "(" or "")] = true end
      end
    end
    if not methods_only then
      -- an nn.Module keeps its parameters and submodules out of the raw table
      for _, hidden in ipairs {"_params", "_modules"} do
        local h = rawget(v, hidden)
        if type(h) == "table" then collect(h, prefix, part, false, out, 16) end
      end
    end
  end
  local mt = getmetatable(v)
  if type(mt) == "table" then
    local methods = rawget(mt, "__methods")
    if type(methods) == "table" then collect(methods, prefix, part, methods_only, out, depth + 1) end
    local index = rawget(mt, "__index")
    if type(index) == "table" then
      collect(index, prefix, part, methods_only, out, depth + 1)
    elseif type(index) == "function" and type(v) == "table" then
      collect(mt, prefix, part, methods_only, out, depth + 1) -- the class
    end
  end
  if not methods_only and type(v) == "userdata" and type(mt) == "table"
      and rawget(mt, "__name") == "lunet.Tensor" then
    for _, p in ipairs(TENSOR_PROPERTIES) do
      if p:sub(1, #part) == part then out[prefix .. p] = true end
    end
  end
end

local function sorted_keys(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

function repl.complete(word, env)
  env = env or _G
  local out = {}
  local last = word:match("^.*()[%.:]")
  if not last then
    collect(env, "", word, false, out, 0)
    for k in pairs(KEYWORDS) do
      if k:sub(1, #word) == word then out[k] = true end
    end
    return sorted_keys(out)
  end
  -- walk the path a.b.c before the last separator; only ':' may end it
  local v, pos = env, 1
  while pos < last do
    local name, sep, nxt = word:match("^([^%.:]*)([%.:])()", pos)
    if sep == ":" and nxt - 1 ~= last then return {} end
    if not is_identifier(name) then return {} end
    local ok, x = pcall(function() return v[name] end) -- runs __index
    if not ok or x == nil then return {} end
    v, pos = x, nxt
  end
  collect(v, word:sub(1, last), word:sub(last + 1), word:sub(last, last) == ":", out, 0)
  return sorted_keys(out)
end

-- readline's word breaks for Lua code, and inside a string literal those of a file name
local CODE_BREAKS = " \t\n\"'`@$><=;|&{}()[],+-*/%^~#"
local STRING_BREAKS = " \t\n\"'"

-- true when the first cursor bytes of line leave a string literal open
local function in_string(line, cursor)
  local open, i = nil, 1
  while i <= cursor do
    local c = line:sub(i, i)
    if open and c == "\\" and i < cursor then i = i + 1
    elseif open and c == open then open = nil
    elseif not open and (c == '"' or c == "'") then open = c end
    i = i + 1
  end
  return open ~= nil
end

function repl.word_breaks(line, cursor)
  return in_string(line or "", cursor or #(line or "")) and STRING_BREAKS or CODE_BREAKS
end

function repl.word_start(line, cursor)
  cursor = cursor or #line
  local quoted = in_string(line, cursor)
  local breaks = quoted and STRING_BREAKS or CODE_BREAKS
  local s = cursor
  while s >= 1 and not breaks:find(line:sub(s, s), 1, true) do s = s - 1 end
  return s + 1, quoted
end

return repl
