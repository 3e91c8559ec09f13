-- lunet.kernel: the Lua half of the Jupyter kernel (cli/kernel.c is the other half).
-- kernel.c calls _start(K) once, K holding its callbacks (stream, publish, input, now,
-- clear_hook, interrupted, drain, list_dir) and exe_dir, and then the returned handlers: execute,
-- user_expression, complete, inspect, is_complete, history, flush_stale.  Not useful
-- outside `lunet --kernel`.
--
-- Decisions:
--  - A cell runs as the REPL runs a line (lunet.repl.compile): as `return <cell>` (its
--    values are the result), else as statements; but a cell of several lines whose last
--    line is an expression runs the lines before it and shows that line's values, as
--    IPython does (`x = f()` then `x`; `f()` shows what f returns).  A trailing `;`
--    silences the result.  Each cell is one chunk, so a cell's locals end with it.
--  - print, io.write, io.stdout/io.stderr and io.read are replaced for the kernel's life:
--    output becomes `stream` messages (buffered, sent at most every 50 ms and at the end of
--    the cell), input an input_request to the frontend.  What C code and child processes
--    write to fds 1 and 2 is captured by kernel.c and sent too (os.execute keeps the order).
--  - lunet.plot figures saved with fig:save(path) are also shown below the cell, redrawn in
--    place when the same path is saved again (a training loop's live curves); a
--    lunet.progress bar writing to the default stream redraws in place (display_id).
local lunet = require "lunet"
local display = require "lunet.display"
local repl = require "lunet.repl"

local M = {}

-- kernel.c sends a table with this metatable as a JSON array even when it is empty
local JSON_ARRAY = {__jsonarray = true}

function M._start(K)
  local H = {}
  local text_of = repl.format
  display._text = function(v) return text_of(v) end

  -- ---------------------------------------------------------------- streams -----------
  -- runs of output in the order written: {name = "stdout" | "stderr", parts = {...}}
  local runs, nparts = {}, 0
  local last_flush = K.now()

  local function flush_all()
    local pending = runs
    runs, nparts = {}, 0
    for _, run in ipairs(pending) do K.stream(run.name, table.concat(run.parts)) end
    last_flush = K.now()
  end
  H.flush = flush_all
  -- called by kernel.c every 10^6 instructions of a running cell
  function H.flush_stale()
    if nparts > 0 and K.now() - last_flush > 0.1 then flush_all() end
  end

  local function write(name, ...)
    local run = runs[#runs]
    if not run or run.name ~= name then
      run = {name = name, parts = {}}
      runs[#runs + 1] = run
    end
    local parts = run.parts
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      local tv = type(v)
      if tv ~= "string" and tv ~= "number" then
        error(("bad argument #%d to 'write' (string expected, got %s)"):format(i, tv), 3)
      end
      parts[#parts + 1] = tostring(v)
      nparts = nparts + 1
    end
    if nparts > 512 or K.now() - last_flush > 0.05 then flush_all() end
  end

  local FileProxy = {}
  FileProxy.__index = FileProxy
  FileProxy.__name = "FILE*"
  FileProxy.__tostring = function(self) return ("file (%s)"):format(self.name) end
  function FileProxy:write(...) write(self.name, ...) return self end
  function FileProxy:flush() flush_all() return self end
  function FileProxy:setvbuf() return true end
  function FileProxy:seek() return nil, "Illegal seek", 29 end
  function FileProxy:close() return nil, "cannot close standard file" end

  local function read_line(prompt)
    flush_all()
    return K.input(prompt or "", false)
  end

  -- io.read formats: "l", "L", "n", "a", or a byte count (one line from the frontend each)
  local function read(fmt)
    fmt = fmt or "l"
    if type(fmt) == "string" then fmt = fmt:gsub("^%*", "") end
    local line = read_line("")
    if fmt == "n" then return tonumber(line) end
    if fmt == "L" or fmt == "a" then return line .. "\n" end
    if math.type(fmt) == "integer" then return line:sub(1, fmt) end
    return line
  end

  local StdinProxy = setmetatable({name = "stdin"}, FileProxy)
  function StdinProxy:read(...)
    local n = select("#", ...)
    if n <= 1 then return read((...)) end
    local out = {}
    for i = 1, n do out[i] = read((select(i, ...))) end
    return table.unpack(out, 1, n)
  end
  function StdinProxy:lines(...)
    local fmts = table.pack(...)
    return function() return self:read(table.unpack(fmts, 1, fmts.n)) end
  end
  function StdinProxy:write() return nil, "stdin is not writable" end

  local stdout = setmetatable({name = "stdout"}, FileProxy)
  local stderr = setmetatable({name = "stderr"}, FileProxy)
  local real_output, real_input = io.output, io.input
  io.stdout, io.stderr, io.stdin = stdout, stderr, StdinProxy
  local redirected = {output = false, input = false}
  function io.write(...)
    if redirected.output then return real_output():write(...) end
    write("stdout", ...)
    return stdout
  end
  function io.read(...)
    if redirected.input then return real_input():read(...) end
    return StdinProxy:read(...)
  end
  local real_lines = io.lines
  function io.lines(file, ...)
    if file == nil then return StdinProxy:lines(...) end
    return real_lines(file, ...)
  end
  -- io.output / io.input: no argument gives the current file (the proxy unless redirected),
  -- the proxy ends a redirection, anything else redirects through Lua's own function
  local function redirector(key, real, proxy)
    return function(f)
      if f == nil then return redirected[key] and real() or proxy end
      if f == proxy then redirected[key] = false return proxy end
      redirected[key] = true
      return real(f)
    end
  end
  io.output = redirector("output", real_output, stdout)
  io.input = redirector("input", real_input, StdinProxy)
  function _G.print(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    write("stdout", table.concat(parts, "\t"), "\n")
  end

  -- a child process writes to the kernel's fds 1 and 2 (captured by kernel.c): the cell's
  -- own output before it goes out first, the child's right after it returns
  local real_execute, real_popen = os.execute, io.popen
  function os.execute(...)
    flush_all()
    local r = table.pack(real_execute(...))
    K.drain()
    return table.unpack(r, 1, r.n)
  end
  function io.popen(...)
    flush_all()
    return real_popen(...)
  end

  -- an interrupt caught by the cell's own pcall/xpcall goes on up, so the cell stops
  local real_pcall, real_xpcall = pcall, xpcall
  local function rethrow(ok, ...)
    if not ok and K.interrupted() then error((...), 0) end
    return ok, ...
  end
  function _G.pcall(f, ...) return rethrow(real_pcall(f, ...)) end
  function _G.xpcall(f, h, ...) return rethrow(real_xpcall(f, h, ...)) end

  -- ---------------------------------------------------------------- rich output -------
  display._publish = function(msg_type, content)
    flush_all()
    K.publish(msg_type, content)
  end

  -- fig:save(path) also shows the figure; saving the same path again redraws it
  local plot = require "lunet.plot"
  local Figure = getmetatable(plot.figure{})
  local save = Figure.save
  local shown = {}
  function Figure:save(path)
    local r = save(self, path)
    local id = "lunet-figure:" .. tostring(path)
    display(self, {display_id = id, update = shown[id]})
    shown[id] = true
    return r
  end

  -- a progress bar on the default stream redraws one output in place
  local progress = require "lunet.progress"
  local new = progress.new
  local bars = 0
  function progress.new(opts)
    opts = opts or {}
    if type(opts) == "table" and opts.stream == nil then
      bars = bars + 1
      local id = ("lunet-progress-%d"):format(bars)
      local lines, current, started = {}, "", false
      local stream = {}
      function stream.write(_, ...)
        for i = 1, select("#", ...) do
          local s = tostring((select(i, ...)))
          local pos = 1
          while pos <= #s do
            local a, b = s:find("\r\27%[K", pos)
            local nl = s:find("\n", pos, true)
            if a and (not nl or a < nl) then
              current = current .. s:sub(pos, a - 1)
              current, pos = "", b + 1
            elseif nl then
              lines[#lines + 1] = current .. s:sub(pos, nl - 1)
              current, pos = "", nl + 1
            else
              current, pos = current .. s:sub(pos), #s + 1
            end
          end
        end
      end
      function stream.flush()
        local t = table.concat(lines, "\n") .. (#lines > 0 and current ~= "" and "\n" or "") .. current
        display._publish(started and "update_display_data" or "display_data",
                        {data = {["text/plain"] = t}, metadata = {}, transient = {display_id = id}})
        started = true
      end
      local o = {}
      for k, v in pairs(opts) do o[k] = v end
      o.stream, o.tty = stream, o.tty == nil and true or o.tty
      opts = o
    end
    return new(opts)
  end

  -- ---------------------------------------------------------------- execute -----------
  -- the prompt's own frames and the kernel's are noise in a cell's traceback
  local function trim_traceback(msg)
    msg = repl.trim_traceback(msg)
    local head, tb = msg:match("^(.-)\nstack traceback:\n(.*)$")
    if not head then return msg end
    local keep = {}
    for line in (tb .. "\n"):gmatch("(.-)\n") do
      if not line:match("lunet/kernel%.lua:") then keep[#keep + 1] = line end
    end
    if #keep == 0 then return head end
    return head .. "\nstack traceback:\n" .. table.concat(keep, "\n")
  end

  -- A cell of several lines whose last line (or last few lines) is an expression runs the
  -- lines before it and shows that expression, as IPython does -- even when the last line
  -- would also be a statement (a call).  Any other cell compiles as the prompt compiles a
  -- line (repl.compile).
  local function compile(code, name)
    local body = code:gsub("[ \t\n]+$", "")
    local quiet = body:sub(-1) == ";"
    if quiet then body = body:sub(1, -2) end
    local lines = {}
    for l in (body .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
    if #lines >= 2 and not load("return " .. body .. "\n", name, "t") then
      for k = #lines, math.max(2, #lines - 9), -1 do
        local head = table.concat(lines, "\n", 1, k - 1)
        local tail = table.concat(lines, "\n", k)
        if tail:match("%S") and load("return " .. tail .. "\n", name, "t") and load(head, name, "t") then
          local g = load(head .. "\nreturn " .. tail .. "\n", name, "t")
          if g then return g, not quiet end
        end
      end
    end
    local f, silent_or_err = repl.compile(code, name)
    if f then return f, not silent_or_err end
    return nil, silent_or_err
  end

  local function traceback(e)
    if type(e) ~= "string" then
      local mt = getmetatable(e)
      if mt and mt.__tostring then e = tostring(e)
      else e = ("(error object is a %s value)"):format(type(e)) end
    end
    return debug.traceback(e, 2)
  end

  local function error_table(ename, msg)
    msg = trim_traceback(msg)
    local tb = {}
    for line in (msg .. "\n"):gmatch("(.-)\n") do tb[#tb + 1] = line end
    local evalue = msg:match("^(.-)\nstack traceback:") or msg
    return {ename = ename, evalue = evalue, traceback = tb}
  end

  local history = {}

  function H.execute(code, silent, count, store)
    local name = ("=cell[%d]"):format(count)
    local f, show = compile(code, name)
    if not f then
      flush_all()
      return false, error_table("SyntaxError", show)
    end
    local res = table.pack(real_xpcall(f, traceback))
    K.clear_hook()
    flush_all()
    local entry = store and {line = count, input = code} or nil
    if entry then history[#history + 1] = entry end
    if not res[1] then
      local msg = res[2]
      local ename = msg:match("^[^\n]*interrupted!") and "KeyboardInterrupt" or "LuaError"
      return false, error_table(ename, msg)
    end
    if silent or not show or res.n < 2 then return true, nil end
    local ok, data, meta
    if res.n == 2 then
      ok, data, meta = real_pcall(display.bundle, res[2])
    else
      ok, data = real_pcall(text_of, table.unpack(res, 2, res.n))
      data = ok and {["text/plain"] = data} or data
    end
    if not ok then
      return false, error_table("LuaError", "error showing the result: " .. tostring(data))
    end
    if entry then entry.output = data["text/plain"] end
    return true, {data = data, metadata = meta or {}}
  end

  function H.user_expression(expr)
    local f, err = load("return " .. expr, "=expression", "t")
    if not f then return {status = "error", ename = "SyntaxError", evalue = err, traceback = {err}} end
    local ok, v = xpcall(f, traceback)
    if not ok then
      local e = error_table("LuaError", v)
      e.status = "error"
      return e
    end
    local okb, data, meta = pcall(display.bundle, v)
    if not okb then data, meta = {["text/plain"] = tostring(v)}, {} end
    return {status = "ok", data = data, metadata = meta}
  end

  -- ---------------------------------------------------------------- introspection -----
  -- cursor_pos counts unicode characters; Lua strings count bytes
  local function byte_pos(code, cursor)
    if type(cursor) ~= "number" then return #code end
    local ok, p = pcall(utf8.offset, code, cursor + 1)
    if not ok or not p then return #code end
    return p - 1
  end
  local function char_pos(code, bytes)
    local ok, n = pcall(utf8.len, code, 1, bytes)
    return ok and n or bytes
  end

  function H.complete(req)
    local code = type(req.code) == "string" and req.code or ""
    local bp = byte_pos(code, req.cursor_pos)
    local start, in_string = repl.word_start(code, bp)
    local matches = setmetatable({}, JSON_ARRAY)
    local word = code:sub(start, bp)
    if in_string then
      -- inside a string literal the word is a file name, as at the prompt
      local dir, base = word:match("^(.*/)([^/]*)$")
      dir, base = dir or "", base or word
      for _, name in ipairs(K.list_dir(dir)) do
        if name:sub(1, #base) == base and (name:sub(1, 1) ~= "." or base:sub(1, 1) == ".") then
          matches[#matches + 1] = dir .. name
        end
      end
      table.sort(matches)
    else
      local ok, r = pcall(repl.complete, word)
      if ok then for i, m in ipairs(r) do matches[i] = m end end
    end
    return {status = "ok", matches = matches, cursor_start = char_pos(code, start - 1),
            cursor_end = char_pos(code, bp), metadata = {}}
  end

  -- the value named by a dotted path (a.b:c), without calling anything but __index
  local function resolve(path)
    local v = _G
    for part in path:gmatch("[^%.:]+") do
      if type(v) ~= "table" and type(v) ~= "userdata" then return nil end
      local ok, w = pcall(function() return v[part] end)
      if not ok or w == nil then return nil end
      v = w
    end
    return v
  end

  local function signature(f, name)
    local info = debug.getinfo(f, "Su")
    if info.what == "C" then return name .. "(...)", "a C function" end
    local params = {}
    for i = 1, info.nparams do params[i] = debug.getlocal(f, i) end
    if info.isvararg then params[#params + 1] = "..." end
    local where = info.short_src .. ":" .. info.linedefined
    return name .. "(" .. table.concat(params, ", ") .. ")", "defined at " .. where
  end

  -- One-line docs from docs/lua-api.md (the source tree's beside build/ or build/<variant>/,
  -- or the installed copy in share/doc/lunet), read at the first inspect: each entry's signatures (a table row's
  -- first cell, or a ### heading's code spans), its PyTorch equivalent and the first
  -- sentence of its notes.  Keyed by the name as written and, through resolving that name,
  -- by the function value itself (so aliases such as `local F = lunet.nn.functional` work).
  local docs
  local PREFIX = {["nn."] = "lunet.nn.", ["F."] = "lunet.nn.functional.", ["optim."] = "lunet.optim.",
                  ["data."] = "lunet.data.", ["plot."] = "lunet.plot.", ["progress."] = "lunet.progress.",
                  ["display."] = "lunet.display.", ["metrics."] = "lunet.metrics.", ["repl."] = "lunet.repl."}
  local function first_sentence(text)
    text = text:gsub("`", ""):gsub("%s+", " "):gsub("^%s+", "")
    local pos = 1
    while true do -- a period and a space, not an ellipsis
      local a = text:find(". ", pos, true)
      if not a then return text end
      if text:sub(a - 1, a - 1) ~= "." then return text:sub(1, a) end
      pos = a + 1
    end
  end
  local function load_docs()
    docs = {by_name = {}, by_value = {}}
    local f
    for _, p in ipairs {K.exe_dir .. "/../docs/lua-api.md", K.exe_dir .. "/../../docs/lua-api.md",
                        K.exe_dir .. "/../share/doc/lunet/lua-api.md"} do
      f = io.open(p, "r")
      if f then break end
    end
    if not f then return end
    local text = f:read("a")
    f:close()
    local tensor_methods = getmetatable(lunet.zeros(1)).__methods
    local function add(spans, entry)
      for _, sig in ipairs(spans) do
        local name = sig:match("^([%a_][%w_%.:]*)")
        if name and not docs.by_name[name] then
          docs.by_name[name] = entry
          local full = name
          for short, long in pairs(PREFIX) do
            if name:sub(1, #short) == short then full = long .. name:sub(#short + 1) end
          end
          local v
          local method = name:match("^Tensor[:.]([%w_]+)$")
          if method then v = tensor_methods[method] else v = resolve(full) end
          if type(v) == "function" and not docs.by_value[v] then docs.by_value[v] = entry end
        end
      end
    end
    local pending
    for line in text:gmatch("[^\n]*") do
      if line:match("^###") then
        local spans = {}
        for sp in line:gmatch("`([^`]+)`") do spans[#spans + 1] = sp end
        pending = #spans > 0 and spans or nil
      elseif pending and line:match("%S") and not line:match("^|") then
        add(pending, {sig = table.concat(pending, ", "), doc = first_sentence(line)})
        pending = nil
      elseif line:match("^|%s*`") then
        local cells = {}
        for c in line:gsub("\\|", "\0"):gsub("%s*|%s*$", ""):gmatch("|([^|]*)") do
          cells[#cells + 1] = c:gsub("%z", "|")
        end
        local spans = {}
        for sp in (cells[1] or ""):gmatch("`([^`]+)`") do spans[#spans + 1] = sp end
        local entry = {sig = table.concat(spans, ", "), doc = first_sentence(cells[#cells] or "")}
        if #cells >= 3 then entry.torch = (cells[2]:gsub("`", ""):gsub("^%s+", ""):gsub("%s+$", "")) end
        add(spans, entry)
      end
    end
  end

  local function doc_of(name, v)
    if not docs then real_pcall(load_docs) end
    local e = docs.by_value and docs.by_value[v]
    if not e and docs.by_name then
      e = docs.by_name[name] or docs.by_name[(name:gsub("^lunet%.nn%.functional%.", "F."))]
        or docs.by_name[(name:gsub("^lunet%.(%a+)%.", "%1."))] or docs.by_name[(name:gsub("^lunet%.", ""))]
      if not e and lunet.is_tensor(resolve(name:match("^(.*):") or "")) then
        e = docs.by_name["Tensor:" .. name:match(":([%w_]+)$")]
      end
    end
    return e
  end

  function H.inspect(req)
    local code = type(req.code) == "string" and req.code or ""
    local bp = byte_pos(code, req.cursor_pos)
    local s = code:sub(1, bp) .. (code:sub(bp + 1):match("^[%w_]*") or "")
    local name = s:match("([%a_][%w_%.:]*)%(?%s*$") or s:match("([%a_][%w_%.:]*)[^%w_%.:]*$")
    local v = name and resolve(name)
    if v == nil then return {status = "ok", found = false, data = {}, metadata = {}} end
    local lines = {}
    local e = doc_of(name, v)
    if type(v) == "function" then
      local sig, where = signature(v, name)
      lines[1] = e and e.sig ~= "" and e.sig or sig
      if e then lines[#lines + 1] = e.doc end
      if e and e.torch and e.torch ~= "" then lines[#lines + 1] = "PyTorch: " .. e.torch end
      if not e or where ~= "a C function" then lines[#lines + 1] = where end
    else
      local t = type(v)
      if lunet.is_tensor(v) then t = ("tensor %s, %s"):format(table.concat(v:size(), " x "), v.dtype) end
      lines[1] = name .. ": " .. t
      if e then lines[#lines + 1] = e.sig .. ": " .. e.doc end
      if req.detail_level == 1 or type(v) ~= "table" then
        local ok, s2 = real_pcall(text_of, v)
        if ok and s2 then lines[#lines + 1] = s2 end
      end
    end
    return {status = "ok", found = true, data = {["text/plain"] = table.concat(lines, "\n")},
            metadata = {}}
  end

  function H.is_complete(req)
    local status = repl.is_complete(type(req.code) == "string" and req.code or "")
    return {status = status, indent = status == "incomplete" and "  " or ""}
  end

  -- glob (* and ?) to a Lua pattern
  local function glob(p)
    return "^" .. p:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
  end

  function H.history(req)
    local out = setmetatable({}, JSON_ARRAY)
    local function item(e)
      local v = req.output and {e.input, e.output or ""} or e.input
      return {1, e.line, v}
    end
    local kind = req.hist_access_type
    if kind == "tail" then
      local n = math.tointeger(req.n) or 10
      for i = math.max(1, #history - n + 1), #history do out[#out + 1] = item(history[i]) end
    elseif kind == "range" then
      local start, stop = math.tointeger(req.start) or 1, math.tointeger(req.stop)
      for _, e in ipairs(history) do
        if e.line >= start and (not stop or e.line < stop) then out[#out + 1] = item(e) end
      end
    elseif kind == "search" then
      local pat, seen, found = glob(req.pattern or "*"), {}, {}
      for i = #history, 1, -1 do
        local e = history[i]
        if e.input:match(pat) and not (req.unique and seen[e.input]) then
          seen[e.input] = true
          table.insert(found, 1, e)
        end
      end
      local n = math.tointeger(req.n)
      local first = n and math.max(1, #found - n + 1) or 1
      for i = first, #found do out[#out + 1] = item(found[i]) end
    end
    return {status = "ok", history = out}
  end

  return H
end

return M
