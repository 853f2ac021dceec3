/* cmd_backup.c — `zhiku backup DEST`: a consistent copy of a live data
 * directory. Order matters: the vector snapshots first (derived; replay
 * brings an older snapshot up to date, a newer one would be rebuilt), then
 * the database through SQLite's online backup API in small steps, the audit
 * log's own database (audit.db) likewise, then the
 * blobs (immutable, content-addressed: hard-linked when possible), so every
 * blob the copied database refers to is present. Runs next to a serving or
 * ingesting zhiku; in WAL mode the copy never blocks their writes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "retrieval/audit.h"

#define BACKUP_STEP_PAGES 256      /* ~1 MiB at 4 KiB pages per read transaction */
#define BACKUP_MAX_RESTARTS 3      /* then copy in one step (a WAL read snapshot) */

typedef struct {
    long files, linked, copied;
    long long bytes;
} copy_stats;

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

/* Copy src to dst through dst.partial + fsync + rename. */
static zk_rc copy_file(const char *src, const char *dst, long long *out_bytes, char *err)
{
    char tmp[PATH_MAX], buf[65536];
    int in = -1, out = -1;
    long long total = 0;
    zk_rc rc = ZK_OK;
    if (snprintf(tmp, sizeof tmp, "%s.partial", dst) >= (int)sizeof tmp)
        return zk_fail(err, ZK_INVALID, "path too long: %s", dst);
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno == ENOENT) return ZK_NOTFOUND;   /* replaced under us: the caller skips it */
        return zk_fail(err, ZK_IO, "open %s: %s", src, strerror(errno));
    }
    if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
        rc = zk_fail(err, ZK_IO, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { rc = zk_fail(err, ZK_IO, "read %s: %s", src, strerror(errno)); goto out; }
        if (r == 0) break;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) { rc = zk_fail(err, ZK_IO, "write %s: %s", tmp, strerror(errno)); goto out; }
            off += w;
        }
        total += r;
    }
    if (fsync(out) != 0 || close(out) != 0) {
        out = -1;
        rc = zk_fail(err, ZK_IO, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    out = -1;
    if (rename(tmp, dst) != 0) { rc = zk_fail(err, ZK_IO, "rename %s: %s", tmp, strerror(errno)); goto out; }
    *out_bytes += total;
out:
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    if (rc != ZK_OK) unlink(tmp);
    return rc;
}

/* Temp files of the store (blob ".tmp-*", snapshot "*.tmp.*", our ".partial") are skipped. */
static int skip_name(const char *name)
{
    return name[0] == '.' || strstr(name, ".tmp.") != NULL || strstr(name, ".partial") != NULL;
}

/* Copy the regular files of src_dir/<sub>/<file> (one level of
 * subdirectories, the layout of blobs/ and vectors/) into dst_dir.
 * link_ok: hard-link immutable files instead of copying when possible. */
static zk_rc copy_tree2(const char *src_dir, const char *dst_dir, int link_ok, copy_stats *st, char *err)
{
    DIR *top = opendir(src_dir), *sub = NULL;
    struct dirent *e, *f;
    char sdir[PATH_MAX], ddir[PATH_MAX], sp[PATH_MAX], dp[PATH_MAX];
    struct stat sb;
    zk_rc rc = ZK_OK;
    if (!top) return errno == ENOENT ? ZK_OK : zk_fail(err, ZK_IO, "open %s: %s", src_dir, strerror(errno));
    while ((e = readdir(top)) != NULL) {
        if (skip_name(e->d_name)) continue;
        snprintf(sdir, sizeof sdir, "%s/%s", src_dir, e->d_name);
        if (stat(sdir, &sb) != 0 || !S_ISDIR(sb.st_mode)) continue;
        snprintf(ddir, sizeof ddir, "%s/%s", dst_dir, e->d_name);
        if (zk_mkdir_p(ddir) != 0) { rc = zk_fail(err, ZK_IO, "mkdir %s: %s", ddir, strerror(errno)); goto out; }
        if (!(sub = opendir(sdir))) { rc = zk_fail(err, ZK_IO, "open %s: %s", sdir, strerror(errno)); goto out; }
        while ((f = readdir(sub)) != NULL) {
            if (skip_name(f->d_name)) continue;
            if (snprintf(sp, sizeof sp, "%s/%s", sdir, f->d_name) >= (int)sizeof sp ||
                snprintf(dp, sizeof dp, "%s/%s", ddir, f->d_name) >= (int)sizeof dp)
                continue;
            if (lstat(sp, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
            if (access(dp, F_OK) == 0) { st->files++; continue; }   /* already there (content-addressed) */
            if (link_ok && link(sp, dp) == 0) {
                st->files++;
                st->linked++;
                st->bytes += sb.st_size;
                continue;
            }
            zk_rc crc = copy_file(sp, dp, &st->bytes, err);
            if (crc == ZK_NOTFOUND) continue;
            if (crc != ZK_OK) { rc = crc; goto out; }
            st->files++;
            st->copied++;
        }
        closedir(sub);
        sub = NULL;
        if (fsync_path(ddir, 1) != 0) { rc = zk_fail(err, ZK_IO, "fsync %s: %s", ddir, strerror(errno)); goto out; }
    }
out:
    if (sub) closedir(sub);
    closedir(top);
    return rc;
}

/* Online backup of src into path (through path.partial); small steps, each
 * its own read transaction. A write by another connection between steps
 * restarts the copy; after a few restarts the rest is done in one step,
 * which in WAL mode is one read snapshot that does not block writers. */
static zk_rc backup_db(sqlite3 *src, const char *path, int *out_pages, int *out_restarts, char *err)
{
    char tmp[PATH_MAX];
    sqlite3 *dst = NULL;
    sqlite3_backup *b = NULL;
    int step_rc, restarts = 0, prev_done = -1, pages = BACKUP_STEP_PAGES;
    zk_rc rc = ZK_OK;
    if (snprintf(tmp, sizeof tmp, "%s.partial", path) >= (int)sizeof tmp)
        return zk_fail(err, ZK_INVALID, "path too long: %s", path);
    unlink(tmp);
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "cannot create %s: %s", tmp, dst ? sqlite3_errmsg(dst) : "out of memory");
        goto out;
    }
    if (!(b = sqlite3_backup_init(dst, "main", src, "main"))) {
        rc = zk_fail(err, ZK_DB, "backup: %s", sqlite3_errmsg(dst));
        goto out;
    }
    for (;;) {
        step_rc = sqlite3_backup_step(b, pages);
        if (step_rc == SQLITE_DONE) break;
        if (step_rc == SQLITE_OK) {
            int done = sqlite3_backup_pagecount(b) - sqlite3_backup_remaining(b);
            if (done < prev_done && ++restarts >= BACKUP_MAX_RESTARTS) pages = -1;
            prev_done = done;
            continue;
        }
        if (step_rc == SQLITE_BUSY || step_rc == SQLITE_LOCKED) {
            sqlite3_sleep(20);
            continue;
        }
        rc = zk_fail(err, ZK_DB, "backup: %s", sqlite3_errstr(step_rc));
        goto out;
    }
    *out_pages = sqlite3_backup_pagecount(b);
    *out_restarts = restarts;
    if (sqlite3_backup_finish(b) != SQLITE_OK) {
        b = NULL;
        rc = zk_fail(err, ZK_DB, "backup: %s", sqlite3_errmsg(dst));
        goto out;
    }
    b = NULL;
    /* the copy is WAL-mode like its source; fold any WAL into the file */
    sqlite3_exec(dst, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    if (sqlite3_close(dst) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "closing %s failed", tmp);
        dst = NULL;
        goto out;
    }
    dst = NULL;
    chmod(tmp, 0640);   /* like the data directory: not world-readable */
    if (rename(tmp, path) != 0) rc = zk_fail(err, ZK_IO, "rename %s: %s", tmp, strerror(errno));
out:
    if (b) sqlite3_backup_finish(b);
    if (dst) sqlite3_close(dst);
    if (rc != ZK_OK) unlink(tmp);
    return rc;
}

/* PRAGMA quick_check of the copy: ok = 1 when it says "ok". */
static zk_rc check_copy(const char *path, int *out_ok, char *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    *out_ok = 0;
    /* the FTS5 tokenizer is not needed: quick_check reads b-trees only */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK) {
        rc = zk_fail(err, ZK_DB, "checking %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *out_ok = v && !strcmp(v, "ok");
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int cmd_backup(cli_ctx *c, int argc, char **argv)
{
    int help = 0, npos = 0, no_vectors = 0, pages = 0, restarts = 0, ok = 0;
    const cli_opt opts[] = {OPT_FLAG("no-vectors", &no_vectors)};
    char src[PATH_MAX], dst[PATH_MAX], real_src[PATH_MAX], real_dst[PATH_MAX], dbpath[PATH_MAX];
    copy_stats vec = {0}, blobs = {0};
    struct stat sb;
    zk_rc rc;
    if (cli_parse("backup", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku backup [--no-vectors] DEST\n\n"
             "Copy the data directory into DEST (created if missing; must not already\n"
             "hold a backup) while zhiku keeps serving and ingesting:\n"
             "  DEST/zhiku.db    consistent snapshot (SQLite online backup API)\n"
             "  DEST/audit.db    the audit log, likewise\n"
             "  DEST/blobs/      original uploads (hard links when on the same file system)\n"
             "  DEST/vectors/    vector index snapshots (derived; rebuilt if missing or stale)\n"
             "To restore: stop the server, move the old data directory away, copy DEST to\n"
             "the data directory, start the server (see docs/OPERATIONS.md).");
        return 0;
    }
    if (npos != 1) return cli_usage_error("backup", npos ? "one destination directory, please" : "missing DEST");
    if (snprintf(src, sizeof src, "%s", c->data_dir) >= (int)sizeof src ||
        snprintf(dst, sizeof dst, "%s", argv[0]) >= (int)sizeof dst ||
        snprintf(dbpath, sizeof dbpath, "%s/zhiku.db", src) >= (int)sizeof dbpath)
        return cli_fail(c, zk_fail(c->err, ZK_INVALID, "path too long"));
    if (stat(dbpath, &sb) != 0) {
        return cli_fail(c, zk_fail(c->err, ZK_NOTFOUND, "no database at %s", dbpath));
    }
    if (zk_mkdir_p(dst) != 0) {
        return cli_fail(c, zk_fail(c->err, ZK_IO, "cannot create %s: %s", dst, strerror(errno)));
    }
    if (!realpath(src, real_src) || !realpath(dst, real_dst)) {
        return cli_fail(c, zk_fail(c->err, ZK_IO, "cannot resolve %s: %s", dst, strerror(errno)));
    }
    size_t sl = strlen(real_src);
    if (!strcmp(real_src, real_dst) || (!strncmp(real_dst, real_src, sl) && real_dst[sl] == '/')) {
        return cli_fail(c, zk_fail(c->err, ZK_INVALID, "the backup destination must be outside the data directory"));
    }
    if (snprintf(dbpath, sizeof dbpath, "%s/zhiku.db", dst) >= (int)sizeof dbpath)
        return cli_fail(c, zk_fail(c->err, ZK_INVALID, "path too long"));
    if (stat(dbpath, &sb) == 0) {
        return cli_fail(c, zk_fail(c->err, ZK_EXISTS, "%s already exists; use an empty destination", dbpath));
    }
    /* read-only: a backup never migrates or otherwise writes the source */
    if (!c->store && (rc = ret_store_open(src, RET_OPEN_READONLY, &c->store, c->err)) != ZK_OK)
        return cli_fail(c, rc);

    char sdir[PATH_MAX + 16], ddir[PATH_MAX + 16];
    if (!no_vectors) {
        snprintf(sdir, sizeof sdir, "%s/vectors", src);
        snprintf(ddir, sizeof ddir, "%s/vectors", dst);
        if (zk_mkdir_p(ddir) != 0) {
            return cli_fail(c, zk_fail(c->err, ZK_IO, "cannot create %s: %s", ddir, strerror(errno)));
        }
        if ((rc = copy_tree2(sdir, ddir, 0, &vec, c->err)) != ZK_OK) return cli_fail(c, rc);
    }
    double t0 = zk_now();
    if ((rc = backup_db(ret_store_db(c->store), dbpath, &pages, &restarts, c->err)) != ZK_OK) return cli_fail(c, rc);
    double secs = zk_now() - t0;
    if ((rc = check_copy(dbpath, &ok, c->err)) != ZK_OK) return cli_fail(c, rc);
    if (!ok) {
        return cli_fail(c, zk_fail(c->err, ZK_CORRUPT, "the copy %s failed PRAGMA quick_check", dbpath));
    }
    /* the audit log: its own file (retrieval/audit.h); a directory from
     * before audit.db keeps it inside zhiku.db, already copied */
    char apath[PATH_MAX + 16];
    int apages = 0, arestarts = 0, aok = 0;
    sqlite3 *adb = ret_audit_db(c->store, &rc, c->err);
    if (!adb && rc != ZK_NOTFOUND) return cli_fail(c, rc);
    if (adb && adb != ret_store_db(c->store)) {
        snprintf(apath, sizeof apath, "%s/audit.db", dst);
        if ((rc = backup_db(adb, apath, &apages, &arestarts, c->err)) != ZK_OK ||
            (rc = check_copy(apath, &aok, c->err)) != ZK_OK)
            return cli_fail(c, rc);
        if (!aok) return cli_fail(c, zk_fail(c->err, ZK_CORRUPT, "the copy %s failed PRAGMA quick_check", apath));
    }
    snprintf(sdir, sizeof sdir, "%s/blobs", src);
    snprintf(ddir, sizeof ddir, "%s/blobs", dst);
    if (zk_mkdir_p(ddir) != 0) {
        return cli_fail(c, zk_fail(c->err, ZK_IO, "cannot create %s: %s", ddir, strerror(errno)));
    }
    if ((rc = copy_tree2(sdir, ddir, 1, &blobs, c->err)) != ZK_OK) return cli_fail(c, rc);
    if (fsync_path(dst, 1) != 0) {
        return cli_fail(c, zk_fail(c->err, ZK_IO, "fsync %s: %s", dst, strerror(errno)));
    }
    stat(dbpath, &sb);
    printf("database: %s (%d pages, %lld bytes, %.2f s, %d restarts, quick_check ok)\n", dbpath, pages,
           (long long)sb.st_size, secs, restarts);
    if (aok) printf("audit:    %s (%d pages, quick_check ok)\n", apath, apages);
    printf("blobs:    %ld files (%ld linked, %ld copied, %lld bytes)\n", blobs.files, blobs.linked, blobs.copied,
           blobs.bytes);
    if (no_vectors) printf("vectors:  skipped (rebuilt from the database on first use)\n");
    else printf("vectors:  %ld snapshot files (%lld bytes; replayed or rebuilt on open)\n", vec.files, vec.bytes);
    printf("restore:  stop zhiku, replace the data directory with a copy of %s, start zhiku\n", dst);
    return 0;
}
