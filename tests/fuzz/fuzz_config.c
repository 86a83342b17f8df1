/*
 * fuzz_config.c - libFuzzer target for the configuration file parser and
 * the peers list: whatever the bytes, config_load_file() must return 0 or
 * an error with a message, never crash, leak or read out of bounds, and a
 * configuration it accepts must validate or fail validation cleanly.
 *
 * The input is written to one memfd and read back through /proc/self/fd,
 * the same path a real file takes through config_load_file().
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "node/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    struct config c;
    char err[512];

    if (fd < 0) {
        fd = memfd_create("fuzz_config", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 ||
        (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        abort();
    if (config_defaults(&c) != 0)
        return 0;
    err[0] = '\0';
    if (config_load_file(&c, path, err, sizeof(err)) == 0) {
        if (config_validate(&c, err, sizeof(err)) == 0) {
            struct config_member m[CONFIG_MAX_MEMBERS];
            uint32_t n, self;
            if (config_members(&c, m, CONFIG_MAX_MEMBERS, &n, &self, err,
                               sizeof(err)) != 0 ||
                self >= n)
                abort(); /* validate accepted what members refuses */
        }
    } else if (err[0] == '\0') {
        abort(); /* every error says why */
    }
    config_free(&c);
    return 0;
}
