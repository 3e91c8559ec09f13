/*
 * repl.c - the `lunet` program's interactive prompt (no script, or -i).
 *
 *  - GNU readline in its callback mode, so that Ctrl-C at the prompt only discards the line
 *    (the signal handler just sets a flag; nothing unsafe runs inside it);
 *  - history in $LUNET_HISTORY (default ~/.lunet_history), one entry per line typed;
 *  - tab completion of globals, table fields and methods (`x:unsq<TAB>` -> `x:unsqueeze(`),
 *    inside a string literal of file names;
 *  - the value of every expression printed (tostring for tensors and modules, tables shown
 *    readably with depth and size limits); a trailing `;` silences it;
 *  - results are dropped after printing and a GC step runs, so they are not kept alive.
 * When stdin is not a terminal the prompt reads plain lines and prints no prompts.
 *
 * Decisions: everything that is about Lua rather than keys and terminals -- compiling a
 * line as an expression or statements, knowing that a statement is incomplete, printing
 * results, trimming tracebacks, completing a word -- is the Lua module lunet.repl
 * (bindings/lua/lunet/repl.lua), which other front ends (a notebook kernel) share.  This
 * file reads lines, keeps history, handles signals and calls it.
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
#include <lua.h>

#include "cli.h"

#define PROMPT "> "
#define PROMPT2 ">> "
#define HISTORY_MAX 1000

static lua_State *repl_L;         /* for readline's completion callback */
static const char repl_key = 'r'; /* registry[&repl_key] = the lunet.repl module */

/* Pushes lunet.repl's function `name`. */
static void push_repl_fn(lua_State *L, const char *name)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &repl_key);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* ---------------------------------------------------------------- results ------------ */

/* Prints the values on the stack (all of it) with lunet.repl.format. */
static void show_results(lua_State *L)
{
    int n = lua_gettop(L);
    if (n == 0)
        return;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    push_repl_fn(L, "format");
    lua_insert(L, 1);
    if (cli_docall(L, n, 1) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        cli_message(NULL, lua_pushfstring(L, "error printing the result: %s", msg ? msg : "?"));
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
static void report_error(lua_State *L)
{
    if (lua_type(L, -1) == LUA_TSTRING) {
        push_repl_fn(L, "trim_traceback");
        lua_insert(L, -2);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "(error while reporting an error)");
        }
    }
    cli_report(L, LUA_ERRRUN);
}

/* ---------------------------------------------------------------- completion --------- */

#define MAX_MATCHES 4096
static char *matches[MAX_MATCHES];
static int nmatches;

/* lua_CFunction run under pcall: lunet.repl.complete(text) into matches[]. */
static int complete_lua(lua_State *L)
{
    const char *text = lua_touserdata(L, 1);
    push_repl_fn(L, "complete");
    lua_pushstring(L, text);
    lua_call(L, 1, 1);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n && nmatches < MAX_MATCHES; i++) {
        lua_geti(L, -1, i);
        const char *m = lua_tostring(L, -1);
        char *copy = m ? strdup(m) : NULL;
        if (copy)
            matches[nmatches++] = copy;
        lua_pop(L, 1);
    }
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

/* readline keeps a pointer to the break characters: they live here. */
static char breaks[64] = " \t\n";

/*
 * The characters that end a word at the cursor, from lunet.repl.word_breaks: Lua's
 * punctuation, or inside an open string literal a file name's (which may hold '/', '-').
 */
static char *word_breaks(void)
{
    lua_State *L = repl_L;
    int top = lua_gettop(L);
    push_repl_fn(L, "word_breaks");
    lua_pushstring(L, rl_line_buffer ? rl_line_buffer : "");
    lua_pushinteger(L, rl_point);
    if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
        snprintf(breaks, sizeof breaks, "%s", lua_tostring(L, -1));
    lua_settop(L, top);
    return breaks;
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
    lua_State *L = repl_L;
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
    lua_pushlstring(L, b, l);
    free(b);
    return 1;
}

/*
 * Reads a complete chunk and compiles it with lunet.repl.compile (an expression, whose
 * values print, else statements); an incomplete statement reads more lines.  Leaves the
 * compiled function (or the error message) alone on the stack; returns its status, -1 at
 * end of input, -2 when Ctrl-C discarded the input.
 */
static int loadline(lua_State *L, int *silent)
{
    lua_settop(L, 0);
    int r = pushline(L, 1);
    if (r != 1)
        return r == 0 ? -1 : -2;
    for (;;) {
        push_repl_fn(L, "compile"); /* text compile */
        lua_pushvalue(L, 1);
        lua_call(L, 1, 3); /* text fn|nil silent|msg incomplete */
        if (!lua_isnil(L, 2)) {
            *silent = lua_toboolean(L, 3);
            lua_settop(L, 2);
            lua_remove(L, 1);
            return LUA_OK;
        }
        int more = lua_toboolean(L, 4);
        lua_settop(L, 3);
        lua_remove(L, 2); /* text msg */
        if (!more) {
            lua_remove(L, 1);
            return LUA_ERRSYNTAX;
        }
        r = pushline(L, 0); /* text msg line */
        if (r == -1)
            return -2;
        if (r == 0) { /* end of input inside a statement: report it as lua does */
            lua_remove(L, 1);
            return LUA_ERRSYNTAX;
        }
        lua_remove(L, 2);
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

void repl_run(lua_State *L)
{
    const char *oldprogname = cli_progname;
    cli_progname = NULL; /* errors at the prompt print without the program name, as lua.c */
    repl_L = L;
    use_readline = isatty(STDIN_FILENO);
    cli_interactive_tty = use_readline;
    lua_settop(L, 0);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lunet.repl");
    if (cli_docall(L, 1, 1) != LUA_OK) {
        cli_report(L, LUA_ERRRUN);
        cli_progname = oldprogname;
        return;
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &repl_key);
    if (use_readline) {
        rl_readline_name = "lunet";
        rl_catch_signals = 0; /* read_line_rl handles SIGINT and SIGWINCH itself */
        rl_catch_sigwinch = 0;
        rl_attempted_completion_function = lunet_completion;
        rl_completer_word_break_characters = word_breaks(); /* outside any string */
        rl_completion_word_break_hook = word_breaks;
        rl_completer_quote_characters = "\"'";
        history_init();
    }
    int status, silent = 0;
    while ((status = loadline(L, &silent)) != -1) {
        if (status == -2)
            continue; /* Ctrl-C at the prompt: start over */
        if (status == LUA_OK)
            status = cli_docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK) {
            if (!silent)
                show_results(L);
        } else {
            report_error(L);
        }
        /* the results are gone from the stack; let the collector reclaim them */
        lua_settop(L, 0);
        lua_gc(L, LUA_GCSTEP, 0);
    }
    lua_settop(L, 0);
    history_done();
    fputs("\n", stdout);
    fflush(stdout);
    cli_progname = oldprogname;
}
