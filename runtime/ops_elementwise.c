/*
 * ops_elementwise.c - binary and unary element-wise math with PyTorch's broadcasting and
 * type promotion, in-place variants, clamp, where, masked_fill, and the dtype-converting copy.
 *
 * Every kernel runs over runs produced by iter.c: data[0] is the output, data[1], data[2]
 * the inputs, strides in bytes.  The contiguous case is a plain indexed loop the compiler
 * vectorises; a stride-0 operand (a broadcast scalar) has its own loop too.
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>
#include <string.h>

/* ---- promotion (docs/pytorch-parity.md §11.2) */

static int category(lunet_dtype_t dt)
{
    return dt == LUNET_DTYPE_BOOL ? 0 : lunet_dtype_is_floating(dt) ? 2 : 1;
}

/* The larger of two dtypes of one category. */
static lunet_dtype_t wider(lunet_dtype_t a, lunet_dtype_t b)
{
    if (category(a) != category(b))
        return category(a) > category(b) ? a : b;
    if (a == LUNET_DTYPE_FLOAT64 || b == LUNET_DTYPE_FLOAT64)
        return LUNET_DTYPE_FLOAT64;
    if (a == LUNET_DTYPE_INT64 || b == LUNET_DTYPE_INT64)
        return LUNET_DTYPE_INT64;
    return a;
}

static int tier(const lunet_tensor_t *t) { return t->wrapped_number ? 0 : t->ndim == 0 ? 1 : 2; }

lunet_dtype_t lunet_result_dtype(const lunet_tensor_t *a, const lunet_tensor_t *b)
{
    int cat = category(a->dtype) > category(b->dtype) ? category(a->dtype) : category(b->dtype);
    int best_tier = -1;
    lunet_dtype_t best = LUNET_DTYPE_BOOL;
    const lunet_tensor_t *ops[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        if (category(ops[k]->dtype) != cat)
            continue;
        int tr = tier(ops[k]);
        if (tr > best_tier) {
            best_tier = tr;
            best = ops[k]->dtype;
        } else if (tr == best_tier) {
            best = wider(best, ops[k]->dtype);
        }
    }
    /* a plain number alone supplying the category: float -> default dtype, int -> int64 */
    if (best_tier == 0) {
        if (cat == 2)
            return lunet_default_dtype();
        if (cat == 1) {
            /* int tensor of lower tier keeps its own dtype (int32 + 5 -> int32) */
            for (int k = 0; k < 2; k++)
                if (!ops[k]->wrapped_number && category(ops[k]->dtype) == 1)
                    return ops[k]->dtype;
            return LUNET_DTYPE_INT64;
        }
    }
    return best;
}

lunet_status_t lunet_broadcast_shape(int *ndim, int64_t *shape, int andim, const int64_t *ashape,
                                     int bndim, const int64_t *bshape)
{
    int nd = andim > bndim ? andim : bndim;
    for (int i = nd - 1; i >= 0; i--) { /* trailing dims first: PyTorch names that mismatch */
        int ia = i - (nd - andim), ib = i - (nd - bndim);
        int64_t sa = ia >= 0 ? ashape[ia] : 1, sb = ib >= 0 ? bshape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "The size of tensor a (%lld) must match the size of tensor b "
                                   "(%lld) at non-singleton dimension %d",
                                   (long long)sa, (long long)sb, i);
        shape[i] = sa == 1 ? sb : sa;
    }
    *ndim = nd;
    return LUNET_OK;
}

lunet_status_t lunet_check_broadcast_into(const lunet_tensor_t *out, const lunet_tensor_t *in,
                                          const char *prefix)
{
    int nd;
    int64_t shape[LUNET_MAX_DIMS];
    lunet_status_t st = lunet_broadcast_shape(&nd, shape, out->ndim, out->shape, in->ndim,
                                              in->shape);
    if (st)
        return st;
    if (!lunet_shape_equal(nd, shape, out->ndim, out->shape)) {
        char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%soutput with shape %s doesn't match the broadcast shape %s",
                               prefix, lunet_shape_str(b1, sizeof b1, out->ndim, out->shape),
                               lunet_shape_str(b2, sizeof b2, nd, shape));
    }
    return LUNET_OK;
}

/* ---- copy with conversion */

static void copy_same(char **d, const int64_t *s, int64_t n, void *ctx)
{
    size_t es = *(size_t *)ctx;
    if (s[0] == (int64_t)es && s[1] == (int64_t)es) {
        memcpy(d[0], d[1], (size_t)n * es);
        return;
    }
    if (s[0] == (int64_t)es && s[1] == 0) {
        /* fill with one value (fill_, zero_grad, expanded sources) */
        if (es == 4) {
            uint32_t v, *o = (uint32_t *)d[0];
            memcpy(&v, d[1], 4);
            for (int64_t i = 0; i < n; i++)
                o[i] = v;
        } else if (es == 8) {
            uint64_t v, *o = (uint64_t *)d[0];
            memcpy(&v, d[1], 8);
            for (int64_t i = 0; i < n; i++)
                o[i] = v;
        } else {
            memset(d[0], *(const uint8_t *)d[1], (size_t)n);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy(d[0] + i * s[0], d[1] + i * s[1], es);
}

typedef struct cast_ctx {
    lunet_dtype_t to, from;
} cast_ctx_t;

static void copy_cast_loop(char **d, const int64_t *s, int64_t n, void *ctx)
{
    const cast_ctx_t *c = ctx;
    if (c->to == LUNET_DTYPE_FLOAT32 && c->from == LUNET_DTYPE_FLOAT64) {
        for (int64_t i = 0; i < n; i++)
            *(float *)(d[0] + i * s[0]) = (float)*(const double *)(d[1] + i * s[1]);
    } else if (c->to == LUNET_DTYPE_FLOAT64 && c->from == LUNET_DTYPE_FLOAT32) {
        for (int64_t i = 0; i < n; i++)
            *(double *)(d[0] + i * s[0]) = *(const float *)(d[1] + i * s[1]);
    } else if (c->to == LUNET_DTYPE_FLOAT32 && c->from == LUNET_DTYPE_INT64) {
        for (int64_t i = 0; i < n; i++)
            *(float *)(d[0] + i * s[0]) = (float)*(const int64_t *)(d[1] + i * s[1]);
    } else {
        for (int64_t i = 0; i < n; i++)
            lunet_dtype_store(d[0] + i * s[0], c->to, lunet_dtype_load(d[1] + i * s[1], c->from));
    }
}

void lunet_copy_cast(lunet_tensor_t *dst, const lunet_tensor_t *src)
{
    lunet_iter_t it;
    lunet_iter_init(&it, dst->ndim, dst->shape);
    lunet_iter_add(&it, dst);
    lunet_iter_add(&it, src);
    if (dst->dtype == src->dtype) {
        size_t es = lunet_dtype_size(dst->dtype);
        lunet_iter_run(&it, copy_same, &es);
    } else {
        cast_ctx_t c = {dst->dtype, src->dtype};
        lunet_iter_run(&it, copy_cast_loop, &c);
    }
}

/* ---- binary kernels */

/* One loop body per (op, type): contiguous, scalar-b, scalar-a, and general strided. */
#define BINARY_LOOP(T, OUT, EXPR)                                                                  \
    do {                                                                                           \
        const int64_t st_ = sizeof(T), so_ = sizeof(OUT);                                          \
        OUT *o = (OUT *)d[0];                                                                      \
        const T *pa = (const T *)d[1], *pb = (const T *)d[2];                                      \
        if (s[0] == so_ && s[1] == st_ && s[2] == st_) {                                           \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T x = pa[i], y = pb[i];                                                            \
                o[i] = (OUT)(EXPR);                                                                \
            }                                                                                      \
        } else if (s[0] == so_ && s[1] == st_ && s[2] == 0) {                                      \
            const T y = pb[0];                                                                     \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T x = pa[i];                                                                       \
                o[i] = (OUT)(EXPR);                                                                \
            }                                                                                      \
        } else if (s[0] == so_ && s[1] == 0 && s[2] == st_) {                                      \
            const T x = pa[0];                                                                     \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T y = pb[i];                                                                       \
                o[i] = (OUT)(EXPR);                                                                \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T x = *(const T *)(d[1] + i * s[1]), y = *(const T *)(d[2] + i * s[2]);            \
                *(OUT *)(d[0] + i * s[0]) = (OUT)(EXPR);                                           \
            }                                                                                      \
        }                                                                                          \
    } while (0)

typedef struct binary_ctx {
    double alpha; /* add/sub scale */
} binary_ctx_t;

#define KPARAMS char **d, const int64_t *s, int64_t n, void *ctx
#define ALPHA_F (float)((binary_ctx_t *)ctx)->alpha
#define ALPHA_D ((binary_ctx_t *)ctx)->alpha
#define ALPHA_I lunet_f64_to_i64(((binary_ctx_t *)ctx)->alpha)

/* int64 ops wrap modulo 2^64 as PyTorch's do on x86 (lunet_i64_* in internal.h). */
static int64_t ipow(int64_t b, int64_t e)
{
    if (e < 0)
        return b == 1 ? 1 : b == -1 ? (e % 2 ? -1 : 1) : 0;
    int64_t r = 1;
    while (e) {
        if (e & 1)
            r = lunet_i64_mul(r, b);
        b = lunet_i64_mul(b, b);
        e >>= 1;
    }
    return r;
}

/* INT64_MIN // -1 is INT64_MIN, the wrapped quotient (PyTorch 1.13 dies of SIGFPE there). */
static int64_t ifloordiv(int64_t a, int64_t b)
{
    if (b == 0)
        return 0;
    if (b == -1)
        return lunet_i64_sub(0, a);
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* PyTorch's div_floor_floating, Python's float //: from fmod, so that -1 // inf is -1 and
   inf // 2 is NaN where floor(a / b) gives -0 and inf; by zero, the IEEE quotient.  One body
   for float and double (T and its fmod, floor, copysign). */
#define FLOORDIV_BODY(T, FMOD, FLOOR, COPYSIGN)                                                    \
    if (b == 0)                                                                                    \
        return a / b;                                                                              \
    T mod = FMOD(a, b), div = (a - mod) / b;                                                       \
    if (mod != 0 && (b < 0) != (mod < 0))                                                          \
        div -= 1;                                                                                  \
    if (div == 0)                                                                                  \
        return COPYSIGN((T)0, a / b);                                                              \
    T fl = FLOOR(div);                                                                             \
    return div - fl > (T)0.5 ? fl + 1 : fl;

static double floordiv_f64(double a, double b) { FLOORDIV_BODY(double, fmod, floor, copysign) }
static float floordiv_f32(float a, float b) { FLOORDIV_BODY(float, fmodf, floorf, copysignf) }
#undef FLOORDIV_BODY

/* PyTorch's add(b, alpha) is one fused multiply-add; alpha 1 and -1 (x - y) get plain loops
   of their own so that they vectorise (fma(-1, y, x) rounds as x - y does).  One body for
   float and double (T, its alpha, its fma). */
#define ADD_FLOAT_BODY(T, ALPHA, FMA)                                                              \
    const T al = ALPHA;                                                                            \
    if (al == 1)                                                                                   \
        BINARY_LOOP(T, T, x + y);                                                                  \
    else if (al == -1)                                                                             \
        BINARY_LOOP(T, T, x - y);                                                                  \
    else                                                                                           \
        BINARY_LOOP(T, T, FMA(al, y, x));

static void add_f32(KPARAMS) { ADD_FLOAT_BODY(float, ALPHA_F, fmaf) }
static void add_f64(KPARAMS) { ADD_FLOAT_BODY(double, ALPHA_D, fma) }
#undef ADD_FLOAT_BODY
static void add_i64(KPARAMS)
{
    const int64_t al = ALPHA_I;
    BINARY_LOOP(int64_t, int64_t, lunet_i64_add(x, lunet_i64_mul(al, y)));
}

/* sub(b, alpha) is add(b, -alpha): the same bits, in floats and in wrapping int64. */
static void sub_as_add(void (*add)(KPARAMS), KPARAMS)
{
    binary_ctx_t neg = {.alpha = -((binary_ctx_t *)ctx)->alpha};
    add(d, s, n, &neg);
}

/* one kernel a line, read as a table */
/* clang-format off */
static void sub_f32(KPARAMS) { sub_as_add(add_f32, d, s, n, ctx); }
static void sub_f64(KPARAMS) { sub_as_add(add_f64, d, s, n, ctx); }
static void sub_i64(KPARAMS) { sub_as_add(add_i64, d, s, n, ctx); }
static void mul_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, float, x * y); }
static void mul_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, double, x * y); }
static void mul_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, int64_t, lunet_i64_mul(x, y)); }
static void div_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, float, x / y); }
static void div_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, double, x / y); }
static void pow_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, float, y == 2.0f ? x * x : powf(x, y)); }
static void pow_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, double, y == 2.0 ? x * x : pow(x, y)); }
static void pow_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, int64_t, ipow(x, y)); }
/* maximum/minimum propagate NaN */
static void max_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, float, (x != x || x > y) ? x : y); }
static void max_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, double, (x != x || x > y) ? x : y); }
static void max_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, int64_t, x > y ? x : y); }
static void min_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, float, (x != x || x < y) ? x : y); }
static void min_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, double, (x != x || x < y) ? x : y); }
static void min_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, int64_t, x < y ? x : y); }
static void fdiv_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, float, floordiv_f32(x, y)); }
static void fdiv_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, double, floordiv_f64(x, y)); }
static void fdiv_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, int64_t, ifloordiv(x, y)); }
static void eq_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, uint8_t, x == y); }
static void eq_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, uint8_t, x == y); }
static void eq_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, uint8_t, x == y); }
static void ne_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, uint8_t, x != y); }
static void ne_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, uint8_t, x != y); }
static void ne_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, uint8_t, x != y); }
static void lt_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, uint8_t, x < y); }
static void lt_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, uint8_t, x < y); }
static void lt_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, uint8_t, x < y); }
static void le_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, uint8_t, x <= y); }
static void le_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, uint8_t, x <= y); }
static void le_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, uint8_t, x <= y); }
static void gt_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, uint8_t, x > y); }
static void gt_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, uint8_t, x > y); }
static void gt_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, uint8_t, x > y); }
static void ge_f32(KPARAMS) { (void)ctx; BINARY_LOOP(float, uint8_t, x >= y); }
static void ge_f64(KPARAMS) { (void)ctx; BINARY_LOOP(double, uint8_t, x >= y); }
static void ge_i64(KPARAMS) { (void)ctx; BINARY_LOOP(int64_t, uint8_t, x >= y); }
/* clang-format on */

/* Kernels by op and compute type (float32, float64, int64); NULL = not defined for ints. */
static const struct {
    const char *name;
    bool compare;
    lunet_loop_fn fn[3];
} binary_table[] = {
    [LUNET_BINARY_ADD] = {"add", false, {add_f32, add_f64, add_i64}},
    [LUNET_BINARY_SUB] = {"sub", false, {sub_f32, sub_f64, sub_i64}},
    [LUNET_BINARY_MUL] = {"mul", false, {mul_f32, mul_f64, mul_i64}},
    [LUNET_BINARY_DIV] = {"div", false, {div_f32, div_f64, NULL}},
    [LUNET_BINARY_POW] = {"pow", false, {pow_f32, pow_f64, pow_i64}},
    [LUNET_BINARY_MAXIMUM] = {"maximum", false, {max_f32, max_f64, max_i64}},
    [LUNET_BINARY_MINIMUM] = {"minimum", false, {min_f32, min_f64, min_i64}},
    [LUNET_BINARY_FLOOR_DIV] = {"floor_divide", false, {fdiv_f32, fdiv_f64, fdiv_i64}},
    [LUNET_BINARY_EQ] = {"eq", true, {eq_f32, eq_f64, eq_i64}},
    [LUNET_BINARY_NE] = {"ne", true, {ne_f32, ne_f64, ne_i64}},
    [LUNET_BINARY_LT] = {"lt", true, {lt_f32, lt_f64, lt_i64}},
    [LUNET_BINARY_LE] = {"le", true, {le_f32, le_f64, le_i64}},
    [LUNET_BINARY_GT] = {"gt", true, {gt_f32, gt_f64, gt_i64}},
    [LUNET_BINARY_GE] = {"ge", true, {ge_f32, ge_f64, ge_i64}},
};
_Static_assert(sizeof binary_table / sizeof binary_table[0] == LUNET_BINARY_COUNT,
               "one kernel row per binary op");

const char *lunet_binary_op_name(lunet_binary_op_t op) { return binary_table[op].name; }

/* Kernels compute in float32, float64 or int64; uint8 and bool go through int64. */
static lunet_dtype_t kernel_dtype(lunet_dtype_t dt)
{
    return lunet_dtype_is_floating(dt) ? dt : LUNET_DTYPE_INT64;
}

static int kernel_slot(lunet_dtype_t dt)
{
    return dt == LUNET_DTYPE_FLOAT32 ? 0 : dt == LUNET_DTYPE_FLOAT64 ? 1 : 2;
}

/* t converted to dt (a new reference; the same tensor when it already has dt). */
/* Runs kernel op on a, b (already in the kernel dtype) into out. */
static void run_binary(lunet_tensor_t *out, lunet_binary_op_t op, lunet_tensor_t *a,
                       lunet_tensor_t *b, double alpha)
{
    lunet_iter_t it;
    binary_ctx_t ctx = {alpha};
    lunet_iter_init(&it, out->ndim, out->shape);
    lunet_iter_add(&it, out);
    lunet_iter_add(&it, a);
    lunet_iter_add(&it, b);
    lunet_iter_run_elementwise(&it, binary_table[op].fn[kernel_slot(a->dtype)], &ctx);
}

/* Integer floor division by zero (the divisor cb as converted: a uint8 op's 256 is 0) has no
   integer result, nor has a negative Python-number power b (PyTorch's pow(Tensor, Scalar)
   check, before any conversion; a tensor of exponents gives 1/b truncated). */
static lunet_status_t check_integer_operand(lunet_binary_op_t op, const lunet_tensor_t *b,
                                            const lunet_tensor_t *cb)
{
    if (op == LUNET_BINARY_POW && b->wrapped_number && lunet_tensor_get(b, 0) < 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "Integers to negative integer powers are not allowed.");
    if (op != LUNET_BINARY_FLOOR_DIV)
        return LUNET_OK;
    for (int64_t i = 0; i < cb->numel; i++)
        if (lunet_tensor_get(cb, i) == 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME, "ZeroDivisionError");
    return LUNET_OK;
}

/* The operands an op refuses whatever its form, with PyTorch's messages: subtraction with a
   bool operand (a Python True counts), floor division and pow computed in bool. */
static lunet_status_t check_binary_operands(lunet_binary_op_t op, const lunet_tensor_t *a,
                                            const lunet_tensor_t *b, lunet_dtype_t compute)
{
    bool abool = a->dtype == LUNET_DTYPE_BOOL, bbool = b->dtype == LUNET_DTYPE_BOOL;
    if (op == LUNET_BINARY_SUB && abool && bbool)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead.");
    if (op == LUNET_BINARY_SUB && (abool || bbool))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "Subtraction, the `-` operator, with a bool tensor is not "
                               "supported. If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.");
    if (compute == LUNET_DTYPE_BOOL && op == LUNET_BINARY_FLOOR_DIV)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "\"div_floor_cpu\" not implemented for 'Bool'");
    if (compute == LUNET_DTYPE_BOOL && op == LUNET_BINARY_POW)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"pow\" not implemented for 'Bool'");
    return LUNET_OK;
}

/* t in the kernel dtype kdt by way of the op's dtype compute: PyTorch casts every operand to
   the common dtype first, so a number or 0-d operand of a uint8 op wraps (uint8 // -3
   divides by 253, uint8 == -1 compares with 255). */
static lunet_status_t operand_in(lunet_tensor_t **out, lunet_tensor_t *t, lunet_dtype_t compute,
                                 lunet_dtype_t kdt)
{
    if (t->dtype == compute || compute == kdt)
        return lunet_tensor_convert(out, t, kdt);
    lunet_tensor_t *c = NULL;
    lunet_status_t st = lunet_tensor_convert(&c, t, compute);
    if (!st)
        st = lunet_tensor_convert(out, c, kdt);
    lunet_tensor_release(c);
    return st;
}

static lunet_dtype_t binary_result_dtype(lunet_binary_op_t op, lunet_tensor_t *a, lunet_tensor_t *b,
                                         lunet_dtype_t *compute)
{
    lunet_dtype_t common = lunet_result_dtype(a, b);
    if (op == LUNET_BINARY_DIV && !lunet_dtype_is_floating(common))
        common = lunet_default_dtype(); /* true division */
    *compute = common;
    return binary_table[op].compare ? LUNET_DTYPE_BOOL : common;
}

static lunet_status_t binary_impl(lunet_tensor_t **out, lunet_binary_op_t op, lunet_tensor_t *a,
                                  lunet_tensor_t *b, double alpha)
{
    int nd;
    int64_t shape[LUNET_MAX_DIMS];
    lunet_status_t st = lunet_broadcast_shape(&nd, shape, a->ndim, a->shape, b->ndim, b->shape);
    if (st)
        return st;
    lunet_dtype_t compute, rdt = binary_result_dtype(op, a, b, &compute);
    lunet_dtype_t kdt = kernel_dtype(compute);
    if ((st = check_binary_operands(op, a, b, compute)))
        return st;
    if (alpha != 1 && !lunet_dtype_is_floating(compute) && alpha != floor(alpha))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "For integral input tensors, argument alpha "
                                                     "must not be a floating point number.");
    lunet_tensor_t *ca = NULL, *cb = NULL, *r = NULL, *rk = NULL;
    if ((st = operand_in(&ca, a, compute, kdt)) || (st = operand_in(&cb, b, compute, kdt)))
        goto done;
    if (kdt == LUNET_DTYPE_INT64 && (st = check_integer_operand(op, b, cb)))
        goto done;
    lunet_dtype_t kout = binary_table[op].compare ? LUNET_DTYPE_BOOL : kdt;
    if ((st = lunet_tensor_empty(&rk, kout, nd, shape)))
        goto done;
    run_binary(rk, op, ca, cb, alpha);
    if ((st = lunet_tensor_convert(&r, rk, rdt)))
        goto done;
    if (!binary_table[op].compare && lunet_autograd_needed(a, b)) {
        static const lunet_op_t ad_op[LUNET_BINARY_COUNT] = {
            [LUNET_BINARY_ADD] = LUNET_OP_ADD,
            [LUNET_BINARY_SUB] = LUNET_OP_SUB,
            [LUNET_BINARY_MUL] = LUNET_OP_MUL,
            [LUNET_BINARY_DIV] = LUNET_OP_DIV,
            [LUNET_BINARY_POW] = LUNET_OP_POW,
            [LUNET_BINARY_MAXIMUM] = LUNET_OP_MAXIMUM,
            [LUNET_BINARY_MINIMUM] = LUNET_OP_MINIMUM,
            [LUNET_BINARY_FLOOR_DIV] = LUNET_OP_FLOOR_DIVIDE,
        };
        lunet_op_t aop = ad_op[op];
        lunet_tensor_t *in[2] = {a, b};
        lunet_op_args_t args = {.d = {alpha}};
        if ((st = lunet_autograd_record(r, aop, 2, in, NULL, &args)))
            goto done;
    }
    *out = r;
    r = NULL;
done:
    LUNET_RELEASE(ca, cb, rk, r);
    return st;
}

/* s / t for a Python number s: PyTorch's Tensor.__rtruediv__ is t.reciprocal() * s, rounded
   twice (3 / t of uint8 7 is 0.42857146 in float32, not 0.42857143): the same two steps. */
static lunet_status_t number_over_tensor(lunet_tensor_t **out, lunet_tensor_t *s, lunet_tensor_t *t)
{
    lunet_tensor_t *one = NULL, *rec = NULL;
    lunet_status_t st = lunet_tensor_scalar_int(&one, LUNET_DTYPE_INT64, 1, true);
    if (!st && !(st = binary_impl(&rec, LUNET_BINARY_DIV, one, t, 1.0)))
        st = binary_impl(out, LUNET_BINARY_MUL, rec, s, 1.0);
    LUNET_RELEASE(one, rec);
    return st;
}

lunet_status_t lunet_tensor_binary(lunet_tensor_t **out, lunet_binary_op_t op, lunet_tensor_t *a,
                                   lunet_tensor_t *b)
{
    if ((unsigned)op >= LUNET_BINARY_COUNT)
        return lunet_error_set(LUNET_STATUS_VALUE, "binary: unknown op %d", (int)op);
    if (op == LUNET_BINARY_DIV && a->wrapped_number && !b->wrapped_number)
        return number_over_tensor(out, a, b);
    return binary_impl(out, op, a, b, 1.0);
}

lunet_status_t lunet_tensor_add_scaled(lunet_tensor_t **out, lunet_tensor_t *a, lunet_tensor_t *b,
                                       double alpha)
{
    return binary_impl(out, LUNET_BINARY_ADD, a, b, alpha);
}

/*
 * What a recorded in-place op computes from: x itself (a new reference), or a copy when the
 * op's backward reads its input, so that overwriting x does not change a value saved for
 * backward.
 */
static lunet_status_t inplace_source(lunet_tensor_t **src, lunet_tensor_t *x, bool saves_input)
{
    if (saves_input)
        return lunet_tensor_clone(src, x);
    lunet_tensor_retain(x);
    *src = x;
    return LUNET_OK;
}

/*
 * The ending of the recorded form of an in-place op on t: st and *result are what the op
 * returned, computed out of place from src (from inplace_source; released here).  On
 * success result's values go into t, which takes over its history (PyTorch: in-place on a
 * non-leaf is allowed and recorded).  result goes by address: the op has run before it is
 * read.
 */
static lunet_status_t finish_recorded_inplace(lunet_tensor_t *t, lunet_tensor_t *src,
                                              lunet_status_t st, lunet_tensor_t **result)
{
    lunet_tensor_release(src);
    if (st)
        return st;
    lunet_copy_cast(t, *result);
    lunet_tensor_bump_version(t);
    lunet_autograd_rebase(t, *result);
    lunet_tensor_release(*result);
    return LUNET_OK;
}

/* Ops whose backward reads their first input: its recorded form works on a copy, so that
   overwriting t does not change a value saved for backward. */
static bool binary_saves_input(lunet_binary_op_t op)
{
    return op == LUNET_BINARY_MUL || op == LUNET_BINARY_DIV || op == LUNET_BINARY_POW ||
           op == LUNET_BINARY_MAXIMUM || op == LUNET_BINARY_MINIMUM;
}

lunet_status_t lunet_tensor_binary_(lunet_tensor_t *a, lunet_binary_op_t op, lunet_tensor_t *b)
{
    if ((unsigned)op >= LUNET_BINARY_COUNT)
        return lunet_error_set(LUNET_STATUS_VALUE, "binary: unknown op %d", (int)op);
    const char *name = binary_table[op].name;
    bool record;
    lunet_status_t st = lunet_autograd_begin_inplace(&record, a, b, name);
    if (st)
        return st;
    if ((st = lunet_check_broadcast_into(a, b, "")))
        return st;
    lunet_dtype_t compute, rdt = binary_result_dtype(op, a, b, &compute);
    if ((st = check_binary_operands(op, a, b, compute)))
        return st;
    if (category(rdt) > category(a->dtype) && op == LUNET_BINARY_POW && b->wrapped_number)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "Found dtype %s but expected %s",
                               lunet_dtype_torch_name(a->dtype), lunet_dtype_torch_name(rdt));
    if (category(rdt) > category(a->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "result type %s can't be cast to the desired output type %s",
                               lunet_dtype_torch_name(rdt), lunet_dtype_torch_name(a->dtype));
    if ((st = lunet_tensor_check_writable(a)) || (st = lunet_tensor_check_no_partial_overlap(a, b)))
        return st;
    if (record) {
        lunet_tensor_t *src, *r;
        if ((st = inplace_source(&src, a, binary_saves_input(op))))
            return st;
        return finish_recorded_inplace(a, src, lunet_tensor_binary(&r, op, src, b), &r);
    }
    if (binary_table[op].compare || a->dtype != kernel_dtype(a->dtype)) {
        /* rare: compute out of place, then copy back */
        lunet_tensor_t *r;
        if ((st = lunet_tensor_binary(&r, op, a, b)))
            return st;
        lunet_copy_cast(a, r);
        lunet_tensor_release(r);
    } else {
        lunet_tensor_t *cb;
        if ((st = lunet_tensor_convert(&cb, b, a->dtype)))
            return st;
        if (a->dtype == LUNET_DTYPE_INT64 && (st = check_integer_operand(op, b, cb))) {
            lunet_tensor_release(cb);
            return st;
        }
        run_binary(a, op, a, cb, 1.0);
        lunet_tensor_release(cb);
    }
    lunet_tensor_bump_version(a);
    return LUNET_OK;
}

/* ---- unary kernels */

#define UNARY_LOOP(T, EXPR)                                                                        \
    do {                                                                                           \
        const int64_t st_ = sizeof(T);                                                             \
        T *o = (T *)d[0];                                                                          \
        const T *px = (const T *)d[1];                                                             \
        if (s[0] == st_ && s[1] == st_) {                                                          \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T x = px[i];                                                                       \
                o[i] = (EXPR);                                                                     \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T x = *(const T *)(d[1] + i * s[1]);                                               \
                *(T *)(d[0] + i * s[0]) = (EXPR);                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* one kernel a line, read as a table */
/* clang-format off */
static void neg_f32(KPARAMS) { (void)ctx; UNARY_LOOP(float, -x); }
static void neg_f64(KPARAMS) { (void)ctx; UNARY_LOOP(double, -x); }
static void neg_i64(KPARAMS) { (void)ctx; UNARY_LOOP(int64_t, lunet_i64_sub(0, x)); }
/* clang-format on */
static float pow2i(int32_t n)
{
    int32_t bits = (n + 127) * (1 << 23);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/*
 * y (n) = exp(x) in float32, a loop the compiler vectorises: Cody-Waite reduction
 * x = k ln2 + r, Cephes' degree-6 polynomial for exp(r), then 2^k applied in two halves so
 * that subnormal results come out right.  Within 1 ulp of glibc's expf over [-104, 89]
 * (checked on 2e7 points), which keeps it within the 2 ulp of PyTorch's that
 * docs/pytorch-parity.md §0.3 allows.
 */
static inline __attribute__((always_inline)) float exp_f32_one(float v)
{
    float c = v > 89.0f ? 89.0f : v;
    c = c < -104.0f ? -104.0f : c;
    c = v != v ? 0.0f : c;
    float k = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to int */
    float r = fmaf(k, -0.693359375f, c);
    r = fmaf(k, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    int32_t ki = (int32_t)k, half = ki / 2;
    float out = p * pow2i(half) * pow2i(ki - half);
    out = v > 88.7228391f ? INFINITY : out;
    out = v < -103.972084f ? 0.0f : out;
    return v != v ? v : out;
}

LUNET_FMA_CLONES static void exp_f32_contiguous(float *restrict y, const float *restrict x,
                                                int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = exp_f32_one(x[i]);
}

/* y (n) = 1 / (1 + exp(-x)) with the exp above, vectorised (glibc's scalar expf was 17% of
   LeNet's epoch); PyTorch's float32 sigmoid is vectorised with its own exp too, and the
   results stay within the tolerances of the sigmoid goldens and the LeNet script checks. */
LUNET_FMA_CLONES static void sigmoid_f32_contiguous(float *restrict y, const float *restrict x,
                                                    int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = 1.0f / (1.0f + exp_f32_one(-x[i]));
}

static void exp_f32(KPARAMS)
{
    (void)ctx;
    if (s[0] == sizeof(float) && s[1] == sizeof(float)) {
        exp_f32_contiguous((float *)d[0], (const float *)d[1], n);
        return;
    }
    UNARY_LOOP(float, expf(x));
}
static void sigmoid_f32(KPARAMS)
{
    (void)ctx;
    if (s[0] == sizeof(float) && s[1] == sizeof(float)) {
        sigmoid_f32_contiguous((float *)d[0], (const float *)d[1], n);
        return;
    }
    UNARY_LOOP(float, 1.0f / (1.0f + expf(-x)));
}
/* one kernel a line, read as a table */
/* clang-format off */
static void exp_f64(KPARAMS) { (void)ctx; UNARY_LOOP(double, exp(x)); }
static void log_f32(KPARAMS) { (void)ctx; UNARY_LOOP(float, logf(x)); }
static void log_f64(KPARAMS) { (void)ctx; UNARY_LOOP(double, log(x)); }
static void sqrt_f32(KPARAMS) { (void)ctx; UNARY_LOOP(float, sqrtf(x)); }
static void sqrt_f64(KPARAMS) { (void)ctx; UNARY_LOOP(double, sqrt(x)); }
static void abs_f32(KPARAMS) { (void)ctx; UNARY_LOOP(float, fabsf(x)); }
static void abs_f64(KPARAMS) { (void)ctx; UNARY_LOOP(double, fabs(x)); }
static void abs_i64(KPARAMS) { (void)ctx; UNARY_LOOP(int64_t, x < 0 ? lunet_i64_sub(0, x) : x); }
/* The plain form, as PyTorch: exp overflow gives exactly 0, never NaN
   (docs/pytorch-parity.md §6). */
static void sigmoid_f64(KPARAMS) { (void)ctx; UNARY_LOOP(double, 1.0 / (1.0 + exp(-x))); }
static void tanh_f32(KPARAMS) { (void)ctx; UNARY_LOOP(float, tanhf(x)); }
static void tanh_f64(KPARAMS) { (void)ctx; UNARY_LOOP(double, tanh(x)); }
/* x < 0 ? 0 : x keeps NaN and -0.0, as PyTorch's relu does. */
static void relu_f32(KPARAMS) { (void)ctx; UNARY_LOOP(float, x < 0 ? 0.0f : x); }
static void relu_f64(KPARAMS) { (void)ctx; UNARY_LOOP(double, x < 0 ? 0.0 : x); }
static void relu_i64(KPARAMS) { (void)ctx; UNARY_LOOP(int64_t, x < 0 ? 0 : x); }
/* clang-format on */

static const struct {
    const char *name;
    bool float_only; /* integer input gives a default-float result */
    lunet_op_t ad_op;
    lunet_loop_fn fn[3];
} unary_table[] = {
    [LUNET_UNARY_NEG] = {"neg", false, LUNET_OP_NEG, {neg_f32, neg_f64, neg_i64}},
    [LUNET_UNARY_EXP] = {"exp", true, LUNET_OP_EXP, {exp_f32, exp_f64, NULL}},
    [LUNET_UNARY_LOG] = {"log", true, LUNET_OP_LOG, {log_f32, log_f64, NULL}},
    [LUNET_UNARY_SQRT] = {"sqrt", true, LUNET_OP_SQRT, {sqrt_f32, sqrt_f64, NULL}},
    [LUNET_UNARY_ABS] = {"abs", false, LUNET_OP_ABS, {abs_f32, abs_f64, abs_i64}},
    [LUNET_UNARY_SIGMOID] = {"sigmoid", true, LUNET_OP_SIGMOID, {sigmoid_f32, sigmoid_f64, NULL}},
    [LUNET_UNARY_TANH] = {"tanh", true, LUNET_OP_TANH, {tanh_f32, tanh_f64, NULL}},
    [LUNET_UNARY_RELU] = {"relu", false, LUNET_OP_RELU, {relu_f32, relu_f64, relu_i64}},
};
_Static_assert(sizeof unary_table / sizeof unary_table[0] == LUNET_UNARY_COUNT,
               "one kernel row per unary op");

const char *lunet_unary_op_name(lunet_unary_op_t op) { return unary_table[op].name; }

/* ---- the shared paths of the unary ops and clamp: one kernel from x to out, element-wise */

// out (shape of x), x; fns by x's kernel dtype
static void run_map(lunet_tensor_t *out, lunet_tensor_t *x, lunet_loop_fn const fns[3], void *ctx)
{
    lunet_iter_t it;
    lunet_iter_init(&it, out->ndim, out->shape);
    lunet_iter_add(&it, out);
    lunet_iter_add(&it, x);
    lunet_iter_run_elementwise(&it, fns[kernel_slot(x->dtype)], ctx);
}

/* *out = fns(x) as a new tensor of dtype rdt, computed in rdt's kernel dtype, recorded as
   ad_op (args may be NULL). */
static lunet_status_t map_new(lunet_tensor_t **out, lunet_tensor_t *x, lunet_dtype_t rdt,
                              lunet_loop_fn const fns[3], void *ctx, lunet_op_t ad_op,
                              const lunet_op_args_t *args)
{
    lunet_dtype_t kdt = kernel_dtype(rdt);
    lunet_tensor_t *cx = NULL, *rk = NULL, *r = NULL;
    lunet_status_t st;
    if ((st = lunet_tensor_convert(&cx, x, kdt)) || (st = lunet_tensor_empty_like(&rk, x, kdt)))
        goto done;
    run_map(rk, cx, fns, ctx);
    if ((st = lunet_tensor_convert(&r, rk, rdt)))
        goto done;
    st = lunet_autograd_finish(out, r, ad_op, 1, &x, NULL, args);
    r = NULL;
done:
    LUNET_RELEASE(cx, rk, r);
    return st;
}

/*
 * x = fns(x) in place, after the caller's checks (record from lunet_autograd_begin_inplace).
 * Recorded, or in a dtype the kernels do not have (uint8, bool): computed out of place by
 * map_new, then copied back.
 */
static lunet_status_t map_inplace(lunet_tensor_t *x, bool record, bool saves_input,
                                  lunet_loop_fn const fns[3], void *ctx, lunet_op_t ad_op,
                                  const lunet_op_args_t *args)
{
    lunet_tensor_t *src, *r;
    lunet_status_t st;
    if (record) {
        if ((st = inplace_source(&src, x, saves_input)))
            return st;
        return finish_recorded_inplace(x, src, map_new(&r, src, x->dtype, fns, ctx, ad_op, args),
                                       &r);
    }
    if (x->dtype != kernel_dtype(x->dtype)) {
        if ((st = map_new(&r, x, x->dtype, fns, ctx, ad_op, args)))
            return st;
        lunet_copy_cast(x, r);
        lunet_tensor_release(r);
    } else {
        run_map(x, x, fns, ctx);
    }
    lunet_tensor_bump_version(x);
    return LUNET_OK;
}

/* The operand an op refuses whatever its form (PyTorch's message): negating a bool tensor. */
static lunet_status_t check_unary_operand(lunet_unary_op_t op, const lunet_tensor_t *x)
{
    if (op == LUNET_UNARY_NEG && x->dtype == LUNET_DTYPE_BOOL)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Negation, the `-` operator, on a bool tensor is not supported. If you "
            "are trying to invert a mask, use the `~` or `logical_not()` operator "
            "instead.");
    if (x->dtype == LUNET_DTYPE_BOOL && op == LUNET_UNARY_ABS)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"abs_cpu\" not implemented for 'Bool'");
    if (x->dtype == LUNET_DTYPE_BOOL && op == LUNET_UNARY_RELU)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "Boolean inputs not supported for relu");
    return LUNET_OK;
}

lunet_status_t lunet_tensor_unary(lunet_tensor_t **out, lunet_unary_op_t op, lunet_tensor_t *x)
{
    if ((unsigned)op >= LUNET_UNARY_COUNT)
        return lunet_error_set(LUNET_STATUS_VALUE, "unary: unknown op %d", (int)op);
    lunet_status_t st = check_unary_operand(op, x);
    if (st)
        return st;
    lunet_dtype_t rdt = x->dtype;
    if (!lunet_dtype_is_floating(rdt) && unary_table[op].float_only)
        rdt = lunet_default_dtype();
    return map_new(out, x, rdt, unary_table[op].fn, NULL, unary_table[op].ad_op, NULL);
}

lunet_status_t lunet_tensor_unary_(lunet_tensor_t *x, lunet_unary_op_t op)
{
    if ((unsigned)op >= LUNET_UNARY_COUNT)
        return lunet_error_set(LUNET_STATUS_VALUE, "unary: unknown op %d", (int)op);
    bool record;
    lunet_status_t st = lunet_autograd_begin_inplace(&record, x, NULL, unary_table[op].name);
    if (st)
        return st;
    if ((st = lunet_tensor_check_writable(x)))
        return st;
    if (!lunet_dtype_is_floating(x->dtype) && unary_table[op].float_only)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "result type Float can't be cast to the desired output type %s",
                               lunet_dtype_torch_name(x->dtype));
    if ((st = check_unary_operand(op, x)))
        return st;
    /* log and abs read their input in backward */
    bool saves_input = op == LUNET_UNARY_LOG || op == LUNET_UNARY_ABS;
    return map_inplace(x, record, saves_input, unary_table[op].fn, NULL, unary_table[op].ad_op,
                       NULL);
}

/* ---- clamp, where, masked_fill */

typedef struct clamp_ctx {
    double lo, hi;
} clamp_ctx_t;

/* PyTorch's clamp is min(max(x, lo), hi): hi wins when lo > hi; NaN stays NaN. */
static void clamp_f32(KPARAMS)
{
    const clamp_ctx_t *c = ctx;
    const float lo = (float)c->lo, hi = (float)c->hi;
    const bool has_lo = !isnan(c->lo), has_hi = !isnan(c->hi);
    UNARY_LOOP(float, (has_hi && ((has_lo && x < lo) ? lo : x) > hi) ? hi
                      : (has_lo && x < lo)                           ? lo
                                                                     : x);
}

static void clamp_f64(KPARAMS)
{
    const clamp_ctx_t *c = ctx;
    const double lo = c->lo, hi = c->hi;
    const bool has_lo = !isnan(lo), has_hi = !isnan(hi);
    UNARY_LOOP(double, (has_hi && ((has_lo && x < lo) ? lo : x) > hi) ? hi
                       : (has_lo && x < lo)                           ? lo
                                                                      : x);
}

static void clamp_i64(KPARAMS)
{
    const clamp_ctx_t *c = ctx;
    const bool has_lo = !isnan(c->lo), has_hi = !isnan(c->hi);
    const int64_t lo = has_lo ? lunet_f64_to_i64_sat(c->lo) : 0;
    const int64_t hi = has_hi ? lunet_f64_to_i64_sat(c->hi) : 0;
    UNARY_LOOP(int64_t, (has_hi && ((has_lo && x < lo) ? lo : x) > hi) ? hi
                        : (has_lo && x < lo)                           ? lo
                                                                       : x);
}

static lunet_loop_fn const clamp_fns[3] = {clamp_f32, clamp_f64, clamp_i64};

/* A NaN bound is an absent one (None); one of them must be there. The bounds of a uint8
   clamp are cast to uint8 first, as PyTorch casts its scalars (clamp(t, -1) is clamp(t, 255)). */
static lunet_status_t check_clamp_bounds(const lunet_tensor_t *x, double *lo, double *hi)
{
    if (isnan(*lo) && isnan(*hi))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "torch.clamp: At least one of 'min' or 'max' must not be None");
    lunet_status_t st = LUNET_OK;
    for (int k = 0; k < 2 && x->dtype == LUNET_DTYPE_UINT8; k++) {
        double *v = k ? hi : lo;
        if (isnan(*v))
            continue;
        int64_t iv = lunet_f64_to_i64_sat(*v);
        if ((st = lunet_check_int_fits(LUNET_DTYPE_UINT8, iv)))
            return st;
        *v = (uint8_t)iv;
    }
    return st;
}

lunet_status_t lunet_tensor_clamp(lunet_tensor_t **out, lunet_tensor_t *x, double lo, double hi)
{
    lunet_status_t st = check_clamp_bounds(x, &lo, &hi);
    if (st)
        return st;
    clamp_ctx_t c = {lo, hi};
    lunet_op_args_t args = {.d = {lo, hi}, .name = "ClampBackward1"};
    return map_new(out, x, x->dtype, clamp_fns, &c, LUNET_OP_CLAMP, &args);
}

lunet_status_t lunet_tensor_clamp_(lunet_tensor_t *x, double lo, double hi)
{
    bool record;
    lunet_status_t st = lunet_autograd_begin_inplace(&record, x, NULL, "clamp_");
    if (st)
        return st;
    if ((st = lunet_tensor_check_writable(x)) || (st = check_clamp_bounds(x, &lo, &hi)))
        return st;
    clamp_ctx_t c = {lo, hi};
    lunet_op_args_t args = {.d = {lo, hi}, .name = "ClampBackward1"};
    /* clamp's backward reads its input */
    return map_inplace(x, record, true, clamp_fns, &c, LUNET_OP_CLAMP, &args);
}

/* out = cond ? a : b, all in the same dtype; cond is bool (uint8 storage). */
static void where_loop(char **d, const int64_t *s, int64_t n, void *ctx)
{
    size_t es = *(size_t *)ctx;
    for (int64_t i = 0; i < n; i++) {
        const char *src = *(const uint8_t *)(d[1] + i * s[1]) ? d[2] + i * s[2] : d[3] + i * s[3];
        memcpy(d[0] + i * s[0], src, es);
    }
}

lunet_status_t lunet_tensor_where(lunet_tensor_t **out, lunet_tensor_t *cond, lunet_tensor_t *a,
                                  lunet_tensor_t *b)
{
    if (cond->dtype != LUNET_DTYPE_BOOL && cond->dtype != LUNET_DTYPE_UINT8)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "where expected condition to be a boolean tensor, but got a tensor "
                               "with dtype %s",
                               lunet_dtype_torch_name(cond->dtype));
    int nd, nd2;
    int64_t shape[LUNET_MAX_DIMS], shape2[LUNET_MAX_DIMS];
    lunet_status_t st = lunet_broadcast_shape(&nd, shape, a->ndim, a->shape, b->ndim, b->shape);
    if (st)
        return st;
    if ((st = lunet_broadcast_shape(&nd2, shape2, cond->ndim, cond->shape, nd, shape)))
        return st;
    lunet_dtype_t dt = lunet_result_dtype(a, b);
    lunet_tensor_t *ca = NULL, *cb = NULL, *r = NULL;
    if ((st = lunet_tensor_convert(&ca, a, dt)) || (st = lunet_tensor_convert(&cb, b, dt)) ||
        (st = lunet_tensor_empty(&r, dt, nd2, shape2)))
        goto done;
    lunet_iter_t it;
    size_t es = lunet_dtype_size(dt);
    lunet_iter_init(&it, nd2, shape2);
    lunet_iter_add(&it, r);
    lunet_iter_add(&it, cond);
    lunet_iter_add(&it, ca);
    lunet_iter_add(&it, cb);
    lunet_iter_run(&it, where_loop, &es);
    lunet_tensor_t *in[2] = {a, b};
    st = lunet_autograd_finish(out, r, LUNET_OP_WHERE, 2, in, &cond, NULL);
    r = NULL;
done:
    LUNET_RELEASE(ca, cb, r);
    return st;
}

/* v: a 0-d tensor of x's dtype, released here */
static lunet_status_t masked_fill_with(lunet_tensor_t **out, lunet_tensor_t *x,
                                       lunet_tensor_t *mask, lunet_tensor_t *v)
{
    if (mask->dtype != LUNET_DTYPE_BOOL && mask->dtype != LUNET_DTYPE_UINT8) {
        lunet_tensor_release(v); /* 1.13 still takes a uint8 mask, with a deprecation warning */
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "masked_fill_ only supports boolean masks, but got mask with dtype %s",
            lunet_dtype_torch_name(mask->dtype));
    }
    lunet_tensor_t *r;
    lunet_status_t st = lunet_tensor_where(&r, mask, v, x);
    lunet_tensor_release(v);
    if (st)
        return st;
    if (!lunet_shape_equal(r->ndim, r->shape, x->ndim, x->shape)) {
        lunet_tensor_release(r);
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "masked_fill: mask must broadcast to the input");
    }
    *out = r;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_masked_fill(lunet_tensor_t **out, lunet_tensor_t *x,
                                        lunet_tensor_t *mask, double value)
{
    lunet_tensor_t *v;
    lunet_status_t st = lunet_tensor_element_scalar(&v, x->dtype, false, value, 0, false);
    return st ? st : masked_fill_with(out, x, mask, v);
}

lunet_status_t lunet_tensor_masked_fill_int(lunet_tensor_t **out, lunet_tensor_t *x,
                                            lunet_tensor_t *mask, int64_t value)
{
    lunet_tensor_t *v;
    lunet_status_t st = lunet_tensor_element_scalar(&v, x->dtype, true, 0, value, false);
    return st ? st : masked_fill_with(out, x, mask, v);
}
