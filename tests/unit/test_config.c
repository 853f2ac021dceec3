/* test_config.c — the INI loader: sections, comments, quotes, defaults,
 * ZHIKU_SECTION_KEY overrides, ${ENV} expansion, unknown keys, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[64];

static void write_conf(const char *text)
{
    strcpy(path, "/tmp/zk-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_defaults_without_file(void **state)
{
    (void)state;
    zk_config *c = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(zk_config_load("/nonexistent/zhiku.conf", 0, &c, err), ZK_OK);
    assert_int_equal(zk_config_int(c, "chunk", "size"), 700);
    assert_string_equal(zk_config_get(c, "embedding", "provider"), "builtin");
    assert_null(zk_config_get(c, "nosuch", "key"));
    zk_config_free(c);
    /* an explicit --config that is missing is an error */
    assert_int_equal(zk_config_load("/nonexistent/zhiku.conf", 1, &c, err), ZK_CONFIG);
    assert_non_null(strstr(err, "/nonexistent/zhiku.conf"));
    zk_config_free(NULL);
}

static void test_parse_values(void **state)
{
    (void)state;
    write_conf("; comment\n# another\n[chunk]\nsize = 300   ; inline comment\n"
               "overlap=40\n\n[search]\nbm25_weight = \"0.7\"\nvector_weight='0.25'\n"
               "[log]\nlevel = info # trailing\n[chunk]\nsize = 320\n");
    zk_config *c = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(zk_config_load(path, 1, &c, err), ZK_OK);
    assert_int_equal(zk_config_int(c, "chunk", "size"), 320);   /* last wins */
    assert_int_equal(zk_config_int(c, "chunk", "overlap"), 40);
    assert_true(zk_config_double(c, "search", "bm25_weight") == 0.7);
    assert_true(zk_config_double(c, "search", "vector_weight") == 0.25);
    assert_string_equal(zk_config_get(c, "log", "level"), "info");
    assert_int_equal(zk_config_unknown_count(c), 0);
    zk_config_free(c);
    unlink(path);
}

static void test_env_override_and_expansion(void **state)
{
    (void)state;
    write_conf("[chunk]\nsize = 300\n[embedding]\nprovider = ${ZK_TEST_PROVIDER}\n");
    setenv("ZHIKU_CHUNK_SIZE", "777", 1);
    setenv("ZK_TEST_PROVIDER", "builtin-from-env", 1);
    zk_config *c = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(zk_config_load(path, 1, &c, err), ZK_OK);
    assert_int_equal(zk_config_int(c, "chunk", "size"), 777);
    assert_string_equal(zk_config_get(c, "embedding", "provider"), "builtin-from-env");
    unsetenv("ZK_TEST_PROVIDER");
    /* unset variables expand to empty */
    zk_config_free(c);
    write_conf("[embedding]\nprovider = a${ZK_TEST_UNSET_VAR}b\n");
    assert_int_equal(zk_config_load(path, 1, &c, err), ZK_OK);
    assert_string_equal(zk_config_get(c, "embedding", "provider"), "ab");
    unsetenv("ZHIKU_CHUNK_SIZE");
    assert_int_equal(zk_config_int(c, "chunk", "size"), 700);
    zk_config_free(c);
    unlink(path);
}

static void test_unknown_keys_and_errors(void **state)
{
    (void)state;
    zk_log_set_level(ZK_LOG_ERROR);   /* keep the warning out of the test log */
    write_conf("[chunk]\nsize = 1\nsizee = 2\n[bogus]\nx = 1\n");
    zk_config *c = NULL;
    char err[ZK_ERRLEN];
    assert_int_equal(zk_config_load(path, 1, &c, err), ZK_OK);
    assert_int_equal(zk_config_unknown_count(c), 2);
    zk_config_free(c);
    unlink(path);

    write_conf("size = 1\n");
    assert_int_equal(zk_config_load(path, 1, &c, err), ZK_CONFIG);
    assert_non_null(strstr(err, ":1:"));
    unlink(path);
    write_conf("[chunk\nsize = 1\n");
    assert_int_equal(zk_config_load(path, 1, &c, err), ZK_CONFIG);
    unlink(path);
    write_conf("[chunk]\njust words\n");
    assert_int_equal(zk_config_load(path, 1, &c, err), ZK_CONFIG);
    assert_non_null(strstr(err, ":2:"));
    unlink(path);
}

static void test_dump_masks_nothing_secret_by_default(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    zk_config_dump(NULL, f);
    fclose(f);
    assert_non_null(strstr(buf, "[chunk]"));
    assert_non_null(strstr(buf, "size = 700"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_file),
        cmocka_unit_test(test_parse_values),
        cmocka_unit_test(test_env_override_and_expansion),
        cmocka_unit_test(test_unknown_keys_and_errors),
        cmocka_unit_test(test_dump_masks_nothing_secret_by_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
