#!/usr/bin/env bash
# install_test.sh PREFIX [DESTDIR_PREFIX] - checks a `make install PREFIX=...` tree (run by
# `make test-install`, which installs into a temporary prefix first):
#   - every file is in place;
#   - a plain lua5.4 with LUA_CPATH pointing at PREFIX/lib/lua/5.4 requires lunet and runs;
#   - the installed lunet program runs a script and --help;
#   - a C file built with `pkg-config --cflags --libs lunet` links and runs (C core);
#   - a C host built with `pkg-config --cflags --libs lunet-lua` embeds Lua and lunet;
#   - the man page formats;
#   - the Jupyter kernel spec is there and `jupyter kernelspec list` shows it (kernel builds).
# DESTDIR_PREFIX, if given, is a tree installed with DESTDIR: it must hold the same files.
set -u
P=${1:?usage: install_test.sh PREFIX [DESTDIR_PREFIX]}
D=${2:-}
fails=0
passes=0
ok() { echo "ok   $1"; passes=$((passes + 1)); }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

FILES="bin/lunet lib/liblunet.a lib/liblunet.so lib/liblunet-lua.a include/lunet.h
include/lunet_embed.h lib/lua/5.4/lunet.so lib/pkgconfig/lunet.pc lib/pkgconfig/lunet-lua.pc
share/man/man1/lunet.1"
for f in $FILES; do
  [ -f "$P/$f" ] || bad "missing $P/$f"
  if [ -n "$D" ]; then [ -f "$D/$f" ] || bad "missing $D/$f (DESTDIR install)"; fi
done
[ "$fails" -eq 0 ] && ok "installed files present"
if [ -n "$D" ] && grep -q "^prefix=/opt/lunet$" "$D/lib/pkgconfig/lunet.pc"; then
  ok "DESTDIR install keeps the real prefix in lunet.pc"
elif [ -n "$D" ]; then bad "DESTDIR lunet.pc has the wrong prefix"; fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# plain lua5.4 finds the module under the prefix
cat > "$TMP/use.lua" <<'EOF'
local lunet = require "lunet"
local x = lunet.tensor({{1, 2}, {3, 4}})
print(lunet._VERSION, x:sum():item(), x:matmul(x):tolist()[2][1], package.searchpath("lunet", package.cpath))
EOF
out=$(cd "$TMP" && LUA_CPATH="$P/lib/lua/5.4/?.so" lua5.4 use.lua 2>&1)
if [ "$out" = "0.1.0	10	15	$P/lib/lua/5.4/lunet.so" ]; then ok "lua5.4 requires the installed lunet"
else bad "lua5.4 with the installed module printed: $out"; fi

# the installed program
out=$("$P/bin/lunet" -e 'print(lunet.ones(3):sum())' 2>&1)
[ "$out" = "tensor(3.)" ] && ok "installed lunet runs -e" || bad "installed lunet -e printed: $out"
"$P/bin/lunet" --help | grep -q 'LUNET_HISTORY' && ok "lunet --help" || bad "lunet --help"

# the C core through pkg-config
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
cat > "$TMP/core.c" <<'EOF'
#include <stdio.h>
#include "lunet.h"
int main(void)
{
    lunet_tensor_t *a, *b, *c;
    if (lunet_tensor_full(&a, LUNET_DTYPE_FLOAT32, 2, (const int64_t[]){2, 3}, 2.0) ||
        lunet_tensor_full(&b, LUNET_DTYPE_FLOAT32, 2, (const int64_t[]){3, 4}, 0.5) ||
        lunet_tensor_mm(&c, a, b)) {
        fprintf(stderr, "%s\n", lunet_error_message());
        return 1;
    }
    lunet_tensor_t *bad;
    int st = lunet_tensor_mm(&bad, a, a); /* (2,3) @ (2,3): an error, not an abort */
    printf("%s %g %d %s\n", LUNET_VERSION, lunet_tensor_get(c, 5), st != LUNET_OK,
           lunet_status_name(lunet_error_status()));
    lunet_tensor_release(a);
    lunet_tensor_release(b);
    lunet_tensor_release(c);
    return 0;
}
EOF
if cc -std=c11 -o "$TMP/core" "$TMP/core.c" $(pkg-config --cflags --libs lunet) 2>"$TMP/cc.log"; then
  out=$(LD_LIBRARY_PATH="$P/lib" "$TMP/core" 2>&1)
  [ "$out" = "0.1.0 3 1 RuntimeError" ] && ok "C program linked with pkg-config lunet runs" \
    || bad "pkg-config lunet program printed: $out"
  if cc -std=c11 -o "$TMP/core_static" "$TMP/core.c" -static-libgcc $(pkg-config --cflags lunet) \
       "$P/lib/liblunet.a" $(pkg-config --libs-only-l --static lunet | sed 's/-llunet//') 2>>"$TMP/cc.log" &&
     [ "$("$TMP/core_static")" = "0.1.0 3 1 RuntimeError" ]; then
    ok "C program linked with the static liblunet.a runs"
  else bad "static link: $(cat "$TMP/cc.log")"; fi
else
  bad "compiling with pkg-config lunet: $(cat "$TMP/cc.log")"
fi

# a Lua-embedding host through pkg-config lunet-lua
cat > "$TMP/host.c" <<'EOF'
#include <stdio.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lunet_embed.h"
int main(void)
{
    char err[512];
    float buf[4] = {1, 2, 3, 4};
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (lunet_lua_open(L, 0, err, sizeof err) != LUA_OK) { puts(err); return 1; }
    lunet_tensor_t *t;
    if (lunet_tensor_wrap(&t, LUNET_DTYPE_FLOAT32, 1, (const int64_t[]){4}, buf, NULL, NULL))
        return 1;
    lunet_lua_push_tensor(L, t);
    lunet_tensor_release(t);
    if (lunet_lua_dostring(L, "local x = ...; x:mul_(10); return require('lunet').tensor(7), x:sum()",
                           NULL, 1, 2, err, sizeof err) != LUA_OK) { puts(err); return 1; }
    lunet_tensor_t *s = lunet_lua_retain_tensor(L, -1);
    printf("%g %g", buf[3], lunet_tensor_get(s, 0));
    lunet_tensor_release(s);
    lua_settop(L, 0);
    int st = lunet_lua_dostring(L, "error('from lua')", "=snippet", 0, 0, err, sizeof err);
    printf(" %d %s\n", st != LUA_OK, err);
    lua_close(L);
    return 0;
}
EOF
if cc -std=c11 -o "$TMP/host" "$TMP/host.c" $(pkg-config --cflags --libs lunet-lua) 2>"$TMP/cc.log"; then
  out=$(LD_LIBRARY_PATH="$P/lib" "$TMP/host" 2>&1 | head -n 1)
  [ "$out" = "40 100 1 snippet:1: from lua" ] && ok "Lua host linked with pkg-config lunet-lua runs" \
    || bad "lunet-lua host printed: $out"
else
  bad "compiling with pkg-config lunet-lua: $(cat "$TMP/cc.log")"
fi

# the man page
if command -v man >/dev/null 2>&1 && MANWIDTH=80 man -l "$P/share/man/man1/lunet.1" 2>/dev/null | grep -q LUNET_HISTORY; then
  ok "man page formats"
elif grep -q '^\.TH LUNET 1' "$P/share/man/man1/lunet.1"; then
  ok "man page installed (man(1) not available to format it)"
else
  bad "man page"
fi

# the Jupyter kernel spec, when this lunet has the kernel (built with ZeroMQ)
if "$P/bin/lunet" --kernel /nonexistent.json 2>&1 | grep -q "cannot open connection file"; then
  spec="$P/share/jupyter/kernels/lunet"
  if [ -f "$spec/kernel.json" ] && [ -f "$spec/logo-32x32.png" ] && [ -f "$spec/logo-64x64.png" ] \
     && grep -q "\"$P/bin/lunet\", \"--kernel\"" "$spec/kernel.json"; then
    ok "kernel spec installed (kernel.json starting $P/bin/lunet, logos)"
  else bad "kernel spec in $spec: $(cat "$spec/kernel.json" 2>&1)"; fi
  if [ -n "$D" ] && ! grep -q '"/opt/lunet/bin/lunet"' "$D/share/jupyter/kernels/lunet/kernel.json"; then
    bad "DESTDIR kernel.json does not name /opt/lunet/bin/lunet"
  fi
  if command -v jupyter >/dev/null 2>&1; then
    if JUPYTER_PATH="$P/share/jupyter" jupyter kernelspec list 2>/dev/null | grep -q "lunet *$spec"; then
      ok "jupyter kernelspec list shows lunet"
    else bad "jupyter kernelspec list does not show $spec"; fi
  fi
fi

echo "install_test: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
