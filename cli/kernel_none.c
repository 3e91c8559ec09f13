/*
 * kernel_none.c - `lunet --kernel` in a build without ZeroMQ (make ZMQ=none, or libzmq,
 * libcjson or libcrypto not found by pkg-config): says what is missing.
 */
#include <stdio.h>

#include "kernel.h"

const int lunet_kernel_built = 0;

int lunet_kernel_main(lua_State *L, const char *connection_file)
{
    (void)L;
    (void)connection_file;
    fprintf(stderr, "lunet: this lunet was built without the Jupyter kernel: it needs ZeroMQ "
                    "(libzmq), cJSON and OpenSSL's libcrypto, found through pkg-config "
                    "(libzmq, libcjson, libcrypto).\n"
                    "Install them (Debian: apt-get install libzmq3-dev libcjson-dev libssl-dev) "
                    "and rebuild with `make`.\n");
    return 1;
}
