/*
 * kernel.c - the Jupyter kernel: sockets, threads and the message handlers; the Lua side
 * (running a cell, capturing its output, rich display, completion) is the Lua module
 * lunet.kernel (bindings/lua/lunet/kernel.lua).
 *
 * Decisions:
 *  - Four threads.  The main thread owns the lua_State and serves shell (and stdin while
 *    a cell waits in io.read).  The control thread answers control (kernel_info, interrupt,
 *    shutdown) even while a cell runs.  The heartbeat thread echoes (zmq_proxy).  The
 *    capture thread (kernel_capture.c) reads fds 1 and 2 into memory; the main thread sends
 *    that.  iopub is shared by the main and control threads under iopub_lock; every other
 *    socket belongs to one thread.
 *  - While a cell runs, a count hook (every 10^6 Lua instructions) sends output buffered
 *    for more than 0.1 s, so a long cell shows its progress.
 *  - Interrupts (SIGINT in "signal" mode, interrupt_request in "message" mode) do what lua.c
 *    does on Ctrl-C: set a hook that raises "interrupted!" at the next Lua instruction.
 *    lua_sethook is the one Lua call that may be made from a signal handler or another
 *    thread.  The hook then fires again every 10^5 instructions until the cell ends, so a
 *    cell that catches the error in its own pcall still stops.  A long C operation (one big
 *    matmul) finishes before the interrupt is seen.
 *  - Bad input (wrong signature, malformed JSON, too large, unknown type) is logged to
 *    the kernel's stderr and dropped; the socket keeps serving.  A request with a good
 *    signature but wrong field types gets an error reply.
 *  - After a failed cell with stop_on_error, the execute requests already queued are
 *    answered "aborted"; a kernel whose parent process is gone exits (as ipykernel).
 */
#include "kernel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <zmq.h>

#include "kernel_capture.h"
#include "kernel_wire.h"
#include "lunet.h"
#include "lunet_embed.h"

typedef struct {
    lunet_kwire_t wire;
    lunet_kconn_t conn;
    void *ctx;
    void *shell, *control, *stdin_sock, *iopub, *hb;
    void *wake_main, *wake_control; /* inproc pair: control tells main to stop */
    pthread_mutex_t iopub_lock;
    pthread_mutex_t exec_lock; /* orders "executing" against interrupts from control */
    lua_State *L;
    int kernel_ref; /* registry ref of kernel.lua's table */
    int flush_ref;  /* registry ref of its flush_stale */
    int execution_count;
    const lunet_kmsg_t *current; /* the request being served by the main thread */
    int allow_stdin;
    atomic_int executing;
    atomic_int interrupted;
    atomic_int shutdown;
    atomic_int control_done; /* the control thread left its loop */
} kernel_t;

static kernel_t *the_kernel; /* for the SIGINT handler */

const int lunet_kernel_built = 1;

static void klog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The kernel's log: stderr, or the original stderr once fds 1 and 2 are captured. */
static FILE *log_file;

static void klog(const char *fmt, ...)
{
    FILE *f = log_file ? log_file : stderr;
    va_list ap;
    va_start(ap, fmt);
    fputs("lunet kernel: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
    va_end(ap);
}

/* ---------------------------------------------------------------- iopub -------------- */

static void publish(kernel_t *k, const lunet_kmsg_t *parent, const char *msg_type,
                    const cJSON *content)
{
    pthread_mutex_lock(&k->iopub_lock);
    if (lunet_kwire_send(&k->wire, k->iopub, parent, msg_type, msg_type, content, NULL) != 0)
        klog("cannot publish %s: %s", msg_type, zmq_strerror(zmq_errno()));
    pthread_mutex_unlock(&k->iopub_lock);
}

static void publish_status(kernel_t *k, const lunet_kmsg_t *parent, const char *state)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "execution_state", state);
    publish(k, parent, "status", c);
    cJSON_Delete(c);
}

/* Sends reply_type on sock to the requester and frees content. */
static void reply(kernel_t *k, void *sock, const lunet_kmsg_t *req, const char *reply_type,
                  cJSON *content)
{
    if (!content || lunet_kwire_send(&k->wire, sock, req, NULL, reply_type, content, NULL) != 0)
        klog("cannot send %s: %s", reply_type, zmq_strerror(zmq_errno()));
    cJSON_Delete(content);
}

static cJSON *error_content(const char *ename, const char *evalue)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "status", "error");
    cJSON_AddStringToObject(c, "ename", ename);
    cJSON_AddStringToObject(c, "evalue", evalue);
    cJSON *tb = cJSON_AddArrayToObject(c, "traceback");
    cJSON_AddItemToArray(tb, cJSON_CreateString(evalue));
    return c;
}

/* ---------------------------------------------------------------- Lua <-> JSON ------- */

#define JSON_MAX_DEPTH 32

/* Length of the UTF-8 sequence starting at s (at most n bytes), or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (len == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f)))
        return 0; /* overlong, or a surrogate */
    if (len == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f)))
        return 0;
    return len;
}

static int utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if ((k = utf8_seq((const unsigned char *)s + i, n - i)) == 0)
            return 0;
    return 1;
}

/* A copy of s with each invalid byte replaced by U+FFFD (JSON text must be UTF-8, and a
 * frontend fails to decode a message that is not); NULL when out of memory. */
static char *utf8_clean(const char *s, size_t n)
{
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, s + i, k);
            o += k;
            i += k;
        }
    }
    *o = '\0';
    return out;
}

/* The value at idx as JSON: a table with keys 1..n only is an array (an empty table is {}). */
static cJSON *lua_to_json(lua_State *L, int idx, int depth)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        return cJSON_CreateNumber(lua_tonumber(L, idx));
    case LUA_TSTRING: { /* cJSON strings end at a zero byte: text after one is cut */
        size_t n;
        const char *str = lua_tolstring(L, idx, &n);
        if (utf8_valid(str, n))
            return cJSON_CreateString(str);
        char *clean = utf8_clean(str, n);
        cJSON *j = cJSON_CreateString(clean ? clean : "");
        free(clean);
        return j;
    }
    case LUA_TTABLE: {
        if (depth > JSON_MAX_DEPTH || !lua_checkstack(L, 4))
            return cJSON_CreateNull();
        lua_Unsigned n = lua_rawlen(L, idx);
        /* kernel.lua marks arrays that may be empty with a metatable field __jsonarray */
        int marked = luaL_getmetafield(L, idx, "__jsonarray") != LUA_TNIL;
        if (marked)
            lua_pop(L, 1);
        int is_array = n > 0 || marked;
        if (is_array && n > 0) {
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                lua_pop(L, 1);
                if (!lua_isinteger(L, -1)) {
                    is_array = 0;
                    lua_pop(L, 1);
                    break;
                }
            }
        }
        if (is_array) {
            cJSON *a = cJSON_CreateArray();
            for (lua_Unsigned i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, (lua_Integer)i);
                cJSON_AddItemToArray(a, lua_to_json(L, -1, depth + 1));
                lua_pop(L, 1);
            }
            return a;
        }
        cJSON *o = cJSON_CreateObject();
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) == LUA_TSTRING)
                cJSON_AddItemToObject(o, lua_tostring(L, -2), lua_to_json(L, -1, depth + 1));
            lua_pop(L, 1);
        }
        return o;
    }
    default:
        return cJSON_CreateNull();
    }
}

static void json_to_lua(lua_State *L, const cJSON *j, int depth)
{
    luaL_checkstack(L, 4, "JSON too deep");
    if (cJSON_IsBool(j)) {
        lua_pushboolean(L, cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == (double)(lua_Integer)d)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring);
    } else if ((cJSON_IsArray(j) || cJSON_IsObject(j)) && depth < JSON_MAX_DEPTH) {
        lua_newtable(L);
        int i = 1;
        for (const cJSON *c = j->child; c; c = c->next) {
            json_to_lua(L, c, depth + 1);
            if (cJSON_IsArray(j))
                lua_rawseti(L, -2, i++);
            else
                lua_setfield(L, -2, c->string);
        }
    } else {
        lua_pushnil(L);
    }
}

/* A stream message (stdout or stderr) as a reply to the request being served (if any). */
static void publish_stream(kernel_t *k, const char *name, const char *text, size_t len)
{
    char *clean = NULL;
    char *copy = NULL;
    /* text may lack a terminating zero (captured output); a zero inside still ends it */
    if (memchr(text, 0, len) || !utf8_valid(text, len))
        text = clean = utf8_clean(text, len);
    else
        text = copy = strndup(text, len);
    if (!text)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddStringToObject(c, "text", text);
    publish(k, k->current, "stream", c);
    cJSON_Delete(c);
    free(clean);
    free(copy);
}

static void emit_captured(const char *name, const char *text, size_t len, void *ctx)
{
    publish_stream(ctx, name, text, len);
}

/* ---------------------------------------------------------------- interrupts --------- */

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, 100000); /* again if a pcall swallowed it */
    luaL_error(L, "interrupted!");
}

/* Async-signal-safe: only atomics and lua_sethook. */
static void request_interrupt(kernel_t *k)
{
    atomic_store(&k->interrupted, 1);
    if (atomic_load(&k->executing))
        lua_sethook(k->L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static void on_sigint(int sig)
{
    (void)sig;
    if (the_kernel)
        request_interrupt(the_kernel);
}

/* While a cell runs, every 10^6 Lua instructions: output buffered for more than 0.1 s is
 * sent (a cell that prints and then computes shows its text before it ends). */
static void tick_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    kernel_t *k = the_kernel;
    if (!k || k->flush_ref == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->flush_ref);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
        lua_pop(L, 1);
    lunet_capture_drain(emit_captured, k);
}

/* k->interrupted was cleared when the request was dequeued (handle_shell): an interrupt
 * that came since stops the cell at once. */
static void begin_execution(kernel_t *k)
{
    pthread_mutex_lock(&k->exec_lock);
    atomic_store(&k->executing, 1);
    if (atomic_load(&k->interrupted))
        lua_sethook(k->L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
    else
        lua_sethook(k->L, tick_hook, LUA_MASKCOUNT, 1000000);
    pthread_mutex_unlock(&k->exec_lock);
}

static void end_execution(kernel_t *k)
{
    pthread_mutex_lock(&k->exec_lock);
    atomic_store(&k->executing, 0);
    lua_sethook(k->L, NULL, 0, 0);
    atomic_store(&k->interrupted, 0);
    pthread_mutex_unlock(&k->exec_lock);
}

/* ---------------------------------------------------------------- Lua callbacks ------ */

static kernel_t *kernel_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* _kernel.stream(name, text): a stream message on iopub */
static int k_stream(lua_State *L)
{
    size_t len;
    const char *name = luaL_checkstring(L, 1);
    const char *text = luaL_checklstring(L, 2, &len);
    publish_stream(kernel_of(L), name, text, len);
    return 0;
}

/* _kernel.publish(msg_type, content_table): display_data, update_display_data, clear_output */
static int k_publish(lua_State *L)
{
    kernel_t *k = kernel_of(L);
    const char *type = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    cJSON *c = lua_to_json(L, 2, 0);
    publish(k, k->current, type, c);
    cJSON_Delete(c);
    return 0;
}

/* _kernel.input(prompt, password) -> the line the frontend sent (input_request/input_reply) */
static int k_input(lua_State *L)
{
    kernel_t *k = kernel_of(L);
    const char *prompt = luaL_optstring(L, 1, "");
    int password = lua_toboolean(L, 2);
    if (!k->current || !k->allow_stdin)
        return luaL_error(L,
                          "io.read: this frontend does not support input (allow_stdin is false)");
    /* replies to an earlier, abandoned request must not answer this one */
    for (;;) {
        lunet_kmsg_t stale;
        char err[256];
        lunet_kwire_status_t st = lunet_kwire_recv(&k->wire, k->stdin_sock, ZMQ_DONTWAIT, &stale,
                                                   err, sizeof err);
        if (st == LUNET_KWIRE_OK)
            lunet_kmsg_free(&stale);
        else if (st != LUNET_KWIRE_DROPPED)
            break;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "prompt", prompt);
    cJSON_AddBoolToObject(c, "password", password);
    int rc = lunet_kwire_send(&k->wire, k->stdin_sock, k->current, NULL, "input_request", c, NULL);
    cJSON_Delete(c);
    if (rc != 0)
        return luaL_error(L, "io.read: cannot send input_request: %s", zmq_strerror(zmq_errno()));
    for (;;) {
        if (atomic_load(&k->interrupted))
            return luaL_error(L, "interrupted!");
        zmq_pollitem_t item = {k->stdin_sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, 100);
        if (n < 0 && zmq_errno() != EINTR)
            return luaL_error(L, "io.read: %s", zmq_strerror(zmq_errno()));
        if (n <= 0)
            continue;
        lunet_kmsg_t m;
        char err[256];
        lunet_kwire_status_t st = lunet_kwire_recv(&k->wire, k->stdin_sock, 0, &m, err, sizeof err);
        if (st == LUNET_KWIRE_CLOSED)
            return luaL_error(L, "io.read: the kernel is shutting down");
        if (st == LUNET_KWIRE_DROPPED) {
            klog("dropped a message on stdin: %s", err);
            continue;
        }
        if (st != LUNET_KWIRE_OK)
            continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m.content, "value");
        if (strcmp(m.msg_type, "input_reply") != 0 || !cJSON_IsString(v)) {
            klog("dropped a %s on stdin (expected input_reply with a string value)", m.msg_type);
            lunet_kmsg_free(&m);
            continue;
        }
        lua_pushstring(L, v->valuestring);
        lunet_kmsg_free(&m);
        return 1;
    }
}

/* _kernel.now() -> seconds from a monotonic clock */
static int k_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 1;
}

/* _kernel.clear_hook(): the cell ended; an interrupt that comes now must not hit the
 * kernel's own code */
static int k_clear_hook(lua_State *L)
{
    lua_sethook(L, NULL, 0, 0);
    return 0;
}

/* _kernel.drain(): sends what C code and child processes wrote to fds 1 and 2 */
static int k_drain(lua_State *L)
{
    lunet_capture_drain(emit_captured, kernel_of(L));
    return 0;
}

/* _kernel.list_dir(dir) -> array of the entry names in dir ("" is "."), directories with a
 * trailing "/", or an empty array when dir cannot be read (file-name completion) */
static int k_list_dir(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    DIR *d = opendir(dir[0] ? dir : ".");
    lua_newtable(L);
    if (!d)
        return 1;
    int dfd = dirfd(d);
    lua_Integer n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 10000) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        int is_dir = fstatat(dfd, e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        lua_pushfstring(L, "%s%s", e->d_name, is_dir ? "/" : "");
        lua_rawseti(L, -2, ++n);
    }
    closedir(d);
    return 1;
}

/* _kernel.interrupted() -> true once an interrupt came for the running cell */
static int k_interrupted(lua_State *L)
{
    lua_pushboolean(L, atomic_load(&kernel_of(L)->interrupted));
    return 1;
}

static const luaL_Reg kernel_funcs[] = {
    {"stream", k_stream}, {"publish", k_publish},       {"input", k_input},
    {"now", k_now},       {"clear_hook", k_clear_hook}, {"interrupted", k_interrupted},
    {"drain", k_drain},   {"list_dir", k_list_dir},     {NULL, NULL}};

/* Calls kernel.lua's function `name` with nargs arguments below it on the stack top,
 * returning nres results (LUA_MULTRET allowed).  Returns 0; -2 when an interrupt stopped
 * it; -1 on any other failure (logged). */
static int call_kernel_lua(kernel_t *k, const char *name, int nargs, int nres)
{
    lua_State *L = k->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->kernel_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_insert(L, -(nargs + 1));
    char err[2048];
    if (lunet_lua_pcall(L, nargs, nres, err, sizeof err) != LUA_OK) {
        /* an interrupt that came just before or after the cell's own protected call is
           raised in kernel.lua's code: not an internal error */
        if (strncmp(err, "interrupted!", 12) == 0 || strstr(err, ": interrupted!"))
            return -2;
        klog("internal error in %s: %s", name, err);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- shell handlers ----- */

static const char *str_field(const cJSON *o, const char *name, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static int bool_field(const cJSON *o, const char *name, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static cJSON *kernel_info_content(void)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "status", "ok");
    cJSON_AddStringToObject(c, "protocol_version", LUNET_KWIRE_PROTOCOL_VERSION);
    cJSON_AddStringToObject(c, "implementation", "lunet");
    cJSON_AddStringToObject(c, "implementation_version", LUNET_VERSION);
    cJSON *li = cJSON_AddObjectToObject(c, "language_info");
    cJSON_AddStringToObject(li, "name", "lua");
    cJSON_AddStringToObject(li, "version", LUA_VERSION_MAJOR "." LUA_VERSION_MINOR);
    cJSON_AddStringToObject(li, "mimetype", "text/x-lua");
    cJSON_AddStringToObject(li, "file_extension", ".lua");
    cJSON_AddStringToObject(li, "pygments_lexer", "lua");
    cJSON_AddStringToObject(li, "codemirror_mode", "lua");
    char banner[256];
    snprintf(banner, sizeof banner, "Lunet %s (%s, %s): tensors and autograd for Lua",
             LUNET_VERSION, LUA_RELEASE,
             strcmp(lunet_blas_name(), "openblas") == 0 ? "OpenBLAS" : "built-in GEMM");
    cJSON_AddStringToObject(c, "banner", banner);
    cJSON_AddBoolToObject(c, "debugger", 0);
    cJSON_AddArrayToObject(c, "help_links");
    return c;
}

/* The bundle table on the stack top as {data, metadata} fields of obj. */
static void add_bundle(lua_State *L, cJSON *obj)
{
    lua_getfield(L, -1, "data");
    cJSON_AddItemToObject(obj, "data",
                          lua_type(L, -1) == LUA_TTABLE ? lua_to_json(L, -1, 0)
                                                        : cJSON_CreateObject());
    lua_pop(L, 1);
    lua_getfield(L, -1, "metadata");
    cJSON *md = lua_type(L, -1) == LUA_TTABLE ? lua_to_json(L, -1, 0) : NULL;
    if (!cJSON_IsObject(md)) {
        cJSON_Delete(md);
        md = cJSON_CreateObject();
    }
    cJSON_AddItemToObject(obj, "metadata", md);
    lua_pop(L, 1);
}

/* After a failed cell (stop_on_error), before its reply: the execute requests already
 * queued are answered "aborted" without running, as ipykernel does; other requests are
 * served.  (Before the reply, so that a request sent after it is never aborted.) */
static void handle_shell(kernel_t *k, const lunet_kmsg_t *req);

static void abort_queued(kernel_t *k)
{
    for (;;) {
        lunet_kmsg_t m;
        char err[512];
        lunet_kwire_status_t st = lunet_kwire_recv(&k->wire, k->shell, ZMQ_DONTWAIT, &m, err,
                                                   sizeof err);
        if (st == LUNET_KWIRE_DROPPED) {
            klog("dropped a message on shell: %s", err);
            continue;
        }
        if (st != LUNET_KWIRE_OK)
            return;
        if (strcmp(m.msg_type, "execute_request") == 0) {
            publish_status(k, &m, "busy");
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "status", "aborted");
            cJSON_AddNumberToObject(c, "execution_count", k->execution_count);
            reply(k, k->shell, &m, "execute_reply", c);
            publish_status(k, &m, "idle");
        } else {
            handle_shell(k, &m);
        }
        lunet_kmsg_free(&m);
    }
}

static void handle_execute(kernel_t *k, const lunet_kmsg_t *req)
{
    lua_State *L = k->L;
    const cJSON *code_j = cJSON_GetObjectItemCaseSensitive(req->content, "code");
    if (!cJSON_IsString(code_j)) {
        cJSON *c = error_content("ProtocolError", "execute_request: \"code\" must be a string");
        cJSON_AddNumberToObject(c, "execution_count", k->execution_count);
        reply(k, k->shell, req, "execute_reply", c);
        return;
    }
    const char *code = code_j->valuestring;
    int silent = bool_field(req->content, "silent", 0);
    int store = !silent && bool_field(req->content, "store_history", 1);
    k->allow_stdin = bool_field(req->content, "allow_stdin", 1);
    if (store)
        k->execution_count++;
    int count = k->execution_count;
    if (!silent) {
        cJSON *in = cJSON_CreateObject();
        cJSON_AddStringToObject(in, "code", code);
        cJSON_AddNumberToObject(in, "execution_count", count);
        publish(k, req, "execute_input", in);
        cJSON_Delete(in);
    }
    int top = lua_gettop(L);
    lua_pushstring(L, code);
    lua_pushboolean(L, silent);
    lua_pushinteger(L, count);
    lua_pushboolean(L, store);
    begin_execution(k);
    int rc = call_kernel_lua(k, "execute", 4, 2); /* -> ok, bundle | error table */
    end_execution(k);
    lunet_capture_drain(emit_captured, k); /* what C code and child processes wrote */
    cJSON *content = NULL;
    int failed = 1;
    if (rc == -2) {
        content = error_content("KeyboardInterrupt", "interrupted!");
        cJSON *err = cJSON_Duplicate(content, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(err, "status");
        publish(k, req, "error", err);
        cJSON_Delete(err);
    } else if (rc != 0) {
        content = error_content("KernelError",
                                "internal error while running the cell (see the kernel log)");
    } else if (lua_toboolean(L, -2)) {
        if (lua_type(L, -1) == LUA_TTABLE && !silent) {
            cJSON *res = cJSON_CreateObject();
            cJSON_AddNumberToObject(res, "execution_count", count);
            add_bundle(L, res);
            publish(k, req, "execute_result", res);
            cJSON_Delete(res);
        }
        content = cJSON_CreateObject();
        cJSON_AddStringToObject(content, "status", "ok");
        failed = 0;
    } else {
        /* {ename =, evalue =, traceback = {...}} */
        cJSON *err = lua_to_json(L, -1, 0);
        if (!cJSON_IsObject(err)) {
            cJSON_Delete(err);
            err = error_content("KernelError", "bad error value");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(err, "status");
        publish(k, req, "error", err);
        content = err;
        cJSON_AddStringToObject(content, "status", "error");
    }
    lua_settop(L, top);
    cJSON_AddNumberToObject(content, "execution_count", count);
    cJSON_AddArrayToObject(content, "payload");
    cJSON *ue = cJSON_AddObjectToObject(content, "user_expressions");
    const cJSON *exprs = cJSON_GetObjectItemCaseSensitive(req->content, "user_expressions");
    if (cJSON_IsObject(exprs)) {
        for (const cJSON *e = exprs->child; e; e = e->next) {
            if (!cJSON_IsString(e))
                continue;
            lua_pushstring(L, e->valuestring);
            if (call_kernel_lua(k, "user_expression", 1, 1) == 0) {
                cJSON_AddItemToObject(ue, e->string, lua_to_json(L, -1, 0));
                lua_pop(L, 1);
            }
        }
    }
    if (failed && bool_field(req->content, "stop_on_error", 1))
        abort_queued(k);
    reply(k, k->shell, req, "execute_reply", content);
    lua_settop(L, top);
    lua_gc(L, LUA_GCSTEP, 0);
}

/* complete / inspect / is_complete / history: kernel.lua builds the whole reply content
 * from the request content. */
static void handle_by_lua(kernel_t *k, const lunet_kmsg_t *req, const char *fn,
                          const char *reply_type)
{
    lua_State *L = k->L;
    int top = lua_gettop(L);
    json_to_lua(L, req->content, 0);
    cJSON *content;
    if (call_kernel_lua(k, fn, 1, 1) == 0 && lua_type(L, -1) == LUA_TTABLE)
        content = lua_to_json(L, -1, 0);
    else
        content = error_content("KernelError", "internal error (see the kernel log)");
    lua_settop(L, top);
    reply(k, k->shell, req, reply_type, content);
}

static void handle_shell(kernel_t *k, const lunet_kmsg_t *req)
{
    const char *t = req->msg_type;
    k->current = req;
    if (strcmp(t, "execute_request") == 0)
        atomic_store(&k->interrupted, 0); /* an interrupt from now on is for this cell */
    publish_status(k, req, "busy");
    if (strcmp(t, "execute_request") == 0) {
        handle_execute(k, req);
    } else if (strcmp(t, "kernel_info_request") == 0) {
        reply(k, k->shell, req, "kernel_info_reply", kernel_info_content());
    } else if (strcmp(t, "complete_request") == 0) {
        handle_by_lua(k, req, "complete", "complete_reply");
    } else if (strcmp(t, "inspect_request") == 0) {
        handle_by_lua(k, req, "inspect", "inspect_reply");
    } else if (strcmp(t, "is_complete_request") == 0) {
        handle_by_lua(k, req, "is_complete", "is_complete_reply");
    } else if (strcmp(t, "history_request") == 0) {
        handle_by_lua(k, req, "history", "history_reply");
    } else if (strcmp(t, "comm_info_request") == 0) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "status", "ok");
        cJSON_AddObjectToObject(c, "comms");
        reply(k, k->shell, req, "comm_info_reply", c);
    } else if (strcmp(t, "comm_open") == 0) {
        /* no comm targets: close it at once, as the protocol asks */
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "comm_id", str_field(req->content, "comm_id", ""));
        cJSON_AddObjectToObject(c, "data");
        publish(k, req, "comm_close", c);
        cJSON_Delete(c);
    } else if (strcmp(t, "comm_msg") == 0 || strcmp(t, "comm_close") == 0) {
        /* nothing is open */
    } else if (strcmp(t, "shutdown_request") == 0) {
        /* older clients send it on shell */
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "status", "ok");
        cJSON_AddBoolToObject(c, "restart", bool_field(req->content, "restart", 0));
        publish(k, req, "shutdown_reply", c);
        reply(k, k->shell, req, "shutdown_reply", c);
        atomic_store(&k->shutdown, 1);
    } else {
        klog("dropped an unknown message type on shell: \"%s\"", t);
    }
    publish_status(k, req, "idle");
    k->current = NULL;
}

/* ---------------------------------------------------------------- control thread ----- */

static void *control_main(void *arg)
{
    kernel_t *k = arg;
    for (;;) {
        lunet_kmsg_t req;
        char err[512];
        lunet_kwire_status_t st = lunet_kwire_recv(&k->wire, k->control, 0, &req, err, sizeof err);
        if (st == LUNET_KWIRE_CLOSED)
            break;
        if (st == LUNET_KWIRE_DROPPED) {
            klog("dropped a message on control: %s", err);
            continue;
        }
        if (st != LUNET_KWIRE_OK)
            continue;
        const char *t = req.msg_type;
        int stop = 0;
        publish_status(k, &req, "busy");
        if (strcmp(t, "kernel_info_request") == 0) {
            reply(k, k->control, &req, "kernel_info_reply", kernel_info_content());
        } else if (strcmp(t, "interrupt_request") == 0) {
            pthread_mutex_lock(&k->exec_lock);
            request_interrupt(k);
            pthread_mutex_unlock(&k->exec_lock);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "status", "ok");
            reply(k, k->control, &req, "interrupt_reply", c);
        } else if (strcmp(t, "shutdown_request") == 0) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "status", "ok");
            cJSON_AddBoolToObject(c, "restart", bool_field(req.content, "restart", 0));
            publish(k, &req, "shutdown_reply", c);
            reply(k, k->control, &req, "shutdown_reply", c);
            atomic_store(&k->shutdown, 1);
            pthread_mutex_lock(&k->exec_lock);
            request_interrupt(k); /* a running cell stops so that the kernel can exit */
            pthread_mutex_unlock(&k->exec_lock);
            stop = 1;
        } else {
            klog("dropped an unknown message type on control: \"%s\"", t);
        }
        publish_status(k, &req, "idle");
        lunet_kmsg_free(&req);
        if (stop)
            break;
    }
    atomic_store(&k->control_done, 1);
    (void)zmq_send(k->wake_control, "stop", 4, 0);
    zmq_close(k->control);
    zmq_close(k->wake_control);
    return NULL;
}

static void *heartbeat_main(void *arg)
{
    kernel_t *k = arg;
    /* echoes until the context terminates */
    while (zmq_proxy(k->hb, k->hb, NULL) != 0 && zmq_errno() == EINTR)
        ;
    zmq_close(k->hb);
    return NULL;
}

/* ---------------------------------------------------------------- setup -------------- */

static void *open_socket(kernel_t *k, int type, int port, int max_msg)
{
    void *s = zmq_socket(k->ctx, type);
    if (!s)
        return NULL;
    int linger = 1000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (max_msg) {
        /* a frame over the limit: ZeroMQ drops the connection (the peer reconnects) */
        int64_t cap = (int64_t)k->wire.max_message;
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    }
    char ep[512];
    lunet_kconn_endpoint(&k->conn, port, ep, sizeof ep);
    if (zmq_bind(s, ep) != 0) {
        klog("cannot bind %s: %s", ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* handlers = require("lunet.kernel")._start(K), K holding the callbacks above */
static int load_kernel_lua(kernel_t *k)
{
    lua_State *L = k->L;
    char err[2048];
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lunet.kernel");
    if (lunet_lua_pcall(L, 1, 1, err, sizeof err) != LUA_OK) {
        klog("cannot start: %s", err);
        return -1;
    }
    lua_getfield(L, -1, "_start");
    lua_remove(L, -2);
    lua_newtable(L);
    lua_pushlightuserdata(L, k);
    luaL_setfuncs(L, kernel_funcs, 1);
    /* K.exe_dir: where this executable is, to find docs/lua-api.md for inspect */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    lua_pushlstring(L, exe, slash ? (size_t)(slash - exe) : 0);
    lua_setfield(L, -2, "exe_dir");
    if (lunet_lua_pcall(L, 1, 1, err, sizeof err) != LUA_OK) {
        klog("cannot start: %s", err);
        return -1;
    }
    lua_getfield(L, -1, "flush_stale");
    k->flush_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    k->kernel_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int lunet_kernel_main(lua_State *L, const char *connection_file)
{
    static kernel_t kernel;
    kernel_t *k = &kernel;
    char err[1024];
    int status = 1;
    pthread_t control_thread, hb_thread;
    int threads = 0;
    memset(k, 0, sizeof *k);
    k->L = L;
    k->kernel_ref = k->flush_ref = LUA_NOREF;
    pthread_mutex_init(&k->iopub_lock, NULL);
    pthread_mutex_init(&k->exec_lock, NULL);
    if (lunet_kconn_load(&k->conn, connection_file, err, sizeof err) != 0) {
        klog("%s", err);
        return 1;
    }
    if (lunet_kwire_init(&k->wire, &k->conn) != 0) {
        klog("cannot initialise HMAC-SHA256 (OpenSSL)");
        return 1;
    }
    const char *limit = getenv("LUNET_KERNEL_MAX_MESSAGE");
    if (limit && *limit) {
        char *end;
        unsigned long long v = strtoull(limit, &end, 10);
        if (*end == '\0' && v >= 1024)
            k->wire.max_message = (size_t)v;
    }
    k->ctx = zmq_ctx_new();
    if (!k->ctx) {
        klog("cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        return 1;
    }
    if (!(k->shell = open_socket(k, ZMQ_ROUTER, k->conn.shell_port, 1)) ||
        !(k->control = open_socket(k, ZMQ_ROUTER, k->conn.control_port, 1)) ||
        !(k->stdin_sock = open_socket(k, ZMQ_ROUTER, k->conn.stdin_port, 1)) ||
        !(k->iopub = open_socket(k, ZMQ_PUB, k->conn.iopub_port, 0)) ||
        !(k->hb = open_socket(k, ZMQ_ROUTER, k->conn.hb_port, 1)))
        goto done;
    k->wake_main = zmq_socket(k->ctx, ZMQ_PAIR);
    k->wake_control = zmq_socket(k->ctx, ZMQ_PAIR);
    if (!k->wake_main || !k->wake_control || zmq_bind(k->wake_main, "inproc://lunet-wake") != 0 ||
        zmq_connect(k->wake_control, "inproc://lunet-wake") != 0) {
        klog("cannot create the internal socket: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    if (load_kernel_lua(k) != 0)
        goto done;
    /* SIGINT must reach the main thread only: the threads started here block it (an EINTR
       would end the heartbeat's zmq_proxy) */
    sigset_t sigint, old_mask;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint, &old_mask);
    log_file = lunet_capture_start();
    if (!log_file)
        klog("cannot capture fds 1 and 2: output of C code and child processes goes to this log");
    if (pthread_create(&hb_thread, NULL, heartbeat_main, k) == 0)
        threads |= 1;
    if ((threads & 1) && pthread_create(&control_thread, NULL, control_main, k) == 0)
        threads |= 2;
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (threads != 3)
        goto done;
    the_kernel = k;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    publish_status(k, NULL, "starting");
    /* as ipykernel: a kernel whose frontend process died (it is reparented) exits */
    pid_t parent = getppid();
    while (!atomic_load(&k->shutdown)) {
        zmq_pollitem_t items[3] = {{k->shell, 0, ZMQ_POLLIN, 0},
                                   {k->wake_main, 0, ZMQ_POLLIN, 0},
                                   {k->stdin_sock, 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, 3, 1000);
        int poll_errno = zmq_errno();          /* before anything else can change errno */
        lunet_capture_drain(emit_captured, k); /* output of background work, no parent */
        if (n == 0 && getppid() != parent) {
            klog("the parent process %ld is gone: shutting down", (long)parent);
            break;
        }
        if (n < 0) {
            if (poll_errno == EINTR)
                continue;
            klog("poll failed: %s", zmq_strerror(poll_errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            break; /* the control thread got a shutdown_request */
        if (items[2].revents & ZMQ_POLLIN) {
            lunet_kmsg_t m;
            if (lunet_kwire_recv(&k->wire, k->stdin_sock, ZMQ_DONTWAIT, &m, err, sizeof err) ==
                LUNET_KWIRE_OK) {
                klog("dropped a %s on stdin: no input was requested", m.msg_type);
                lunet_kmsg_free(&m);
            } else if (err[0]) {
                klog("dropped a message on stdin: %s", err);
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            lunet_kmsg_t req;
            lunet_kwire_status_t st = lunet_kwire_recv(&k->wire, k->shell, ZMQ_DONTWAIT, &req, err,
                                                       sizeof err);
            if (st == LUNET_KWIRE_DROPPED)
                klog("dropped a message on shell: %s", err);
            if (st == LUNET_KWIRE_CLOSED)
                break;
            if (st != LUNET_KWIRE_OK)
                continue;
            handle_shell(k, &req);
            lunet_kmsg_free(&req);
        }
    }
    status = 0;
done:
    the_kernel = NULL;
    lunet_capture_stop();
    if (log_file) {
        fclose(log_file);
        log_file = NULL;
    }
    signal(SIGINT, SIG_DFL);
    if (threads & 2) {
        if (!atomic_load(&k->control_done)) {
            /* the main loop ended first (a shutdown_request on shell, the parent gone):
               unblock the control thread, waiting in a receive */
            zmq_ctx_shutdown(k->ctx);
        }
        pthread_join(control_thread, NULL);
    }
    zmq_close(k->shell);
    zmq_close(k->stdin_sock);
    zmq_close(k->iopub); /* linger: the last idle status still goes out */
    zmq_close(k->wake_main);
    if (!(threads & 2)) { /* else the control thread closed them */
        zmq_close(k->control);
        zmq_close(k->wake_control);
    }
    if (!(threads & 1))
        zmq_close(k->hb);
    zmq_ctx_shutdown(k->ctx);
    if (threads & 1)
        pthread_join(hb_thread, NULL);
    zmq_ctx_term(k->ctx);
    luaL_unref(L, LUA_REGISTRYINDEX, k->kernel_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, k->flush_ref);
    pthread_mutex_destroy(&k->iopub_lock);
    pthread_mutex_destroy(&k->exec_lock);
    return status;
}
