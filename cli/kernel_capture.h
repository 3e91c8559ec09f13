/*
 * kernel_capture.h - the kernel's file descriptors 1 and 2 as pipes, so that what C code
 * and child processes (os.execute, io.popen) write reaches the notebook as stream output.
 */
#ifndef LUNET_KERNEL_CAPTURE_H
#define LUNET_KERNEL_CAPTURE_H

#include <stddef.h>
#include <stdio.h>

/*
 * Points fds 1 and 2 at pipes drained by a thread into memory.  Returns the kernel's log
 * stream (the original stderr, for messages that must not reach the notebook), or NULL
 * when capture could not start (then nothing changed and stderr is the log).
 */
FILE *lunet_capture_start(void);

/*
 * Hands what was written since the last call to emit(name, text, len, ctx), name being
 * "stdout" or "stderr", each non-empty stream once.  Main thread only.
 */
void lunet_capture_drain(void (*emit)(const char *name, const char *text, size_t len, void *ctx),
                         void *ctx);

/* Restores fds 1 and 2 and stops the thread (output still buffered is dropped). */
void lunet_capture_stop(void);

#endif /* LUNET_KERNEL_CAPTURE_H */
