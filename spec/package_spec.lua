-- package_spec.lua - packaging files (issue 7): the rockspec loads as LuaRocks reads it
-- (plain Lua assignments) and agrees with the Makefile and lunet.h; the pkg-config
-- templates, the man page and `lunet --help` document what they must.
local lunet = require "lunet"

describe("packaging", function()
  it("the rockspec is valid Lua defining a make build of the module", function()
    local env = {}
    local chunk = assert(loadfile("lunet-0.1.0-1.rockspec", "t", env))
    chunk()
    assert.are.equal("3.0", env.rockspec_format)
    assert.are.equal("lunet", env.package)
    assert.are.equal(lunet._VERSION .. "-1", env.version)
    assert.truthy(env.source and env.source.url)
    assert.truthy(env.description and env.description.summary and env.description.license)
    assert.are.same({ "lua >= 5.4, < 5.5" }, env.dependencies)
    assert.are.equal("openblas", env.external_dependencies.OPENBLAS.library)
    assert.are.equal("z", env.external_dependencies.ZLIB.library)
    assert.are.equal("make", env.build.type)
    -- the targets it names exist in the Makefile
    local mk = must_read("Makefile")
    for _, target in ipairs({ env.build.build_target, env.build.install_target }) do
      assert.truthy(mk:find("\n" .. target:gsub("%-", "%%-") .. ":", 1), target)
    end
    assert.are.equal("$(LIBDIR)", env.build.install_variables.LUA_LIBDIR)
  end)

  it("the pkg-config templates name the libraries and flags", function()
    local pc = must_read("lunet.pc.in")
    assert.truthy(pc:find("Name: lunet\n", 1, true))
    assert.truthy(pc:find("Version: @VERSION@", 1, true))
    assert.truthy(pc:find("Cflags: -I${includedir}", 1, true))
    assert.truthy(pc:find("Libs: -L${libdir} -llunet\n", 1, true))
    assert.truthy(pc:find("Libs.private: @BLAS_LIB@ @MPI_LIBS@ -lz -lm", 1, true))
    local pcl = must_read("lunet-lua.pc.in")
    assert.truthy(pcl:find("Requires: lunet = @VERSION@, @LUA_PC@", 1, true))
    assert.truthy(pcl:find("Libs: -L${libdir} -llunet-lua", 1, true))
  end)

  it("the man page and --help cover every option and LUNET_HISTORY", function()
    local man = must_read("man/lunet.1")
    local f = assert(io.popen(LUNET_BIN .. " --help"))
    local help = f:read("a")
    f:close()
    assert.truthy(man:find('.TH LUNET 1 "2026" "Lunet ' .. lunet._VERSION .. '"', 1, true))
    for _, opt in ipairs({ "-e", "-i", "-l", "-v", "--version", "-h", "--help", "-W", "-E", "--" }) do
      assert.truthy(help:find(opt, 1, true), "--help lacks " .. opt)
      assert.truthy(man:find(opt:gsub("%-", "\\-"), 1, true), "lunet.1 lacks " .. opt)
    end
    for _, word in ipairs({ "LUNET_HISTORY", "Ctrl-C", "Ctrl-D", "Tab" }) do
      assert.truthy(help:find(word, 1, true), "--help lacks " .. word)
      assert.truthy(man:find(word, 1, true), "lunet.1 lacks " .. word)
    end
  end)

  it("lunet_embed.h declares the embedding API", function()
    local h = must_read("bindings/lunet_embed.h")
    for _, name in ipairs({ "luaopen_lunet", "lunet_lua_open", "lunet_lua_push_tensor",
                            "lunet_lua_to_tensor", "lunet_lua_retain_tensor", "lunet_lua_pcall",
                            "lunet_lua_dofile", "lunet_lua_dostring" }) do
      assert.truthy(h:find(name .. "(", 1, true), name)
    end
    assert.truthy(h:find("lunet_tensor_wrap", 1, true))
  end)

  it("the Makefile tracks header dependencies (-MMD -MP)", function()
    -- make -n -W f: what make would rebuild if f had changed
    local function would_rebuild(changed, target)
      local p = assert(io.popen(("make -n BUILD=%s -W %s %s 2>&1"):format(LUNET_BUILD, changed, target)))
      local out = p:read("a")
      p:close()
      return out:find("-c runtime/tensor.c", 1, true) ~= nil, out
    end
    local obj = LUNET_BUILD .. "/obj/runtime/tensor.o"
    local yes, out = would_rebuild("runtime/internal.h", obj) -- tensor.c includes it
    assert.is_true(yes, out)
    local no, out2 = would_rebuild("runtime/nn_kernels.h", obj) -- tensor.c does not
    assert.is_false(no, out2)
    -- a test binary depends on the golden header it includes
    local d = io.open(LUNET_BUILD .. "/tests/test_loss.d")
    if d then
      local deps = d:read("a")
      d:close()
      assert.truthy(deps:find("tests/fixtures/loss_golden.h", 1, true))
    end
    assert.are.equal(1, select(2, must_read("Makefile"):gsub("\nall:", "")), "all: is defined once")
  end)
end)
