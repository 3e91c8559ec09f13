/*
 * error.c - the thread-local last-error buffer behind lunet_error_message().
 */
#include "internal.h"

#include <string.h>

static _Thread_local char err_msg[1024];
static _Thread_local lunet_status_t err_status = LUNET_OK;

lunet_status_t lunet_error_set(lunet_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    err_status = st;
    return st;
}

const char *lunet_error_message(void) { return err_msg; }

lunet_status_t lunet_error_status(void) { return err_status; }

const char *lunet_status_name(lunet_status_t st)
{
    static const char *const names[] = {
        "OK", "RuntimeError", "IndexError", "ValueError", "TypeError", "MemoryError", "IOError",
    };
    _Static_assert(sizeof names / sizeof names[0] == LUNET_STATUS_COUNT, "one name per status");
    return (unsigned)st < LUNET_STATUS_COUNT ? names[st] : "Error";
}

const char *lunet_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t len = 0;
    buf[0] = '\0';
    len += (size_t)snprintf(buf + len, n - len, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
    return buf;
}
