/*
 * embed_host - a C program that embeds Lua and Lunet (lunet_embed.h):
 *   1. makes its own data in C: 600 points in four Gaussian blobs with XOR labels;
 *   2. wraps its float buffer as a tensor without copying, and its labels likewise;
 *   3. runs train.lua in its own lua_State, passing both tensors; the script trains an MLP
 *      with lunet.nn and optim.SGD and returns the predicted classes;
 *   4. reads the predictions back in C and prints the accuracy;
 *   5. shows that a Lua error (here a shape mismatch) comes back as a message.
 * Exit status 0 only when the accuracy is at least 0.95 and every check holds.
 *
 * usage: embed_host [path/to/train.lua]   (default examples/embed_host/train.lua)
 * build: make examples   (or: cc main.c $(pkg-config --cflags --libs lunet-lua))
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lunet.h"
#include "lunet_embed.h"

#define N 600

/* The host's data: plain C arrays that outlive every tensor wrapping them (see main). */
static float points[N][2];
static int64_t labels[N];

/* xorshift64* and Box-Muller: deterministic data without any library. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static double uniform01(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static double gaussian(void)
{
    double u = uniform01(), v = uniform01();
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Blob k of four centred at (+-1, +-1); class 1 when the signs differ (XOR). */
static void make_data(void)
{
    for (int i = 0; i < N; i++) {
        int k = i % 4;
        double cx = (k & 1) ? 1.0 : -1.0, cy = (k & 2) ? 1.0 : -1.0;
        points[i][0] = (float)(cx + 0.3 * gaussian());
        points[i][1] = (float)(cy + 0.3 * gaussian());
        labels[i] = (cx * cy < 0) ? 1 : 0;
    }
}

int main(int argc, char **argv)
{
    const char *script = argc > 1 ? argv[1] : "examples/embed_host/train.lua";
    char err[2048];
    int ok = 1;

    make_data();

    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "embed_host: cannot create a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    if (lunet_lua_open(L, 1, err, sizeof err) != LUA_OK) {
        fprintf(stderr, "embed_host: opening lunet failed: %s\n", err);
        lua_close(L);
        return 1;
    }

    /* Zero-copy tensors over the host's arrays.  release_fn is NULL: the arrays are static,
       so they outlive lua_close, after which no tensor uses them. */
    lunet_tensor_t *X, *y;
    if (lunet_tensor_wrap(&X, LUNET_DTYPE_FLOAT32, 2, (const int64_t[]){N, 2}, points, NULL,
                          NULL) != LUNET_OK ||
        lunet_tensor_wrap(&y, LUNET_DTYPE_INT64, 1, (const int64_t[]){N}, labels, NULL, NULL) !=
            LUNET_OK) {
        fprintf(stderr, "embed_host: %s\n", lunet_error_message());
        lua_close(L);
        return 1;
    }
    lunet_lua_push_tensor(L, X); /* Lua takes its own references ... */
    lunet_lua_push_tensor(L, y);
    if (lunet_tensor_data(lunet_lua_to_tensor(L, -2)) != (void *)points) {
        fprintf(stderr, "embed_host: the Lua tensor does not share the host buffer\n");
        ok = 0;
    }
    lunet_tensor_release(X); /* ... so the host drops its own now */
    lunet_tensor_release(y);

    /* train.lua(X, y) -> predictions (int64 (N)), final loss */
    if (lunet_lua_dofile(L, script, 2, 2, err, sizeof err) != LUA_OK) {
        fprintf(stderr, "embed_host: %s failed:\n%s\n", script, err);
        lua_close(L);
        return 1;
    }
    double loss = lua_tonumber(L, -1);
    lunet_tensor_t *pred = lunet_lua_retain_tensor(L, -2); /* ours until we release it */
    lua_pop(L, 2);
    if (!pred || pred->ndim != 1 || pred->shape[0] != N) {
        fprintf(stderr, "embed_host: train.lua must return a tensor of %d predictions\n", N);
        lunet_tensor_release(pred);
        lua_close(L);
        return 1;
    }
    int correct = 0;
    for (int i = 0; i < N; i++)
        correct += (int64_t)lunet_tensor_get(pred, i) == labels[i];
    lunet_tensor_release(pred);
    double acc = (double)correct / N;
    printf("embed_host: trained in Lua on %d points from C: loss %.4f, accuracy %.3f\n", N, loss,
           acc);
    if (acc < 0.95) {
        fprintf(stderr, "embed_host: accuracy %.3f is below 0.95\n", acc);
        ok = 0;
    }

    /* An error inside Lunet comes back as a message; the state stays usable. */
    int st = lunet_lua_dostring(L, "return lunet.ones(2, 3) + lunet.ones(4, 3)", "=check", 0, 1,
                                err, sizeof err);
    const char *want = "The size of tensor a (2) must match the size of tensor b (4)";
    if (st == LUA_OK || !strstr(err, want)) {
        fprintf(stderr, "embed_host: expected a shape error, got status %d: %s\n", st, err);
        ok = 0;
    } else {
        printf("embed_host: error reported to the host: %.*s\n", (int)strcspn(err, "\n"), err);
    }
    if (lunet_lua_dostring(L, "return lunet.arange(4):sum():item()", NULL, 0, 1, err, sizeof err) !=
        LUA_OK) {
        fprintf(stderr, "embed_host: the state is not usable after an error: %s\n", err);
        ok = 0;
    } else {
        if (lua_tointeger(L, -1) != 6) {
            fprintf(stderr, "embed_host: arange(4):sum() gave %s\n", lua_tostring(L, -1));
            ok = 0;
        }
        lua_pop(L, 1);
    }

    lua_close(L); /* the last tensors over points/labels go away here */
    printf("embed_host: %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
