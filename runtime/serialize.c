/*
 * serialize.c - save and load trees of values (tensors, numbers, strings, booleans, maps)
 * in Lunet's checkpoint format, version 1 (docs/FORMAT.md is the reference; keep the two
 * in step).
 *
 *   header (36 bytes, little-endian):
 *     0  "LUNET\0"      magic
 *     6  u16 version    1
 *     8  u32 flags      bit 0: the body is a zlib stream (always set by this writer)
 *    12  u64 payload    bytes of the uncompressed payload
 *    20  u64 stored     bytes of the body that follows the header (file size - 36)
 *    28  u32 crc32      of the uncompressed payload
 *    32  u32 crc32      of header bytes 0..31
 *   body: the payload, one encoded value (see encode_value), deflated.
 *
 * Files are written through atomic_file.c (an unnamed temporary in the target's directory,
 * fsync'ed and renamed over the target), so the previous file survives any failure and a
 * killed save leaves nothing behind.  The reader checks every
 * length against what the file can still hold before allocating anything.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_SIZE 36
#define FORMAT_VERSION 1
#define FLAG_ZLIB 1u
#define MAX_DEPTH 200
#define IO_CHUNK (64 * 1024)
/* deflate never expands less than this much: a payload claiming more is a lie. */
#define ZLIB_MAX_RATIO 1032u
/* Float data barely compresses (only its exponent bytes do): level 1 is as small as level 6,
   and Huffman-only coding of float tensors is twice as fast again and no larger. */
#define SAVE_LEVEL 1

static const unsigned char MAGIC[6] = {'L', 'U', 'N', 'E', 'T', 0};

enum {
    TAG_FALSE = 0x01,
    TAG_TRUE = 0x02,
    TAG_INT = 0x03,
    TAG_FLOAT = 0x04,
    TAG_STRING = 0x05,
    TAG_TENSOR = 0x06,
    TAG_MAP = 0x07,
};

/* dtype codes of the file, fixed whatever the enum's order becomes. */
static const lunet_dtype_t FILE_DTYPES[] = {LUNET_DTYPE_FLOAT32, LUNET_DTYPE_FLOAT64,
                                            LUNET_DTYPE_INT64, LUNET_DTYPE_UINT8, LUNET_DTYPE_BOOL};
#define N_FILE_DTYPES ((int)(sizeof FILE_DTYPES / sizeof FILE_DTYPES[0]))

static int dtype_code(lunet_dtype_t dt)
{
    for (int i = 0; i < N_FILE_DTYPES; i++)
        if (FILE_DTYPES[i] == dt)
            return i;
    return -1;
}

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Reverses each elem-byte element of buf in place (big-endian hosts only). */
static void swap_elems(unsigned char *buf, size_t nbytes, size_t elem)
{
    if (elem < 2)
        return;
    for (size_t i = 0; i + elem <= nbytes; i += elem)
        for (size_t a = i, b = i + elem - 1; a < b; a++, b--) {
            unsigned char t = buf[a];
            buf[a] = buf[b];
            buf[b] = t;
        }
}

/* ---------------------------------------------------------------- value trees ---------- */

/* A new node holding a copy of proto: its kind and, for a number, its value (the rest 0). */
static lunet_status_t value_new(lunet_value_t **out, lunet_value_t proto)
{
    lunet_value_t *v = malloc(sizeof *v);
    if (!v)
        return lunet_error_set(LUNET_STATUS_NOMEM, "value: out of memory");
    *v = proto;
    *out = v;
    return LUNET_OK;
}

lunet_status_t lunet_value_bool(lunet_value_t **out, bool b)
{
    return value_new(out, (lunet_value_t){.kind = LUNET_VALUE_BOOL, .u.b = b});
}

lunet_status_t lunet_value_int(lunet_value_t **out, int64_t i)
{
    return value_new(out, (lunet_value_t){.kind = LUNET_VALUE_INT, .u.i = i});
}

lunet_status_t lunet_value_float(lunet_value_t **out, double f)
{
    return value_new(out, (lunet_value_t){.kind = LUNET_VALUE_FLOAT, .u.f = f});
}

lunet_status_t lunet_value_string(lunet_value_t **out, const char *s, size_t len)
{
    if (!s && len)
        return lunet_error_set(LUNET_STATUS_VALUE, "value_string: NULL string of length %zu", len);
    if (len == SIZE_MAX)
        return lunet_error_set(LUNET_STATUS_VALUE, "value_string: string too long");
    char *copy = malloc(len + 1);
    if (!copy)
        return lunet_error_set(LUNET_STATUS_NOMEM, "value_string: out of memory (%zu bytes)", len);
    if (len)
        memcpy(copy, s, len);
    copy[len] = 0;
    lunet_value_t *v = NULL;
    lunet_status_t st = value_new(&v, (lunet_value_t){.kind = LUNET_VALUE_STRING});
    if (st) {
        free(copy);
        return st;
    }
    v->u.str.data = copy;
    v->u.str.len = len;
    *out = v;
    return LUNET_OK;
}

lunet_status_t lunet_value_tensor(lunet_value_t **out, lunet_tensor_t *t)
{
    if (!t)
        return lunet_error_set(LUNET_STATUS_VALUE, "value_tensor: NULL tensor");
    lunet_status_t st = value_new(out, (lunet_value_t){.kind = LUNET_VALUE_TENSOR});
    if (!st) {
        lunet_tensor_retain(t);
        (*out)->u.tensor = t;
    }
    return st;
}

lunet_status_t lunet_value_map(lunet_value_t **out)
{
    return value_new(out, (lunet_value_t){.kind = LUNET_VALUE_MAP});
}

void lunet_value_free(lunet_value_t *v)
{
    if (!v)
        return;
    switch (v->kind) {
    case LUNET_VALUE_STRING:
        free(v->u.str.data);
        break;
    case LUNET_VALUE_TENSOR:
        lunet_tensor_release(v->u.tensor);
        break;
    case LUNET_VALUE_MAP:
        for (size_t i = 0; i < v->u.map.count; i++) {
            lunet_value_free(v->u.map.entries[i].key);
            lunet_value_free(v->u.map.entries[i].value);
        }
        free(v->u.map.entries);
        break;
    default:
        break;
    }
    free(v);
}

/* Grows m's entry array to hold at least need entries. */
static lunet_status_t map_reserve(lunet_value_t *m, size_t need)
{
    if (need <= m->u.map.cap)
        return LUNET_OK;
    size_t cap = m->u.map.cap ? m->u.map.cap : 8;
    while (cap < need)
        cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    if (cap > SIZE_MAX / sizeof(lunet_value_entry_t))
        return lunet_error_set(LUNET_STATUS_NOMEM, "value_map_put: too many entries");
    lunet_value_entry_t *e = realloc(m->u.map.entries, cap * sizeof *e);
    if (!e)
        return lunet_error_set(LUNET_STATUS_NOMEM, "value_map_put: out of memory (%zu entries)",
                               cap);
    m->u.map.entries = e;
    m->u.map.cap = cap;
    return LUNET_OK;
}

lunet_status_t lunet_value_map_put(lunet_value_t *map, lunet_value_t *key, lunet_value_t *value)
{
    lunet_status_t st = LUNET_OK;
    if (!map || map->kind != LUNET_VALUE_MAP)
        st = lunet_error_set(LUNET_STATUS_TYPE, "value_map_put: not a map");
    else if (!key || (key->kind != LUNET_VALUE_INT && key->kind != LUNET_VALUE_STRING))
        st = lunet_error_set(LUNET_STATUS_TYPE, "value_map_put: a key must be an int or a string");
    else if (!value)
        st = lunet_error_set(LUNET_STATUS_VALUE, "value_map_put: NULL value");
    else if (value == map)
        st = lunet_error_set(LUNET_STATUS_VALUE, "value_map_put: a map cannot contain itself");
    else
        st = map_reserve(map, map->u.map.count + 1);
    if (st) {
        /* the map takes ownership in every case, so the caller never has to clean up */
        lunet_value_free(key);
        lunet_value_free(value);
        return st;
    }
    map->u.map.entries[map->u.map.count].key = key;
    map->u.map.entries[map->u.map.count].value = value;
    map->u.map.count++;
    return LUNET_OK;
}

lunet_status_t lunet_value_map_put_str(lunet_value_t *map, const char *key, lunet_value_t *value)
{
    lunet_value_t *k;
    lunet_status_t st = key ? lunet_value_string(&k, key, strlen(key))
                            : lunet_error_set(LUNET_STATUS_VALUE, "value_map_put_str: NULL key");
    if (st) {
        lunet_value_free(value);
        return st;
    }
    return lunet_value_map_put(map, k, value);
}

const lunet_value_t *lunet_value_map_get(const lunet_value_t *map, const char *key)
{
    if (!map || map->kind != LUNET_VALUE_MAP || !key)
        return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < map->u.map.count; i++) {
        const lunet_value_t *k = map->u.map.entries[i].key;
        if (k->kind == LUNET_VALUE_STRING && k->u.str.len == len &&
            memcmp(k->u.str.data, key, len) == 0)
            return map->u.map.entries[i].value;
    }
    return NULL;
}

const lunet_value_t *lunet_value_map_geti(const lunet_value_t *map, int64_t key)
{
    if (!map || map->kind != LUNET_VALUE_MAP)
        return NULL;
    for (size_t i = 0; i < map->u.map.count; i++) {
        const lunet_value_t *k = map->u.map.entries[i].key;
        if (k->kind == LUNET_VALUE_INT && k->u.i == key)
            return map->u.map.entries[i].value;
    }
    return NULL;
}

/* Key order: ints ascending, then strings bytewise (shorter first on a common prefix). */
static int key_cmp(const lunet_value_t *a, const lunet_value_t *b)
{
    if (a->kind != b->kind)
        return a->kind == LUNET_VALUE_INT ? -1 : 1;
    if (a->kind == LUNET_VALUE_INT)
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
    int c = n ? memcmp(a->u.str.data, b->u.str.data, n) : 0;
    if (c)
        return c;
    return a->u.str.len < b->u.str.len ? -1 : a->u.str.len > b->u.str.len;
}

static int entry_cmp(const void *a, const void *b)
{
    return key_cmp(((const lunet_value_entry_t *)a)->key, ((const lunet_value_entry_t *)b)->key);
}

static int entry_ptr_cmp(const void *a, const void *b)
{
    return key_cmp((*(const lunet_value_entry_t *const *)a)->key,
                   (*(const lunet_value_entry_t *const *)b)->key);
}

void lunet_value_map_sort(lunet_value_t *map)
{
    if (map && map->kind == LUNET_VALUE_MAP && map->u.map.count > 1)
        qsort(map->u.map.entries, map->u.map.count, sizeof(lunet_value_entry_t), entry_cmp);
}

/* The first key of m that occurs twice, or NULL (O(n log n), m itself is not reordered). */
static lunet_status_t find_duplicate(const lunet_value_t **dup, const lunet_value_t *m)
{
    *dup = NULL;
    size_t n = m->u.map.count;
    if (n < 2)
        return LUNET_OK;
    const lunet_value_entry_t **idx = malloc(n * sizeof *idx);
    if (!idx)
        return lunet_error_set(LUNET_STATUS_NOMEM, "map of %zu entries: out of memory", n);
    for (size_t i = 0; i < n; i++)
        idx[i] = &m->u.map.entries[i];
    qsort(idx, n, sizeof *idx, entry_ptr_cmp);
    for (size_t i = 1; i < n && !*dup; i++)
        if (key_cmp(idx[i - 1]->key, idx[i]->key) == 0)
            *dup = idx[i]->key;
    free(idx);
    return LUNET_OK;
}

/* ---------------------------------------------------------------- key paths ------------ */

/* The keys from the root to the value being worked on, for messages ("opt.param_groups[1]"). */
typedef struct keypath {
    const lunet_value_t *keys[MAX_DEPTH + 1];
    int depth;
} keypath_t;

static const char *keypath_str(char *buf, size_t n, const keypath_t *kp)
{
    size_t used = 0;
    buf[0] = 0;
    if (kp->depth == 0) {
        snprintf(buf, n, "(top level)");
        return buf;
    }
    for (int i = 0; i < kp->depth && used + 1 < n; i++) {
        const lunet_value_t *k = kp->keys[i];
        int w;
        if (k->kind == LUNET_VALUE_INT)
            w = snprintf(buf + used, n - used, "[%lld]", (long long)k->u.i);
        else
            w = snprintf(buf + used, n - used, "%s%.*s", i ? "." : "",
                         (int)(k->u.str.len > 200 ? 200 : k->u.str.len), k->u.str.data);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* ---------------------------------------------------------------- writing -------------- */

static int64_t g_fault_after = -2; /* -2: not set by the API, consult the environment */

void lunet_serialize_set_fault(int64_t after_bytes)
{
    g_fault_after = after_bytes < 0 ? -1 : after_bytes;
}

static int64_t fault_limit(void)
{
    if (g_fault_after != -2)
        return g_fault_after;
    const char *e = getenv("LUNET_FAULT_SAVE_AFTER");
    if (!e || !*e)
        return -1;
    char *end;
    long long v = strtoll(e, &end, 10);
    return (*end || v < 0) ? -1 : (int64_t)v;
}

typedef struct writer {
    lunet_afile_t file;
    const char *path; /* the target, for messages */
    z_stream zs;
    bool zinit;
    unsigned char out[IO_CHUNK];
    uint64_t payload; /* uncompressed bytes so far */
    uint64_t stored;  /* body bytes written to the file */
    uint64_t written; /* file bytes written (header placeholder included) */
    uint32_t crc;
    int64_t fault_after;
    bool little_endian;
    int strategy; /* current deflate strategy */
    keypath_t kp;
} writer_t;

static lunet_status_t write_fd(writer_t *w, const unsigned char *p, size_t n)
{
    size_t allowed = n;
    bool fault = false;
    if (w->fault_after >= 0 && w->written + n > (uint64_t)w->fault_after) {
        allowed = (size_t)((uint64_t)w->fault_after - w->written);
        fault = true;
    }
    size_t done = 0;
    while (done < allowed) {
        ssize_t k = write(w->file.fd, p + done, allowed - done);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return lunet_error_set(LUNET_STATUS_IO, "save: cannot write %s: %s", w->path,
                                   strerror(errno));
        }
        done += (size_t)k;
    }
    w->written += done;
    if (fault)
        return lunet_error_set(LUNET_STATUS_IO,
                               "save: cannot write %s: simulated write failure after %lld bytes "
                               "(LUNET_FAULT_SAVE_AFTER)",
                               w->path, (long long)w->fault_after);
    return LUNET_OK;
}

/* Writes what the last deflate call put in w->out (*have bytes); avail_out stays as it was. */
static lunet_status_t write_out(writer_t *w, size_t *have)
{
    *have = sizeof w->out - w->zs.avail_out;
    if (*have) {
        lunet_status_t st = write_fd(w, w->out, *have);
        if (st)
            return st;
        w->stored += *have;
    }
    return LUNET_OK;
}

/* Runs deflate over the pending input with `flush`, writing whatever it produces. */
static lunet_status_t deflate_run(writer_t *w, int flush)
{
    for (;;) {
        w->zs.next_out = w->out;
        w->zs.avail_out = sizeof w->out;
        int rc = deflate(&w->zs, flush);
        if (rc == Z_STREAM_ERROR)
            return lunet_error_set(LUNET_STATUS_RUNTIME, "save: %s: zlib deflate failed", w->path);
        size_t have;
        lunet_status_t st = write_out(w, &have);
        if (st)
            return st;
        if (flush == Z_FINISH ? rc == Z_STREAM_END : (w->zs.avail_in == 0 && w->zs.avail_out != 0))
            return LUNET_OK;
    }
}

/* Switches deflate's strategy between values (deflateParams may emit a block). */
static lunet_status_t set_strategy(writer_t *w, int strategy)
{
    if (w->strategy == strategy)
        return LUNET_OK;
    for (;;) {
        w->zs.next_out = w->out;
        w->zs.avail_out = sizeof w->out;
        int rc = deflateParams(&w->zs, SAVE_LEVEL, strategy);
        size_t have;
        lunet_status_t st = write_out(w, &have);
        if (st)
            return st;
        if (rc == Z_OK)
            break;
        if (rc != Z_BUF_ERROR || have == 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME, "save: %s: zlib deflateParams failed",
                                   w->path);
    }
    w->strategy = strategy;
    return LUNET_OK;
}

static lunet_status_t emit(writer_t *w, const void *p, size_t n)
{
    const unsigned char *b = p;
    w->payload += n;
    while (n) {
        uInt step = n > (1u << 30) ? (1u << 30) : (uInt)n;
        w->crc = (uint32_t)crc32(w->crc, b, step);
        w->zs.next_in = (Bytef *)(uintptr_t)b;
        w->zs.avail_in = step;
        lunet_status_t st = deflate_run(w, Z_NO_FLUSH);
        if (st)
            return st;
        b += step;
        n -= step;
    }
    return LUNET_OK;
}

static lunet_status_t emit_u8(writer_t *w, unsigned v)
{
    unsigned char b = (unsigned char)v;
    return emit(w, &b, 1);
}

static lunet_status_t emit_u64(writer_t *w, uint64_t v)
{
    unsigned char b[8];
    put_u64(b, v);
    return emit(w, b, 8);
}

static lunet_status_t write_tensor(writer_t *w, lunet_tensor_t *t)
{
    char where[512];
    int code = dtype_code(t->dtype);
    if (code < 0)
        return lunet_error_set(LUNET_STATUS_TYPE, "save: %s: tensor of unknown dtype at key '%s'",
                               w->path, keypath_str(where, sizeof where, &w->kp));
    unsigned char head[3 + 8 * LUNET_MAX_DIMS];
    head[0] = (unsigned char)code;
    head[1] = t->requires_grad ? 1 : 0;
    head[2] = (unsigned char)t->ndim;
    for (int d = 0; d < t->ndim; d++)
        put_u64(head + 3 + 8 * d, (uint64_t)t->shape[d]);
    lunet_status_t st = emit_u8(w, TAG_TENSOR);
    if (!st)
        st = emit(w, head, 3 + 8 * (size_t)t->ndim);
    if (st)
        return st;
    bool huffman = lunet_dtype_is_floating(t->dtype) && t->numel >= 1024;
    if (huffman && (st = set_strategy(w, Z_HUFFMAN_ONLY)))
        return st;
    lunet_tensor_t *c;
    if ((st = lunet_tensor_contiguous(&c, t)))
        return st;
    size_t esz = lunet_dtype_size(c->dtype);
    size_t nbytes = (size_t)c->numel * esz;
    if (w->little_endian || esz == 1) {
        st = emit(w, lunet_tensor_data(c), nbytes);
    } else {
        /* big-endian host: swap through a small buffer, the tensor stays untouched */
        unsigned char buf[4096];
        const unsigned char *src = lunet_tensor_data(c);
        for (size_t off = 0; off < nbytes && !st; off += sizeof buf) {
            size_t k = nbytes - off < sizeof buf ? nbytes - off : sizeof buf;
            memcpy(buf, src + off, k);
            swap_elems(buf, k, esz);
            st = emit(w, buf, k);
        }
    }
    lunet_tensor_release(c);
    if (!st && huffman)
        st = set_strategy(w, Z_DEFAULT_STRATEGY);
    return st;
}

static lunet_status_t write_value(writer_t *w, const lunet_value_t *v)
{
    char where[512];
    lunet_status_t st;
    switch (v->kind) {
    case LUNET_VALUE_BOOL:
        return emit_u8(w, v->u.b ? TAG_TRUE : TAG_FALSE);
    case LUNET_VALUE_INT:
        if ((st = emit_u8(w, TAG_INT)))
            return st;
        return emit_u64(w, (uint64_t)v->u.i);
    case LUNET_VALUE_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->u.f, 8);
        if ((st = emit_u8(w, TAG_FLOAT)))
            return st;
        return emit_u64(w, bits);
    }
    case LUNET_VALUE_STRING:
        if ((st = emit_u8(w, TAG_STRING)) || (st = emit_u64(w, v->u.str.len)))
            return st;
        return emit(w, v->u.str.data, v->u.str.len);
    case LUNET_VALUE_TENSOR:
        if (!v->u.tensor)
            return lunet_error_set(LUNET_STATUS_VALUE, "save: %s: NULL tensor at key '%s'", w->path,
                                   keypath_str(where, sizeof where, &w->kp));
        return write_tensor(w, v->u.tensor);
    case LUNET_VALUE_MAP: {
        if (w->kp.depth >= MAX_DEPTH)
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "save: %s: tables nested deeper than %d levels at key '%s' (a "
                                   "cycle?)",
                                   w->path, MAX_DEPTH, keypath_str(where, sizeof where, &w->kp));
        const lunet_value_t *dup;
        if ((st = find_duplicate(&dup, v)))
            return st;
        if (dup) {
            w->kp.keys[w->kp.depth++] = dup;
            st = lunet_error_set(LUNET_STATUS_VALUE, "save: %s: duplicate key '%s'", w->path,
                                 keypath_str(where, sizeof where, &w->kp));
            w->kp.depth--;
            return st;
        }
        if ((st = emit_u8(w, TAG_MAP)) || (st = emit_u64(w, v->u.map.count)))
            return st;
        for (size_t i = 0; i < v->u.map.count; i++) {
            const lunet_value_entry_t *e = &v->u.map.entries[i];
            if ((st = write_value(w, e->key)))
                return st;
            w->kp.keys[w->kp.depth++] = e->key;
            st = write_value(w, e->value);
            w->kp.depth--;
            if (st)
                return st;
        }
        return LUNET_OK;
    }
    }
    return lunet_error_set(LUNET_STATUS_TYPE, "save: %s: unknown value kind %d at key '%s'",
                           w->path, (int)v->kind, keypath_str(where, sizeof where, &w->kp));
}

lunet_status_t lunet_value_save(const char *path, const lunet_value_t *v)
{
    if (!v)
        return lunet_error_set(LUNET_STATUS_VALUE, "save: %s: NULL value", path ? path : "(null)");
    writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return lunet_error_set(LUNET_STATUS_NOMEM, "save: out of memory");
    lunet_status_t st = lunet_afile_open(&w->file, "save", path);
    if (st) {
        free(w);
        return st;
    }
    w->path = path;
    w->fault_after = fault_limit();
    w->little_endian = host_is_little_endian();
    w->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    w->strategy = Z_DEFAULT_STRATEGY;
    unsigned char hdr[HEADER_SIZE] = {0};
    if (deflateInit(&w->zs, SAVE_LEVEL) != Z_OK) {
        st = lunet_error_set(LUNET_STATUS_NOMEM, "save: %s: cannot start zlib", path);
        goto fail;
    }
    w->zinit = true;
    /* placeholder header; the real one needs the lengths and CRC known at the end */
    if ((st = write_fd(w, hdr, HEADER_SIZE)) || (st = write_value(w, v)) ||
        (st = deflate_run(w, Z_FINISH)))
        goto fail;
    memcpy(hdr, MAGIC, 6);
    put_u16(hdr + 6, FORMAT_VERSION);
    put_u32(hdr + 8, FLAG_ZLIB);
    put_u64(hdr + 12, w->payload);
    put_u64(hdr + 20, w->stored);
    put_u32(hdr + 28, w->crc);
    put_u32(hdr + 32, (uint32_t)crc32(crc32(0L, Z_NULL, 0), hdr, 32));
    if (pwrite(w->file.fd, hdr, HEADER_SIZE, 0) != HEADER_SIZE) {
        st = lunet_error_set(LUNET_STATUS_IO, "save: cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    st = lunet_afile_commit(&w->file);
    deflateEnd(&w->zs);
    free(w);
    return st;
fail:
    lunet_afile_abort(&w->file);
    if (w->zinit)
        deflateEnd(&w->zs);
    free(w);
    return st;
}

/* ---------------------------------------------------------------- reading -------------- */

typedef struct reader {
    FILE *f;
    const char *path;
    z_stream zs;
    bool zinit;
    unsigned char in[IO_CHUNK];
    uint64_t stored_left;  /* body bytes not yet given to inflate */
    uint64_t payload_left; /* payload bytes the header says are still to come */
    uint32_t crc;
    bool little_endian;
    keypath_t kp;
} reader_t;

static lunet_status_t corrupt(reader_t *r, const char *what)
{
    char where[512];
    return lunet_error_set(LUNET_STATUS_VALUE, "load: %s: corrupt data (%s, at key '%s')", r->path,
                           what, keypath_str(where, sizeof where, &r->kp));
}

/* Inflates exactly n bytes into dst (n already checked against payload_left). */
static lunet_status_t inflate_into(reader_t *r, unsigned char *dst, size_t n)
{
    while (n) {
        uInt step = n > (1u << 30) ? (1u << 30) : (uInt)n;
        r->zs.next_out = dst;
        r->zs.avail_out = step;
        while (r->zs.avail_out) {
            if (r->zs.avail_in == 0) {
                if (r->stored_left == 0)
                    return corrupt(r, "the zlib stream ends early");
                size_t want = r->stored_left < sizeof r->in ? (size_t)r->stored_left : sizeof r->in;
                size_t got = fread(r->in, 1, want, r->f);
                if (got != want)
                    return lunet_error_set(LUNET_STATUS_IO, "load: %s: truncated (read failed: %s)",
                                           r->path, ferror(r->f) ? strerror(errno) : "end of file");
                r->stored_left -= got;
                r->zs.next_in = r->in;
                r->zs.avail_in = (uInt)got;
            }
            int rc = inflate(&r->zs, Z_NO_FLUSH);
            if (rc == Z_STREAM_END && r->zs.avail_out)
                return corrupt(r, "the zlib stream ends before the payload does");
            if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR)
                return corrupt(r, r->zs.msg ? r->zs.msg : "bad zlib stream");
            if (rc == Z_MEM_ERROR)
                return lunet_error_set(LUNET_STATUS_NOMEM, "load: %s: out of memory in zlib",
                                       r->path);
            if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
                return corrupt(r, "zlib error");
        }
        r->crc = (uint32_t)crc32(r->crc, dst, step);
        dst += step;
        n -= step;
    }
    return LUNET_OK;
}

static lunet_status_t take(reader_t *r, void *dst, size_t n, const char *what)
{
    if (n > r->payload_left) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s of %zu bytes runs past the end of the payload (%llu left)",
                 what, n, (unsigned long long)r->payload_left);
        return corrupt(r, msg);
    }
    r->payload_left -= n;
    return inflate_into(r, dst, n);
}

static lunet_status_t read_value(reader_t *r, lunet_value_t **out, bool is_key);

static lunet_status_t read_tensor(reader_t *r, lunet_value_t **out)
{
    unsigned char h[3];
    lunet_status_t st = take(r, h, 3, "tensor header");
    if (st)
        return st;
    char msg[160];
    if (h[0] >= N_FILE_DTYPES) {
        snprintf(msg, sizeof msg, "unknown dtype code %u", h[0]);
        return corrupt(r, msg);
    }
    if (h[1] > 1) {
        snprintf(msg, sizeof msg, "tensor flags 0x%02x", h[1]);
        return corrupt(r, msg);
    }
    if (h[2] > LUNET_MAX_DIMS) {
        snprintf(msg, sizeof msg, "tensor of %u dims (at most %d)", h[2], LUNET_MAX_DIMS);
        return corrupt(r, msg);
    }
    lunet_dtype_t dt = FILE_DTYPES[h[0]];
    int ndim = h[2];
    unsigned char sb[8 * LUNET_MAX_DIMS];
    if ((st = take(r, sb, 8 * (size_t)ndim, "tensor shape")))
        return st;
    int64_t shape[LUNET_MAX_DIMS];
    size_t esz = lunet_dtype_size(dt);
    uint64_t numel = 1;
    bool zero = false;
    for (int d = 0; d < ndim; d++) {
        uint64_t s = get_u64(sb + 8 * d);
        if (s > (uint64_t)INT64_MAX) {
            snprintf(msg, sizeof msg, "negative size in dim %d", d);
            return corrupt(r, msg);
        }
        shape[d] = (int64_t)s;
        if (s == 0)
            zero = true;
        /* bound the running product by what the payload can hold, so it cannot overflow */
        else if (!zero && numel > r->payload_left / esz / s + 1) {
            snprintf(msg, sizeof msg, "tensor data larger than the %llu bytes left",
                     (unsigned long long)r->payload_left);
            return corrupt(r, msg);
        } else if (!zero)
            numel *= s;
    }
    if (zero)
        numel = 0;
    if (numel > r->payload_left / esz) {
        snprintf(msg, sizeof msg, "tensor data of %llu bytes but only %llu left",
                 (unsigned long long)(numel * esz), (unsigned long long)r->payload_left);
        return corrupt(r, msg);
    }
    if (h[1] && !lunet_dtype_is_floating(dt)) { /* no writer makes this: the file is damaged */
        snprintf(msg, sizeof msg, "%s tensor marked requires_grad", lunet_dtype_name(dt));
        return corrupt(r, msg);
    }
    lunet_tensor_t *t;
    if ((st = lunet_tensor_empty(&t, dt, ndim, shape))) {
        char where[512], why[256];
        snprintf(why, sizeof why, "%s", lunet_error_message());
        return lunet_error_set(st, "load: %s: cannot create the tensor at key '%s': %s", r->path,
                               keypath_str(where, sizeof where, &r->kp), why);
    }
    size_t nbytes = (size_t)numel * esz;
    unsigned char *data = lunet_tensor_data(t);
    if ((st = take(r, data, nbytes, "tensor data")))
        goto fail;
    if (!r->little_endian)
        swap_elems(data, nbytes, esz);
    if (dt == LUNET_DTYPE_BOOL)
        for (size_t i = 0; i < nbytes; i++)
            if (data[i] > 1) {
                snprintf(msg, sizeof msg, "bool tensor holds byte 0x%02x", data[i]);
                st = corrupt(r, msg);
                goto fail;
            }
    if (h[1] && (st = lunet_tensor_requires_grad_(t, true)))
        goto fail;
    if ((st = value_new(out, (lunet_value_t){.kind = LUNET_VALUE_TENSOR})))
        goto fail;
    (*out)->u.tensor = t;
    return LUNET_OK;
fail:
    lunet_tensor_release(t);
    return st;
}

static lunet_status_t read_map(reader_t *r, lunet_value_t **out)
{
    unsigned char b[8];
    lunet_status_t st = take(r, b, 8, "map count");
    if (st)
        return st;
    uint64_t count = get_u64(b);
    /* each entry takes at least 10 payload bytes (an int key is 9, a value at least 1) */
    if (count > r->payload_left / 10) {
        char msg[160];
        snprintf(msg, sizeof msg, "map of %llu entries in %llu bytes", (unsigned long long)count,
                 (unsigned long long)r->payload_left);
        return corrupt(r, msg);
    }
    if (r->kp.depth >= MAX_DEPTH)
        return corrupt(r, "maps nested too deeply");
    lunet_value_t *m;
    if ((st = lunet_value_map(&m)))
        return st;
    if ((st = map_reserve(m, (size_t)count)))
        goto fail;
    for (uint64_t i = 0; i < count; i++) {
        lunet_value_t *k, *v;
        if ((st = read_value(r, &k, true)))
            goto fail;
        r->kp.keys[r->kp.depth++] = k;
        st = read_value(r, &v, false);
        r->kp.depth--;
        if (st) {
            lunet_value_free(k);
            goto fail;
        }
        m->u.map.entries[m->u.map.count].key = k;
        m->u.map.entries[m->u.map.count].value = v;
        m->u.map.count++;
    }
    const lunet_value_t *dup;
    if ((st = find_duplicate(&dup, m)))
        goto fail;
    if (dup) {
        r->kp.keys[r->kp.depth++] = dup;
        st = corrupt(r, "duplicate key");
        r->kp.depth--;
        goto fail;
    }
    *out = m;
    return LUNET_OK;
fail:
    lunet_value_free(m);
    return st;
}

static lunet_status_t read_value(reader_t *r, lunet_value_t **out, bool is_key)
{
    unsigned char tag;
    unsigned char b[8];
    lunet_status_t st = take(r, &tag, 1, "value tag");
    if (st)
        return st;
    if (is_key && tag != TAG_INT && tag != TAG_STRING) {
        char msg[64];
        snprintf(msg, sizeof msg, "map key with tag 0x%02x (keys are ints or strings)", tag);
        return corrupt(r, msg);
    }
    switch (tag) {
    case TAG_FALSE:
    case TAG_TRUE:
        return lunet_value_bool(out, tag == TAG_TRUE);
    case TAG_INT:
        if ((st = take(r, b, 8, "int")))
            return st;
        return lunet_value_int(out, (int64_t)get_u64(b));
    case TAG_FLOAT: {
        if ((st = take(r, b, 8, "float")))
            return st;
        uint64_t bits = get_u64(b);
        double f;
        memcpy(&f, &bits, 8);
        return lunet_value_float(out, f);
    }
    case TAG_STRING: {
        if ((st = take(r, b, 8, "string length")))
            return st;
        uint64_t len = get_u64(b);
        if (len > r->payload_left) {
            char msg[160];
            snprintf(msg, sizeof msg, "string of %llu bytes but only %llu left",
                     (unsigned long long)len, (unsigned long long)r->payload_left);
            return corrupt(r, msg);
        }
        lunet_value_t *v;
        if ((st = lunet_value_string(&v, NULL, 0)))
            return st;
        char *s = realloc(v->u.str.data, (size_t)len + 1);
        if (!s) {
            lunet_value_free(v);
            return lunet_error_set(LUNET_STATUS_NOMEM, "load: %s: out of memory", r->path);
        }
        v->u.str.data = s;
        if ((st = take(r, s, (size_t)len, "string"))) {
            lunet_value_free(v);
            return st;
        }
        s[len] = 0;
        v->u.str.len = (size_t)len;
        *out = v;
        return LUNET_OK;
    }
    case TAG_TENSOR:
        return read_tensor(r, out);
    case TAG_MAP:
        return read_map(r, out);
    default: {
        char msg[64];
        snprintf(msg, sizeof msg, "unknown value tag 0x%02x", tag);
        return corrupt(r, msg);
    }
    }
}

/* Checks the header; sets the reader's lengths.  size is the file's size in bytes. */
static lunet_status_t check_header(reader_t *r, const unsigned char *h, uint64_t size)
{
    const char *p = r->path;
    if (size == 0)
        return lunet_error_set(LUNET_STATUS_VALUE, "load: %s: not a Lunet file (the file is empty)",
                               p);
    size_t have = size < HEADER_SIZE ? (size_t)size : HEADER_SIZE;
    if (memcmp(h, MAGIC, have < 6 ? have : 6) != 0)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "load: %s: not a Lunet file (it does not start with \"LUNET\\0\")",
                               p);
    if (size < HEADER_SIZE)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "load: %s: truncated (%llu bytes, shorter than the %d-byte header)",
                               p, (unsigned long long)size, HEADER_SIZE);
    uint16_t version = get_u16(h + 6);
    if (version != FORMAT_VERSION)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "load: %s: unsupported version %u (this build reads version %d)", p,
                               version, FORMAT_VERSION);
    if (get_u32(h + 32) != (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, 32))
        return lunet_error_set(LUNET_STATUS_VALUE, "load: %s: corrupt data (header checksum)", p);
    uint32_t flags = get_u32(h + 8);
    if (flags != FLAG_ZLIB)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "load: %s: unsupported flags 0x%x (this build reads 0x1)", p, flags);
    uint64_t payload = get_u64(h + 12), stored = get_u64(h + 20);
    if (size - HEADER_SIZE < stored)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "load: %s: truncated (%llu bytes, the header says %llu)", p,
                               (unsigned long long)size,
                               (unsigned long long)(stored + HEADER_SIZE));
    if (size - HEADER_SIZE > stored)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "load: %s: corrupt data (%llu bytes after the end of the data)", p,
                               (unsigned long long)(size - HEADER_SIZE - stored));
    if (payload == 0 || stored < 8 || payload / ZLIB_MAX_RATIO > stored)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "load: %s: corrupt data (payload of %llu bytes in %llu stored bytes)", p,
            (unsigned long long)payload, (unsigned long long)stored);
    r->payload_left = payload;
    r->stored_left = stored;
    return LUNET_OK;
}

/* After the last payload byte the zlib stream must end, with no bytes left in the file. */
static lunet_status_t finish_stream(reader_t *r)
{
    unsigned char extra;
    for (;;) {
        if (r->zs.avail_in == 0 && r->stored_left) {
            size_t want = r->stored_left < sizeof r->in ? (size_t)r->stored_left : sizeof r->in;
            size_t got = fread(r->in, 1, want, r->f);
            if (got != want)
                return lunet_error_set(LUNET_STATUS_IO, "load: %s: truncated (read failed)",
                                       r->path);
            r->stored_left -= got;
            r->zs.next_in = r->in;
            r->zs.avail_in = (uInt)got;
        }
        r->zs.next_out = &extra;
        r->zs.avail_out = 1;
        int rc = inflate(&r->zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END && r->zs.avail_out == 1) {
            if (r->zs.avail_in || r->stored_left)
                return corrupt(r, "bytes after the end of the zlib stream");
            return LUNET_OK;
        }
        if (r->zs.avail_out == 0)
            return corrupt(r, "more data than the header says");
        if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
            return corrupt(r, r->zs.msg ? r->zs.msg : "bad zlib stream");
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && r->stored_left))
            return corrupt(r, "the zlib stream is not complete");
    }
}

lunet_status_t lunet_value_load(lunet_value_t **out, const char *path)
{
    if (!path || !*path)
        return lunet_error_set(LUNET_STATUS_VALUE, "load: empty file name");
    FILE *f = fopen(path, "rb");
    if (!f)
        return lunet_error_set(LUNET_STATUS_IO, "load: cannot open %s: %s", path, strerror(errno));
    reader_t *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(f);
        return lunet_error_set(LUNET_STATUS_NOMEM, "load: out of memory");
    }
    r->f = f;
    r->path = path;
    r->little_endian = host_is_little_endian();
    r->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    lunet_value_t *v = NULL;
    lunet_status_t st;
    struct stat sb;
    unsigned char h[HEADER_SIZE] = {0};
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = lunet_error_set(LUNET_STATUS_IO, "load: %s: not a regular file", path);
        goto done;
    }
    size_t got = fread(h, 1, HEADER_SIZE, f);
    if ((st = check_header(r, h, got < HEADER_SIZE ? got : (uint64_t)sb.st_size)))
        goto done;
    if (inflateInit(&r->zs) != Z_OK) {
        st = lunet_error_set(LUNET_STATUS_NOMEM, "load: %s: cannot start zlib", path);
        goto done;
    }
    r->zinit = true;
    if ((st = read_value(r, &v, false)))
        goto done;
    if (r->payload_left) {
        char msg[96];
        snprintf(msg, sizeof msg, "%llu bytes after the value",
                 (unsigned long long)r->payload_left);
        st = corrupt(r, msg);
        goto done;
    }
    if ((st = finish_stream(r)))
        goto done;
    if (r->crc != get_u32(h + 28)) {
        st = lunet_error_set(LUNET_STATUS_VALUE, "load: %s: corrupt data (payload checksum)", path);
        goto done;
    }
    st = LUNET_OK;
    *out = v;
    v = NULL;
done:
    lunet_value_free(v);
    if (r->zinit)
        inflateEnd(&r->zs);
    fclose(f);
    free(r);
    return st;
}

/* ---------------------------------------------------------------- tensor lists -------- */

lunet_status_t lunet_tensors_save(const char *path, size_t n, const char *const *names,
                                  lunet_tensor_t *const *tensors)
{
    if (n && (!names || !tensors))
        return lunet_error_set(LUNET_STATUS_VALUE, "save_tensors: %s: NULL names or tensors",
                               path ? path : "");
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !tensors[i])
            return lunet_error_set(LUNET_STATUS_VALUE, "save_tensors: %s: entry %zu is NULL",
                                   path ? path : "", i);
    lunet_value_t *m, *t;
    lunet_status_t st = lunet_value_map(&m);
    for (size_t i = 0; i < n && !st; i++)
        if (!(st = lunet_value_tensor(&t, tensors[i])))
            st = lunet_value_map_put_str(m, names[i], t);
    if (!st)
        st = lunet_value_save(path, m);
    lunet_value_free(m);
    return st;
}

void lunet_tensors_free(size_t n, char **names, lunet_tensor_t **tensors)
{
    for (size_t i = 0; i < n; i++) {
        if (names)
            free(names[i]);
        if (tensors)
            lunet_tensor_release(tensors[i]);
    }
    free(names);
    free(tensors);
}

lunet_status_t lunet_tensors_load(size_t *n, char ***names, lunet_tensor_t ***tensors,
                                  const char *path)
{
    lunet_value_t *v;
    lunet_status_t st = lunet_value_load(&v, path);
    if (st)
        return st;
    if (v->kind != LUNET_VALUE_MAP) {
        lunet_value_free(v);
        return lunet_error_set(
            LUNET_STATUS_TYPE,
            "load_tensors: %s: the file holds a single value, not a map of named "
            "tensors",
            path);
    }
    size_t count = v->u.map.count;
    char **nm = calloc(count ? count : 1, sizeof *nm);
    lunet_tensor_t **ts = calloc(count ? count : 1, sizeof *ts);
    if (!nm || !ts) {
        free(nm);
        free(ts);
        lunet_value_free(v);
        return lunet_error_set(LUNET_STATUS_NOMEM, "load_tensors: %s: out of memory", path);
    }
    for (size_t i = 0; i < count; i++) {
        lunet_value_entry_t *e = &v->u.map.entries[i];
        if (e->key->kind != LUNET_VALUE_STRING || e->value->kind != LUNET_VALUE_TENSOR) {
            st = lunet_error_set(LUNET_STATUS_TYPE,
                                 "load_tensors: %s: entry %zu is not a tensor under a string name",
                                 path, i);
            lunet_tensors_free(count, nm, ts);
            lunet_value_free(v);
            return st;
        }
        /* move the name and the tensor reference out of the tree */
        nm[i] = e->key->u.str.data;
        e->key->u.str.data = NULL;
        ts[i] = e->value->u.tensor;
        e->value->u.tensor = NULL;
    }
    lunet_value_free(v);
    *n = count;
    *names = nm;
    *tensors = ts;
    return LUNET_OK;
}
