/*
 * random.c - PyTorch's CPU random number generator (docs/pytorch-parity.md §14).
 *
 * MT19937 with PyTorch's seeding and its way of turning 32/64-bit draws into values, so
 * the same seed gives the same numbers as torch 1.13 on the CPU.  Every formula below was
 * checked bit for bit against torch (tests/fixtures/gen_random.py); where PyTorch's AVX2
 * kernels are compiled with FMA contraction, the fused operations are written out as
 * fma()/fmaf() calls (this file is built as ISO C, so the compiler never contracts on its
 * own and the results do not depend on -march).
 */
#include "autograd.h"
#include "internal.h"

#include <float.h>
#include <pthread.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define RNG_INLINE static inline __attribute__((always_inline))
#else
#define RNG_INLINE static inline
#endif
/* x86-64 builds without -mfma get an FMA-instruction copy of the normal kernel. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__FMA__)
#define RNG_HAVE_FMA_TARGET 1
#else
#define RNG_HAVE_FMA_TARGET 0
#endif

#define MT_N 624
#define MT_M 397
#define RNG_PI 3.141592653589793238462643383279502884

/* ---------------------------------------------------------------- generator ----------- */

/*
 * The default generator is shared by the process and guarded by a recursive mutex: every
 * function here that draws from it or seeds it holds the lock for the whole call, and host
 * code may hold it across several calls (lunet_generator_lock) to make them one atomic
 * sequence.  A generator the host makes itself is not locked.
 */
static lunet_generator_t def_gen;
static pthread_mutex_t def_lock;
static pthread_once_t def_once = PTHREAD_ONCE_INIT;

static void seed_state(lunet_generator_t *g, uint64_t seed)
{
    // PyTorch keeps the full 64-bit seed for initial_seed() but seeds MT with its low bits.
    uint32_t *s = g->state;
    s[0] = (uint32_t)seed;
    for (uint32_t i = 1; i < MT_N; i++)
        s[i] = 1812433253u * (s[i - 1] ^ (s[i - 1] >> 30)) + i;
    g->index = MT_N; // twist before the first output
    g->seed = seed;
    g->has_cached_normal = false;
    g->cached_normal = 0.0;
}

void lunet_generator_lock(lunet_generator_t *g)
{
    if (g == &def_gen)
        pthread_mutex_lock(&def_lock);
}

void lunet_generator_unlock(lunet_generator_t *g)
{
    if (g == &def_gen)
        pthread_mutex_unlock(&def_lock);
}

void lunet_generator_seed(lunet_generator_t *g, uint64_t seed)
{
    lunet_generator_lock(g);
    seed_state(g, seed);
    lunet_generator_unlock(g);
}

uint64_t lunet_generator_initial_seed(const lunet_generator_t *g)
{
    lunet_generator_t *m = (lunet_generator_t *)g; // locking is not a change of state
    lunet_generator_lock(m);
    uint64_t seed = g->seed;
    lunet_generator_unlock(m);
    return seed;
}

static void mt_twist(uint32_t *s)
{
    int i = 0;
    for (; i < MT_N - MT_M; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[i + 1] & 0x7fffffffu);
        s[i] = s[i + MT_M] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    for (; i < MT_N - 1; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[i + 1] & 0x7fffffffu);
        s[i] = s[i + MT_M - MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    uint32_t y = (s[MT_N - 1] & 0x80000000u) | (s[0] & 0x7fffffffu);
    s[MT_N - 1] = s[MT_M - 1] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
}

/* The draws without locking, for the functions below that hold the lock already. */
static inline uint32_t mt_random32(lunet_generator_t *g)
{
    if (g->index >= MT_N) {
        mt_twist(g->state);
        g->index = 0;
    }
    uint32_t y = g->state[g->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static inline uint64_t mt_random64(lunet_generator_t *g)
{
    uint64_t hi = mt_random32(g);
    uint64_t lo = mt_random32(g);
    return (hi << 32) | lo;
}

uint32_t lunet_generator_random32(lunet_generator_t *g)
{
    lunet_generator_lock(g);
    uint32_t y = mt_random32(g);
    lunet_generator_unlock(g);
    return y;
}

uint64_t lunet_generator_random64(lunet_generator_t *g)
{
    lunet_generator_lock(g);
    uint64_t y = mt_random64(g);
    lunet_generator_unlock(g);
    return y;
}

/* A random start seed, as PyTorch's default generator has one per process. */
static uint64_t entropy_seed(void)
{
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        size_t got = fread(&s, sizeof s, 1, f);
        fclose(f);
        if (got == 1)
            return s;
    }
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    s = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    // splitmix64 finaliser so nearby times give unrelated seeds
    s ^= s >> 30;
    s *= 0xbf58476d1ce4e5b9u;
    s ^= s >> 27;
    s *= 0x94d049bb133111ebu;
    s ^= s >> 31;
    return s;
}

static void def_init(void)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&def_lock, &a);
    pthread_mutexattr_destroy(&a);
    seed_state(&def_gen, entropy_seed());
}

lunet_generator_t *lunet_default_generator(void)
{
    pthread_once(&def_once, def_init);
    return &def_gen;
}

/* g, or the default generator when g is NULL, locked for the caller's draws. */
static lunet_generator_t *gen_begin(lunet_generator_t *g)
{
    if (!g)
        g = lunet_default_generator();
    lunet_generator_lock(g);
    return g;
}

/* ---------------------------------------------------------------- draws ---------------- */

/* [0, 1) float32 from the low 24 bits of one 32-bit draw (exact). */
static inline float uniform_f32(lunet_generator_t *g)
{
    return (float)(mt_random32(g) & 0xFFFFFFu) * 0x1p-24f;
}

/* [0, 1) float64 from the low 53 bits of one 64-bit draw (exact). */
static inline double uniform_f64(lunet_generator_t *g)
{
    return (double)(mt_random64(g) & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

/* PyTorch's normal_distribution<double>: Box-Muller with the second value cached. */
static inline double normal_f64(lunet_generator_t *g, double mean, double std)
{
    double z;
    if (g->has_cached_normal) {
        g->has_cached_normal = false;
        z = g->cached_normal;
    } else {
        double u1 = uniform_f64(g);
        double u2 = uniform_f64(g);
        double r = sqrt(-2.0 * log(1.0 - u2));
        double theta = 2.0 * RNG_PI * u1;
        g->cached_normal = r * sin(theta);
        g->has_cached_normal = true;
        z = r * cos(theta);
    }
    return fma(z, std, mean); // torch: val * std + mean, contracted
}

/* ---------------------------------------------------------------- layout helpers ------- */

/*
 * The buffer to generate into: x's own data when contiguous, else a temporary that
 * scatter_draw_order() copies into x afterwards.
 */
static lunet_status_t gen_buffer(void **buf, lunet_tensor_t *x, const char *op)
{
    if (lunet_tensor_is_contiguous(x)) {
        *buf = lunet_tensor_data(x);
        return LUNET_OK;
    }
    void *p = malloc((size_t)x->numel * lunet_dtype_size(x->dtype));
    if (!p)
        return lunet_error_set(LUNET_STATUS_NOMEM, "%s: out of memory for %lld elements", op,
                               (long long)x->numel);
    *buf = p;
    return LUNET_OK;
}

/*
 * x (any strides) <- src (x->numel values of x's dtype in draw order).  PyTorch fills a
 * strided tensor through TensorIterator, which visits elements in memory order: dims are
 * sorted by stride (TensorIterator::reorder_dimensions for one operand), so e.g. a
 * transposed tensor gets its draws in the order of its storage, not its row-major order.
 */
static void scatter_draw_order(lunet_tensor_t *x, const void *src)
{
    int nd = x->ndim;
    int perm[LUNET_MAX_DIMS]; // perm[0] is the fastest-moving dim
    for (int i = 0; i < nd; i++)
        perm[i] = nd - 1 - i;
    // insertion sort with TensorIterator's comparison: smaller stride goes first, equal
    // strides put the smaller size first, a zero stride is "ambiguous" (keep scanning)
    for (int i = 1; i < nd; i++) {
        int d1 = i;
        for (int d0 = i - 1; d0 >= 0; d0--) {
            int64_t s0 = x->strides[perm[d0]], s1 = x->strides[perm[d1]];
            int cmp = 0;
            if (s0 != 0 && s1 != 0) {
                if (s0 < s1)
                    cmp = -1;
                else if (s0 > s1)
                    cmp = 1;
                else if (x->shape[perm[d0]] > x->shape[perm[d1]])
                    cmp = 1;
            }
            if (cmp > 0) {
                int tmp = perm[d0];
                perm[d0] = perm[d1];
                perm[d1] = tmp;
                d1 = d0;
            } else if (cmp < 0) {
                break;
            }
        }
    }
    size_t esz = lunet_dtype_size(x->dtype);
    char *base = (char *)x->storage->data;
    const char *s = (const char *)src;
    int64_t idx[LUNET_MAX_DIMS] = {0};
    int64_t off = x->offset;
    for (int64_t k = 0; k < x->numel; k++) {
        memcpy(base + (size_t)off * esz, s + (size_t)k * esz, esz);
        // odometer step, perm[0] fastest
        for (int j = 0; j < nd; j++) {
            int d = perm[j];
            if (++idx[d] < x->shape[d]) {
                off += x->strides[d];
                break;
            }
            off -= (idx[d] - 1) * x->strides[d];
            idx[d] = 0;
        }
    }
}

static void finish_buffer(lunet_tensor_t *x, void *buf)
{
    if (buf != lunet_tensor_data(x)) {
        scatter_draw_order(x, buf);
        free(buf);
    }
    lunet_tensor_bump_version(x);
}

/* Common checks of an in-place random fill. */
static lunet_status_t check_target(lunet_tensor_t *x, const char *op)
{
    lunet_status_t st = lunet_autograd_check_inplace(x, op);
    if (st)
        return st;
    return lunet_tensor_check_writable(x);
}

/* check_target(x, op), then the buffer to draw into (gen_buffer). */
static lunet_status_t check_target_buffer(void **buf, lunet_tensor_t *x, const char *op)
{
    lunet_status_t st = check_target(x, op);
    if (st)
        return st;
    return gen_buffer(buf, x, op);
}

/* ---------------------------------------------------------------- uniform -------------- */

lunet_status_t lunet_tensor_uniform_(lunet_tensor_t *x, lunet_generator_t *g, double a, double b)
{
    if (x->dtype != LUNET_DTYPE_FLOAT32 && x->dtype != LUNET_DTYPE_FLOAT64)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "\"check_uniform_bounds\" not implemented for '%s'",
                               lunet_dtype_torch_name(x->dtype));
    bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
    double lim = f32 ? FLT_MAX : DBL_MAX;
    if (!(a >= -lim && a <= lim))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "from is out of bounds for %s",
                               f32 ? "float" : "double");
    if (!(b >= -lim && b <= lim))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "to is out of bounds for %s",
                               f32 ? "float" : "double");
    if (a > b)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "uniform_ expects to return a [from, to) range, but found from=%g > "
                               "to=%g",
                               a, b);
    double width = f32 ? (double)((float)b - (float)a) : b - a;
    if (!(width <= lim))
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "uniform_ expects to-from <= std::numeric_limits<%s>::max(), but found "
            "to=%g and from=%g which result in to-from to exceed the limit",
            lunet_dtype_torch_name(x->dtype), b, a);
    void *buf = NULL;
    lunet_status_t st = check_target_buffer(&buf, x, "uniform_");
    if (st)
        return st;
    g = gen_begin(g);
    int64_t n = x->numel;
    if (f32) {
        // x (n) float32: u * (b - a) + a, the subtraction in float32, one fused rounding
        float *d = buf;
        float a32 = (float)a, r32 = (float)b - (float)a;
        for (int64_t i = 0; i < n; i++)
            d[i] = fmaf(uniform_f32(g), r32, a32);
    } else {
        // x (n) float64: same with 53-bit draws
        double *d = buf;
        double r = b - a;
        for (int64_t i = 0; i < n; i++)
            d[i] = fma(uniform_f64(g), r, a);
    }
    lunet_generator_unlock(g);
    finish_buffer(x, buf);
    return LUNET_OK;
}

/* ---------------------------------------------------------------- normal --------------- */

/*
 * Scalar port of the float32 log/sincos polynomials of avx_mathfun.h (log256_ps,
 * sincos256_ps) that PyTorch's normal_fill_16_AVX2 uses, operation by operation,
 * including the multiply-adds GCC fuses when building that kernel with -mfma.  This is
 * what makes float32 normal_ with >= 16 elements bit-exact (libm is only close).
 */
static inline float f32_from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline uint32_t f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

RNG_INLINE float avx_logf(float x)
{
    static const float p[9] = {7.0376836292E-2f,  -1.1514610310E-1f, 1.1676998740E-1f,
                               -1.2420140846E-1f, 1.4249322787E-1f,  -1.6668057665E-1f,
                               2.0000714765E-1f,  -2.4999993993E-1f, 3.3333331174E-1f};
    bool invalid = x <= 0.0f;
    float min_norm = f32_from_bits(0x00800000u);
    x = x > min_norm ? x : min_norm; // _mm256_max_ps(x, min_norm)
    uint32_t bits = f32_bits(x);
    int32_t expo = (int32_t)(bits >> 23) - 0x7f;
    x = f32_from_bits((bits & ~0x7f800000u) | f32_bits(0.5f));
    float e = (float)expo + 1.0f;
    bool lt = x < 0.707106781186547524f;
    float tmp = lt ? x : 0.0f;
    x = x - 1.0f;
    e = e - (lt ? 1.0f : 0.0f);
    x = x + tmp;
    float z = x * x;
    float y = p[0];
    for (int k = 1; k < 9; k++)
        y = fmaf(y, x, p[k]);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    return invalid ? NAN : x;
}

RNG_INLINE void avx_sincosf(float x, float *s, float *c)
{
    uint32_t sign_sin = f32_bits(x) & 0x80000000u;
    x = f32_from_bits(f32_bits(x) & 0x7fffffffu);
    float y = x * 1.27323954473516f; // 4 / pi
    int32_t j = (int32_t)y;          // cvttps: truncation
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    bool poly_sin = (j & 2) == 0;
    // extended precision modular arithmetic: x - y * pi/4 in three parts
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;

    float z = x * x;
    float yc = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;

    float ys = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);

    // the selects and the (exact) add/sub sequence of the vector code
    float ysin2 = poly_sin ? ys : 0.0f;
    float ysin1 = poly_sin ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    float sv = ysin1 + ysin2;
    float cv = yc + ys;
    *s = f32_from_bits(f32_bits(sv) ^ sign_sin);
    *c = f32_from_bits(f32_bits(cv) ^ sign_cos);
}

// d (16) float32 uniforms in [0, 1) -> 16 normals (normal_fill_16_AVX2)
RNG_INLINE void normal_block16_f32(float *d, float mean, float std)
{
    const float two_pi = (float)(2.0 * RNG_PI);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * avx_logf(u1));
        float theta = two_pi * u2;
        float s, c;
        avx_sincosf(theta, &s, &c);
        d[j] = fmaf(radius * c, std, mean);
        d[j + 8] = fmaf(radius * s, std, mean);
    }
}

// d (16) float64 uniforms in [0, 1) -> 16 normals (normal_fill_16<double>)
static void normal_block16_f64(double *d, double mean, double std)
{
    for (int j = 0; j < 8; j++) {
        double u1 = 1.0 - d[j];
        double u2 = d[j + 8];
        double radius = sqrt(-2.0 * log(u1));
        double theta = 2.0 * RNG_PI * u2;
        d[j] = fma(radius * cos(theta), std, mean);
        d[j + 8] = fma(radius * sin(theta), std, mean);
    }
}

/*
 * d (n >= 16) uniforms -> normals: every full block of 16, then (n % 16 != 0) the last 16
 * slots redrawn and recomputed, overlap included.  One body for float and double (T, its
 * uniform draw, its block of 16).
 */
#define NORMAL_FILL_BODY(T, UNIFORM, BLOCK16)                                                      \
    for (int64_t i = 0; i + 16 <= n; i += 16)                                                      \
        BLOCK16(d + i, mean, std);                                                                 \
    if (n % 16) {                                                                                  \
        T *t = d + n - 16;                                                                         \
        for (int i = 0; i < 16; i++)                                                               \
            t[i] = UNIFORM(g);                                                                     \
        BLOCK16(t, mean, std);                                                                     \
    }

/* The float body is compiled twice: with the FMA instruction enabled (fmaf becomes one inline
   instruction, several times faster than the libm call) and portable; both give the same
   bits since fmaf is exact either way. */
RNG_INLINE void normal_fill_f32_body(float *d, int64_t n, lunet_generator_t *g, float mean,
                                     float std)
{
    NORMAL_FILL_BODY(float, uniform_f32, normal_block16_f32)
}

static void normal_fill_f64(double *d, int64_t n, lunet_generator_t *g, double mean, double std)
{
    NORMAL_FILL_BODY(double, uniform_f64, normal_block16_f64)
}
#undef NORMAL_FILL_BODY

static void normal_fill_f32_portable(float *d, int64_t n, lunet_generator_t *g, float mean,
                                     float std)
{
    normal_fill_f32_body(d, n, g, mean, std);
}

#if RNG_HAVE_FMA_TARGET
__attribute__((target("fma"))) static void normal_fill_f32_fma(float *d, int64_t n,
                                                               lunet_generator_t *g, float mean,
                                                               float std)
{
    normal_fill_f32_body(d, n, g, mean, std);
}
#endif

static void normal_fill_f32(float *d, int64_t n, lunet_generator_t *g, float mean, float std)
{
#if RNG_HAVE_FMA_TARGET
    if (__builtin_cpu_supports("fma")) {
        normal_fill_f32_fma(d, n, g, mean, std);
        return;
    }
#endif
    normal_fill_f32_portable(d, n, g, mean, std);
}

lunet_status_t lunet_tensor_normal_(lunet_tensor_t *x, lunet_generator_t *g, double mean,
                                    double std)
{
    if (x->dtype != LUNET_DTYPE_FLOAT32 && x->dtype != LUNET_DTYPE_FLOAT64)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "\"normal_kernel_cpu\" not implemented for '%s'",
                               lunet_dtype_torch_name(x->dtype));
    if (std < 0.0)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "normal expects std >= 0.0, but found std %g",
                               std);
    lunet_status_t st = check_target(x, "normal_");
    if (st)
        return st;
    int64_t n = x->numel;
    bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
    if (n >= 16 && lunet_tensor_is_contiguous(x)) {
        g = gen_begin(g);
        // Block scheme: n uniforms, Box-Muller on each block of 16, and if n is not a
        // multiple of 16 the last 16 slots are redrawn and recomputed (overlap included).
        if (f32) {
            float *d = lunet_tensor_data(x);
            float m = (float)mean, s = (float)std;
            for (int64_t i = 0; i < n; i++)
                d[i] = uniform_f32(g);
            normal_fill_f32(d, n, g, m, s);
        } else {
            double *d = lunet_tensor_data(x);
            for (int64_t i = 0; i < n; i++)
                d[i] = uniform_f64(g);
            normal_fill_f64(d, n, g, mean, std);
        }
        lunet_generator_unlock(g);
        lunet_tensor_bump_version(x);
        return LUNET_OK;
    }
    // Small or strided: one double Box-Muller value per element, in draw order.
    void *buf = NULL;
    if ((st = gen_buffer(&buf, x, "normal_")))
        return st;
    g = gen_begin(g);
    if (f32) {
        float *d = buf;
        for (int64_t i = 0; i < n; i++)
            d[i] = (float)normal_f64(g, mean, std);
    } else {
        double *d = buf;
        for (int64_t i = 0; i < n; i++)
            d[i] = normal_f64(g, mean, std);
    }
    lunet_generator_unlock(g);
    finish_buffer(x, buf);
    return LUNET_OK;
}

/* ---------------------------------------------------------------- integers ------------- */

lunet_status_t lunet_tensor_random_int_(lunet_tensor_t *x, lunet_generator_t *g, int64_t low,
                                        int64_t high)
{
    if (low >= high)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "random_ expects 'from' to be less than 'to', but got from=%lld >= "
                               "to=%lld",
                               (long long)low, (long long)high);
    // The bounds each dtype can hold (float types: the exactly representable integers
    // are only a warning in PyTorch, the float range is far beyond int64).
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    const char *cname = "long";
    switch (x->dtype) {
    case LUNET_DTYPE_UINT8:
        lo = 0, hi = 255, cname = "unsigned char";
        break;
    case LUNET_DTYPE_BOOL:
        lo = 0, hi = 1, cname = "bool";
        break;
    default:
        break;
    }
    if (low < lo || low > hi)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "from is out of bounds for %s", cname);
    if (high - 1 < lo || high - 1 > hi)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "to - 1 is out of bounds for %s", cname);
    void *buf = NULL;
    lunet_status_t st = check_target_buffer(&buf, x, "random_");
    if (st)
        return st;
    g = gen_begin(g);
    // value = (draw mod range) + low in uint64 arithmetic; 32-bit draws when range < 2^32
    uint64_t range = (uint64_t)high - (uint64_t)low;
    bool wide = range >= (UINT64_C(1) << 32);
    int64_t n = x->numel;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = wide ? mt_random64(g) : mt_random32(g);
        int64_t v = (int64_t)(r % range + (uint64_t)low);
        switch (x->dtype) {
        case LUNET_DTYPE_INT64:
            ((int64_t *)buf)[i] = v;
            break;
        case LUNET_DTYPE_FLOAT32:
            ((float *)buf)[i] = (float)v;
            break;
        case LUNET_DTYPE_FLOAT64:
            ((double *)buf)[i] = (double)v;
            break;
        case LUNET_DTYPE_UINT8:
            ((uint8_t *)buf)[i] = (uint8_t)v;
            break;
        case LUNET_DTYPE_BOOL:
            ((uint8_t *)buf)[i] = v != 0;
            break;
        default:
            break;
        }
    }
    lunet_generator_unlock(g);
    finish_buffer(x, buf);
    return LUNET_OK;
}

/* ---- factories: a new tensor drawn as the in-place fills draw (the same stream) */

typedef enum draw_kind { DRAW_KIND_UNIFORM, DRAW_KIND_NORMAL, DRAW_KIND_INT } draw_kind_t;

static lunet_status_t drawn(lunet_tensor_t **out, lunet_dtype_t dt, int ndim, const int64_t *shape,
                            lunet_generator_t *g, draw_kind_t kind, double p1, double p2,
                            int64_t low, int64_t high)
{
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_empty(&t, dt, ndim, shape);
    if (st)
        return st;
    st = kind == DRAW_KIND_UNIFORM  ? lunet_tensor_uniform_(t, g, p1, p2)
         : kind == DRAW_KIND_NORMAL ? lunet_tensor_normal_(t, g, p1, p2)
                                    : lunet_tensor_random_int_(t, g, low, high);
    if (st) {
        lunet_tensor_release(t);
        return st;
    }
    lunet_tensor_mark_fresh(t);
    *out = t;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_uniform(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                    const int64_t *shape, lunet_generator_t *g, double a, double b)
{
    return drawn(out, dt, ndim, shape, g, DRAW_KIND_UNIFORM, a, b, 0, 0);
}

lunet_status_t lunet_tensor_normal(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                   const int64_t *shape, lunet_generator_t *g, double mean,
                                   double std)
{
    return drawn(out, dt, ndim, shape, g, DRAW_KIND_NORMAL, mean, std, 0, 0);
}

lunet_status_t lunet_tensor_randint(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                    const int64_t *shape, lunet_generator_t *g, int64_t low,
                                    int64_t high)
{
    return drawn(out, dt, ndim, shape, g, DRAW_KIND_INT, 0, 0, low, high);
}

lunet_status_t lunet_tensor_randperm(lunet_tensor_t **out, lunet_generator_t *g, int64_t n)
{
    if (n < 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "Trying to create tensor with negative dimension %lld: [%lld]",
                               (long long)n, (long long)n);
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_empty(&t, LUNET_DTYPE_INT64, 1, &n);
    if (st)
        return st;
    g = gen_begin(g);
    // r (n) int64: identity, then swap i with i + (random32 mod (n - i))
    int64_t *r = lunet_tensor_data(t);
    for (int64_t i = 0; i < n; i++)
        r[i] = i;
    for (int64_t i = 0; i < n - 1; i++) {
        int64_t z = (int64_t)(mt_random32(g) % (uint64_t)(n - i));
        int64_t sav = r[i];
        r[i] = r[i + z];
        r[i + z] = sav;
    }
    lunet_generator_unlock(g);
    *out = t;
    return LUNET_OK;
}
