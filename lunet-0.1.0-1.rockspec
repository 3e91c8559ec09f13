-- LuaRocks rockspec: `luarocks make` (in a checkout) builds build/lunet.so with the
-- Makefile and installs it as the module `lunet` for plain lua5.4.
rockspec_format = "3.0"
package = "lunet"
version = "0.1.0-1"
source = {
   url = "git+https://github.com/lunet/lunet.git",
   tag = "v0.1.0",
}
description = {
   summary = "Tensors, autograd and neural networks for Lua, reproducing PyTorch 1.13",
   detailed = [[
Lunet is a numerical runtime in C11 with Lua 5.4 bindings: strided tensors with
broadcasting and PyTorch's type promotion, reverse-mode autograd, nn modules (Linear,
Sequential, MLP, ...), losses, SGD, IDX datasets (MNIST, Fashion-MNIST) and data loaders.
Matrix products use OpenBLAS.
]],
   homepage = "https://github.com/lunet/lunet",
   license = "MIT",
   labels = { "tensor", "autograd", "neural-network", "machine-learning" },
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   OPENBLAS = { library = "openblas" },
   ZLIB = { header = "zlib.h", library = "z" },
}
build = {
   type = "make",
   build_target = "rock",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LUA_CFLAGS = "-I$(LUA_INCDIR)",
      LIBS = "-L$(OPENBLAS_LIBDIR) -lopenblas -L$(ZLIB_LIBDIR) -lz -lm",
   },
   install_target = "install-rock",
   install_variables = {
      LUA_LIBDIR = "$(LIBDIR)",
   },
   copy_directories = { "man" },
}
