/*
 * activation.c - the activations that come with CNNs: leaky_relu, elu, gelu (exact and tanh),
 * softplus and log_sigmoid, with their gradients.
 *
 * Decisions:
 *  - One driver for all five: a contiguous copy of x, one pass that computes y in x's dtype
 *    (float32 with float libm calls, as PyTorch's scalar paths do), and one autograd op,
 *    LUNET_OP_ACTIVATION, whose node carries the kind (args.i[1]) and PyTorch's grad_fn name
 *    ("LeakyReluBackward0", ...: ACT_NAMES below).  The backward pass reads the saved input,
 *    as PyTorch's *_backward kernels do.
 *  - The formulas are PyTorch 1.13's (Activation.cpp): softplus returns x where x beta >
 *    threshold, log_sigmoid is min(x, 0) - log1p(exp(-|x|)), elu is alpha (exp(x) - 1) for
 *    x <= 0.  PyTorch vectorises some of them with its own exp/erf, so float32 results may
 *    differ from it in the last bit; the tests use a tolerance here.
 */
#include "autograd.h"
#include "internal.h"
#include "nn_kernels.h"

#include <math.h>

#define INLINE static inline __attribute__((always_inline))

typedef enum act_kind {
    ACT_KIND_LEAKY_RELU,
    ACT_KIND_ELU,
    ACT_KIND_GELU,
    ACT_KIND_SOFTPLUS,
    ACT_KIND_LOG_SIGMOID,
    ACT_KIND_COUNT
} act_kind_t;

/* Each kind's names in PyTorch: the kernel its dtype error names, and its grad_fn. */
static const struct act_names {
    const char *kernel, *grad_fn;
} ACT_NAMES[] = {
    [ACT_KIND_LEAKY_RELU] = {"leaky_relu_cpu", "LeakyReluBackward0"},
    [ACT_KIND_ELU] = {"elu_cpu", "EluBackward0"},
    [ACT_KIND_GELU] = {"GeluKernelImpl", "GeluBackward0"},
    [ACT_KIND_SOFTPLUS] = {"softplus_cpu", "SoftplusBackward0"},
    [ACT_KIND_LOG_SIGMOID] = {"log_sigmoid_cpu", "LogSigmoidBackward0"},
};
_Static_assert(sizeof ACT_NAMES / sizeof ACT_NAMES[0] == ACT_KIND_COUNT, "one row per kind");

/* The kind and its parameters (d0, d1; i0 = gelu's tanh flag). */
typedef struct act_params {
    act_kind_t kind;
    double d0, d1;
    int64_t i0;
} act_params_t;

#define SQRT_2_OVER_PI 0.79788456080286535588
#define INV_SQRT_2PI 0.39894228040143267794
#define SQRT1_2 0.70710678118654752440

INLINE double act_f64(double x, const act_params_t *p)
{
    switch (p->kind) {
    case ACT_KIND_LEAKY_RELU:
        return x > 0 ? x : x * p->d0;
    case ACT_KIND_ELU:
        return x > 0 ? x : p->d0 * (exp(x) - 1);
    case ACT_KIND_GELU:
        if (p->i0) {
            double inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
            return 0.5 * x * (1 + tanh(inner));
        }
        return x * 0.5 * (1 + erf(x * SQRT1_2));
    case ACT_KIND_SOFTPLUS:
        return x * p->d0 > p->d1 ? x : log1p(exp(x * p->d0)) / p->d0;
    default: /* LOG_SIGMOID */
        return (x < 0 ? x : 0) - log1p(exp(-fabs(x)));
    }
}

INLINE float act_f32(float x, const act_params_t *p)
{
    float a = (float)p->d0, b = (float)p->d1;
    switch (p->kind) {
    case ACT_KIND_LEAKY_RELU:
        return x > 0 ? x : x * a;
    case ACT_KIND_ELU:
        return x > 0 ? x : a * (expf(x) - 1);
    case ACT_KIND_GELU:
        if (p->i0) {
            float inner = (float)SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
            return 0.5f * x * (1 + tanhf(inner));
        }
        return x * 0.5f * (1 + erff(x * (float)SQRT1_2));
    case ACT_KIND_SOFTPLUS:
        return x * a > b ? x : log1pf(expf(x * a)) / a;
    default:
        return (x < 0 ? x : 0) - log1pf(expf(-fabsf(x)));
    }
}

/* d y / d x at x, times g. */
INLINE double act_grad_f64(double g, double x, const act_params_t *p)
{
    switch (p->kind) {
    case ACT_KIND_LEAKY_RELU:
        return x > 0 ? g : g * p->d0;
    case ACT_KIND_ELU: /* PyTorch tests x <= 0: a NaN input passes g through */
        return x <= 0 ? g * p->d0 * exp(x) : g;
    case ACT_KIND_GELU:
        if (p->i0) {
            double x2 = x * x, inner = SQRT_2_OVER_PI * (x + 0.044715 * x2 * x);
            double t = tanh(inner);
            double left = 0.5 * x, right = 1 + t;
            double dinner = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x2);
            return g * (0.5 * right + left * (1 - t * t) * dinner);
        } else {
            double cdf = 0.5 * (1 + erf(x * SQRT1_2));
            double pdf = exp(-0.5 * x * x) * INV_SQRT_2PI;
            return g * (cdf + x * pdf);
        }
    case ACT_KIND_SOFTPLUS: {
        double z = exp(x * p->d0);
        return x * p->d0 > p->d1 ? g : g * z / (z + 1);
    }
    default: {
        double z = exp(-fabs(x));
        return x < 0 ? g * (1 - z / (1 + z)) : g * (z / (1 + z));
    }
    }
}

INLINE float act_grad_f32(float g, float x, const act_params_t *p)
{
    float a = (float)p->d0, b = (float)p->d1;
    switch (p->kind) {
    case ACT_KIND_LEAKY_RELU:
        return x > 0 ? g : g * a;
    case ACT_KIND_ELU:
        return x <= 0 ? g * a * expf(x) : g;
    case ACT_KIND_GELU:
        if (p->i0) {
            float x2 = x * x, inner = (float)SQRT_2_OVER_PI * (x + 0.044715f * x2 * x);
            float t = tanhf(inner);
            float left = 0.5f * x, right = 1 + t;
            float dinner = (float)SQRT_2_OVER_PI * (1 + 3 * 0.044715f * x2);
            return g * (0.5f * right + left * (1 - t * t) * dinner);
        } else {
            float cdf = 0.5f * (1 + erff(x * (float)SQRT1_2));
            float pdf = expf(-0.5f * x * x) * (float)INV_SQRT_2PI;
            return g * (cdf + x * pdf);
        }
    case ACT_KIND_SOFTPLUS: {
        float z = expf(x * a);
        return x * a > b ? g : g * z / (z + 1);
    }
    default: {
        float z = expf(-fabsf(x));
        return x < 0 ? g * (1 - z / (1 + z)) : g * (z / (1 + z));
    }
    }
}

// x (any shape) -> y (same shape, contiguous)
static lunet_status_t act_forward(lunet_tensor_t **out, lunet_tensor_t *x, const act_params_t *p)
{
    if (!lunet_dtype_is_floating(x->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"%s\" not implemented for '%s'",
                               ACT_NAMES[p->kind].kernel, lunet_dtype_torch_name(x->dtype));
    lunet_tensor_t *xc = NULL, *y = NULL;
    lunet_status_t st;
    if ((st = lunet_tensor_contiguous(&xc, x)) || (st = lunet_tensor_empty_like(&y, x, x->dtype)))
        goto done;
    int64_t n = x->numel;
    if (x->dtype == LUNET_DTYPE_FLOAT32) {
        const float *px = lunet_tensor_data(xc);
        float *py = lunet_tensor_data(y);
        for (int64_t i = 0; i < n; i++)
            py[i] = act_f32(px[i], p);
    } else {
        const double *px = lunet_tensor_data(xc);
        double *py = lunet_tensor_data(y);
        for (int64_t i = 0; i < n; i++)
            py[i] = act_f64(px[i], p);
    }
    lunet_op_args_t args = {.i = {p->i0, p->kind},
                            .d = {p->d0, p->d1},
                            .name = ACT_NAMES[p->kind].grad_fn};
    st = lunet_autograd_finish(out, y, LUNET_OP_ACTIVATION, 1, &x, NULL, &args);
    y = NULL;
done:
    LUNET_RELEASE(xc, y);
    return st;
}

lunet_status_t lunet_nn_activation_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                            lunet_tensor_t *x, const lunet_op_args_t *args)
{
    act_params_t p = {.kind = (act_kind_t)args->i[1],
                      .d0 = args->d[0],
                      .d1 = args->d[1],
                      .i0 = args->i[0]};
    lunet_tensor_t *gc = NULL, *xc = NULL, *r = NULL;
    lunet_status_t st;
    if ((st = lunet_tensor_contiguous(&gc, g)) || (st = lunet_tensor_contiguous(&xc, x)) ||
        (st = lunet_tensor_empty_like(&r, x, x->dtype)))
        goto done;
    int64_t n = x->numel;
    if (x->dtype == LUNET_DTYPE_FLOAT32) {
        const float *pg = lunet_tensor_data(gc), *px = lunet_tensor_data(xc);
        float *pr = lunet_tensor_data(r);
        for (int64_t i = 0; i < n; i++)
            pr[i] = act_grad_f32(pg[i], px[i], &p);
    } else {
        const double *pg = lunet_tensor_data(gc), *px = lunet_tensor_data(xc);
        double *pr = lunet_tensor_data(r);
        for (int64_t i = 0; i < n; i++)
            pr[i] = act_grad_f64(pg[i], px[i], &p);
    }
    *dx = r;
    r = NULL;
done:
    LUNET_RELEASE(gc, xc, r);
    return st;
}

lunet_status_t lunet_nn_leaky_relu(lunet_tensor_t **out, lunet_tensor_t *x, double negative_slope)
{
    act_params_t p = {.kind = ACT_KIND_LEAKY_RELU, .d0 = negative_slope};
    return act_forward(out, x, &p);
}

lunet_status_t lunet_nn_elu(lunet_tensor_t **out, lunet_tensor_t *x, double alpha)
{
    act_params_t p = {.kind = ACT_KIND_ELU, .d0 = alpha};
    return act_forward(out, x, &p);
}

lunet_status_t lunet_nn_gelu(lunet_tensor_t **out, lunet_tensor_t *x, bool tanh_approximation)
{
    act_params_t p = {.kind = ACT_KIND_GELU, .i0 = tanh_approximation};
    return act_forward(out, x, &p);
}

lunet_status_t lunet_nn_softplus(lunet_tensor_t **out, lunet_tensor_t *x, double beta,
                                 double threshold)
{
    act_params_t p = {.kind = ACT_KIND_SOFTPLUS, .d0 = beta, .d1 = threshold};
    return act_forward(out, x, &p);
}

lunet_status_t lunet_nn_log_sigmoid(lunet_tensor_t **out, lunet_tensor_t *x)
{
    act_params_t p = {.kind = ACT_KIND_LOG_SIGMOID};
    return act_forward(out, x, &p);
}
