/*
 * test_distributed.c - the parts of lunet.distributed a single process checks without
 * starting MPI: op names, backend names, and PyTorch's error for every call before
 * init_process_group.  The collectives themselves run under mpirun (tests/mpi/).
 */
#include "check.h"

static const char
    *const NOT_INIT = "Default process group has not been initialized, please make sure to call "
                      "init_process_group.";

static void test_op_names(void **state)
{
    const char *names[] = {"sum", "avg", "max", "min"};
    for (int i = 0; i < LUNET_DIST_OP_COUNT; i++) {
        lunet_dist_op_t op;
        CHECK_OK(lunet_dist_op_parse(&op, names[i]));
        assert_int_equal(op, i);
        assert_string_equal(lunet_dist_op_name(op), names[i]);
    }
    lunet_dist_op_t op;
    CHECK_OK(lunet_dist_op_parse(&op, "MAX")); /* any case, as ReduceOp.MAX */
    assert_int_equal(op, LUNET_DIST_OP_MAX);
    CHECK_FAILS(lunet_dist_op_parse(&op, "prod"), LUNET_STATUS_VALUE,
                "all_reduce: unknown op 'prod' (expected sum, avg, max or min)");
}

static void test_backend_names(void **state)
{
    CHECK_FAILS(lunet_dist_init("smoke"), LUNET_STATUS_VALUE, "Invalid backend: 'smoke'");
    CHECK_FAILS(lunet_dist_init("nccl"), LUNET_STATUS_RUNTIME,
                "init_process_group: Lunet has only the mpi backend, not 'nccl'");
    CHECK_FAILS(lunet_dist_init("tcp"), LUNET_STATUS_VALUE, "TCP backend has been deprecated");
    CHECK_FAILS(lunet_dist_init(NULL), LUNET_STATUS_VALUE, "backend must be given");
    assert_false(lunet_dist_is_initialized());
}

static void test_calls_before_init(void **state)
{
    int64_t shape[1] = {3};
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_zeros(&t, LUNET_DTYPE_FLOAT32, 1, shape));
    int r = -7;
    CHECK_FAILS(lunet_dist_get_rank(&r), LUNET_STATUS_RUNTIME, NOT_INIT);
    assert_int_equal(r, -7); /* untouched on failure */
    CHECK_FAILS(lunet_dist_get_world_size(&r), LUNET_STATUS_RUNTIME, NOT_INIT);
    CHECK_FAILS(lunet_dist_all_reduce(t, LUNET_DIST_OP_SUM), LUNET_STATUS_RUNTIME, NOT_INIT);
    CHECK_FAILS(lunet_dist_broadcast(t, 0), LUNET_STATUS_RUNTIME, NOT_INIT);
    lunet_tensor_t *outs[1] = {t};
    CHECK_FAILS(lunet_dist_all_gather(outs, 1, t), LUNET_STATUS_RUNTIME, NOT_INIT);
    CHECK_FAILS(lunet_dist_all_reduce_coalesced(t, 1, outs, 1.0), LUNET_STATUS_RUNTIME, NOT_INIT);
    CHECK_FAILS(lunet_dist_barrier(), LUNET_STATUS_RUNTIME, NOT_INIT);
    CHECK_FAILS(lunet_dist_destroy(), LUNET_STATUS_RUNTIME, NOT_INIT);
    lunet_dist_abort(1); /* MPI not running: returns */
    assert_false(lunet_dist_is_initialized());
    lunet_tensor_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_names),
        cmocka_unit_test(test_backend_names),
        cmocka_unit_test(test_calls_before_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
