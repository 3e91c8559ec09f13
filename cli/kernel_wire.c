/*
 * kernel_wire.c - Jupyter wire protocol 5.3: connection file, signatures, framing.
 *
 * Decisions:
 *  - A message on the wire is [identities..., "<IDS|MSG>", hmac, header, parent_header,
 *    metadata, content, buffers...].  The HMAC-SHA256 covers the four JSON parts; it is
 *    compared in constant time (CRYPTO_memcmp) before any JSON is parsed, so unsigned or
 *    forged input costs one hash and never reaches cJSON.
 *  - The whole message (all frames) is bounded by w->max_message: receiving stops as soon
 *    as the frames so far exceed it, the rest is read and discarded, and the message is
 *    dropped with a reason (the caller logs it).  A single frame over the limit is refused
 *    by ZeroMQ itself (ZMQ_MAXMSGSIZE, set by the caller), which drops that connection.
 *  - Each signature uses its own EVP_MAC_CTX, so that the shell and control threads can
 *    sign concurrently with no lock (the EVP_MAC itself is fetched once and only read).
 *  - msg_id = "<session>_<pid>_<counter>", as ipykernel does; dates are UTC with
 *    microseconds (ISO 8601).
 */
#include "kernel_wire.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <zmq.h>

static const char DELIM[] = "<IDS|MSG>";
#define MAX_IDS 16

/* ---------------------------------------------------------------- connection file ---- */

static int json_port(const cJSON *o, const char *name, int *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 65535) {
        snprintf(err, errlen, "connection file: \"%s\" must be a port number (1-65535)", name);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

static int json_string(const cJSON *o, const char *name, char *out, size_t outlen, size_t *len,
                       char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v)) {
        snprintf(err, errlen, "connection file: \"%s\" must be a string", name);
        return -1;
    }
    size_t n = strlen(v->valuestring);
    if (n >= outlen) {
        snprintf(err, errlen, "connection file: \"%s\" is too long (%zu bytes, at most %zu)", name,
                 n, outlen - 1);
        return -1;
    }
    memcpy(out, v->valuestring, n + 1);
    if (len)
        *len = n;
    return 0;
}

int lunet_kconn_load(lunet_kconn_t *c, const char *path, char *err, size_t errlen)
{
    int rc = -1;
    char *text = NULL;
    cJSON *root = NULL;
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open connection file %s: %s", path, strerror(errno));
        goto done;
    }
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            if (cap > (1u << 20)) {
                snprintf(err, errlen, "connection file %s: larger than 1 MiB", path);
                goto done;
            }
            cap = cap ? cap * 2 : 8192;
            char *nt = realloc(text, cap);
            if (!nt) {
                snprintf(err, errlen, "connection file %s: out of memory", path);
                goto done;
            }
            text = nt;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    text[len] = '\0';
    root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "connection file %s: not a JSON object", path);
        goto done;
    }
    char scheme[64] = "hmac-sha256";
    if (cJSON_GetObjectItemCaseSensitive(root, "signature_scheme") &&
        json_string(root, "signature_scheme", scheme, sizeof scheme, NULL, err, errlen))
        goto done;
    if (strcmp(scheme, "hmac-sha256") != 0) {
        snprintf(err, errlen,
                 "connection file %s: signature_scheme \"%s\" is not supported "
                 "(only hmac-sha256)",
                 path, scheme);
        goto done;
    }
    if (json_string(root, "transport", c->transport, sizeof c->transport, NULL, err, errlen) ||
        json_string(root, "ip", c->ip, sizeof c->ip, NULL, err, errlen) ||
        json_string(root, "key", c->key, sizeof c->key, &c->key_len, err, errlen) ||
        json_port(root, "shell_port", &c->shell_port, err, errlen) ||
        json_port(root, "iopub_port", &c->iopub_port, err, errlen) ||
        json_port(root, "stdin_port", &c->stdin_port, err, errlen) ||
        json_port(root, "control_port", &c->control_port, err, errlen) ||
        json_port(root, "hb_port", &c->hb_port, err, errlen))
        goto done;
    if (strcmp(c->transport, "tcp") != 0 && strcmp(c->transport, "ipc") != 0) {
        snprintf(err, errlen, "connection file %s: transport \"%s\" (expected tcp or ipc)", path,
                 c->transport);
        goto done;
    }
    rc = 0;
done:
    if (f)
        fclose(f);
    free(text);
    cJSON_Delete(root);
    return rc;
}

void lunet_kconn_endpoint(const lunet_kconn_t *c, int port, char *out, size_t outlen)
{
    if (strcmp(c->transport, "ipc") == 0)
        snprintf(out, outlen, "ipc://%s-%d", c->ip, port);
    else
        snprintf(out, outlen, "tcp://%s:%d", c->ip, port);
}

/* ---------------------------------------------------------------- signing ------------- */

static EVP_MAC *hmac_alg; /* fetched once in lunet_kwire_init */

int lunet_kwire_init(lunet_kwire_t *w, const lunet_kconn_t *c)
{
    memset(w, 0, sizeof *w);
    memcpy(w->key, c->key, c->key_len);
    w->key_len = c->key_len;
    w->max_message = 64u << 20;
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return -1;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* UUID version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(w->session, sizeof w->session,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    if (!hmac_alg)
        hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return hmac_alg ? 0 : -1;
}

int lunet_kwire_sign(const lunet_kwire_t *w, const char *const parts[4], const size_t lens[4],
                     char hex[65])
{
    hex[0] = '\0';
    if (w->key_len == 0)
        return 0;
    int rc = -1;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
    if (!ctx)
        return -1;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256",
                                                            0),
                           OSSL_PARAM_construct_end()};
    unsigned char md[32];
    size_t mdlen = 0;
    if (EVP_MAC_init(ctx, w->key, w->key_len, params) != 1)
        goto done;
    for (int i = 0; i < 4; i++)
        if (EVP_MAC_update(ctx, (const unsigned char *)parts[i], lens[i]) != 1)
            goto done;
    if (EVP_MAC_final(ctx, md, &mdlen, sizeof md) != 1 || mdlen != sizeof md)
        goto done;
    for (size_t i = 0; i < sizeof md; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    rc = 0;
done:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

/* ---------------------------------------------------------------- receiving ----------- */

void lunet_kmsg_free(lunet_kmsg_t *m)
{
    for (size_t i = 0; i < m->nids; i++)
        free(m->ids[i]);
    free(m->ids);
    free(m->id_lens);
    cJSON_Delete(m->header);
    cJSON_Delete(m->parent_header);
    cJSON_Delete(m->metadata);
    cJSON_Delete(m->content);
    memset(m, 0, sizeof *m);
}

/* Reads the remaining frames of a message so that the next recv starts a new one. */
static void drain(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        int r = zmq_msg_recv(&f, sock, 0);
        zmq_msg_close(&f);
        if (r < 0)
            break;
    }
}

lunet_kwire_status_t lunet_kwire_recv(const lunet_kwire_t *w, void *sock, int flags,
                                      lunet_kmsg_t *m, char *err, size_t errlen)
{
    enum { NFRAMES = MAX_IDS + 1 + 5 };
    zmq_msg_t frames[NFRAMES];
    int nframes = 0, delim = -1;
    size_t total = 0;
    lunet_kwire_status_t st = LUNET_KWIRE_DROPPED;
    memset(m, 0, sizeof *m);
    err[0] = '\0';
    for (;;) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, nframes == 0 ? flags : 0) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&f);
            if (nframes == 0 && e == EAGAIN)
                st = LUNET_KWIRE_AGAIN;
            else if (e == ETERM || e == ENOTSOCK)
                st = LUNET_KWIRE_CLOSED;
            else
                snprintf(err, errlen, "receive failed: %s", zmq_strerror(e));
            goto done;
        }
        total += zmq_msg_size(&f);
        int more = zmq_msg_more(&f);
        if (total > w->max_message) { /* stop storing at once: a peer cannot make us hoard */
            zmq_msg_close(&f);
            if (more)
                drain(sock);
            snprintf(err, errlen, "message larger than the limit (%zu bytes, over %zu already)",
                     w->max_message, total);
            goto done;
        }
        if (delim < 0 && zmq_msg_size(&f) == sizeof DELIM - 1 &&
            memcmp(zmq_msg_data(&f), DELIM, sizeof DELIM - 1) == 0)
            delim = nframes;
        /* keep the identities, the delimiter and the five parts after it; skip buffers */
        if (nframes < NFRAMES && (delim < 0 || nframes <= delim + 5)) {
            frames[nframes++] = f;
        } else {
            zmq_msg_close(&f);
            if (delim < 0) {
                snprintf(err, errlen, "no <IDS|MSG> delimiter in the first %d frames", NFRAMES);
                if (more)
                    drain(sock);
                goto done;
            }
        }
        if (!more)
            break;
    }
    if (delim < 0 || nframes < delim + 6) {
        snprintf(err, errlen, "malformed message: %s",
                 delim < 0 ? "no <IDS|MSG> delimiter" : "fewer than 5 parts after the delimiter");
        goto done;
    }
    const char *parts[4];
    size_t lens[4];
    for (int i = 0; i < 4; i++) {
        parts[i] = zmq_msg_data(&frames[delim + 2 + i]);
        lens[i] = zmq_msg_size(&frames[delim + 2 + i]);
    }
    size_t siglen = zmq_msg_size(&frames[delim + 1]);
    if (siglen != (w->key_len ? 64u : 0u)) { /* not even the size of ours: no HMAC needed */
        snprintf(err, errlen, "invalid signature (%zu bytes, expected %u)", siglen,
                 w->key_len ? 64u : 0u);
        goto done;
    }
    char expect[65];
    if (lunet_kwire_sign(w, parts, lens, expect) != 0) {
        snprintf(err, errlen, "cannot compute the HMAC");
        goto done;
    }
    if (siglen != strlen(expect) ||
        CRYPTO_memcmp(zmq_msg_data(&frames[delim + 1]), expect, siglen) != 0) {
        snprintf(err, errlen, "invalid signature (%zu-byte signature does not match)", siglen);
        goto done;
    }
    cJSON **dst[4] = {&m->header, &m->parent_header, &m->metadata, &m->content};
    static const char *const names[4] = {"header", "parent_header", "metadata", "content"};
    for (int i = 0; i < 4; i++) {
        *dst[i] = cJSON_ParseWithLength(parts[i], lens[i]);
        if (!cJSON_IsObject(*dst[i])) {
            snprintf(err, errlen, "malformed JSON in the %s (%zu bytes)", names[i], lens[i]);
            goto done;
        }
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m->header, "msg_type");
    if (!cJSON_IsString(type)) {
        snprintf(err, errlen, "the header has no msg_type");
        goto done;
    }
    m->msg_type = type->valuestring;
    m->nids = (size_t)delim;
    if (delim > 0) {
        m->ids = calloc((size_t)delim, sizeof *m->ids);
        m->id_lens = calloc((size_t)delim, sizeof *m->id_lens);
        if (!m->ids || !m->id_lens) {
            m->nids = 0;
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (int i = 0; i < delim; i++) {
            size_t n = zmq_msg_size(&frames[i]);
            m->ids[i] = malloc(n ? n : 1);
            if (!m->ids[i]) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            memcpy(m->ids[i], zmq_msg_data(&frames[i]), n);
            m->id_lens[i] = n;
        }
    }
    st = LUNET_KWIRE_OK;
done:
    for (int i = 0; i < nframes; i++)
        zmq_msg_close(&frames[i]);
    if (st != LUNET_KWIRE_OK)
        lunet_kmsg_free(m);
    return st;
}

/* ---------------------------------------------------------------- sending ------------- */

static atomic_ulong msg_counter;

static cJSON *make_header(const lunet_kwire_t *w, const char *msg_type)
{
    char id[96], date[64];
    snprintf(id, sizeof id, "%s_%ld_%lu", w->session, (long)getpid(),
             (unsigned long)atomic_fetch_add(&msg_counter, 1));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(date + n, sizeof date - n, ".%06ldZ", ts.tv_nsec / 1000);
    cJSON *h = cJSON_CreateObject();
    if (!h)
        return NULL;
    if (!cJSON_AddStringToObject(h, "msg_id", id) ||
        !cJSON_AddStringToObject(h, "session", w->session) ||
        !cJSON_AddStringToObject(h, "username", "lunet") ||
        !cJSON_AddStringToObject(h, "date", date) ||
        !cJSON_AddStringToObject(h, "msg_type", msg_type) ||
        !cJSON_AddStringToObject(h, "version", LUNET_KWIRE_PROTOCOL_VERSION)) {
        cJSON_Delete(h);
        return NULL;
    }
    return h;
}

int lunet_kwire_send(const lunet_kwire_t *w, void *sock, const lunet_kmsg_t *parent,
                     const char *topic, const char *msg_type, const cJSON *content,
                     const cJSON *metadata)
{
    int rc = -1;
    char *parts[4] = {NULL, NULL, NULL, NULL};
    cJSON *header = make_header(w, msg_type);
    if (!header)
        goto done;
    parts[0] = cJSON_PrintUnformatted(header);
    parts[1] = parent && parent->header ? cJSON_PrintUnformatted(parent->header) : strdup("{}");
    parts[2] = metadata ? cJSON_PrintUnformatted(metadata) : strdup("{}");
    parts[3] = content ? cJSON_PrintUnformatted(content) : strdup("{}");
    for (int i = 0; i < 4; i++)
        if (!parts[i])
            goto done;
    size_t lens[4];
    for (int i = 0; i < 4; i++)
        lens[i] = strlen(parts[i]);
    char sig[65];
    if (lunet_kwire_sign(w, (const char *const *)parts, lens, sig) != 0)
        goto done;
    if (topic) {
        if (zmq_send(sock, topic, strlen(topic), ZMQ_SNDMORE) < 0)
            goto done;
    } else if (parent) {
        for (size_t i = 0; i < parent->nids; i++)
            if (zmq_send(sock, parent->ids[i], parent->id_lens[i], ZMQ_SNDMORE) < 0)
                goto done;
    }
    if (zmq_send(sock, DELIM, sizeof DELIM - 1, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, sig, strlen(sig), ZMQ_SNDMORE) < 0)
        goto done;
    for (int i = 0; i < 4; i++)
        if (zmq_send(sock, parts[i], lens[i], i < 3 ? ZMQ_SNDMORE : 0) < 0)
            goto done;
    rc = 0;
done:
    for (int i = 0; i < 4; i++)
        cJSON_free(parts[i]);
    cJSON_Delete(header);
    return rc;
}
