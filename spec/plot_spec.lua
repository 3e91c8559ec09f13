-- lunet.plot: SVG line charts.  The SVG is checked with a small XML parser written here
-- (well-formedness: one root, nesting, quoted unique attributes, valid entities), so CI
-- needs nothing beyond Lua.
local lunet = require "lunet"
local plot = lunet.plot

-- Parses XML text; returns the list of elements {name=, attrs=, text=, parent=} in document
-- order, or raises an error describing the first well-formedness problem.
local function parse_xml(s)
  local pos, elements, stack, roots = 1, {}, {}, 0
  local function fail(msg) error(("XML error at byte %d: %s"):format(pos, msg), 0) end
  local function check_text(t)
    if t:find("<", 1, true) then fail("'<' in text or attribute") end
    for ent in t:gmatch("&([^;]*);?") do
      if not (ent == "amp" or ent == "lt" or ent == "gt" or ent == "quot" or ent == "apos"
              or ent:match("^#%d+$") or ent:match("^#x%x+$")) then
        fail("bad entity &" .. ent)
      end
    end
    -- every & must start an entity that ends with ;
    for i in t:gmatch("()&") do
      if not t:find("^&[#%w]+;", i) then fail("bare '&'") end
    end
  end
  local function unescape(t)
    return (t:gsub("&(#?x?%w+);", function(e)
      if e == "amp" then return "&" elseif e == "lt" then return "<" elseif e == "gt" then return ">"
      elseif e == "quot" then return '"' elseif e == "apos" then return "'"
      elseif e:match("^#x") then return utf8.char(tonumber(e:sub(3), 16))
      else return utf8.char(tonumber(e:sub(2))) end
    end))
  end
  if s:sub(1, 5) == "<?xml" then
    local e = s:find("?>", 1, true)
    if not e then fail("unterminated XML declaration") end
    pos = e + 2
  end
  while pos <= #s do
    local lt = s:find("<", pos, true)
    local text = s:sub(pos, (lt or #s + 1) - 1)
    if #stack == 0 then
      if text:find("%S") then fail("text outside the root element") end
    else
      check_text(text)
      stack[#stack].text = stack[#stack].text .. unescape(text)
    end
    if not lt then break end
    pos = lt
    if s:sub(pos, pos + 3) == "<!--" then
      local e = s:find("-->", pos + 4, true)
      if not e then fail("unterminated comment") end
      pos = e + 3
    elseif s:sub(pos, pos + 1) == "</" then
      local name, e = s:match("^</([%w_:%-%.]+)%s*>()", pos)
      if not name then fail("bad end tag") end
      local top = stack[#stack]
      if not top or top.name ~= name then
        fail(("end tag </%s> does not match <%s>"):format(name, top and top.name or "nothing"))
      end
      stack[#stack] = nil
      pos = e
    else
      local name, p = s:match("^<([%a_:][%w_:%-%.]*)()", pos)
      if not name then fail("bad start tag") end
      pos = p
      local el = {name = name, attrs = {}, text = "", parent = stack[#stack]}
      while true do
        local ws, p2 = s:match("^(%s*)()", pos)
        pos = p2
        if s:sub(pos, pos + 1) == "/>" then
          pos = pos + 2
          el.empty = true
          break
        elseif s:sub(pos, pos) == ">" then
          pos = pos + 1
          break
        end
        if #ws == 0 then fail("attributes must be separated by white space") end
        local an, q, p3 = s:match("^([%a_:][%w_:%-%.]*)%s*=%s*([\"'])()", pos)
        if not an then fail("bad attribute in <" .. name .. ">") end
        local close = s:find(q, p3, true)
        if not close then fail("unterminated attribute value") end
        local val = s:sub(p3, close - 1)
        check_text(val)
        if el.attrs[an] ~= nil then fail("duplicate attribute " .. an) end
        el.attrs[an] = unescape(val)
        pos = close + 1
      end
      if #stack == 0 then
        roots = roots + 1
        if roots > 1 then fail("more than one root element") end
      end
      elements[#elements + 1] = el
      if not el.empty then stack[#stack + 1] = el end
    end
  end
  if #stack > 0 then fail("unclosed <" .. stack[#stack].name .. ">") end
  if roots ~= 1 then fail("no root element") end
  return elements
end

local function find_all(els, name)
  local out = {}
  for _, e in ipairs(els) do if e.name == name then out[#out + 1] = e end end
  return out
end

local function texts(els)
  local out = {}
  for _, e in ipairs(find_all(els, "text")) do out[#out + 1] = e.text end
  return out
end

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

describe("the spec's XML checker", function()
  it("accepts well-formed XML and rejects broken XML", function()
    assert.are.equal(2, #parse_xml('<?xml version="1.0"?><a x="1"><b/>t &amp; u</a>'))
    for _, bad in ipairs({"<a>", "<a></b>", "<a x=1/>", "<a>&</a>", "<a>&foo;</a>",
                          "<a/><b/>", '<a x="1" x="2"/>', "<a>x < y</a>", 'text<a/>'}) do
      assert.has_error(function() parse_xml(bad) end)
    end
  end)
end)

describe("lunet.plot", function()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  local function train_ch3_figure()
    -- the figure d2l's train_ch3 draws, plus a second panel as the MLP script does
    local fig = plot.figure{width = 900, height = 340, title = "softmax regression <Fashion-MNIST> & co"}
    local ax = fig:panel{title = "train_ch3", xlabel = "epoch", ylabel = "value", ylim = {0.3, 0.9}}
    ax:line({1, 2, 3, 4, 5}, {0.79, 0.57, 0.52, 0.50, 0.48}, {label = "train loss"})
    ax:line({1, 2, 3, 4, 5}, {0.75, 0.81, 0.83, 0.84, 0.845}, {label = "train acc", dash = "--"})
    ax:line(lunet.tensor({1, 2, 3, 4, 5}), lunet.tensor({0.79, 0.80, 0.82, 0.83, 0.83}),
            {label = "test acc", dash = "-."})
    local ax2 = fig:panel{title = "loss per epoch", xlabel = "epoch", ylabel = "loss"}
    ax2:line({1.08, 0.52, 0.45}, {label = "loss \"quoted\" 'x'"})
    ax2:line({1, 2, 3}, {0.9, 0 / 0, 0.4}) -- unlabeled, with a NaN point skipped
    return fig
  end

  it("writes well-formed SVG with one polyline per series", function()
    local svg = train_ch3_figure():svg()
    local els = parse_xml(svg)
    assert.are.equal("svg", els[1].name)
    assert.are.equal("http://www.w3.org/2000/svg", els[1].attrs.xmlns)
    assert.are.equal("900", els[1].attrs.width)
    local polys = find_all(els, "polyline")
    assert.are.equal(5, #polys)
    -- series 1..3 in panel 1, 4..5 in panel 2, each with its own points
    local npts = {}
    for i, p in ipairs(polys) do
      local n = 0
      for x, y in p.attrs.points:gmatch("(%-?[%d%.]+),(%-?[%d%.]+)") do
        n = n + 1
        assert.is_number(tonumber(x))
        assert.is_number(tonumber(y))
      end
      npts[i] = n
    end
    assert.are.same({5, 5, 5, 3, 2}, npts)
    assert.are.equal("#1f77b4", polys[1].attrs.stroke)
    assert.are.equal("#ff7f0e", polys[2].attrs.stroke)
    assert.are.equal("6,4", polys[2].attrs["stroke-dasharray"])
    assert.are.equal(nil, polys[1].attrs["stroke-dasharray"])
    -- text is escaped and comes back intact through the parser
    local t = texts(els)
    assert.is_true(contains(t, "softmax regression <Fashion-MNIST> & co"))
    assert.is_true(contains(t, "loss \"quoted\" 'x'"))
    assert.is_true(contains(t, "epoch"))
    assert.is_true(contains(t, "train_ch3"))
    -- legends: 3 labeled series in panel 1, 1 in panel 2 (the unlabeled one is not listed)
    local legends = {}
    for _, e in ipairs(els) do if e.name == "g" and e.attrs.class == "legend" then legends[#legends + 1] = e end end
    assert.are.equal(2, #legends)
    local entries = {0, 0}
    for _, e in ipairs(els) do
      if e.name == "text" and e.parent and e.parent.attrs.class == "legend" then
        entries[e.parent == legends[1] and 1 or 2] = entries[e.parent == legends[1] and 1 or 2] + 1
      end
    end
    assert.are.same({3, 1}, entries)
    -- y ticks of panel 1: steps of 0.2 inside the fixed limits 0.3 .. 0.9, none outside
    for _, lab in ipairs({"0.4", "0.6", "0.8"}) do assert.is_true(contains(t, lab), lab) end
    assert.is_false(contains(t, "0.2"))
  end)

  it("is deterministic and saves through a temporary file", function()
    local a, b = train_ch3_figure():svg(), train_ch3_figure():svg()
    assert.are.equal(a, b)
    local path = dir .. "/fig.svg"
    assert.are.equal(path, train_ch3_figure():save(path))
    local f = assert(io.open(path, "rb"))
    assert.are.equal(a, f:read("a"))
    f:close()
    local ls = io.popen("ls -a '" .. dir .. "'"):read("a")
    assert.is_nil(ls:find(".tmp.", 1, true))
    assert_error_contains(function() train_ch3_figure():save(dir .. "/missing/fig.svg") end,
      "missing/fig.svg")
  end)

  it("lays panels out in a grid", function()
    local fig = plot.figure{width = 600, height = 400, cols = 2}
    for i = 1, 4 do fig:panel{title = "p" .. i}:line({1, 2}, {i, i + 1}) end
    local els = parse_xml(fig:svg())
    local rects = {}
    for _, e in ipairs(els) do
      if e.name == "rect" and e.parent and e.parent.attrs.class == "panel" then rects[#rects + 1] = e.attrs end
    end
    assert.are.equal(4, #rects)
    assert.are.equal(rects[1].y, rects[2].y)       -- same row
    assert.are.equal(rects[1].x, rects[3].x)       -- same column
    assert.is_true(tonumber(rects[2].x) > tonumber(rects[1].x))
    assert.is_true(tonumber(rects[3].y) > tonumber(rects[1].y))
    assert.are.equal(4, #find_all(els, "polyline"))
  end)

  it("chooses nice 1-2-5 ticks", function()
    local lo, hi, ticks, dec = plot.nice_ticks(0.37, 0.91)
    assert.are.equal(0.2, lo)
    assert.are.equal(1.0, hi)
    assert_close(ticks, {0.2, 0.4, 0.6, 0.8, 1.0}, 1e-12)
    assert.are.equal(1, dec)
    local _, _, ticks2, dec2 = plot.nice_ticks(1, 10)
    assert.are.same({0, 2, 4, 6, 8, 10}, ticks2)
    assert.are.equal(0, dec2)
    local _, _, ticks3 = plot.nice_ticks(0, 2300)
    assert.are.same({0, 500, 1000, 1500, 2000, 2500}, ticks3)
    local _, _, ticks4, dec4 = plot.nice_ticks(0.0012, 0.0049)
    assert_close(ticks4, {0.001, 0.002, 0.003, 0.004, 0.005}, 1e-12)
    assert.are.equal(3, dec4)
    -- a flat series still gets an axis
    lo, hi, ticks = plot.nice_ticks(5, 5)
    assert.is_true(lo < 5 and hi > 5 and #ticks >= 2)
  end)

  it("validates its arguments", function()
    local ax = plot.figure():panel{}
    assert_error_contains(function() ax:line({1, 2}, {1}) end, "xs has 2 values but ys has 1")
    assert_error_contains(function() ax:line({1, "a"}) end, "ys[2] is not a number")
    assert_error_contains(function() ax:line(lunet.zeros(2, 2)) end, "must be 1-D")
    assert_error_contains(function() ax:line({1}, {dash = "~"}) end, "unknown dash")
    -- a single point is drawn as a polyline plus a marker
    ax:line({3}, {label = "one"})
    local els = parse_xml(ax.figure:svg())
    assert.are.equal(1, #find_all(els, "polyline"))
    assert.are.equal(1, #find_all(els, "circle"))
  end)
end)
