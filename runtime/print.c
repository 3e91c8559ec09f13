/*
 * print.c - PyTorch's text for tensors and sizes (docs/pytorch-parity.md §9).
 *
 * Mirrors torch/_tensor_str.py of PyTorch 1.13 with the default print options
 * (precision 4, threshold 1000, edgeitems 3, linewidth 80, automatic sci_mode):
 * one formatter per tensor chosen from the displayed elements, vectors split into lines of
 * equal item count, n-D blocks nested with growing indent, then suffixes wrapped at 80.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRINT_PRECISION 4
#define PRINT_THRESHOLD 1000
#define PRINT_EDGEITEMS 3
#define PRINT_LINEWIDTH 80
/* Large enough for "%.4f" of any double (DBL_MAX has 309 integer digits). */
#define ELEM_BUF 400

/* ---- growable text buffer; an allocation failure is sticky and checked once at the end */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    bool oom;
} strbuf_t;

static void sb_reserve(strbuf_t *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 128;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_putn(strbuf_t *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(strbuf_t *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_spaces(strbuf_t *b, int n)
{
    if (n <= 0)
        return;
    sb_reserve(b, (size_t)n);
    if (b->oom)
        return;
    memset(b->p + b->len, ' ', (size_t)n);
    b->len += (size_t)n;
    b->p[b->len] = '\0';
}

/* Hands the text to the caller, or frees it and reports the failure. */
static lunet_status_t sb_finish(strbuf_t *b, char **text, const char *op)
{
    if (!b->oom && !b->p)
        sb_reserve(b, 0);
    if (b->oom) {
        free(b->p);
        return lunet_error_set(LUNET_STATUS_NOMEM, "%s: out of memory building the text", op);
    }
    *text = b->p;
    return LUNET_OK;
}

/* ---- the formatter (torch._tensor_str._Formatter) */

typedef struct formatter {
    lunet_dtype_t dtype;
    bool floating;
    bool int_mode; /* every finite non-zero value is integral: print "%.0f." */
    bool sci_mode; /* "%.4e" */
    int width;     /* every item is left-padded to this */
    /* statistics over the finite non-zero displayed values (first pass) */
    int64_t count;
    double amin, amax;
} formatter_t;

static const char *elem_ptr(const lunet_tensor_t *t, int64_t off)
{
    return (const char *)t->storage->data + (size_t)off * lunet_dtype_size(t->dtype);
}

static double load_float(const char *p, lunet_dtype_t dt)
{
    return dt == LUNET_DTYPE_FLOAT32 ? (double)*(const float *)p : *(const double *)p;
}

/* Integer dtypes print as Python's str(int) / str(bool). */
static int format_integer(char *out, const char *p, lunet_dtype_t dt)
{
    switch (dt) {
    case LUNET_DTYPE_INT64:
        return snprintf(out, ELEM_BUF, "%lld", (long long)*(const int64_t *)p);
    case LUNET_DTYPE_UINT8:
        return snprintf(out, ELEM_BUF, "%u", (unsigned)*(const uint8_t *)p);
    case LUNET_DTYPE_BOOL:
        return snprintf(out, ELEM_BUF, "%s", *(const uint8_t *)p ? "True" : "False");
    default:
        out[0] = '\0';
        return 0;
    }
}

/*
 * A float in the chosen style, unpadded.  Python never prints "-nan", and keeps no dot
 * after nan/inf in integer mode.
 */
static int format_float(char *out, const formatter_t *f, double v)
{
    if (isnan(v))
        return snprintf(out, ELEM_BUF, "nan");
    if (f->sci_mode)
        return snprintf(out, ELEM_BUF, "%.*e", PRINT_PRECISION, v);
    if (f->int_mode) {
        if (isinf(v))
            return snprintf(out, ELEM_BUF, "%s", v > 0 ? "inf" : "-inf");
        return snprintf(out, ELEM_BUF, "%.0f.", v);
    }
    return snprintf(out, ELEM_BUF, "%.*f", PRINT_PRECISION, v);
}

static bool summarised_dim(bool summarize, int64_t size)
{
    return summarize && size > 2 * PRINT_EDGEITEMS;
}

/* Pass 1 over one displayed element: statistics of the finite non-zero values. */
static void observe_stats(formatter_t *f, const char *p)
{
    double v = load_float(p, f->dtype);
    if (!isfinite(v) || v == 0)
        return;
    double a = fabs(v);
    if (f->count == 0 || a < f->amin)
        f->amin = a;
    if (f->count == 0 || a > f->amax)
        f->amax = a;
    f->count++;
    if (v != ceil(v))
        f->int_mode = false;
}

/* Pass 2 over one displayed element: the widest string in the chosen style. */
static void observe_width(formatter_t *f, const char *p)
{
    char s[ELEM_BUF];
    int n;
    if (f->floating) {
        double v = load_float(p, f->dtype);
        if (!isfinite(v) || v == 0)
            return; // nan, inf and zeros never set the width
        n = format_float(s, f, v);
    } else {
        n = format_integer(s, p, f->dtype);
    }
    if (n > f->width)
        f->width = n;
}

/*
 * Visits the elements that will be displayed (the first and last edgeitems of every
 * summarised dim), in row-major order.  pass 1 gathers statistics, pass 2 widths.
 */
static void scan(formatter_t *f, const lunet_tensor_t *t, int dim, int64_t off, bool summarize,
                 int pass)
{
    if (dim == t->ndim) {
        if (pass == 1)
            observe_stats(f, elem_ptr(t, off));
        else
            observe_width(f, elem_ptr(t, off));
        return;
    }
    int64_t n = t->shape[dim], stride = t->strides[dim];
    bool cut = summarised_dim(summarize, n);
    for (int64_t i = 0; i < n; i++) {
        if (cut && i == PRINT_EDGEITEMS)
            i = n - PRINT_EDGEITEMS;
        scan(f, t, dim + 1, off + i * stride, summarize, pass);
    }
}

static void formatter_init(formatter_t *f, const lunet_tensor_t *t, bool summarize)
{
    memset(f, 0, sizeof *f);
    f->dtype = t->dtype;
    f->floating = lunet_dtype_is_floating(t->dtype);
    f->int_mode = true;
    f->width = 1;
    if (f->floating) {
        scan(f, t, 0, t->offset, summarize, 1);
        if (f->count == 0)
            return; // all zero / non-finite: integer mode, width 1
        double ratio = f->amax / f->amin;
        if (f->int_mode)
            f->sci_mode = ratio > 1000. || f->amax > 1.e8;
        else
            f->sci_mode = ratio > 1000. || f->amax > 1.e8 || f->amin < 1.e-4;
    }
    scan(f, t, 0, t->offset, summarize, 2);
}

static void put_item(strbuf_t *b, const formatter_t *f, const char *p)
{
    char s[ELEM_BUF];
    int n = f->floating ? format_float(s, f, load_float(p, f->dtype))
                        : format_integer(s, p, f->dtype);
    sb_spaces(b, f->width - n);
    sb_putn(b, s, (size_t)n);
}

/* ---- layout (torch._tensor_str._vector_str / _tensor_str_with_formatter) */

static void put_vector(strbuf_t *b, const formatter_t *f, const lunet_tensor_t *t, int dim,
                       int64_t off, int indent, bool summarize)
{
    int64_t n = t->shape[dim], stride = t->strides[dim];
    int per_line = (PRINT_LINEWIDTH - indent) / (f->width + 2);
    if (per_line < 1)
        per_line = 1;
    bool cut = summarised_dim(summarize, n);
    int64_t items = cut ? 2 * PRINT_EDGEITEMS + 1 : n; // " ..." counts as an item
    sb_puts(b, "[");
    for (int64_t k = 0; k < items; k++) {
        if (k > 0) {
            if (k % per_line == 0) {
                sb_puts(b, ",\n");
                sb_spaces(b, indent + 1);
            } else {
                sb_puts(b, ", ");
            }
        }
        if (cut && k == PRINT_EDGEITEMS) {
            sb_puts(b, " ...");
            continue;
        }
        int64_t i = cut && k > PRINT_EDGEITEMS ? n - (items - k) : k;
        put_item(b, f, elem_ptr(t, off + i * stride));
    }
    sb_puts(b, "]");
}

static void put_block(strbuf_t *b, const formatter_t *f, const lunet_tensor_t *t, int dim,
                      int64_t off, int indent, bool summarize)
{
    int rank = t->ndim - dim;
    if (rank == 1) {
        put_vector(b, f, t, dim, off, indent, summarize);
        return;
    }
    int64_t n = t->shape[dim], stride = t->strides[dim];
    bool cut = summarised_dim(summarize, n);
    sb_puts(b, "[");
    for (int64_t i = 0; i < n; i++) {
        if (i > 0) {
            // sub-blocks are separated by "," + (rank - 1) newlines + indent + 1 spaces
            sb_puts(b, ",");
            for (int k = 0; k < rank - 1; k++)
                sb_puts(b, "\n");
            sb_spaces(b, indent + 1);
        }
        if (cut && i == PRINT_EDGEITEMS) {
            sb_puts(b, "...,");
            for (int k = 0; k < rank - 1; k++)
                sb_puts(b, "\n");
            sb_spaces(b, indent + 1);
            i = n - PRINT_EDGEITEMS;
        }
        put_block(b, f, t, dim + 1, off + i * stride, indent + 1, summarize);
    }
    sb_puts(b, "]");
}

/* Appends ", s" or ",\n       s" (PyTorch's _add_suffixes); *last is the running length. */
static void put_suffix(strbuf_t *b, size_t *last, int indent, const char *s)
{
    size_t n = strlen(s);
    if (*last + n + 2 > PRINT_LINEWIDTH) {
        sb_puts(b, ",\n");
        sb_spaces(b, indent);
        *last = (size_t)indent + n;
    } else {
        sb_puts(b, ", ");
        *last += n + 2;
    }
    sb_puts(b, s);
}

lunet_status_t lunet_tensor_format(char **text, lunet_tensor_t *t, const char *dtype_prefix)
{
    if (!text || !t)
        return lunet_error_set(LUNET_STATUS_VALUE, "tensor format: %s is NULL",
                               !text ? "text" : "tensor");
    if (!dtype_prefix)
        dtype_prefix = "torch.";
    static const char prefix[] = "tensor(";
    const int indent = (int)(sizeof prefix - 1);
    strbuf_t b = {0};
    sb_puts(&b, prefix);

    /* suffix texts; the grad_fn name is at most a few dozen characters in practice */
    char suffixes[3][320];
    int nsuffix = 0;
    bool is_default_float = t->dtype == lunet_default_dtype();
    if (t->numel == 0) {
        sb_puts(&b, "[]");
        if (t->ndim != 1) {
            // Python tuple syntax: (0, 3)
            int len = snprintf(suffixes[nsuffix], sizeof suffixes[0], "size=(");
            for (int i = 0; i < t->ndim && len < (int)sizeof suffixes[0]; i++)
                len += snprintf(suffixes[nsuffix] + len, sizeof suffixes[0] - (size_t)len,
                                i ? ", %lld" : "%lld", (long long)t->shape[i]);
            if (len < (int)sizeof suffixes[0])
                snprintf(suffixes[nsuffix] + len, sizeof suffixes[0] - (size_t)len, ")");
            nsuffix++;
        }
        // with no elements to show, even int64 and bool name their dtype
        if (!is_default_float)
            snprintf(suffixes[nsuffix++], sizeof suffixes[0], "dtype=%s%s", dtype_prefix,
                     lunet_dtype_name(t->dtype));
    } else {
        bool summarize = t->numel > PRINT_THRESHOLD;
        formatter_t f;
        formatter_init(&f, t, summarize);
        if (t->ndim == 0)
            put_item(&b, &f, elem_ptr(t, t->offset));
        else
            put_block(&b, &f, t, 0, t->offset, indent, summarize);
        if (!is_default_float && t->dtype != LUNET_DTYPE_INT64 && t->dtype != LUNET_DTYPE_BOOL)
            snprintf(suffixes[nsuffix++], sizeof suffixes[0], "dtype=%s%s", dtype_prefix,
                     lunet_dtype_name(t->dtype));
    }
    const char *grad_fn = lunet_tensor_grad_fn_name(t);
    if (grad_fn)
        snprintf(suffixes[nsuffix++], sizeof suffixes[0], "grad_fn=<%s>", grad_fn);
    else if (t->requires_grad)
        snprintf(suffixes[nsuffix++], sizeof suffixes[0], "requires_grad=True");

    if (b.oom)
        return sb_finish(&b, text, "tensor format");
    const char *nl = strrchr(b.p, '\n');
    size_t last = (nl ? strlen(nl + 1) : b.len) + 2;
    for (int i = 0; i < nsuffix; i++)
        put_suffix(&b, &last, indent, suffixes[i]);
    sb_puts(&b, ")");
    return sb_finish(&b, text, "tensor format");
}

lunet_status_t lunet_size_format(char **text, int ndim, const int64_t *shape, const char *prefix)
{
    if (!text || ndim < 0 || (ndim > 0 && !shape))
        return lunet_error_set(LUNET_STATUS_VALUE, "size format: invalid arguments (ndim %d)",
                               ndim);
    if (!prefix)
        prefix = "torch.";
    strbuf_t b = {0};
    sb_puts(&b, prefix);
    sb_puts(&b, "Size([");
    for (int i = 0; i < ndim; i++) {
        char s[32];
        snprintf(s, sizeof s, i ? ", %lld" : "%lld", (long long)shape[i]);
        sb_puts(&b, s);
    }
    sb_puts(&b, "])");
    return sb_finish(&b, text, "size format");
}
