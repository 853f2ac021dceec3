/* fts_anchor.c — the raw FTS5 ingestion anchor of `make bench`: inserts the
 * text of every file in a folder into a plain FTS5 table (unicode61) after
 * rewriting CJK runs as space-separated overlapping bigrams, in one
 * transaction — the least work any SQLite-based index of this text can do.
 * zhiku's ingestion rate is reported as a ratio to this, measured in the
 * same run. Prints "anchor: BYTES bytes in SECONDS s = MB/s MB/s".
 * Usage: build/bench/fts_anchor DB_PATH FOLDER */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "zk.h"
#include "buf.h"
#include "utf8.h"

/* CJK runs → "ab bc cd" bigrams separated by spaces; the rest unchanged. */
static void bigrams(const char *s, size_t len, zk_buf *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t prev = 0;
    char enc[4];
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (utf8_is_cjk(cp)) {
            if (prev) {
                buf_append(out, enc, utf8_encode(prev, enc));
                buf_append(out, enc, utf8_encode(cp, enc));
                buf_putc(out, ' ');
            }
            prev = cp;
        } else {
            if (prev) buf_putc(out, ' ');
            prev = 0;
            buf_append(out, s + i, n);
        }
        i += n;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fts_anchor DB_PATH FOLDER\n");
        return 2;
    }
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) return 1;
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61')", NULL, NULL, NULL);
    DIR *d = opendir(argv[2]);
    if (!d) return 1;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO t(x) VALUES (?)", -1, &st, NULL);
    zk_buf b;
    buf_init(&b, 0);
    size_t total = 0;
    double t0 = zk_now();
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[2], e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *data = malloc((size_t)n + 1);
        if (fread(data, 1, (size_t)n, f) != (size_t)n) n = 0;
        fclose(f);
        total += (size_t)n;
        buf_reset(&b);
        bigrams(data, (size_t)n, &b);
        sqlite3_bind_text(st, 1, buf_cstr(&b), (int)b.len, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
        free(data);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    double secs = zk_now() - t0;
    printf("anchor: %zu bytes in %.2f s = %.2f MB/s\n", total, secs, (double)total / 1e6 / secs);
    closedir(d);
    sqlite3_finalize(st);
    sqlite3_close(db);
    buf_free(&b);
    return 0;
}
