/* test_blob.c — content-addressed original uploads (retrieval/blob.c): the
 * blobs/ab/cdef... layout, dedup of equal content, read-back with hash
 * verification (a tampered file is CORRUPT), size caps, missing and
 * malformed hashes, no temp files left behind, and documents.blob_sha256. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "retrieval/blob.h"

typedef struct {
    char dir[64];
    ret_store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[ZK_ERRLEN];
    strcpy(f->dir, "/tmp/zk-blob-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (ret_store_open(f->dir, 0, &f->s, err) != ZK_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    ret_store_close(f->s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static void test_put_read(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], sha[65], sha2[65], want[65], path[4096], expect[4096];
    const char data[] = "原始文件 original upload\n";
    struct stat a, b;
    void *got = NULL;
    size_t len = 0;

    assert_int_equal(ret_blob_put(f->s, data, sizeof data - 1, sha, err), ZK_OK);
    zk_sha256_hex(data, sizeof data - 1, want);
    assert_string_equal(sha, want);
    assert_int_equal(ret_blob_path(f->s, sha, path, sizeof path, err), ZK_OK);
    snprintf(expect, sizeof expect, "%s/blobs/%.2s/%s", f->dir, sha, sha + 2);
    assert_string_equal(path, expect);
    assert_int_equal(stat(path, &a), 0);
    assert_int_equal(a.st_size, sizeof data - 1);

    /* equal content: same file, not rewritten */
    assert_int_equal(ret_blob_put(f->s, data, sizeof data - 1, sha2, err), ZK_OK);
    assert_string_equal(sha, sha2);
    assert_int_equal(stat(path, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);

    assert_int_equal(ret_blob_read(f->s, sha, 1 << 20, &got, &len, err), ZK_OK);
    assert_int_equal(len, sizeof data - 1);
    assert_memory_equal(got, data, len);
    assert_int_equal(((char *)got)[len], '\0');
    zk_free(got);
    got = NULL;
    assert_int_equal(ret_blob_read(f->s, sha, 4, &got, &len, err), ZK_TOOBIG);
    assert_null(got);

    int fd = -1;
    int64_t size = 0;
    assert_int_equal(ret_blob_open(f->s, sha, &fd, &size, err), ZK_OK);
    assert_true(fd >= 0);
    assert_int_equal(size, sizeof data - 1);
    close(fd);

    /* no temp files left in the shard directory */
    char shard[4096];
    snprintf(shard, sizeof shard, "%s/blobs/%.2s", f->dir, sha);
    DIR *d = opendir(shard);
    assert_non_null(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') files++;
        else assert_true(!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."));
    closedir(d);
    assert_int_equal(files, 1);

    /* the empty upload is a blob too */
    assert_int_equal(ret_blob_put(f->s, "", 0, sha2, err), ZK_OK);
    assert_string_equal(sha2, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(ret_blob_read(f->s, sha2, 10, &got, &len, err), ZK_OK);
    assert_int_equal(len, 0);
    zk_free(got);

    /* tampering is detected on read */
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    fputc('X', fp);
    fclose(fp);
    got = NULL;
    assert_int_equal(ret_blob_read(f->s, sha, 1 << 20, &got, &len, err), ZK_CORRUPT);
    assert_null(got);
}

static void test_missing_malformed(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], path[4096];
    void *got = NULL;
    size_t len;
    int fd;
    int64_t size;
    const char *absent = "00000000000000000000000000000000000000000000000000000000000000aa";
    assert_int_equal(ret_blob_open(f->s, absent, &fd, &size, err), ZK_NOTFOUND);
    assert_int_equal(fd, -1);
    assert_int_equal(ret_blob_read(f->s, absent, 10, &got, &len, err), ZK_NOTFOUND);
    assert_int_equal(ret_blob_path(f->s, "../../etc/passwd", path, sizeof path, err), ZK_INVALID);
    assert_int_equal(ret_blob_path(f->s, NULL, path, sizeof path, err), ZK_INVALID);
    assert_int_equal(ret_blob_path(f->s, "ABCDEF0000000000000000000000000000000000000000000000000000000000", path,
                                   sizeof path, err), ZK_INVALID);   /* upper case is not the canonical form */
    assert_int_equal(ret_blob_path(f->s, absent, path, 10, err), ZK_TOOBIG);
    assert_int_equal(ret_blob_open(f->s, "zz", &fd, &size, err), ZK_INVALID);
}

static void test_doc_blob(void **state)
{
    fixture *f = *state;
    char err[ZK_ERRLEN], sha[65], got[65];
    sqlite3 *db = ret_store_db(f->s);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO documents(kb_id, ext_id, source, title, sha256) "
                                      "VALUES (1, 'a.pdf', 'a.pdf', 'A', 'x')", NULL, NULL, NULL), SQLITE_OK);
    int64_t doc = sqlite3_last_insert_rowid(db);
    assert_int_equal(ret_doc_blob(f->s, doc, got, err), ZK_NOTFOUND);
    assert_int_equal(ret_blob_put(f->s, "%PDF-1.4", 8, sha, err), ZK_OK);
    assert_int_equal(ret_doc_set_blob(f->s, doc, sha, err), ZK_OK);
    assert_int_equal(ret_doc_blob(f->s, doc, got, err), ZK_OK);
    assert_string_equal(got, sha);
    assert_int_equal(ret_doc_set_blob(f->s, doc + 1, sha, err), ZK_NOTFOUND);
    assert_int_equal(ret_doc_set_blob(f->s, doc, "nothex", err), ZK_INVALID);
    assert_int_equal(ret_doc_set_blob(f->s, doc, NULL, err), ZK_OK);
    assert_int_equal(ret_doc_blob(f->s, doc, got, err), ZK_NOTFOUND);
    assert_int_equal(ret_doc_blob(f->s, doc + 1, got, err), ZK_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doc_blob, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
