/* fuzz_util.h — tiny helpers shared by the libFuzzer targets in fuzz/:
 * a NUL-terminated copy of the input (parsers take C strings), a
 * deterministic byte-driven split for feeding streams in pieces, and a
 * temporary config file for the webhook adapters. Header-only, test code. */
#ifndef ZK_FUZZ_UTIL_H
#define ZK_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zk.h"
#include "config.h"

/* NUL-terminated heap copy of data[0..size) (caller frees). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Piece lengths for feeding a stream: derived from the input bytes
 * themselves so a crash reproduces exactly; 1..17 bytes per piece. */
static inline size_t fuzz_piece(const uint8_t *data, size_t size, size_t off)
{
    size_t n = 1 + (size_t)(data[(off * 31u) % size] % 17u);
    return n > size - off ? size - off : n;
}

/* Load a zk_config from ini text via a temporary file (aborts on failure:
 * this is harness setup, not the code under test). */
static inline zk_config *fuzz_config(const char *ini)
{
    char path[] = "/tmp/zk-fuzz-XXXXXX", err[ZK_ERRLEN];
    int fd = mkstemp(path);
    if (fd < 0) abort();
    size_t n = strlen(ini);
    if (write(fd, ini, n) != (ssize_t)n) abort();
    close(fd);
    zk_config *cfg = NULL;
    if (zk_config_load(path, 1, &cfg, err) != ZK_OK) { fprintf(stderr, "fuzz config: %s\n", err); abort(); }
    unlink(path);
    return cfg;
}

#endif
