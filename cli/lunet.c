/*
 * lunet.c - the `lunet` program: a Lua 5.4 interpreter with the lunet module preloaded
 * (global `lunet`, and `require "lunet"`).  Modelled on lua.c of Lua 5.4: same `arg` table,
 * -e/-i/-l/-v handling, error reports with a traceback, Ctrl-C interrupting a running chunk.
 * The interactive prompt (no script, or -i) is cli/repl.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cli.h"
#include "kernel.h"
#include "lunet_embed.h"

const char *cli_progname = "lunet";
int cli_interactive_tty;
static lua_State *globalL = NULL;

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
            "  --kernel CONNECTION_FILE  run as a Jupyter kernel (first; later arguments ignored)\n"
            "  --install-kernel [--user | --prefix P]  install the Jupyter kernel spec\n"
            "            for this program: for the user (default) or under P/share/jupyter\n"
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
            cli_progname, cli_progname, cli_progname);
}

void cli_print_version(void)
{
    printf("Lunet %s (%s, %s)\n", LUNET_VERSION, LUA_VERSION,
           strcmp(lunet_blas_name(), "openblas") == 0 ? "OpenBLAS" : "built-in GEMM");
    fflush(stdout);
}

void cli_message(const char *pname, const char *msg)
{
    if (pname)
        fprintf(stderr, "%s: ", pname);
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
}

int cli_report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        cli_message(cli_progname, msg ? msg : "(error object is not a string)");
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
    if (cli_interactive_tty)
        (void)!write(STDERR_FILENO, "\n", 1); /* past the "^C" the terminal echoed */
    lua_sethook(globalL, lstop, flag, 1);
}

int cli_docall(lua_State *L, int narg, int nres)
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
        status = cli_docall(L, 0, 0);
    return cli_report(L, status);
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
    int status = cli_docall(L, 1, 1);
    if (status == LUA_OK)
        lua_setglobal(L, globname);
    return cli_report(L, status);
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
        status = cli_docall(L, n, LUA_MULTRET);
    }
    return cli_report(L, status);
}

#define has_error 1
#define has_i 2
#define has_v 4
#define has_e 8
#define has_h 16
#define has_kernel 32
#define has_install_kernel 64

/* Scans options; returns flags, and in *first the index of the script (or argc). */
static int collectargs(char **argv, int *first)
{
    int args = 0;
    int i;
    if (argv[0] == NULL) {
        *first = 0;
        return 0;
    }
    /* the kernel modes take the whole command line */
    if (argv[1] && strcmp(argv[1], "--kernel") == 0) {
        *first = 1;
        return argv[2] ? has_kernel : has_error; /* frontends may append more: ignored */
    }
    if (argv[1] && strcmp(argv[1], "--install-kernel") == 0) {
        *first = 1;
        return has_install_kernel;
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

/* ---------------------------------------------------------------- main --------------- */

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    int script;
    int args = collectargs(argv, &script);
    luaL_checkversion(L);
    if (argv[0] && argv[0][0])
        cli_progname = "lunet";
    if (args == has_error && strcmp(argv[script], "--kernel") == 0) {
        fprintf(stderr,
                "%s: --kernel needs a CONNECTION_FILE (Jupyter writes it and starts "
                "lunet through its kernel spec: lunet --install-kernel)\n",
                cli_progname);
        return 0;
    }
    if (args == has_error) {
        fprintf(stderr, "%s: unrecognized option '%s'\n", cli_progname, argv[script]);
        print_usage(stderr);
        return 0;
    }
    if (args & has_install_kernel) {
        lua_pushboolean(L, lunet_kernel_install(argv[0], argc - 2, argv + 2) == 0);
        return 1;
    }
    if (args & has_h) {
        print_usage(stdout);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (args & has_v) {
        cli_print_version();
        if (!(args & has_i) && script == argc && !(args & has_e)) {
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    luaL_openlibs(L);
    /* lunet is loaded once: package.loaded.lunet and the global `lunet` */
    luaL_requiref(L, "lunet", luaopen_lunet, 1);
    lua_pop(L, 1);
    createargtable(L, argv, (args & has_kernel) ? 1 : argc, script); /* kernel: arg[0] only */
    if (args & has_kernel) {
        lua_gc(L, LUA_GCRESTART);
        lua_gc(L, LUA_GCGEN, 0, 0);
        lua_pushboolean(L, lunet_kernel_main(L, argv[2]) == 0);
        return 1;
    }
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (!runargs(L, argv, script))
        return 0;
    if (script < argc && handle_script(L, argv + script) != LUA_OK)
        return 0;
    if (args & has_i) {
        repl_run(L);
    } else if (script == argc && !(args & (has_e | has_v))) {
        if (isatty(0)) {
            cli_print_version();
            repl_run(L);
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
        cli_message(argv[0], "cannot create state: not enough memory");
        return EXIT_FAILURE;
    }
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, &pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int result = lua_toboolean(L, -1);
    cli_report(L, status);
    if (status != LUA_OK || !result)
        lunet_dist_abort(EXIT_FAILURE); /* ends every rank of an MPI job, not only this one */
    lua_close(L);
    return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
