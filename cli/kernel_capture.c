/*
 * kernel_capture.c - fds 1 and 2 of the kernel process read back as stream output.
 *
 * Decisions:
 *  - A thread reads the pipes as soon as anything is written, so that a child process or C
 *    code writing more than a pipe's capacity never blocks on a kernel busy in Lua.  It only
 *    appends to memory; the main thread sends it (lunet_capture_drain) with the right parent
 *    header, at the points where Lua output is flushed too, first reading what the pipes
 *    still hold.  Every read happens under the mutex on non-blocking pipes, so the two
 *    readers never reorder the text.
 *  - Each stream keeps at most CAPTURE_MAX bytes between drains; beyond that the text is
 *    dropped and a note says how much.
 *  - A self-pipe stops the thread: waiting for end-of-file would hang while a background
 *    child still holds the write end.
 */
#include "kernel_capture.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAPTURE_MAX (4u << 20)

typedef struct {
    const char *name;
    int read_fd;
    int saved_fd; /* the original fd 1 or 2 */
    char *buf;
    size_t len, cap, dropped;
} stream_t;

static stream_t streams[2] = {{.name = "stdout", .read_fd = -1, .saved_fd = -1},
                              {.name = "stderr", .read_fd = -1, .saved_fd = -1}};
static int stop_pipe[2] = {-1, -1};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t thread;
static int running;

/* Called with `lock` held. */
static void append(stream_t *s, const char *p, size_t n)
{
    if (s->len + n > CAPTURE_MAX) {
        s->dropped += n;
        return;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) {
            s->dropped += n;
            return;
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

/* Reads what the pipe holds now (its read end is non-blocking), with `lock` held; returns 0
 * at end of file. */
static int read_pending(stream_t *s)
{
    char tmp[8192];
    for (;;) {
        ssize_t n = read(s->read_fd, tmp, sizeof tmp);
        if (n > 0)
            append(s, tmp, (size_t)n);
        else if (n == 0)
            return 0;
        else
            return 1; /* EAGAIN: empty for now (or an error: try again at the next poll) */
    }
}

static void *reader(void *arg)
{
    (void)arg;
    struct pollfd fds[3] = {{streams[0].read_fd, POLLIN, 0},
                            {streams[1].read_fd, POLLIN, 0},
                            {stop_pipe[0], POLLIN, 0}};
    for (;;) {
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (fds[2].revents)
            return NULL;
        for (int i = 0; i < 2; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            pthread_mutex_lock(&lock);
            int open = read_pending(&streams[i]);
            pthread_mutex_unlock(&lock);
            if (!open)
                fds[i].fd = -1; /* every writer closed it: poll ignores negative fds */
        }
    }
}

FILE *lunet_capture_start(void)
{
    int p[2][2] = {{-1, -1}, {-1, -1}};
    int saved[2] = {-1, -1};
    FILE *log = NULL;
    fflush(stdout);
    fflush(stderr);
    if (pipe(p[0]) || pipe(p[1]) || pipe(stop_pipe))
        goto fail;
    saved[0] = dup(1);
    saved[1] = dup(2);
    if (saved[0] < 0 || saved[1] < 0)
        goto fail;
    int log_fd = dup(saved[1]);
    if (log_fd < 0 || !(log = fdopen(log_fd, "w"))) {
        if (log_fd >= 0)
            close(log_fd);
        goto fail;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(p[i][0], F_SETFD, FD_CLOEXEC); /* children get the write ends only, as fd 1/2 */
        fcntl(p[i][0], F_SETFL, fcntl(p[i][0], F_GETFL) | O_NONBLOCK);
        streams[i].read_fd = p[i][0];
        streams[i].saved_fd = saved[i];
    }
    fcntl(stop_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(stop_pipe[1], F_SETFD, FD_CLOEXEC);
    if (dup2(p[0][1], 1) < 0 || dup2(p[1][1], 2) < 0)
        goto fail_restore;
    close(p[0][1]);
    close(p[1][1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pthread_create(&thread, NULL, reader, NULL) != 0) {
        p[0][1] = p[1][1] = -1;
        goto fail_restore;
    }
    running = 1;
    return log;
fail_restore:
    dup2(saved[0], 1);
    dup2(saved[1], 2);
fail:
    if (log)
        fclose(log);
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++)
            if (p[i][j] >= 0)
                close(p[i][j]);
        if (saved[i] >= 0)
            close(saved[i]);
        streams[i].read_fd = streams[i].saved_fd = -1;
    }
    for (int j = 0; j < 2; j++) {
        if (stop_pipe[j] >= 0)
            close(stop_pipe[j]);
        stop_pipe[j] = -1;
    }
    return NULL;
}

void lunet_capture_drain(void (*emit)(const char *name, const char *text, size_t len, void *ctx),
                         void *ctx)
{
    if (!running)
        return;
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < 2; i++) {
        stream_t *s = &streams[i];
        pthread_mutex_lock(&lock);
        read_pending(s); /* what a child that just exited wrote, not yet read by the thread */
        /* a UTF-8 character cut by the end of what was read so far waits for its rest */
        size_t len = s->len, keep = 0;
        for (size_t back = 1; back <= 3 && back <= len; back++) {
            unsigned char c = (unsigned char)s->buf[len - back];
            if ((c & 0xc0) == 0x80)
                continue;
            size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            if (need > back)
                keep = back;
            break;
        }
        char *out = len > keep ? malloc(len - keep) : NULL;
        if (out) {
            memcpy(out, s->buf, len - keep);
            memmove(s->buf, s->buf + len - keep, keep);
            s->len = keep;
        }
        size_t n = out ? len - keep : 0, dropped = s->dropped;
        s->dropped = 0;
        pthread_mutex_unlock(&lock);
        if (n > 0)
            emit(s->name, out, n, ctx);
        free(out);
        if (dropped > 0) {
            char note[128];
            int k = snprintf(note, sizeof note, "\n[lunet kernel: %zu bytes of %s dropped]\n",
                             dropped, s->name);
            emit(s->name, note, (size_t)k, ctx);
        }
    }
}

void lunet_capture_stop(void)
{
    if (!running)
        return;
    fflush(stdout);
    fflush(stderr);
    (void)!write(stop_pipe[1], "x", 1);
    pthread_join(thread, NULL);
    running = 0;
    for (int i = 0; i < 2; i++) {
        dup2(streams[i].saved_fd, i + 1);
        close(streams[i].saved_fd);
        close(streams[i].read_fd);
        free(streams[i].buf);
        streams[i].buf = NULL;
        streams[i].len = streams[i].cap = streams[i].dropped = 0;
        streams[i].read_fd = streams[i].saved_fd = -1;
    }
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    stop_pipe[0] = stop_pipe[1] = -1;
}
