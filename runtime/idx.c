/*
 * idx.c - IDX files (the MNIST format, docs/pytorch-parity.md §12.2): reader and writer.
 *
 * Layout: 00 00 <type> <ndim>, ndim big-endian uint32 sizes, then the elements big-endian in
 * row-major order.  Type codes: 0x08 uint8 -> uint8, 0x09 int8 / 0x0B int16 / 0x0C int32 ->
 * int64, 0x0D float32 -> float32, 0x0E float64 -> float64.
 *
 * Decisions:
 *  - gzip is detected from the first two bytes (1f 8b), never from the file name.
 *  - ndim must be 1..LUNET_MAX_DIMS: a 0-dim IDX file has no sizes to check its body
 *    against, and torchvision rejects it too.  A size of 0 is allowed (an empty tensor whose
 *    body must be empty); a single size of 2^31 or more is rejected as absurd, as is a total
 *    body above LUNET_IDX_MAX_BYTES.
 *  - Nothing trusting the header is allocated before the body length is known to be
 *    possible: plain sources must have exactly header + body bytes; a gzip source must be
 *    able to hold the body (deflate expands at most ~1032:1), and is then inflated straight
 *    into the tensor and drained to its end, so a short, long or corrupt stream (including a
 *    bad CRC, which zlib reports only at the end) is an error.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Largest body accepted (64 GiB): far above any real IDX file, far below overflow. */
#define LUNET_IDX_MAX_BYTES ((uint64_t)1 << 36)
/* Deflate's best ratio is about 1032:1; a gzip source shorter than body/1032 cannot hold it. */
#define GZIP_MAX_RATIO 1032u
#define IO_CHUNK 65536

/* ---------------------------------------------------------------- type codes ---------- */

static int code_width(int code)
{
    switch (code) {
    case 0x08:
    case 0x09:
        return 1;
    case 0x0B:
        return 2;
    case 0x0C:
    case 0x0D:
        return 4;
    case 0x0E:
        return 8;
    default:
        return 0;
    }
}

static lunet_dtype_t code_dtype(int code)
{
    switch (code) {
    case 0x08:
        return LUNET_DTYPE_UINT8;
    case 0x0D:
        return LUNET_DTYPE_FLOAT32;
    case 0x0E:
        return LUNET_DTYPE_FLOAT64;
    default:
        return LUNET_DTYPE_INT64;
    }
}

static const char *code_name(int code)
{
    switch (code) {
    case 0x08:
        return "unsigned byte (0x08)";
    case 0x09:
        return "signed byte (0x09)";
    case 0x0B:
        return "short (0x0B)";
    case 0x0C:
        return "int (0x0C)";
    case 0x0D:
        return "float (0x0D)";
    case 0x0E:
        return "double (0x0E)";
    default:
        return "unknown";
    }
}

static uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t load_be64(const unsigned char *p)
{
    return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

static void store_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void store_be64(unsigned char *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

/* ---------------------------------------------------------------- byte sources -------- */

/* Decompressed bytes from a FILE or a memory buffer, plain or gzip. */
typedef struct source {
    const char *name;
    FILE *fp;                 /* file source, or NULL */
    const unsigned char *mem; /* memory source */
    size_t memlen, mempos;
    uint64_t total; /* size of the (compressed) source in bytes */
    bool gz;
    bool zinit;
    bool zend; /* the current gzip member ended */
    z_stream zs;
    unsigned char *inbuf; /* file + gzip: compressed input chunk */
} source_t;

/* Raw (compressed) input: the next chunk from file or memory; *n = 0 at the end. */
static lunet_status_t src_raw(source_t *s, const unsigned char **p, size_t *n)
{
    if (s->fp) {
        size_t got = fread(s->inbuf, 1, IO_CHUNK, s->fp);
        if (got == 0 && ferror(s->fp))
            return lunet_error_set(LUNET_STATUS_IO, "read_idx: %s: read error: %s", s->name,
                                   strerror(errno));
        *p = s->inbuf;
        *n = got;
        return LUNET_OK;
    }
    *p = s->mem + s->mempos;
    *n = s->memlen - s->mempos;
    if (*n > IO_CHUNK)
        *n = IO_CHUNK;
    s->mempos += *n;
    return LUNET_OK;
}

/* Makes sure the inflater has input: when it has none, feeds it the source's next raw bytes.
   *more = false when there were none (the end of the source). */
static lunet_status_t ensure_input(source_t *s, bool *more)
{
    *more = true;
    if (s->zs.avail_in > 0)
        return LUNET_OK;
    const unsigned char *p = NULL;
    size_t m = 0;
    lunet_status_t st = src_raw(s, &p, &m);
    if (st)
        return st;
    *more = m > 0;
    s->zs.next_in = (unsigned char *)(uintptr_t)p;
    s->zs.avail_in = (uInt)m;
    return LUNET_OK;
}

/* Reads up to n bytes into dst; *got < n only at the end of the data. */
static lunet_status_t src_read(source_t *s, void *dst, size_t n, size_t *got)
{
    *got = 0;
    if (!s->gz) {
        if (s->fp) {
            *got = fread(dst, 1, n, s->fp);
            if (*got < n && ferror(s->fp))
                return lunet_error_set(LUNET_STATUS_IO, "read_idx: %s: read error: %s", s->name,
                                       strerror(errno));
        } else {
            size_t left = s->memlen - s->mempos;
            *got = n < left ? n : left;
            memcpy(dst, s->mem + s->mempos, *got);
            s->mempos += *got;
        }
        return LUNET_OK;
    }
    unsigned char *out = dst;
    while (*got < n) {
        bool more;
        lunet_status_t st;
        if (s->zend) {
            /* A gzip file may hold several members; anything else after one is garbage. */
            if ((st = ensure_input(s, &more)) || !more)
                return st;
            if (s->zs.next_in[0] != 0x1f)
                return lunet_error_set(
                    LUNET_STATUS_VALUE,
                    "read_idx: %s: corrupt gzip stream: garbage after the end of "
                    "the compressed data",
                    s->name);
            inflateReset(&s->zs);
            s->zend = false;
        }
        if ((st = ensure_input(s, &more)))
            return st;
        if (!more)
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "read_idx: %s: corrupt gzip stream: truncated (the compressed "
                                   "data ends before its end marker)",
                                   s->name);
        size_t want = n - *got;
        if (want > UINT_MAX)
            want = UINT_MAX;
        s->zs.next_out = out + *got;
        s->zs.avail_out = (uInt)want;
        int rc = inflate(&s->zs, Z_NO_FLUSH);
        *got += want - s->zs.avail_out;
        if (rc == Z_STREAM_END)
            s->zend = true;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return lunet_error_set(LUNET_STATUS_VALUE, "read_idx: %s: corrupt gzip stream: %s",
                                   s->name, s->zs.msg ? s->zs.msg : zError(rc));
    }
    return LUNET_OK;
}

static lunet_status_t src_start(source_t *s)
{
    unsigned char magic[2] = {0, 0};
    size_t got = 0;
    if (s->fp) {
        got = fread(magic, 1, 2, s->fp);
        if (fseek(s->fp, 0, SEEK_SET) != 0)
            return lunet_error_set(LUNET_STATUS_IO, "read_idx: %s: cannot seek: %s", s->name,
                                   strerror(errno));
    } else {
        got = s->memlen < 2 ? s->memlen : 2;
        memcpy(magic, s->mem, got);
    }
    s->gz = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!s->gz)
        return LUNET_OK;
    if (s->fp && !(s->inbuf = malloc(IO_CHUNK)))
        return lunet_error_set(LUNET_STATUS_NOMEM, "read_idx: %s: out of memory", s->name);
    memset(&s->zs, 0, sizeof s->zs);
    if (inflateInit2(&s->zs, 15 + 16) != Z_OK)
        return lunet_error_set(LUNET_STATUS_NOMEM, "read_idx: %s: cannot start zlib", s->name);
    s->zinit = true;
    return LUNET_OK;
}

static void src_end(source_t *s)
{
    if (s->zinit)
        inflateEnd(&s->zs);
    free(s->inbuf);
    s->inbuf = NULL;
    s->zinit = false;
}

/* ---------------------------------------------------------------- reader -------------- */

/* Element i of a big-endian signed integer body of 1, 2 or 4 bytes per element. */
static int64_t be_int(const unsigned char *raw, int64_t i, int width)
{
    if (width == 1)
        return (int8_t)raw[i];
    if (width == 2)
        return (int16_t)(uint16_t)(raw[2 * i] << 8 | raw[2 * i + 1]);
    return (int32_t)load_be32(raw + 4 * i);
}

/* Converts the raw big-endian body in place (it sits at the end of t's storage). */
// raw (numel * width bytes, big-endian, at data + numel*(8-width) for int64) -> t's elements
static void decode_body(lunet_tensor_t *t, int code, unsigned char *raw)
{
    int64_t n = t->numel;
    switch (code) {
    case 0x08:
        break;
    case 0x09: /* int8, int16, int32: sign-extended to int64 */
    case 0x0B:
    case 0x0C: {
        int width = code == 0x09 ? 1 : code == 0x0B ? 2 : 4;
        int64_t *o = lunet_tensor_data(t);
        for (int64_t i = 0; i < n; i++) {
            int64_t v = be_int(raw, i, width); /* read before the write may overlap it */
            o[i] = v;
        }
        break;
    }
    case 0x0D: /* float32, float64: the big-endian bits, in place (same width) */
    case 0x0E: {
        char *o = lunet_tensor_data(t);
        for (int64_t i = 0; i < n; i++) {
            if (code == 0x0D) {
                uint32_t b = load_be32(raw + 4 * i);
                memcpy(o + 4 * i, &b, 4);
            } else {
                uint64_t b = load_be64(raw + 8 * i);
                memcpy(o + 8 * i, &b, 8);
            }
        }
        break;
    }
    default:
        break;
    }
}

static lunet_status_t read_source(lunet_tensor_t **out, source_t *s)
{
    const char *name = s->name;
    unsigned char head[4 + 4 * LUNET_MAX_DIMS];
    size_t got;
    lunet_status_t st = src_read(s, head, 4, &got);
    if (st)
        return st;
    if (got == 0)
        return lunet_error_set(LUNET_STATUS_VALUE, "read_idx: %s: file is empty (no IDX header)",
                               name);
    if (got < 4)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "read_idx: %s: truncated header: %zu of the 4 magic bytes", name,
                               got);
    if (head[0] != 0 || head[1] != 0)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "read_idx: %s: bad magic %02x %02x %02x %02x (an IDX file starts with "
            "00 00 <type code> <number of dims>)",
            name, head[0], head[1], head[2], head[3]);
    int code = head[2], nd = head[3];
    int width = code_width(code);
    if (!width)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "read_idx: %s: unknown type code 0x%02x (expected 0x08, 0x09, 0x0B, "
                               "0x0C, 0x0D or 0x0E)",
                               name, code);
    if (nd == 0)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "read_idx: %s: zero dims in the header (an IDX file needs at least 1)", name);
    if (nd > LUNET_MAX_DIMS)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "read_idx: %s: absurd number of dims %d in the header (at most %d "
                               "supported)",
                               name, nd, LUNET_MAX_DIMS);
    if ((st = src_read(s, head + 4, 4 * (size_t)nd, &got)))
        return st;
    if (got < 4 * (size_t)nd)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "read_idx: %s: truncated header: %zu of the %d size bytes", name,
                               got, 4 * nd);
    int64_t shape[LUNET_MAX_DIMS];
    /* The product of the non-zero sizes must stay small even when another size is 0: strides
     * of an empty tensor are still products of its sizes. */
    uint64_t numel = 1, nonzero = 1;
    bool overflow = false, empty = false;
    for (int i = 0; i < nd; i++) {
        uint32_t d = load_be32(head + 4 + 4 * i);
        if (d > INT32_MAX)
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "read_idx: %s: absurd size %u for dim %d in the header", name, d,
                                   i);
        shape[i] = d;
        if (d == 0) {
            empty = true;
            continue;
        }
        if (nonzero > LUNET_IDX_MAX_BYTES / d)
            overflow = true;
        else
            nonzero *= d;
    }
    numel = empty ? 0 : nonzero;
    char sbuf[LUNET_SHAPE_BUF];
    if (overflow || nonzero * (uint64_t)width > LUNET_IDX_MAX_BYTES)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "read_idx: %s: sizes %s overflow: the product times %d bytes exceeds "
            "the %llu-byte limit",
            name, lunet_shape_str(sbuf, sizeof sbuf, nd, shape), width,
            (unsigned long long)LUNET_IDX_MAX_BYTES);
    uint64_t hbytes = 4 + 4 * (uint64_t)nd;
    uint64_t body = numel * (uint64_t)width;
    lunet_shape_str(sbuf, sizeof sbuf, nd, shape);
    if (!s->gz) {
        if (s->total < hbytes + body)
            return lunet_error_set(
                LUNET_STATUS_VALUE,
                "read_idx: %s: body is shorter than the header says: %llu bytes, "
                "but sizes %s of %s need %llu",
                name, (unsigned long long)(s->total - hbytes), sbuf, code_name(code),
                (unsigned long long)body);
        if (s->total > hbytes + body)
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "read_idx: %s: body is longer than the header says: %llu bytes, "
                                   "but sizes %s of %s need %llu",
                                   name, (unsigned long long)(s->total - hbytes), sbuf,
                                   code_name(code), (unsigned long long)body);
    } else if (body / GZIP_MAX_RATIO > s->total + 1024) {
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "read_idx: %s: body is shorter than the header says: sizes %s of %s "
                               "need %llu bytes, more than a %llu-byte gzip stream can hold",
                               name, sbuf, code_name(code), (unsigned long long)body,
                               (unsigned long long)s->total);
    }
    lunet_tensor_t *t;
    if ((st = lunet_tensor_empty(&t, code_dtype(code), nd, shape))) {
        char why[256];
        snprintf(why, sizeof why, "%s", lunet_error_message());
        return lunet_error_set(st, "read_idx: %s: %s", name, why);
    }
    /* The raw body goes at the end of the storage so widening to int64 can run forward. */
    size_t esz = lunet_dtype_size(t->dtype);
    unsigned char *raw = (unsigned char *)lunet_tensor_data(t) +
                         (size_t)numel * (esz - (size_t)width);
    if ((st = src_read(s, raw, (size_t)body, &got))) {
        lunet_tensor_release(t);
        return st;
    }
    if (got < body) {
        lunet_tensor_release(t);
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "read_idx: %s: body is shorter than the header says: %zu bytes, but "
                               "sizes %s of %s need %llu",
                               name, got, sbuf, code_name(code), (unsigned long long)body);
    }
    if (s->gz) {
        /* Read on to the end of the stream, where a bad CRC shows, but stop at the first
           extra byte: a gzip bomb behind a small header is never inflated further. */
        unsigned char extra[4096];
        if ((st = src_read(s, extra, sizeof extra, &got))) {
            lunet_tensor_release(t);
            return st;
        }
        if (got) {
            lunet_tensor_release(t);
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "read_idx: %s: body is longer than the header says: at least "
                                   "%llu bytes, but sizes %s of %s need %llu",
                                   name, (unsigned long long)(body + got), sbuf, code_name(code),
                                   (unsigned long long)body);
        }
    }
    decode_body(t, code, raw);
    *out = t;
    return LUNET_OK;
}

lunet_status_t lunet_idx_read(lunet_tensor_t **out, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return lunet_error_set(LUNET_STATUS_IO, "read_idx: cannot open %s: %s", path,
                               strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return lunet_error_set(LUNET_STATUS_IO, "read_idx: %s is not a regular file", path);
    }
    source_t s = {.name = path, .fp = fp, .total = (uint64_t)sb.st_size};
    lunet_status_t st = src_start(&s);
    if (!st)
        st = read_source(out, &s);
    src_end(&s);
    fclose(fp);
    return st;
}

lunet_status_t lunet_idx_read_buffer(lunet_tensor_t **out, const void *buf, size_t len,
                                     const char *name)
{
    if (!name)
        name = "<buffer>";
    if (!buf && len)
        return lunet_error_set(LUNET_STATUS_VALUE, "read_idx: %s: NULL buffer", name);
    static const unsigned char empty[1];
    source_t s = {.name = name, .mem = buf ? buf : empty, .memlen = len, .total = len};
    lunet_status_t st = src_start(&s);
    if (!st)
        st = read_source(out, &s);
    src_end(&s);
    return st;
}

/* ---------------------------------------------------------------- writer -------------- */

typedef struct sink {
    const char *path;
    lunet_afile_t file;
    bool gz;
    bool zinit;
    z_stream zs;
    unsigned char out[IO_CHUNK];
} sink_t;

static lunet_status_t write_all(sink_t *k, const unsigned char *p, size_t n)
{
    return lunet_afile_write(&k->file, p, n);
}

static lunet_status_t sink_put(sink_t *k, const unsigned char *p, size_t n, bool finish)
{
    if (!k->gz)
        return write_all(k, p, n);
    k->zs.next_in = (unsigned char *)(uintptr_t)p;
    k->zs.avail_in = (uInt)n; /* callers pass at most IO_CHUNK bytes */
    for (;;) {
        k->zs.next_out = k->out;
        k->zs.avail_out = IO_CHUNK;
        int rc = deflate(&k->zs, finish ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR)
            return lunet_error_set(LUNET_STATUS_IO, "write_idx: %s: zlib deflate failed", k->path);
        lunet_status_t st = write_all(k, k->out, IO_CHUNK - k->zs.avail_out);
        if (st)
            return st;
        if (finish ? rc == Z_STREAM_END : k->zs.avail_out != 0)
            return LUNET_OK;
    }
}

/* Checks every element of t fits the type code (integral and in range, or finite float). */
static lunet_status_t check_fits(const char *path, lunet_tensor_t *t, int code)
{
    if (t->dtype == LUNET_DTYPE_UINT8 || t->dtype == LUNET_DTYPE_BOOL) {
        if (code != 0x09)
            return LUNET_OK;
    }
    double lo = 0, hi = 0;
    bool integral = true;
    switch (code) {
    case 0x08:
        lo = 0;
        hi = 255;
        break;
    case 0x09:
        lo = -128;
        hi = 127;
        break;
    case 0x0B:
        lo = -32768;
        hi = 32767;
        break;
    case 0x0C:
        lo = -2147483648.0;
        hi = 2147483647.0;
        break;
    case 0x0D:
        lo = -3.4028234663852886e38;
        hi = 3.4028234663852886e38;
        integral = false;
        break;
    default:
        return LUNET_OK; /* 0x0E holds every dtype's values */
    }
    if (!integral && t->dtype != LUNET_DTYPE_FLOAT64)
        return LUNET_OK;
    const void *d = lunet_tensor_data(t);
    size_t es = lunet_dtype_size(t->dtype);
    for (int64_t i = 0; i < t->numel; i++) {
        const char *p = (const char *)d + (size_t)i * es;
        double v;
        if (t->dtype == LUNET_DTYPE_INT64) {
            int64_t iv = *(const int64_t *)p;
            if (iv < (int64_t)lo || iv > (int64_t)hi)
                return lunet_error_set(LUNET_STATUS_VALUE,
                                       "write_idx: %s: element %lld = %lld does not fit type %s",
                                       path, (long long)i, (long long)iv, code_name(code));
            continue;
        }
        v = lunet_dtype_load(p, t->dtype);
        if (!integral) {
            if (isfinite(v) && (v < lo || v > hi)) {
                /* values that round to FLT_MAX are still representable */
                float f = (float)v;
                if (isinf(f))
                    return lunet_error_set(
                        LUNET_STATUS_VALUE,
                        "write_idx: %s: element %lld = %.17g does not fit type %s", path,
                        (long long)i, v, code_name(code));
            }
            continue;
        }
        if (!(v >= lo && v <= hi) || v != floor(v))
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "write_idx: %s: element %lld = %.17g does not fit type %s", path,
                                   (long long)i, v, code_name(code));
    }
    return LUNET_OK;
}

// t (any shape, contiguous), elements [i0, i0 + n) -> n * width big-endian bytes in buf
static void encode_chunk(unsigned char *buf, const lunet_tensor_t *t, int code, int64_t i0,
                         int64_t n)
{
    const char *base = (const char *)lunet_tensor_data(t);
    size_t es = lunet_dtype_size(t->dtype);
    int w = code_width(code);
    for (int64_t i = 0; i < n; i++) {
        const char *p = base + (size_t)(i0 + i) * es;
        unsigned char *o = buf + (size_t)i * (size_t)w;
        double v = lunet_dtype_load(p, t->dtype);
        switch (code) {
        case 0x08:
            o[0] = (unsigned char)(int)v;
            break;
        case 0x09:
            o[0] = (unsigned char)(int8_t)(int)v;
            break;
        case 0x0B: {
            uint16_t u = (uint16_t)(int16_t)(int)v;
            o[0] = (unsigned char)(u >> 8);
            o[1] = (unsigned char)u;
            break;
        }
        case 0x0C: {
            int64_t iv = t->dtype == LUNET_DTYPE_INT64 ? *(const int64_t *)p : (int64_t)v;
            store_be32(o, (uint32_t)(int32_t)iv);
            break;
        }
        case 0x0D: {
            float f = t->dtype == LUNET_DTYPE_FLOAT32 ? *(const float *)p : (float)v;
            uint32_t b;
            memcpy(&b, &f, 4);
            store_be32(o, b);
            break;
        }
        case 0x0E: {
            uint64_t b;
            memcpy(&b, &v, 8);
            store_be64(o, b);
            break;
        }
        default:
            break;
        }
    }
}

static lunet_status_t write_body(sink_t *k, lunet_tensor_t *t, int code)
{
    unsigned char head[4 + 4 * LUNET_MAX_DIMS] = {0, 0, (unsigned char)code,
                                                  (unsigned char)t->ndim};
    for (int i = 0; i < t->ndim; i++)
        store_be32(head + 4 + 4 * i, (uint32_t)t->shape[i]);
    lunet_status_t st = sink_put(k, head, 4 + 4 * (size_t)t->ndim, false);
    if (st)
        return st;
    int w = code_width(code);
    unsigned char *buf = malloc(IO_CHUNK);
    if (!buf)
        return lunet_error_set(LUNET_STATUS_NOMEM, "write_idx: %s: out of memory", k->path);
    int64_t per = IO_CHUNK / w;
    for (int64_t i = 0; i < t->numel && !st; i += per) {
        int64_t n = t->numel - i < per ? t->numel - i : per;
        encode_chunk(buf, t, code, i, n);
        st = sink_put(k, buf, (size_t)(n * w), false);
    }
    free(buf);
    if (!st && k->gz)
        st = sink_put(k, NULL, 0, true);
    return st;
}

lunet_status_t lunet_idx_write(const char *path, lunet_tensor_t *t, int type_code, bool gzip)
{
    if (!path || !*path)
        return lunet_error_set(LUNET_STATUS_VALUE, "write_idx: empty path");
    if (type_code == 0) {
        switch (t->dtype) {
        case LUNET_DTYPE_UINT8:
        case LUNET_DTYPE_BOOL:
            type_code = 0x08;
            break;
        case LUNET_DTYPE_INT64:
            type_code = 0x0C;
            break;
        case LUNET_DTYPE_FLOAT32:
            type_code = 0x0D;
            break;
        default:
            type_code = 0x0E;
            break;
        }
    }
    if (!code_width(type_code))
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "write_idx: %s: unknown type code 0x%02x (expected 0x08, 0x09, 0x0B, "
            "0x0C, 0x0D or 0x0E)",
            path, type_code);
    if (t->ndim < 1)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "write_idx: %s: a 0-d tensor cannot be written (IDX needs at least 1 "
            "dim; reshape it to (1))",
            path);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] > INT32_MAX)
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "write_idx: %s: size %lld of dim %d is too large for IDX", path,
                                   (long long)t->shape[i], i);
    lunet_tensor_t *c;
    lunet_status_t st = lunet_tensor_contiguous(&c, t);
    if (st)
        return st;
    if ((st = check_fits(path, c, type_code))) {
        lunet_tensor_release(c);
        return st;
    }
    sink_t *k = calloc(1, sizeof *k);
    if (!k) {
        lunet_tensor_release(c);
        return lunet_error_set(LUNET_STATUS_NOMEM, "write_idx: %s: out of memory", path);
    }
    /* atomic_file.c: the old file or the whole new one, never a part */
    k->path = path;
    k->gz = gzip;
    if ((st = lunet_afile_open(&k->file, "write_idx", path)))
        goto done;
    if (gzip) {
        /* windowBits 15 + 16: a gzip wrapper that gunzip and read_idx understand. */
        if (deflateInit2(&k->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            st = lunet_error_set(LUNET_STATUS_NOMEM, "write_idx: %s: cannot start zlib", path);
            goto fail_fd;
        }
        k->zinit = true;
    }
    if ((st = write_body(k, c, type_code)))
        goto fail_fd;
    st = lunet_afile_commit(&k->file);
    goto done;
fail_fd:
    lunet_afile_abort(&k->file);
done:
    if (k->zinit)
        deflateEnd(&k->zs);
    free(k);
    lunet_tensor_release(c);
    return st;
}
