/*
 * fuzz_idx.c - libFuzzer target for the IDX parser (`make fuzz`): any byte string must either
 * load or fail with a message; never crash, hang, leak or allocate what the header claims
 * before the body proves it (LUNET_IDX_MAX_BYTES and the gzip ratio bound keep it small).
 * Seeds: tests/idx_corpus.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lunet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lunet_tensor_t *t = NULL;
    if (lunet_idx_read_buffer(&t, data, size, "fuzz") == LUNET_OK) {
        /* a loaded tensor has exactly the elements its shape says */
        int64_t n = 1;
        for (int i = 0; i < t->ndim; i++)
            n *= t->shape[i];
        if (n != t->numel)
            __builtin_trap();
        lunet_tensor_release(t);
    } else if (t != NULL || strstr(lunet_error_message(), "fuzz") == NULL) {
        __builtin_trap(); /* failures leave *out alone and name the source */
    }
    return 0;
}
