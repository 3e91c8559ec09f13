/*
 * kernel_spec.c - `lunet --install-kernel [--user | --prefix P]`: writes the Jupyter kernel
 * spec (kernel.json and the logos) that starts this very executable.
 *
 * Decisions:
 *  - The spec names the executable by its absolute path (/proc/self/exe), so a build tree's
 *    build/lunet can be installed for the user without `make install`.
 *  - --user follows jupyter_core's data directory: $JUPYTER_DATA_DIR, else
 *    $XDG_DATA_HOME/jupyter, else ~/.local/share/jupyter.  --prefix P is P/share/jupyter.
 *  - The logos are copied from beside the executable: build/kernelspec/ in a build tree
 *    (made by tools/kernel_logo.lua), PREFIX/share/jupyter/kernels/lunet/ when installed.
 *    Without them the spec still works (frontends show a default icon).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel.h"

extern const int lunet_kernel_built; /* kernel.c: 1, kernel_none.c: 0 */

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[8192];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    fclose(in);
    if (fclose(out) != 0)
        rc = -1;
    return rc;
}

int lunet_kernel_install(const char *self, int argc, char **argv)
{
    (void)self;
    if (!lunet_kernel_built)
        return lunet_kernel_main(NULL, NULL); /* says what the build lacks */
    const char *prefix = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--user") == 0) {
            prefix = NULL;
        } else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
            prefix = argv[++i];
        } else {
            fprintf(stderr,
                    "lunet: --install-kernel: unknown option '%s' "
                    "(expected --user or --prefix P)\n",
                    argv[i]);
            return 1;
        }
    }
    char exe[PATH_MAX], base[PATH_MAX], dir[PATH_MAX + 64], path[PATH_MAX + 96];
    if (!realpath("/proc/self/exe", exe)) {
        fprintf(stderr, "lunet: --install-kernel: cannot find this executable: %s\n",
                strerror(errno));
        return 1;
    }
    const char *env;
    if (prefix)
        snprintf(base, sizeof base, "%s/share/jupyter", prefix);
    else if ((env = getenv("JUPYTER_DATA_DIR")) && *env)
        snprintf(base, sizeof base, "%s", env);
    else if ((env = getenv("XDG_DATA_HOME")) && *env)
        snprintf(base, sizeof base, "%s/jupyter", env);
    else if ((env = getenv("HOME")) && *env)
        snprintf(base, sizeof base, "%s/.local/share/jupyter", env);
    else {
        fprintf(stderr, "lunet: --install-kernel: no HOME; use --prefix P\n");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/kernels/lunet", base);
    if (make_dirs(dir) != 0) {
        fprintf(stderr, "lunet: --install-kernel: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/kernel.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "lunet: --install-kernel: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    fputs("{\n  \"argv\": [", f);
    json_string(f, exe);
    fputs(", \"--kernel\", \"{connection_file}\"],\n"
          "  \"display_name\": \"Lunet (Lua 5.4)\",\n"
          "  \"language\": \"lua\",\n"
          "  \"interrupt_mode\": \"signal\",\n"
          "  \"metadata\": {\"debugger\": false}\n}\n",
          f);
    if (fclose(f) != 0) {
        fprintf(stderr, "lunet: --install-kernel: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    /* logos: build/kernelspec/ beside build/lunet, or ../share/jupyter/kernels/lunet/ */
    char *slash = strrchr(exe, '/');
    *slash = '\0';
    static const char *const logos[] = {"logo-32x32.png", "logo-64x64.png"};
    int copied = 0;
    for (int i = 0; i < 2; i++) {
        char from[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", dir, logos[i]);
        snprintf(from, sizeof from, "%s/kernelspec/%s", exe, logos[i]);
        if (copy_file(from, path) == 0) {
            copied++;
            continue;
        }
        snprintf(from, sizeof from, "%s/../share/jupyter/kernels/lunet/%s", exe, logos[i]);
        if (strcmp(from, path) != 0 && copy_file(from, path) == 0)
            copied++;
    }
    printf("installed the Jupyter kernel spec \"lunet\" in %s%s\n", dir,
           copied == 2 ? "" : " (without logos: none found beside the executable)");
    return 0;
}
