/*
 * kernel_wire.h - the Jupyter messaging protocol's wire layer (version 5.3): the connection
 * file, HMAC-SHA256 signatures, and multipart messages over ZeroMQ with cJSON bodies.
 * Used by kernel.c only; knows nothing about Lua.
 */
#ifndef LUNET_KERNEL_WIRE_H
#define LUNET_KERNEL_WIRE_H

#include <stddef.h>

#include <cJSON.h>

#define LUNET_KWIRE_PROTOCOL_VERSION "5.3"

/* The connection file a frontend writes (ports, transport, key). */
typedef struct {
    char transport[16]; /* "tcp" or "ipc" */
    char ip[256];
    int shell_port, iopub_port, stdin_port, control_port, hb_port;
    char key[1024];
    size_t key_len;
} lunet_kconn_t;

/* The signing state shared by every socket (read-only after lunet_kwire_init). */
typedef struct {
    unsigned char key[1024];
    size_t key_len;
    char session[40];   /* this kernel's session id (a random UUID) */
    size_t max_message; /* bytes; larger incoming messages are dropped */
} lunet_kwire_t;

/* One message: the routing identities and the four JSON parts (buffers are ignored). */
typedef struct {
    size_t nids;
    char **ids; /* identity frames (binary, with their lengths) */
    size_t *id_lens;
    cJSON *header, *parent_header, *metadata, *content;
    const char *msg_type; /* points into header */
} lunet_kmsg_t;

/* Status of lunet_kwire_recv. */
typedef enum {
    LUNET_KWIRE_OK = 0,
    LUNET_KWIRE_DROPPED = 1, /* a bad message: err says why; the socket keeps serving */
    LUNET_KWIRE_AGAIN = 2,   /* nothing to read (non-blocking) */
    LUNET_KWIRE_CLOSED = 3   /* the context is shutting down */
} lunet_kwire_status_t;

/* Reads the connection file at path. Returns 0, or -1 with a message in err. */
int lunet_kconn_load(lunet_kconn_t *c, const char *path, char *err, size_t errlen);

/* "tcp://127.0.0.1:5555" (or "ipc://path-5555") for a port of the connection. */
void lunet_kconn_endpoint(const lunet_kconn_t *c, int port, char *out, size_t outlen);

/* Sets the key and a fresh session id. Returns 0, or -1 when no random source. */
int lunet_kwire_init(lunet_kwire_t *w, const lunet_kconn_t *c);

/*
 * The lowercase hex HMAC-SHA256 of the four parts under w's key into hex (65 bytes);
 * an empty key gives "" (unsigned messages, as the protocol allows).  Returns 0 or -1.
 */
int lunet_kwire_sign(const lunet_kwire_t *w, const char *const parts[4], const size_t lens[4],
                     char hex[65]);

/*
 * Receives one message from a ROUTER socket (flags: 0 or ZMQ_DONTWAIT), checks its
 * signature with a constant-time compare, its size and its JSON.  On LUNET_KWIRE_OK, *m
 * holds the message (free it with lunet_kmsg_free).  On LUNET_KWIRE_DROPPED, err says why.
 */
lunet_kwire_status_t lunet_kwire_recv(const lunet_kwire_t *w, void *sock, int flags,
                                      lunet_kmsg_t *m, char *err, size_t errlen);

/*
 * Sends a message of msg_type with content (and metadata; NULL: {}), as a reply to parent
 * (its identities route it and its header becomes the parent header; parent NULL: no
 * parent).  topic, when not NULL, replaces the identities (the iopub topic frame).
 * Does not take ownership of content or metadata.  Returns 0, or -1 on a send failure.
 */
int lunet_kwire_send(const lunet_kwire_t *w, void *sock, const lunet_kmsg_t *parent,
                     const char *topic, const char *msg_type, const cJSON *content,
                     const cJSON *metadata);

void lunet_kmsg_free(lunet_kmsg_t *m);

#endif /* LUNET_KERNEL_WIRE_H */
