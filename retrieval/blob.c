/* blob.c — content-addressed storage of original uploads (see blob.h).
 * One upload = one SHA-256, one existence check and, when new, one temp
 * file written, fsynced and renamed into blobs/ab/ plus a directory fsync;
 * reads are plain open/read. Temp files start with '.', so a crash between
 * write and rename leaves only a dot-file that readers and backups skip. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "retrieval/blob.h"

static int sha_valid(const char *sha)
{
    if (!sha || strlen(sha) != 64) return 0;
    for (const char *p = sha; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

zk_rc ret_blob_path(ret_store *s, const char *sha, char *buf, size_t cap, char *err)
{
    if (!sha_valid(sha)) return zk_fail(err, ZK_INVALID, "malformed blob hash");
    int n = snprintf(buf, cap, "%s/blobs/%.2s/%s", ret_store_dir(s), sha, sha + 2);
    if (n < 0 || (size_t)n >= cap) return zk_fail(err, ZK_TOOBIG, "blob path too long");
    return ZK_OK;
}

static int mkdir_ok(const char *path)
{
    return mkdir(path, 0750) == 0 || errno == EEXIST;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

zk_rc ret_blob_put(ret_store *s, const void *data, size_t len, char sha_hex_out[65], char *err)
{
    char path[4096], dir[4096], tmp[4096];
    struct stat sb;
    int fd = -1;
    zk_rc rc = ZK_OK;
    sha_hex_out[0] = '\0';
    if (!data && len) return zk_fail(err, ZK_INVALID, "no data");
    zk_sha256_hex(data ? data : "", len, sha_hex_out);
    if ((rc = ret_blob_path(s, sha_hex_out, path, sizeof path, err)) != ZK_OK) return rc;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == (uint64_t)len)
        return ZK_OK;   /* already stored (blobs are immutable) */

    snprintf(dir, sizeof dir, "%s/blobs", ret_store_dir(s));
    if (!mkdir_ok(dir)) goto io;
    snprintf(dir, sizeof dir, "%s/blobs/%.2s", ret_store_dir(s), sha_hex_out);
    if (!mkdir_ok(dir)) goto io;
    if (snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", dir) >= (int)sizeof tmp) goto io;
    if ((fd = mkstemp(tmp)) < 0) goto io;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) goto io_tmp;
        off += (size_t)w;
    }
    if (fchmod(fd, 0640) != 0 || fsync(fd) != 0) goto io_tmp;
    if (close(fd) != 0) { fd = -1; goto io_tmp; }
    fd = -1;
    if (rename(tmp, path) != 0) goto io_tmp;
    if (fsync_dir(dir) != 0) goto io;
    return ZK_OK;
io_tmp:
    rc = zk_fail(err, ZK_IO, "writing blob %s: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    return rc;
io:
    return zk_fail(err, ZK_IO, "writing blob under %s: %s", dir, strerror(errno));
}

zk_rc ret_blob_open(ret_store *s, const char *sha, int *out_fd, int64_t *out_size, char *err)
{
    char path[4096];
    struct stat sb;
    zk_rc rc;
    *out_fd = -1;
    *out_size = 0;
    if ((rc = ret_blob_path(s, sha, path, sizeof path, err)) != ZK_OK) return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return zk_fail(err, ZK_NOTFOUND, "blob %.12s... is missing", sha);
        return zk_fail(err, ZK_IO, "open blob %.12s...: %s", sha, strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return zk_fail(err, ZK_IO, "blob %.12s... is not a regular file", sha);
    }
    *out_fd = fd;
    *out_size = (int64_t)sb.st_size;
    return ZK_OK;
}

zk_rc ret_blob_read(ret_store *s, const char *sha, size_t max_len, void **out_data, size_t *out_len, char *err)
{
    int fd = -1;
    int64_t size = 0;
    char *data = NULL, got[65];
    size_t off = 0;
    zk_rc rc;
    *out_data = NULL;
    *out_len = 0;
    if ((rc = ret_blob_open(s, sha, &fd, &size, err)) != ZK_OK) return rc;
    if ((uint64_t)size > max_len) {
        rc = zk_fail(err, ZK_TOOBIG, "blob of %lld bytes exceeds %zu", (long long)size, max_len);
        goto out;
    }
    if (!(data = zk_malloc((size_t)size + 1))) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    while (off < (size_t)size) {
        ssize_t r = read(fd, data + off, (size_t)size - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = zk_fail(err, ZK_IO, "read blob %.12s...: %s", sha, r < 0 ? strerror(errno) : "short file");
            goto out;
        }
        off += (size_t)r;
    }
    data[off] = '\0';
    zk_sha256_hex(data, off, got);
    if (strcmp(got, sha) != 0) {
        rc = zk_fail(err, ZK_CORRUPT, "blob %.12s... does not match its hash", sha);
        goto out;
    }
    *out_data = data;
    *out_len = off;
    data = NULL;
out:
    zk_free(data);
    close(fd);
    return rc;
}

zk_rc ret_doc_set_blob(ret_store *s, int64_t doc_id, const char *sha, char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (sha && !sha_valid(sha)) return zk_fail(err, ZK_INVALID, "malformed blob hash");
    if (sqlite3_prepare_v2(db, "UPDATE documents SET blob_sha256 = ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "document blob: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, doc_id);
    if (sqlite3_step(st) != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "document blob: %s", sqlite3_errmsg(db));
    else if (sqlite3_changes(db) == 0) rc = zk_fail(err, ZK_NOTFOUND, "no document %lld", (long long)doc_id);
out:
    sqlite3_finalize(st);
    return rc;
}

zk_rc ret_doc_blob(ret_store *s, int64_t doc_id, char out_sha[65], char *err)
{
    sqlite3 *db = ret_store_db(s);
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    out_sha[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT blob_sha256 FROM documents WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "document blob: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_int64(st, 1, doc_id);
    int step = sqlite3_step(st);
    const char *v = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "document blob: %s", sqlite3_errmsg(db));
    else if (!v || !sha_valid(v)) rc = zk_fail(err, ZK_NOTFOUND, "document %lld has no stored original", (long long)doc_id);
    else memcpy(out_sha, v, 65);
out:
    sqlite3_finalize(st);
    return rc;
}
