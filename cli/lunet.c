/*
 * lunet.c - the `lunet` program: a Lua 5.4 interpreter with the lunet module preloaded
 * (global `lunet`, and `require "lunet"`).  Modelled on lua.c of Lua 5.4: same `arg` table,
 * -e/-i/-l/-v handling, error reports with a traceback, Ctrl-C interrupting a running chunk.
 *
 * The interactive prompt (no script, or -i):
 *  - GNU readline in its callback mode, so that Ctrl-C at the prompt only discards the line
 *    (the signal handler just sets a flag; nothing unsafe runs inside it);
 *  - history in $LUNET_HISTORY (default ~/.lunet_history), one entry per line typed;
 *  - tab completion of globals, table fields and methods (`x:unsq<TAB>` -> `x:unsqueeze(`),
 *    inside a string literal of file names;
 *  - the value of every expression printed (tostring for tensors and modules, tables shown
 *    readably with depth and size limits); a trailing `;` silences it;
 *  - results are dropped after printing and a GC step runs, so they are not kept alive.
 * When stdin is not a terminal the prompt reads plain lines and prints no prompts.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include "lunet_embed.h"
#include <lua.h>
#include <lualib.h>

#include "lunet.h"

int luaopen_lunet(lua_State *L);

static const char *progname = "lunet";
static lua_State *globalL = NULL;
static int interactive_tty; /* at the prompt on a terminal */

#define PROMPT "> "
#define PROMPT2 ">> "
#define HISTORY_MAX 1000

/* ---------------------------------------------------------------- messages ----------- */

static void print_usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] [script [args]]\n"
            "Runs a Lua 5.4 script with the Lunet module preloaded as the global `lunet`\n"
            "(also returned by require \"lunet\").\n"
            "Available options are:\n"
            "  -e stat   execute string 'stat'\n"
            "  -i        enter interactive mode after executing 'script'\n"
            "  -l mod    require library 'mod' into global 'mod'\n"
            "  -l g=mod  require library 'mod' into global 'g'\n"
            "  -v, --version  show version information\n"
            "  -h, --help     show this help\n"
            "  -W        turn warnings on\n"
            "  -E        accepted for compatibility with lua (no effect)\n"
            "  --        stop handling options\n"
            "  -         stop handling options and execute stdin\n"
            "Options run in order (-e and -l before the script); the script gets its\n"
            "arguments as `...` and in the table `arg` (arg[0] is the script name).\n"
            "\n"
            "With no script and no -e, %s starts an interactive prompt (on a terminal):\n"
            "  - the value of an expression is printed (no `=` or print needed); several\n"
            "    values at once; a trailing `;` silences the output;\n"
            "  - an incomplete statement continues on the next line (`>>` prompt);\n"
            "  - Tab completes globals, table fields and methods (`x:unsq<Tab>`);\n"
            "  - Ctrl-C interrupts a running computation or discards the line; Ctrl-D exits;\n"
            "  - errors print their message and the prompt comes back.\n"
            "When stdin is not a terminal, %s runs it as a script (with -i: line by line).\n"
            "\n"
            "Environment:\n"
            "  LUNET_HISTORY  prompt history file (default ~/.lunet_history; empty: none)\n"
            "  LUA_PATH, LUA_CPATH  module search paths, as for lua\n"
            "Exit status: 0 on success, 1 when a script, -e or -l fails.\n",
            progname, progname, progname);
}

static void print_version(void)
{
    printf("Lunet %s (%s, %s)\n", LUNET_VERSION, LUA_VERSION,
           strcmp(lunet_blas_name(), "openblas") == 0 ? "OpenBLAS" : "built-in GEMM");
    fflush(stdout);
}

static void l_message(const char *pname, const char *msg)
{
    if (pname)
        fprintf(stderr, "%s: ", pname);
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
}

/* Reports a non-OK status with the message on the stack top. */
static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        l_message(progname, msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

/* ---------------------------------------------------------------- Ctrl-C ------------- */

static void lstop(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

/* On SIGINT, the next Lua instruction raises "interrupted!" (a hook is async-signal safe). */
static void laction(int i)
{
    int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    signal(i, SIG_DFL); /* a second Ctrl-C kills the process */
    if (interactive_tty)
        (void)!write(STDERR_FILENO, "\n", 1); /* past the "^C" the terminal echoed */
    lua_sethook(globalL, lstop, flag, 1);
}

static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, lunet_lua_traceback);
    lua_insert(L, base);
    globalL = L;
    signal(SIGINT, laction);
    int status = lua_pcall(L, narg, nres, base);
    signal(SIGINT, SIG_DFL);
    lua_sethook(L, NULL, 0, 0); /* a Ctrl-C that came after the chunk finished */
    lua_remove(L, base);
    return status;
}

/* ---------------------------------------------------------------- arguments ---------- */

/* arg = {[-n] = interpreter, ..., [0] = script, [1..] = script arguments}, as lua.c. */
static void createargtable(lua_State *L, char **argv, int argc, int script)
{
    if (script == argc)
        script = 0; /* no script: arg[0] is the program */
    int narg = argc - (script + 1);
    lua_createtable(L, narg, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int dochunk(lua_State *L, int status)
{
    if (status == LUA_OK)
        status = docall(L, 0, 0);
    return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name)
{
    return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

static int dolibrary(lua_State *L, char *globname)
{
    char *modname = strchr(globname, '=');
    if (modname == NULL)
        modname = globname;
    else
        *modname++ = '\0';
    lua_getglobal(L, "require");
    lua_pushstring(L, modname);
    int status = docall(L, 1, 1);
    if (status == LUA_OK)
        lua_setglobal(L, globname);
    return report(L, status);
}

static int pushargs(lua_State *L)
{
    if (lua_getglobal(L, "arg") != LUA_TTABLE)
        luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    int i;
    for (i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -i);
    return n;
}

static int handle_script(lua_State *L, char **argv)
{
    const char *fname = argv[0];
    if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
        fname = NULL; /* stdin */
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = pushargs(L);
        status = docall(L, n, LUA_MULTRET);
    }
    return report(L, status);
}

#define has_error 1
#define has_i 2
#define has_v 4
#define has_e 8
#define has_h 16

/* Scans options; returns flags, and in *first the index of the script (or argc). */
static int collectargs(char **argv, int *first)
{
    int args = 0;
    int i;
    if (argv[0] == NULL) {
        *first = 0;
        return 0;
    }
    for (i = 1; argv[i] != NULL; i++) {
        *first = i;
        if (argv[i][0] != '-')
            return args;
        if (strcmp(argv[i], "--help") == 0) {
            args |= has_h;
            continue;
        }
        if (strcmp(argv[i], "--version") == 0) {
            args |= has_v;
            continue;
        }
        switch (argv[i][1]) {
        case '-':
            if (argv[i][2] != '\0')
                return has_error;
            *first = i + 1;
            return args;
        case '\0':
            return args; /* "-" is the script (stdin) */
        case 'E':
            if (argv[i][2] != '\0')
                return has_error;
            break;
        case 'W':
            if (argv[i][2] != '\0')
                return has_error;
            break;
        case 'i':
            args |= has_i; /* -i implies -v */
            /* fall through */
        case 'v':
            if (argv[i][2] != '\0')
                return has_error;
            args |= has_v;
            break;
        case 'h':
            if (argv[i][2] != '\0')
                return has_error;
            args |= has_h;
            break;
        case 'e':
            args |= has_e;
            /* fall through */
        case 'l':
            if (argv[i][2] == '\0') {
                i++;
                if (argv[i] == NULL || argv[i][0] == '-')
                    return has_error;
            }
            break;
        default:
            return has_error;
        }
    }
    *first = i;
    return args;
}

/* Runs -e and -l options in order. */
static int runargs(lua_State *L, char **argv, int n)
{
    for (int i = 1; i < n; i++) {
        int option = argv[i][1];
        if (argv[i][0] != '-' || strcmp(argv[i], "--help") == 0 ||
            strcmp(argv[i], "--version") == 0)
            continue;
        switch (option) {
        case 'e':
        case 'l': {
            char *extra = argv[i] + 2;
            if (*extra == '\0')
                extra = argv[++i];
            int status = option == 'e' ? dostring(L, extra, "=(command line)")
                                       : dolibrary(L, extra);
            if (status != LUA_OK)
                return 0;
            break;
        }
        case 'W':
            lua_warning(L, "@on", 0);
            break;
        default:
            break;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- value printing ----- */

/*
 * The prompt's printer, in Lua because it walks tables: show(...) returns the text for a
 * list of results (nil for none); trim(msg) shortens an error's traceback to the Lua
 * frames below the prompt's own chunk (a traceback of C frames only is dropped).
 */
static const char repl_helpers[] =
    "local MAXDEPTH, MAXITEMS, WIDTH = 3, 30, 100\n"
    "local kw = {}\n"
    "for w in ('and break do else elseif end false for function goto if in local nil not '..\n"
    "          'or repeat return then true until while'):gmatch('%a+') do kw[w] = true end\n"
    "local function quote(s)\n"
    "  return (string.format('%q', s):gsub('\\\\\\n', '\\\\n'))\n"
    "end\n"
    "local function keyorder(a, b)\n"
    "  local ta, tb = type(a), type(b)\n"
    "  if ta ~= tb then return ta < tb end\n"
    "  if ta == 'number' or ta == 'string' then return a < b end\n"
    "  return tostring(a) < tostring(b)\n"
    "end\n"
    "local repr\n"
    "local function tbl(t, depth, seen, indent)\n"
    "  if seen[t] then return '{<cycle>}' end\n"
    "  if depth > MAXDEPTH then return next(t) == nil and '{}' or '{...}' end\n"
    "  seen[t] = true\n"
    "  local inner = indent .. '  '\n"
    "  local items, len, count = {}, rawlen(t), 0\n"
    "  for i = 1, len do\n"
    "    count = count + 1\n"
    "    if count <= MAXITEMS then items[#items + 1] = repr(rawget(t, i), depth + 1, seen, inner) end\n"
    "  end\n"
    "  local keys = {}\n"
    "  for k in next, t do\n"
    "    if not (math.type(k) == 'integer' and k >= 1 and k <= len) then keys[#keys + 1] = k end\n"
    "  end\n"
    "  table.sort(keys, keyorder)\n"
    "  for _, k in ipairs(keys) do\n"
    "    count = count + 1\n"
    "    if count <= MAXITEMS then\n"
    "      local ks\n"
    "      if type(k) == 'string' and k:match('^[%a_][%w_]*$') and not kw[k] then ks = k\n"
    "      else ks = '[' .. repr(k, MAXDEPTH + 1, seen, inner) .. ']' end\n"
    "      local vs = repr(rawget(t, k), depth + 1, seen, inner)\n"
    "      -- keep a multi-line value (a tensor) aligned under its first line\n"
    "      if vs:find('\\n') then vs = vs:gsub('\\n', '\\n' .. (' '):rep(#ks + 3)) end\n"
    "      items[#items + 1] = ks .. ' = ' .. vs\n"
    "    end\n"
    "  end\n"
    "  seen[t] = nil\n"
    "  if count > MAXITEMS then items[#items + 1] = '... (' .. (count - MAXITEMS) .. ' more)' end\n"
    "  local one = '{' .. table.concat(items, ', ') .. '}'\n"
    "  if #indent + #one <= WIDTH and not one:find('\\n') then return one end\n"
    "  if not one:find('\\n') then -- short items: as many on a line as fit\n"
    "    local lines, cur = {}, nil\n"
    "    for i, it in ipairs(items) do\n"
    "      local piece = it .. (i < #items and ',' or '')\n"
    "      if cur and #inner + #cur + 1 + #piece <= WIDTH then cur = cur .. ' ' .. piece\n"
    "      else if cur then lines[#lines + 1] = cur end cur = piece end\n"
    "    end\n"
    "    lines[#lines + 1] = cur\n"
    "    return '{\\n' .. inner .. table.concat(lines, '\\n' .. inner) .. '\\n' .. indent .. '}'\n"
    "  end\n"
    "  return '{\\n' .. inner .. table.concat(items, ',\\n' .. inner) .. '\\n' .. indent .. '}'\n"
    "end\n"
    "function repr(v, depth, seen, indent)\n"
    "  local tv = type(v)\n"
    "  if tv == 'string' then return depth == 0 and v or quote(v) end\n"
    "  local mt = getmetatable(v)\n"
    "  if tv == 'table' and not (type(mt) == 'table' and rawget(mt, '__tostring')) then\n"
    "    return tbl(v, depth, seen, indent)\n"
    "  end\n"
    "  local s = tostring(v)\n"
    "  if indent ~= '' then s = s:gsub('\\n', '\\n' .. indent) end\n"
    "  return s\n"
    "end\n"
    "local function show(...)\n"
    "  local n = select('#', ...)\n"
    "  if n == 0 then return nil end\n"
    "  local parts, multi = {}, false\n"
    "  for i = 1, n do\n"
    "    parts[i] = repr((select(i, ...)), 0, {}, '')\n"
    "    multi = multi or parts[i]:find('\\n') ~= nil\n"
    "  end\n"
    "  return table.concat(parts, multi and '\\n' or '\\t')\n"
    "end\n"
    "local function trim(msg)\n"
    "  local head, tb = msg:match('^(.-)\\nstack traceback:\\n(.*)$')\n"
    "  if not head then return msg end\n"
    "  local keep = {}\n"
    "  for line in (tb .. '\\n'):gmatch('(.-)\\n') do\n"
    "    if not (line:match('^%s*%[C%]:') or line:match('^%s*stdin:%d+: in main chunk$')\n"
    "            or line:match('^%s*%(%.%.%.tail calls%.%.%.%)$')) then\n"
    "      keep[#keep + 1] = line\n"
    "    end\n"
    "  end\n"
    "  if #keep == 0 then return head end\n"
    "  return head .. '\\nstack traceback:\\n' .. table.concat(keep, '\\n')\n"
    "end\n"
    "return show, trim\n";

static const char show_key = 's';
static const char trim_key = 't';

static void helpers_init(lua_State *L)
{
    if (luaL_loadbuffer(L, repl_helpers, sizeof repl_helpers - 1, "=lunet-repl") != LUA_OK) {
        report(L, LUA_ERRSYNTAX);
        return;
    }
    lua_call(L, 0, 2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &trim_key);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &show_key);
}

/* Prints the values on the stack (all of it) with the prompt's printer. */
static void show_results(lua_State *L)
{
    int n = lua_gettop(L);
    if (n == 0)
        return;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &show_key);
    lua_insert(L, 1);
    if (docall(L, n, 1) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        l_message(NULL, lua_pushfstring(L, "error printing the result: %s", msg ? msg : "?"));
        return;
    }
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (s) {
        fwrite(s, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
}

/* Reports an error at the prompt: the message, and only the traceback frames that matter. */
static void report_repl(lua_State *L)
{
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &trim_key);
        lua_insert(L, -2);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "(error while reporting an error)");
        }
    }
    report(L, LUA_ERRRUN);
}

/* ---------------------------------------------------------------- completion --------- */

static const char *const lua_keywords[] = {
    "and",   "break", "do",     "else", "elseif", "end",   "false", "for",
    "function", "goto", "if",   "in",   "local",  "nil",   "not",   "or",
    "repeat", "return", "then", "true", "until",  "while", NULL};

/* Tensor fields that t_index answers without being in the method table. */
static const char *const tensor_properties[] = {
    "shape", "dtype", "requires_grad", "grad", "grad_fn", "is_leaf", "ndim", "data", "device",
    NULL};
static void collect_keys(lua_State *L, int idx, const char *prefix, size_t plen,
                         const char *part, int methods_only, int depth);

#define MAX_MATCHES 4096
static char *matches[MAX_MATCHES];
static int nmatches;

static void add_match(const char *prefix, size_t plen, const char *name, const char *suffix)
{
    if (nmatches >= MAX_MATCHES)
        return;
    size_t nlen = strlen(name), slen = strlen(suffix);
    char *m = malloc(plen + nlen + slen + 1);
    if (!m)
        return;
    memcpy(m, prefix, plen);
    memcpy(m + plen, name, nlen);
    memcpy(m + plen + nlen, suffix, slen + 1);
    matches[nmatches++] = m;
}

static int is_identifier(const char *s, size_t n)
{
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* Adds the matching keys of the table at idx (and of its __index chain). */
static void collect_keys(lua_State *L, int idx, const char *prefix, size_t plen,
                         const char *part, int methods_only, int depth)
{
    idx = lua_absindex(L, idx);
    if (depth > 16)
        return;
    size_t partlen = strlen(part);
    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            size_t klen;
            const char *k;
            if (lua_type(L, -2) == LUA_TSTRING && (k = lua_tolstring(L, -2, &klen)) &&
                is_identifier(k, klen) && klen >= partlen && strncmp(k, part, partlen) == 0 &&
                (k[0] != '_' || part[0] == '_')) {
                int isfn = lua_type(L, -1) == LUA_TFUNCTION;
                if (!isfn && lua_type(L, -1) == LUA_TTABLE && lua_getmetatable(L, -1)) {
                    isfn = lua_getfield(L, -1, "__call") != LUA_TNIL;
                    lua_pop(L, 2);
                }
                if (isfn || !methods_only)
                    add_match(prefix, plen, k, isfn ? "(" : "");
            }
            lua_pop(L, 1);
        }
    }
    if (lua_type(L, idx) == LUA_TTABLE && !methods_only) {
        /* an nn.Module keeps its parameters and submodules out of the raw table */
        static const char *const hidden[] = {"_params", "_modules", NULL};
        for (int i = 0; hidden[i]; i++) {
            if (lua_getfield(L, idx, hidden[i]) == LUA_TTABLE)
                collect_keys(L, -1, prefix, plen, part, 0, 16);
            lua_pop(L, 1);
        }
    }
    if (lua_getmetatable(L, idx)) {
        int mt = lua_gettop(L);
        if (lua_getfield(L, mt, "__methods") == LUA_TTABLE)
            collect_keys(L, -1, prefix, plen, part, methods_only, depth + 1);
        lua_pop(L, 1);
        int it = lua_getfield(L, mt, "__index");
        if (it == LUA_TTABLE)
            collect_keys(L, -1, prefix, plen, part, methods_only, depth + 1);
        else if (it == LUA_TFUNCTION && lua_type(L, idx) == LUA_TTABLE)
            collect_keys(L, mt, prefix, plen, part, methods_only, depth + 1); /* the class */
        lua_pop(L, 2);
    }
    if (!methods_only && luaL_testudata(L, idx, "lunet.Tensor")) {
        for (int i = 0; tensor_properties[i]; i++)
            if (strncmp(tensor_properties[i], part, partlen) == 0)
                add_match(prefix, plen, tensor_properties[i], "");
    }
}

/* lua_CFunction run under pcall: the text to complete is a light userdata. */
static int complete_lua(lua_State *L)
{
    const char *text = lua_touserdata(L, 1);
    const char *sep = strpbrk(text, ".:");
    const char *last = NULL;
    for (const char *p = sep; p; p = strpbrk(p + 1, ".:"))
        last = p;
    lua_pushglobaltable(L);
    if (!last) {
        collect_keys(L, -1, "", 0, text, 0, 0);
        size_t n = strlen(text);
        for (int i = 0; lua_keywords[i]; i++)
            if (strncmp(lua_keywords[i], text, n) == 0)
                add_match("", 0, lua_keywords[i], "");
        return 0;
    }
    /* walk the path a.b.c before the last separator; only ':' may end it */
    const char *seg = text;
    while (seg < last) {
        const char *end = strpbrk(seg, ".:");
        if (*end == ':' && end != last)
            return 0;
        if (!is_identifier(seg, (size_t)(end - seg)))
            return 0;
        /* runs __index: completing a.b.c evaluates a.b as typing it would */
        lua_pushlstring(L, seg, (size_t)(end - seg));
        lua_gettable(L, -2);
        lua_remove(L, -2);
        if (lua_isnil(L, -1))
            return 0;
        seg = end + 1;
    }
    collect_keys(L, -1, text, (size_t)(last - text + 1), last + 1, *last == ':', 0);
    return 0;
}

static int match_index;

static char *match_generator(const char *text, int state)
{
    (void)text;
    if (state == 0)
        match_index = 0;
    if (match_index < nmatches) {
        char *m = matches[match_index];
        matches[match_index++] = NULL;
        return m; /* readline frees it */
    }
    return NULL;
}

#define LUA_WORD_BREAKS " \t\n\"'`@$><=;|&{}()[],+-*/%^~#"

/* Inside an open string literal a word is a file name, which may contain '/', '-', '.'. */
static char *word_breaks(void)
{
    char open = 0;
    for (int i = 0; i < rl_point && rl_line_buffer[i]; i++) {
        char c = rl_line_buffer[i];
        if (open && c == '\\' && i + 1 < rl_point)
            i++;
        else if (open && c == open)
            open = 0;
        else if (!open && (c == '"' || c == '\''))
            open = c;
    }
    return open ? (char *)" \t\n\"'" : (char *)LUA_WORD_BREAKS;
}

static char **lunet_completion(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names outside strings */
    if (rl_completion_quote_character)
        return rl_completion_matches(text, rl_filename_completion_function);
    rl_completion_append_character = '\0';
    for (int i = 0; i < nmatches; i++)
        free(matches[i]);
    nmatches = 0;
    lua_State *L = globalL;
    if (!L)
        return NULL;
    int top = lua_gettop(L);
    lua_pushcfunction(L, complete_lua);
    lua_pushlightuserdata(L, (void *)text);
    (void)lua_pcall(L, 1, 0, 0); /* a failure just means fewer matches */
    lua_settop(L, top);
    if (nmatches == 0)
        return NULL;
    char **r = rl_completion_matches(text, match_generator);
    for (int i = 0; i < nmatches; i++)
        free(matches[i]); /* the ones readline did not take */
    nmatches = 0;
    return r;
}

/* ---------------------------------------------------------------- line input --------- */

static char history_path[4096];
static int use_readline;

static void history_init(void)
{
    const char *p = getenv("LUNET_HISTORY");
    const char *home = getenv("HOME");
    if (p)
        snprintf(history_path, sizeof history_path, "%s", p); /* "" turns history off */
    else if (home && *home)
        snprintf(history_path, sizeof history_path, "%s/.lunet_history", home);
    else
        history_path[0] = '\0';
    using_history();
    stifle_history(HISTORY_MAX);
    if (history_path[0])
        read_history(history_path);
}

static void history_add(const char *line)
{
    if (!use_readline || line[0] == '\0')
        return;
    HIST_ENTRY *prev = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (prev && strcmp(prev->line, line) == 0)
        return;
    add_history(line);
    if (history_path[0] && append_history(1, history_path) != 0)
        write_history(history_path); /* the file did not exist yet */
}

static void history_done(void)
{
    if (use_readline && history_path[0])
        history_truncate_file(history_path, HISTORY_MAX);
}

static volatile sig_atomic_t prompt_sigint, prompt_sigwinch;
static char *cb_line;
static int cb_done;

static void on_prompt_signal(int sig)
{
    if (sig == SIGINT)
        prompt_sigint = 1;
    else
        prompt_sigwinch = 1;
}

static void on_line(char *line)
{
    cb_line = line;
    cb_done = 1;
    rl_callback_handler_remove();
}

/*
 * Reads one line with readline's callback interface: 1 with *out (malloc'ed), 0 at end of
 * input, -1 when Ctrl-C discarded the line.
 */
static int read_line_rl(const char *prompt, char **out)
{
    struct sigaction sa, old_int, old_winch;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: select() must return on the signal */
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGWINCH, &sa, &old_winch);
    prompt_sigint = 0;
    cb_done = 0;
    cb_line = NULL;
    int result = 1;
    rl_callback_handler_install(prompt, on_line);
    int fd = fileno(rl_instream ? rl_instream : stdin);
    while (!cb_done) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(fd, &fds);
        int r = select(fd + 1, &fds, NULL, NULL, NULL);
        if (prompt_sigwinch) {
            prompt_sigwinch = 0;
            rl_resize_terminal();
        }
        if (prompt_sigint) {
            /* "^C" while the line is still shown: leaving readline's terminal mode may
               return the cursor to column 0 (the end of bracketed-paste mode sends \r) */
            FILE *o = rl_outstream ? rl_outstream : stdout;
            rl_point = rl_end;
            rl_redisplay();
            fputs("^C", o);
            fflush(o);
            rl_free_line_state();
            rl_callback_sigcleanup();
            rl_callback_handler_remove();
            fputs("\n", o);
            fflush(o);
            result = -1;
            break;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rl_callback_handler_remove();
            result = 0;
            break;
        }
        rl_callback_read_char();
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGWINCH, &old_winch, NULL);
    if (result == 1) {
        if (!cb_line)
            return 0;
        *out = cb_line;
    }
    return result;
}

/* A line from a non-terminal stdin: no prompt, no editing. */
static int read_line_plain(char **out)
{
    size_t cap = 256, len = 0;
    char *b = malloc(cap);
    if (!b)
        return 0;
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        if (len + 1 >= cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                return 0;
            }
            b = nb;
        }
        b[len++] = (char)c;
    }
    if (c == EOF && len == 0) {
        free(b);
        return 0;
    }
    b[len] = '\0';
    *out = b;
    return 1;
}

/* Pushes the next line; returns 1, 0 at end of input, -1 on Ctrl-C. */
static int pushline(lua_State *L, int firstline)
{
    char *b = NULL;
    int r = use_readline ? read_line_rl(firstline ? PROMPT : PROMPT2, &b) : read_line_plain(&b);
    if (r != 1)
        return r;
    size_t l = strlen(b);
    if (l > 0 && b[l - 1] == '\r')
        b[--l] = '\0';
    history_add(b);
    if (firstline && b[0] == '=')
        lua_pushfstring(L, "return %s", b + 1); /* 5.2 compatibility, as lua.c */
    else
        lua_pushlstring(L, b, l);
    free(b);
    return 1;
}

/* True when the load error on the stack says the chunk ended too early. */
static int incomplete(lua_State *L, int status)
{
    if (status == LUA_ERRSYNTAX) {
        size_t lmsg;
        const char *msg = lua_tolstring(L, -1, &lmsg);
        const char *eof = "<eof>";
        size_t leof = strlen(eof);
        if (lmsg >= leof && strcmp(msg + lmsg - leof, eof) == 0)
            return 1;
    }
    return 0;
}

/* Length of s without trailing blanks and one trailing ';' (sets *silent when found). */
static size_t strip_semicolon(const char *s, size_t len, int *silent)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n'))
        len--;
    *silent = len > 0 && s[len - 1] == ';';
    return *silent ? len - 1 : len;
}

/*
 * Reads a complete chunk: first as `return <text>` (an expression, whose values print),
 * else as statements; an incomplete statement reads more lines.  Leaves the compiled
 * function (or the error message) on the stack; returns its status, -1 at end of input,
 * -2 when Ctrl-C discarded the input.
 */
static int loadline(lua_State *L, int *silent)
{
    lua_settop(L, 0);
    int r = pushline(L, 1);
    if (r != 1)
        return r == 0 ? -1 : -2;
    for (;;) {
        size_t len;
        const char *text = lua_tolstring(L, 1, &len);
        size_t elen = strip_semicolon(text, len, silent);
        lua_pushliteral(L, "return ");
        lua_pushlstring(L, text, elen);
        lua_pushliteral(L, "\n");
        lua_concat(L, 3);
        size_t rlen;
        const char *ret = lua_tolstring(L, -1, &rlen);
        int status = luaL_loadbuffer(L, ret, rlen, "=stdin");
        lua_remove(L, -2);
        if (status == LUA_OK) {
            lua_remove(L, 1);
            return status;
        }
        lua_pop(L, 1);
        status = luaL_loadbuffer(L, text, len, "=stdin");
        if (!incomplete(L, status)) {
            lua_remove(L, 1); /* statements print only what they `return` */
            return status;
        }
        lua_pop(L, 1);
        r = pushline(L, 0);
        if (r == -1)
            return -2;
        if (r == 0) { /* end of input inside a statement: report it as lua does */
            luaL_loadbuffer(L, text, len, "=stdin");
            lua_remove(L, 1);
            return LUA_ERRSYNTAX;
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

static void doREPL(lua_State *L)
{
    const char *oldprogname = progname;
    progname = NULL; /* errors at the prompt print without the program name, as lua.c */
    globalL = L;
    use_readline = isatty(STDIN_FILENO);
    interactive_tty = use_readline;
    if (use_readline) {
        rl_readline_name = "lunet";
        rl_catch_signals = 0; /* read_line_rl handles SIGINT and SIGWINCH itself */
        rl_catch_sigwinch = 0;
        rl_attempted_completion_function = lunet_completion;
        rl_completer_word_break_characters = LUA_WORD_BREAKS;
        rl_completion_word_break_hook = word_breaks;
        rl_completer_quote_characters = "\"'";
        history_init();
    }
    helpers_init(L);
    int status, silent = 0;
    while ((status = loadline(L, &silent)) != -1) {
        if (status == -2)
            continue; /* Ctrl-C at the prompt: start over */
        if (status == LUA_OK)
            status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK) {
            if (!silent)
                show_results(L);
        } else {
            report_repl(L);
        }
        /* the results are gone from the stack; let the collector reclaim them */
        lua_settop(L, 0);
        lua_gc(L, LUA_GCSTEP, 0);
    }
    lua_settop(L, 0);
    history_done();
    fputs("\n", stdout);
    fflush(stdout);
    progname = oldprogname;
}

/* ---------------------------------------------------------------- main --------------- */

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    int script;
    int args = collectargs(argv, &script);
    luaL_checkversion(L);
    if (argv[0] && argv[0][0])
        progname = "lunet";
    if (args == has_error) {
        fprintf(stderr, "%s: unrecognized option '%s'\n", progname, argv[script]);
        print_usage(stderr);
        return 0;
    }
    if (args & has_h) {
        print_usage(stdout);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (args & has_v) {
        print_version();
        if (!(args & has_i) && script == argc && !(args & has_e)) {
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    luaL_openlibs(L);
    /* lunet is loaded once: package.loaded.lunet and the global `lunet` */
    luaL_requiref(L, "lunet", luaopen_lunet, 1);
    lua_pop(L, 1);
    createargtable(L, argv, argc, script);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (!runargs(L, argv, script))
        return 0;
    if (script < argc && handle_script(L, argv + script) != LUA_OK)
        return 0;
    if (args & has_i) {
        doREPL(L);
    } else if (script == argc && !(args & (has_e | has_v))) {
        if (isatty(0)) {
            print_version();
            doREPL(L);
        } else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK) {
            return 0; /* no tty: run stdin as a script, as lua does */
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        l_message(argv[0], "cannot create state: not enough memory");
        return EXIT_FAILURE;
    }
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, &pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int result = lua_toboolean(L, -1);
    report(L, status);
    lua_close(L);
    return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
