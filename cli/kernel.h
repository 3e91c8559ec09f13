/*
 * kernel.h - `lunet --kernel CONNECTION_FILE`: a Jupyter kernel (messaging protocol 5.3)
 * serving the lua_State of the lunet program.
 */
#ifndef LUNET_KERNEL_H
#define LUNET_KERNEL_H

#include <lua.h>

/*
 * Serves the connection file's sockets until a shutdown request.  L has the standard
 * libraries and lunet open.  Returns 0 after a clean shutdown, 1 when the kernel could not
 * start (the reason is on stderr).
 */
int lunet_kernel_main(lua_State *L, const char *connection_file);

/*
 * Writes the kernel spec (kernel.json, logos) for this executable into
 * <dir>/kernels/lunet, dir being $JUPYTER_DATA_DIR or ~/.local/share/jupyter (--user,
 * the default), or PREFIX/share/jupyter (--prefix PREFIX).  argv holds the options after
 * --install-kernel.  Returns 0, or 1 with the reason on stderr.
 */
int lunet_kernel_install(const char *self, int argc, char **argv);

#endif /* LUNET_KERNEL_H */
