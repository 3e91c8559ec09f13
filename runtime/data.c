/*
 * data.c - the DataLoader's batch kernels: gather by index + ToTensor + Normalize in one
 * pass, and the single-image transforms (docs/pytorch-parity.md §12.4-§12.5).
 *
 * Exactness: ToTensor is f32(v) / f32(255) (one float32 division) and Normalize is
 * (x - f32(mean)) / f32(std) (two float32 roundings).  A pixel's result depends only on its
 * byte and channel, so a batch builds a 256-entry table per channel with exactly those float
 * operations.  The batch kernel computes the same operations 8 pixels at a time (AVX2,
 * picked at run time; IEEE division and subtraction round alike in a vector lane and in a
 * scalar) and is trusted only after it reproduces the table on all 256
 * bytes; elsewhere the plain C loop looks the table up.  Large batches are split by images
 * over the worker pool.  (Folding ToTensor and Normalize into one multiply-add would be
 * faster still but would round differently from PyTorch's two steps.)
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LUNET_X86_SIMD 1
#endif
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *zero_std_msg =
    "std evaluated to zero after conversion to torch.float32, leading to division by zero.";

/* One channel's map from a byte to its float: ToTensor's f32(v) / f32(div), then, with norm,
   Normalize's (x - f32(mean)) / f32(std); lut[v] is that map for every byte. */
typedef struct pixel_map {
    float div, mean, std;
    bool norm;
    float lut[256];
} pixel_map_t;

// lut (256): lut[v] = normalize(f32(v) / f32(div)) for one channel
static void build_map(pixel_map_t *pm, double div, bool norm, double mean, double std)
{
    pm->div = (float)div;
    pm->mean = (float)mean;
    pm->std = (float)std;
    pm->norm = norm;
    for (int v = 0; v < 256; v++) {
        float x = (float)v / pm->div;
        if (norm) {
            x = x - pm->mean;
            x = x / pm->std;
        }
        pm->lut[v] = x;
    }
}

// d (n) = lut[s (n)], float32 from bytes through the 256-entry table
static void map_row_c(float *restrict d, const uint8_t *restrict s, int64_t n,
                      const pixel_map_t *pm)
{
    const float *lut = pm->lut;
    for (int64_t i = 0; i < n; i++)
        d[i] = lut[s[i]];
}

#ifdef LUNET_X86_SIMD
/* The same float operations as build_map, 8 pixels at a time: IEEE division and subtraction
   round the same in a vector lane as in a scalar, so the bits are the table's (and map_row
   checks that on every byte before it trusts the kernel).  No AVX-512 twin: division bounds
   this loop, and 16 lanes ran no faster than 8 here (Xeon, Dec 2026: 8.6-8.9 vs 8.1 ms per
   60,000 28x28 images, 17.1 vs 15.5-16.1 ms with Normalize). */
__attribute__((target("avx2"))) static void map_row_avx2(float *restrict d,
                                                         const uint8_t *restrict s, int64_t n,
                                                         const pixel_map_t *pm)
{
    const __m256 vd = _mm256_set1_ps(pm->div), vm = _mm256_set1_ps(pm->mean),
                 vs = _mm256_set1_ps(pm->std);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(s + i)));
        __m256 x = _mm256_div_ps(_mm256_cvtepi32_ps(b), vd);
        if (pm->norm)
            x = _mm256_div_ps(_mm256_sub_ps(x, vm), vs);
        _mm256_storeu_ps(d + i, x);
    }
    map_row_c(d + i, s + i, n - i, pm);
}
#endif

typedef void (*map_row_fn)(float *restrict, const uint8_t *restrict, int64_t, const pixel_map_t *);

/* The widest kernel this CPU runs that gives the table's bits on all 256 bytes (checked
   here, per channel and batch: 256 pixels, so a kernel can never round differently from
   the table unnoticed).  Arithmetic, not a gathered table look-up: vector gathers are no
   faster than the scalar loop on this project's Xeon, and division is 2.5x faster. */
static map_row_fn map_row(const pixel_map_t *pm)
{
#ifdef LUNET_X86_SIMD
    uint8_t ramp[256];
    for (int v = 0; v < 256; v++)
        ramp[v] = (uint8_t)v;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        float got[256];
        map_row_avx2(got, ramp, 256, pm);
        if (memcmp(got, pm->lut, sizeof got) == 0)
            return map_row_avx2;
    }
#else
    (void)pm;
#endif
    return map_row_c;
}

typedef struct batch_job {
    const uint8_t *src;
    float *dst;
    const int64_t *idx;
    int64_t C, c, plane;
    const pixel_map_t *map;
    map_row_fn row;
} batch_job_t;

/* Images ahead of the one being converted whose bytes are fetched early: a shuffled batch
   reads the dataset at random, and each image's first load otherwise waits for DRAM (70% of
   the conversion's samples in perf before this). */
#define BATCH_PREFETCH_AHEAD 8

// images [b0, b1) of the batch, channel c: dst (n, C, plane) from src (N, C, plane)
static void batch_rows(void *ctx, int64_t b0, int64_t b1)
{
    const batch_job_t *j = ctx;
    for (int64_t b = b0; b < b1; b++) {
        if (b + BATCH_PREFETCH_AHEAD < b1) {
            const char *next = (const char *)(j->src +
                                              (j->idx[b + BATCH_PREFETCH_AHEAD] * j->C + j->c) *
                                                  j->plane);
            for (int64_t off = 0; off < j->plane; off += 64)
                __builtin_prefetch(next + off, 0, 3);
        }
        j->row(j->dst + (b * j->C + j->c) * j->plane, j->src + (j->idx[b] * j->C + j->c) * j->plane,
               j->plane, j->map);
    }
}

lunet_status_t lunet_data_image_batch(lunet_tensor_t *out_x, lunet_tensor_t *out_y,
                                      lunet_tensor_t *images_u8, lunet_tensor_t *labels,
                                      const int64_t *idx, int64_t n, double scale_div, int nnorm,
                                      const double *mean, const double *std)
{
    char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
    lunet_tensor_t *im = images_u8;
    if (im->dtype != LUNET_DTYPE_UINT8 || (im->ndim != 3 && im->ndim != 4) ||
        !lunet_tensor_is_contiguous(im))
        return lunet_error_set(
            LUNET_STATUS_TYPE,
            "image_batch: images must be a contiguous uint8 (N, H, W) or (N, C, H, "
            "W) tensor, got %s %s",
            lunet_dtype_name(im->dtype), lunet_shape_str(b1, sizeof b1, im->ndim, im->shape));
    int64_t N = im->shape[0];
    int64_t C = im->ndim == 4 ? im->shape[1] : 1;
    int64_t H = im->shape[im->ndim - 2], W = im->shape[im->ndim - 1];
    int64_t plane = H * W;
    int64_t want[4] = {n, C, H, W};
    if (n < 0)
        return lunet_error_set(LUNET_STATUS_VALUE, "image_batch: negative batch size %lld",
                               (long long)n);
    if (out_x->dtype != LUNET_DTYPE_FLOAT32 || !lunet_tensor_is_contiguous(out_x) ||
        out_x->numel != n * C * plane || out_x->ndim < 1 || out_x->shape[0] != n)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "image_batch: output must be a contiguous float32 %s tensor, got %s %s",
            lunet_shape_str(b1, sizeof b1, 4, want), lunet_dtype_name(out_x->dtype),
            lunet_shape_str(b2, sizeof b2, out_x->ndim, out_x->shape));
    if (out_y) {
        if (!labels)
            return lunet_error_set(LUNET_STATUS_VALUE, "image_batch: label output without labels");
        if (out_y->dtype != LUNET_DTYPE_INT64 || out_y->numel != n ||
            !lunet_tensor_is_contiguous(out_y))
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "image_batch: label output must be a contiguous int64 [%lld] "
                                   "tensor, got %s %s",
                                   (long long)n, lunet_dtype_name(out_y->dtype),
                                   lunet_shape_str(b2, sizeof b2, out_y->ndim, out_y->shape));
        if (labels->dtype != LUNET_DTYPE_INT64 || labels->ndim != 1 || labels->shape[0] != N ||
            !lunet_tensor_is_contiguous(labels))
            return lunet_error_set(
                LUNET_STATUS_VALUE,
                "image_batch: labels must be a contiguous int64 [%lld] tensor, got "
                "%s %s",
                (long long)N, lunet_dtype_name(labels->dtype),
                lunet_shape_str(b2, sizeof b2, labels->ndim, labels->shape));
    }
    if (!(scale_div > 0) || !isfinite(scale_div))
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "image_batch: scale divisor must be positive, got %g", scale_div);
    if (nnorm != 0 && nnorm != 1 && nnorm != C)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "image_batch: Normalize has %d means/stds for %lld channels", nnorm,
                               (long long)C);
    for (int c = 0; c < nnorm; c++)
        if ((float)std[c] == 0.0f)
            return lunet_error_set(LUNET_STATUS_VALUE, "%s", zero_std_msg);
    /* Validate every index before writing, so a bad index leaves the outputs untouched. */
    for (int64_t b = 0; b < n; b++)
        if (idx[b] < 0 || idx[b] >= N)
            return lunet_error_set(LUNET_STATUS_INDEX,
                                   "image_batch: index %lld is out of range for a dataset of size "
                                   "%lld (batch position %lld)",
                                   (long long)idx[b], (long long)N, (long long)b);
    const uint8_t *src = lunet_tensor_data(im);
    float *dst = lunet_tensor_data(out_x);
    pixel_map_t map;
    /* blocks of ~64K pixels: a function of the image size only */
    int64_t grain = plane > 0 && plane < 65536 ? 65536 / plane : 1;
    batch_job_t job = {src, dst, idx, C, 0, plane, &map, map_row_c};
    for (int64_t c = 0; c < C; c++) {
        int k = nnorm == 1 ? 0 : (int)c;
        build_map(&map, scale_div, nnorm > 0, nnorm ? mean[k] : 0, nnorm ? std[k] : 1);
        job.row = map_row(&map);
        job.c = c;
        lunet_parallel_for(n, grain, batch_rows, &job);
    }
    if (out_y) {
        const int64_t *l = lunet_tensor_data(labels);
        int64_t *y = lunet_tensor_data(out_y);
        for (int64_t b = 0; b < n; b++)
            y[b] = l[idx[b]];
        lunet_tensor_bump_version(out_y);
    }
    lunet_tensor_bump_version(out_x);
    return LUNET_OK;
}

lunet_status_t lunet_data_to_tensor(lunet_tensor_t **out, lunet_tensor_t *img)
{
    char b1[LUNET_SHAPE_BUF];
    if (img->dtype != LUNET_DTYPE_UINT8 || (img->ndim != 2 && img->ndim != 3))
        return lunet_error_set(
            LUNET_STATUS_TYPE,
            "pic should be PIL Image or ndarray (in Lunet: a uint8 (H, W) or (H, "
            "W, C) tensor). Got a %s tensor of size %s",
            lunet_dtype_name(img->dtype), lunet_shape_str(b1, sizeof b1, img->ndim, img->shape));
    int64_t H = img->shape[0], W = img->shape[1], C = img->ndim == 3 ? img->shape[2] : 1;
    int64_t shape[3] = {C, H, W};
    lunet_tensor_t *c, *r;
    lunet_status_t st = lunet_tensor_contiguous(&c, img);
    if (st)
        return st;
    if ((st = lunet_tensor_empty(&r, LUNET_DTYPE_FLOAT32, 3, shape))) {
        lunet_tensor_release(c);
        return st;
    }
    // c (H, W, C) uint8 -> r (C, H, W) float32
    const uint8_t *s = lunet_tensor_data(c);
    float *d = lunet_tensor_data(r);
    const float div = 255.0f;
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t i = 0; i < H * W; i++)
            d[ch * H * W + i] = (float)s[i * C + ch] / div;
    lunet_tensor_release(c);
    *out = r;
    return LUNET_OK;
}

lunet_status_t lunet_data_normalize(lunet_tensor_t **out, lunet_tensor_t *x, int nmean,
                                    const double *mean, int nstd, const double *std)
{
    char b1[LUNET_SHAPE_BUF];
    if (!lunet_dtype_is_floating(x->dtype))
        return lunet_error_set(LUNET_STATUS_TYPE,
                               "Input tensor should be a float tensor. Got torch.%s.",
                               lunet_dtype_name(x->dtype));
    if (x->ndim < 3)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "Expected tensor to be a tensor image of size (..., C, H, W). Got "
                               "tensor.size() = torch.Size(%s)",
                               lunet_shape_str(b1, sizeof b1, x->ndim, x->shape));
    int64_t C = x->shape[x->ndim - 3];
    int64_t plane = x->shape[x->ndim - 2] * x->shape[x->ndim - 1];
    bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
    for (int i = 0; i < nstd; i++)
        if (f32 ? (float)std[i] == 0.0f : std[i] == 0.0)
            return lunet_error_set(LUNET_STATUS_VALUE, "%s", zero_std_msg);
    if ((nmean != 1 && nmean != C) || (nstd != 1 && nstd != C) || nmean < 1 || nstd < 1)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "The size of tensor a (%lld) must match the size of tensor b (%d) at "
            "non-singleton dimension 0",
            (long long)C, nmean != 1 && nmean != C ? nmean : nstd);
    lunet_tensor_t *c, *r;
    lunet_status_t st = lunet_tensor_contiguous(&c, x);
    if (st)
        return st;
    if ((st = lunet_tensor_empty(&r, x->dtype, x->ndim, x->shape))) {
        lunet_tensor_release(c);
        return st;
    }
    int64_t nimg = C > 0 && plane > 0 ? x->numel / (C * plane) : 0;
    // c (..., C, H, W) -> r (..., C, H, W), channel k uses mean[k or 0], std[k or 0]
    for (int64_t g = 0; g < nimg; g++) {
        for (int64_t ch = 0; ch < C; ch++) {
            double m = mean[nmean == 1 ? 0 : ch], s = std[nstd == 1 ? 0 : ch];
            int64_t base = (g * C + ch) * plane;
            if (f32) {
                const float *a = (const float *)lunet_tensor_data(c) + base;
                float *o = (float *)lunet_tensor_data(r) + base;
                float fm = (float)m, fs = (float)s;
                for (int64_t i = 0; i < plane; i++) {
                    float t = a[i] - fm;
                    o[i] = t / fs;
                }
            } else {
                const double *a = (const double *)lunet_tensor_data(c) + base;
                double *o = (double *)lunet_tensor_data(r) + base;
                for (int64_t i = 0; i < plane; i++)
                    o[i] = (a[i] - m) / s;
            }
        }
    }
    lunet_tensor_release(c);
    *out = r;
    return LUNET_OK;
}

lunet_status_t lunet_data_label_histogram(int64_t *out, lunet_tensor_t *labels, int64_t nclass)
{
    if (labels->dtype != LUNET_DTYPE_INT64 && labels->dtype != LUNET_DTYPE_UINT8)
        return lunet_error_set(LUNET_STATUS_TYPE, "labels must be int64 or uint8, got %s",
                               lunet_dtype_name(labels->dtype));
    lunet_tensor_t *c;
    lunet_status_t st = lunet_tensor_contiguous(&c, labels);
    if (st)
        return st;
    memset(out, 0, (size_t)nclass * sizeof *out);
    const void *d = lunet_tensor_data(c);
    for (int64_t i = 0; i < c->numel; i++) {
        int64_t v = c->dtype == LUNET_DTYPE_INT64 ? ((const int64_t *)d)[i]
                                                  : ((const uint8_t *)d)[i];
        if (v < 0 || v >= nclass) {
            lunet_tensor_release(c);
            return lunet_error_set(LUNET_STATUS_VALUE,
                                   "label %lld at position %lld is outside [0, %lld)", (long long)v,
                                   (long long)i, (long long)nclass);
        }
        out[v]++;
    }
    lunet_tensor_release(c);
    return LUNET_OK;
}

/* ---------------------------------------------------------------- PNG ----------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* One chunk: length, type, data, CRC-32 over type + data. */
static bool png_chunk(lunet_afile_t *f, const char *type, const unsigned char *data, size_t n)
{
    unsigned char b[8];
    put_be32(b, (uint32_t)n);
    memcpy(b + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (n)
        crc = crc32(crc, data, (uInt)n);
    unsigned char c[4];
    put_be32(c, (uint32_t)crc);
    return !lunet_afile_write(f, b, 8) && (n == 0 || !lunet_afile_write(f, data, n)) &&
           !lunet_afile_write(f, c, 4);
}

lunet_status_t lunet_data_write_png(const char *path, lunet_tensor_t *img)
{
    char b1[LUNET_SHAPE_BUF];
    if (img->dtype != LUNET_DTYPE_UINT8 || (img->ndim != 2 && img->ndim != 3) ||
        (img->ndim == 3 && img->shape[2] != 3) || img->numel == 0 || img->shape[0] > 65535 ||
        img->shape[1] > 65535)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "write_png: %s: expected a non-empty uint8 (H, W) or (H, W, 3) image, "
            "got %s %s",
            path, lunet_dtype_name(img->dtype),
            lunet_shape_str(b1, sizeof b1, img->ndim, img->shape));
    int64_t H = img->shape[0], W = img->shape[1], C = img->ndim == 3 ? 3 : 1;
    lunet_tensor_t *c;
    lunet_status_t st = lunet_tensor_contiguous(&c, img);
    if (st)
        return st;
    /* each row: filter byte 0 (none), then the pixels */
    size_t row = (size_t)(W * C) + 1, raw_n = row * (size_t)H;
    unsigned char *raw = malloc(raw_n);
    uLongf zn = compressBound((uLong)raw_n);
    unsigned char *z = malloc(zn);
    if (!raw || !z) {
        st = lunet_error_set(LUNET_STATUS_NOMEM, "write_png: %s: out of memory", path);
        goto done;
    }
    const uint8_t *px = lunet_tensor_data(c);
    for (int64_t r = 0; r < H; r++) {
        raw[(size_t)r * row] = 0;
        memcpy(raw + (size_t)r * row + 1, px + r * W * C, row - 1);
    }
    if (compress2(z, &zn, raw, (uLong)raw_n, 9) != Z_OK) {
        st = lunet_error_set(LUNET_STATUS_IO, "write_png: %s: zlib compress failed", path);
        goto done;
    }
    lunet_afile_t f; /* atomic_file.c: a reader never sees half an image */
    if ((st = lunet_afile_open(&f, "write_png", path)))
        goto done;
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13];
    put_be32(ihdr, (uint32_t)W);
    put_be32(ihdr + 4, (uint32_t)H);
    ihdr[8] = 8;                        /* bit depth */
    ihdr[9] = C == 3 ? 2 : 0;           /* colour type: truecolour or greyscale */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    bool ok = !lunet_afile_write(&f, sig, 8) && png_chunk(&f, "IHDR", ihdr, 13) &&
              png_chunk(&f, "IDAT", z, zn) && png_chunk(&f, "IEND", NULL, 0);
    if (ok) {
        st = lunet_afile_commit(&f);
    } else {
        st = lunet_error_status(); /* lunet_afile_write's message */
        lunet_afile_abort(&f);
    }
done:
    free(raw);
    free(z);
    lunet_tensor_release(c);
    return st;
}
