/*
 * init.c - torch.nn.init's gain, fans, Kaiming and Xavier initialisations, for nn.init in
 * Lua and for the layers' reset_parameters (Linear, Conv2d) in C (docs/pytorch-parity.md §20).
 *
 * Decisions:
 *  - The bounds and standard deviations are computed in double exactly as torch/nn/init.py
 *    computes them in Python (same operations, same order), then handed to uniform_/normal_,
 *    which round them to the tensor's dtype as PyTorch's kernels do; with random.c's
 *    PyTorch-exact streams the results are PyTorch's bit for bit after the same manual_seed.
 *  - Nonlinearities and fan modes are named by PyTorch's strings ("leaky_relu", "fan_in"),
 *    so that the messages for unknown names are PyTorch's and Lua passes names straight on.
 *  - The fills run with grad mode off (PyTorch's torch.no_grad() in init.py).
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>
#include <string.h>
#include <strings.h>

static const char *const LINEAR_FNS[] = {"linear",           "conv1d",           "conv2d",
                                         "conv3d",           "conv_transpose1d", "conv_transpose2d",
                                         "conv_transpose3d", "sigmoid"};

lunet_status_t lunet_init_calculate_gain(double *out, const char *nonlinearity, bool has_param,
                                         double param)
{
    for (size_t i = 0; i < sizeof LINEAR_FNS / sizeof LINEAR_FNS[0]; i++)
        if (!strcmp(nonlinearity, LINEAR_FNS[i])) {
            *out = 1;
            return LUNET_OK;
        }
    if (!strcmp(nonlinearity, "tanh"))
        *out = 5.0 / 3;
    else if (!strcmp(nonlinearity, "relu"))
        *out = sqrt(2.0);
    else if (!strcmp(nonlinearity, "leaky_relu")) {
        double negative_slope = has_param ? param : 0.01;
        *out = sqrt(2.0 / (1 + negative_slope * negative_slope)); /* ** 2: exact either way */
    } else if (!strcmp(nonlinearity, "selu"))
        *out = 3.0 / 4;
    else
        return lunet_error_set(LUNET_STATUS_VALUE, "Unsupported nonlinearity %s", nonlinearity);
    return LUNET_OK;
}

lunet_status_t lunet_init_fans(int64_t *fan_in, int64_t *fan_out, const lunet_tensor_t *t)
{
    if (t->ndim < 2)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "Fan in and fan out can not be computed for tensor with fewer than 2 "
            "dimensions");
    int64_t receptive_field_size = 1; /* a product of sizes of a tensor that exists: no overflow */
    for (int d = 2; d < t->ndim; d++)
        receptive_field_size *= t->shape[d];
    *fan_in = t->shape[1] * receptive_field_size;
    *fan_out = t->shape[0] * receptive_field_size;
    return LUNET_OK;
}

/* _calculate_correct_fan: mode is compared lower-cased, as PyTorch does. */
static lunet_status_t correct_fan(double *fan, const lunet_tensor_t *t, const char *mode)
{
    bool in = !strcasecmp(mode, "fan_in"), out = !strcasecmp(mode, "fan_out");
    if (!in && !out) {
        char lower[64];
        size_t n = 0;
        for (; mode[n] && n + 1 < sizeof lower; n++)
            lower[n] = (char)((mode[n] >= 'A' && mode[n] <= 'Z') ? mode[n] - 'A' + 'a' : mode[n]);
        lower[n] = 0;
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "Mode %s not supported, please use one of ['fan_in', 'fan_out']",
                               lower);
    }
    int64_t fan_in, fan_out;
    lunet_status_t st = lunet_init_fans(&fan_in, &fan_out, t);
    if (!st)
        *fan = (double)(in ? fan_in : fan_out);
    return st;
}

static lunet_status_t fill_uniform(lunet_tensor_t *t, lunet_generator_t *g, double bound)
{
    bool was = lunet_set_grad_enabled(false);
    lunet_status_t st = lunet_tensor_uniform_(t, g, -bound, bound);
    lunet_set_grad_enabled(was);
    return st;
}

static lunet_status_t fill_normal(lunet_tensor_t *t, lunet_generator_t *g, double std)
{
    bool was = lunet_set_grad_enabled(false);
    lunet_status_t st = lunet_tensor_normal_(t, g, 0.0, std);
    lunet_set_grad_enabled(was);
    return st;
}

/* kaiming_uniform_ (U(-b, b), b = sqrt(3) * std) or kaiming_normal_ (N(0, std)), std =
   gain / sqrt(fan); a tensor with no elements is left alone (PyTorch: a no-op). */
static lunet_status_t kaiming(lunet_tensor_t *t, lunet_generator_t *g, double a, const char *mode,
                              const char *nonlinearity, bool normal)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] == 0)
            return LUNET_OK;
    double fan = 0, gain = 0;
    lunet_status_t st = correct_fan(&fan, t, mode);
    if (!st)
        st = lunet_init_calculate_gain(&gain, nonlinearity, true, a);
    if (st)
        return st;
    double std = gain / sqrt(fan);
    return normal ? fill_normal(t, g, std) : fill_uniform(t, g, sqrt(3.0) * std);
}

lunet_status_t lunet_init_kaiming_uniform_(lunet_tensor_t *t, lunet_generator_t *g, double a,
                                           const char *mode, const char *nonlinearity)
{
    return kaiming(t, g, a, mode, nonlinearity, false);
}

lunet_status_t lunet_init_kaiming_normal_(lunet_tensor_t *t, lunet_generator_t *g, double a,
                                          const char *mode, const char *nonlinearity)
{
    return kaiming(t, g, a, mode, nonlinearity, true);
}

/* std = gain * sqrt(2 / (fan_in + fan_out)) of xavier_*_ */
static lunet_status_t xavier_std(double *std, const lunet_tensor_t *t, double gain)
{
    int64_t fan_in, fan_out;
    lunet_status_t st = lunet_init_fans(&fan_in, &fan_out, t);
    if (st)
        return st;
    if (fan_in + fan_out == 0)
        return lunet_error_set(LUNET_STATUS_VALUE, "float division by zero"); /* Python's text */
    *std = gain * sqrt(2.0 / (double)(fan_in + fan_out));
    return LUNET_OK;
}

lunet_status_t lunet_init_xavier_uniform_(lunet_tensor_t *t, lunet_generator_t *g, double gain)
{
    double std;
    lunet_status_t st = xavier_std(&std, t, gain);
    return st ? st : fill_uniform(t, g, sqrt(3.0) * std);
}

lunet_status_t lunet_init_xavier_normal_(lunet_tensor_t *t, lunet_generator_t *g, double gain)
{
    double std;
    lunet_status_t st = xavier_std(&std, t, gain);
    return st ? st : fill_normal(t, g, std);
}

lunet_status_t lunet_init_layer_reset(lunet_tensor_t *w, lunet_tensor_t *b, lunet_generator_t *g)
{
    /* nn.Linear / nn.Conv2d reset_parameters: kaiming_uniform_(w, a=sqrt(5)), then the bias
       from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (0 when fan_in is 0) */
    lunet_status_t st = lunet_init_kaiming_uniform_(w, g, sqrt(5.0), "fan_in", "leaky_relu");
    if (st || !b)
        return st;
    int64_t fan_in, fan_out;
    if ((st = lunet_init_fans(&fan_in, &fan_out, w)))
        return st;
    return fill_uniform(b, g, fan_in > 0 ? 1 / sqrt((double)fan_in) : 0.0);
}
