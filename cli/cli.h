/*
 * cli.h - shared by the `lunet` program (cli/lunet.c: options, scripts, signals) and its
 * interactive prompt (cli/repl.c); not installed.
 */
#ifndef LUNET_CLI_H
#define LUNET_CLI_H

#include <lua.h>

/* "lunet" in messages; NULL at the prompt, whose errors print without it (as lua.c). */
extern const char *cli_progname;
/* Set by the prompt when it reads a terminal: Ctrl-C then moves past the echoed "^C". */
extern int cli_interactive_tty;

/* Writes "pname: msg" (or msg when pname is NULL) to stderr. */
void cli_message(const char *pname, const char *msg);
/* Reports a non-OK status with the message on the stack top (popped); returns status. */
int cli_report(lua_State *L, int status);
/* lua_pcall with a traceback handler, Ctrl-C raising "interrupted!" while it runs. */
int cli_docall(lua_State *L, int narg, int nres);
/* "Lunet <version> (Lua 5.4, OpenBLAS)" on stdout. */
void cli_print_version(void);

/* The interactive prompt, until end of input (cli/repl.c). */
void repl_run(lua_State *L);

#endif
