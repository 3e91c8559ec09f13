/*
 * test_threads.c - the promise of lunet.h's threading paragraph: separate graphs on separate
 * threads are fine, and the default generator may be shared.
 *
 * Several host threads each build and train their own small MLP (lunet_mlp_new, cross
 * entropy, backward, lunet_optimizer_step) on data drawn from their own seeded generator; every
 * thread's final parameters and losses must equal, bit for bit, those of the same job run
 * alone on the main thread first.  The threads allocate and free tensors, storage and
 * autograd nodes all the time, so a shared unlocked free list shows up as a crash or a
 * wrong number.  Another group of threads draws from the default generator at the same time
 * and checks that the draws stay a permutation of one seeded stream.
 * Run under ThreadSanitizer by `make test-tsan`.
 */
#include "check.h"

#include <pthread.h>
#include <stdlib.h>

#define NTHREADS 6
#define STEPS 150
#define BATCH 16
#define NIN 12
#define NHIDDEN 16
#define NCLASS 5

typedef struct job {
    uint64_t seed;
    lunet_dtype_t dt;
    double losses[STEPS];
    double params[NHIDDEN * NIN + NHIDDEN + NCLASS * NHIDDEN + NCLASS];
    int nparams;
    lunet_status_t st;
    char msg[512];
} job_t;

/* One training run; everything it makes is its own.  Returns the first failure. */
static lunet_status_t train(job_t *j)
{
    lunet_generator_t g;
    lunet_generator_seed(&g, j->seed);
    lunet_mlp_t *m = NULL;
    lunet_optimizer_t *opt = NULL;
    lunet_tensor_t *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
    lunet_loss_options_t ce;
    lunet_loss_options_init(&ce);
    lunet_sgd_options_t o = {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4};
    lunet_status_t st = lunet_mlp_new(&m, 3, (const int64_t[]){NIN, NHIDDEN, NCLASS},
                                      LUNET_ACTIVATION_RELU, j->dt, &g);
    lunet_tensor_t *params[4];
    if (st == LUNET_OK) {
        for (int i = 0; i < 4; i++)
            params[i] = lunet_mlp_parameter(m, i);
        st = lunet_sgd_new(&opt, 4, params, &o);
    }
    if (st == LUNET_OK)
        st = lunet_tensor_empty(&x, j->dt, 2, (const int64_t[]){BATCH, NIN});
    if (st == LUNET_OK)
        st = lunet_tensor_empty(&y, LUNET_DTYPE_INT64, 1, (const int64_t[]){BATCH});
    for (int step = 0; st == LUNET_OK && step < STEPS; step++) {
        // a fresh batch each step: x (B, NIN) ~ N(0, 1), y (B) in [0, NCLASS)
        st = lunet_tensor_normal_(x, &g, 0, 1);
        if (st == LUNET_OK)
            st = lunet_tensor_random_int_(y, &g, 0, NCLASS);
        if (st == LUNET_OK)
            st = lunet_optimizer_zero_grad(opt);
        if (st == LUNET_OK)
            st = lunet_mlp_forward(&logits, m, x);
        if (st == LUNET_OK)
            st = lunet_loss_cross_entropy(&loss, logits, y, &ce);
        if (st == LUNET_OK)
            st = lunet_tensor_backward(loss, NULL, false);
        if (st == LUNET_OK)
            st = lunet_optimizer_step(opt);
        if (st == LUNET_OK)
            j->losses[step] = lunet_tensor_get(loss, 0);
        lunet_tensor_release(logits);
        lunet_tensor_release(loss);
        logits = loss = NULL;
    }
    j->nparams = 0;
    for (int i = 0; st == LUNET_OK && i < 4; i++)
        for (int64_t k = 0; k < params[i]->numel; k++)
            j->params[j->nparams++] = lunet_tensor_get(params[i], k);
    lunet_tensor_release(x);
    lunet_tensor_release(y);
    lunet_optimizer_free(opt);
    lunet_mlp_free(m);
    return st;
}

static void *train_thread(void *arg)
{
    job_t *j = arg;
    j->st = train(j);
    if (j->st)
        snprintf(j->msg, sizeof j->msg, "%s", lunet_error_message());
    return NULL;
}

static void test_separate_graphs_match_a_lone_thread(void **state)
{
    (void)state;
    enum { ROUNDS = 4 };
    static job_t alone[NTHREADS], together[ROUNDS][NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        alone[t].seed = 100 + (uint64_t)t;
        alone[t].dt = t % 2 ? LUNET_DTYPE_FLOAT64 : LUNET_DTYPE_FLOAT32;
        CHECK_OK(train(&alone[t]));
    }
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t th[NTHREADS];
        for (int t = 0; t < NTHREADS; t++) {
            together[r][t].seed = alone[t].seed;
            together[r][t].dt = alone[t].dt;
            assert_int_equal(pthread_create(&th[t], NULL, train_thread, &together[r][t]), 0);
        }
        for (int t = 0; t < NTHREADS; t++)
            assert_int_equal(pthread_join(th[t], NULL), 0);
        for (int t = 0; t < NTHREADS; t++) {
            job_t *a = &alone[t], *b = &together[r][t];
            if (b->st)
                fail_msg("round %d thread %d failed: %s", r, t, b->msg);
            assert_int_equal(b->nparams, a->nparams);
            for (int s = 0; s < STEPS; s++)
                if (a->losses[s] != b->losses[s])
                    fail_msg("round %d thread %d step %d: loss %.17g, alone %.17g", r, t, s,
                             b->losses[s], a->losses[s]);
            for (int k = 0; k < a->nparams; k++)
                if (a->params[k] != b->params[k])
                    fail_msg("round %d thread %d parameter %d: %.17g, alone %.17g", r, t, k,
                             b->params[k], a->params[k]);
        }
    }
    /* the losses moved: the runs trained something (not a test of learning, of doing work) */
    assert_true(alone[0].losses[STEPS - 1] != alone[0].losses[0]);
}

/* ---- the default generator from several threads */

#define DRAWS 4000

typedef struct draw_job {
    int64_t values[DRAWS];
    lunet_status_t st;
} draw_job_t;

/* Draws one int64 per call from the default generator, so the threads interleave at the
   finest grain. */
static void *draw_thread(void *arg)
{
    draw_job_t *j = arg;
    lunet_tensor_t *v = NULL;
    j->st = lunet_tensor_empty(&v, LUNET_DTYPE_INT64, 1, (const int64_t[]){1});
    for (int i = 0; j->st == LUNET_OK && i < DRAWS; i++) {
        j->st = lunet_tensor_random_int_(v, NULL, 0, INT64_MAX);
        if (j->st == LUNET_OK)
            j->values[i] = *(int64_t *)lunet_tensor_data(v);
    }
    lunet_tensor_release(v);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_default_generator_is_shared_safely(void **state)
{
    (void)state;
    static draw_job_t jobs[NTHREADS];
    static int64_t want[NTHREADS * DRAWS], got[NTHREADS * DRAWS];
    lunet_generator_t *def = lunet_default_generator();
    /* the stream a lone thread sees */
    lunet_generator_seed(def, 7);
    lunet_tensor_t *all;
    CHECK_OK(lunet_tensor_empty(&all, LUNET_DTYPE_INT64, 1, (const int64_t[]){NTHREADS * DRAWS}));
    CHECK_OK(lunet_tensor_random_int_(all, NULL, 0, INT64_MAX));
    memcpy(want, lunet_tensor_data(all), sizeof want);
    lunet_tensor_release(all);
    /* the same stream shared by NTHREADS threads, one draw per call */
    lunet_generator_seed(def, 7);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, draw_thread, &jobs[t]), 0);
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < NTHREADS; t++) {
        if (jobs[t].st)
            fail_msg("thread %d: status %d", t, (int)jobs[t].st);
        memcpy(got + t * DRAWS, jobs[t].values, sizeof jobs[t].values);
    }
    /* every value drawn exactly once: no draw lost or repeated by a race */
    qsort(want, NTHREADS * DRAWS, sizeof want[0], cmp_i64);
    qsort(got, NTHREADS * DRAWS, sizeof got[0], cmp_i64);
    for (int i = 0; i < NTHREADS * DRAWS; i++)
        if (want[i] != got[i])
            fail_msg("sorted draw %d: %lld, a lone thread drew %lld", i, (long long)got[i],
                     (long long)want[i]);
    assert_int_equal(lunet_generator_initial_seed(def), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_separate_graphs_match_a_lone_thread),
        cmocka_unit_test(test_default_generator_is_shared_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
