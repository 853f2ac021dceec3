/* cmd_ingest.c — `zhiku ingest PATH... | --jsonl FILE`: runs the indexer on
 * files, folders or a JSONL bulk file; a progress bar on a terminal, one
 * plain line per document otherwise, and a summary. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "indexer/ingest.h"
#include "indexer/ocr.h"
#include "retrieval/acl.h"

typedef struct {
    int tty, quiet;
    size_t done, total;
    double start;
} progress;

static void bar(progress *p, const char *name)
{
    int width = 30;
    int filled = p->total ? (int)((double)p->done / (double)p->total * width) : 0;
    if (filled > width) filled = width;
    char b[64];
    for (int i = 0; i < width; i++) b[i] = i < filled ? '#' : '.';
    b[width] = '\0';
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    fprintf(stderr, "\r\033[K[%s] %zu/%zu %.40s", b, p->done, p->total, base);
    fflush(stderr);
}

static void on_report(void *ctx, const char *id, idx_status st, size_t nchunks, const char *reason)
{
    progress *p = ctx;
    p->done++;
    if (p->tty) {
        if (st == IDX_FAILED || (st == IDX_SKIPPED && !p->quiet))
            fprintf(stderr, "\r\033[K%-9s %s: %s\n", idx_status_name(st), id, reason ? reason : "");
        bar(p, id);
        return;
    }
    if (p->quiet && st != IDX_FAILED) return;
    if (reason) printf("%-9s %s: %s\n", idx_status_name(st), id, reason);
    else if (st == IDX_UNCHANGED) printf("%-9s %s\n", idx_status_name(st), id);
    else printf("%-9s %s (%zu chunks)\n", idx_status_name(st), id, nchunks);
}

/* Number of regular files under path (for the progress bar). */
static size_t count_files(const char *path, int depth)
{
    struct stat st;
    if (depth > 64 || lstat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return 1;
    DIR *d = opendir(path);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        n += count_files(sub, depth + 1);
    }
    closedir(d);
    return n;
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = 0;
    int ch, last = '\n';
    while ((ch = getc(f)) != EOF) {
        if (ch == '\n') n++;
        last = ch;
    }
    if (last != '\n') n++;
    fclose(f);
    return n;
}

/* Peak resident set size of this process and its (sandbox) children. */
static long peak_rss_mb(void)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    long kb = self.ru_maxrss > kids.ru_maxrss ? self.ru_maxrss : kids.ru_maxrss;
    return kb / 1024;
}

static const char *pruned_note(size_t n)
{
    static char buf[48];
    if (!n) return "";
    snprintf(buf, sizeof buf, ", %zu pruned", n);
    return buf;
}

/* Segments from which the end of an ingest suggests `zhiku optimize`. */
#define OPTIMIZE_HINT_SEGMENTS 16

int cmd_ingest(cli_ctx *c, int argc, char **argv)
{
    const char *jsonl = NULL, *kb_name = NULL, *acl = NULL;
    const char *tags[16];
    int ntags = 0;
    int quiet = 0, help = 0, npos = 0, prune = 0, retry_failed = 0;
    cli_opt opts[] = {
        OPT_VAL("jsonl", &jsonl),
        OPT_VAL("kb", &kb_name),
        OPT_VAL("acl", &acl),
        OPT_MULTI("tag", tags, &ntags, 16),
        OPT_FLAG("prune", &prune),
        OPT_FLAG("retry-failed", &retry_failed),
        OPT_FLAG("quiet", &quiet),
        OPT_FLAG("q", &quiet),
    };
    if (cli_parse("ingest", argc, argv, opts, ZK_ARRAY_LEN(opts), &npos, &help) < 0) return 2;
    if (help) {
        puts("usage: zhiku ingest [--kb NAME] [--acl PRINCIPALS] [--tag K=V]... [--prune] [--retry-failed]\n"
             "                    [--quiet] PATH...\n"
             "       zhiku ingest [--kb NAME] [--acl PRINCIPALS] --jsonl FILE   (FILE may be -)\n\n"
             "--acl group:hr,user:alice,everyone sets who may read the documents (also\n"
             "re-applied to unchanged ones); without it new documents get [acl]\n"
             "default_read (shipped: nobody but administrators) and existing ones keep\n"
             "their grants. `zhiku acl` changes grants later without re-ingesting.\n"
             "Files are parsed in a sandboxed child process ([sandbox] limits); a file\n"
             "that fails is recorded with its reason (`zhiku docs list --failed`) and\n"
             "not retried until it changes, or with --retry-failed. --prune removes\n"
             "documents whose file under a given folder no longer exists.\n"
             "--tag KEY=VALUE (repeatable) adds metadata tags to every document (merged\n"
             "over a JSONL line's own \"metadata\"); `search --filter KEY=VALUE` uses them.\n"
             "Add files and folders (recursively; TXT, Markdown and HTML, in UTF-8,\n"
             "UTF-16 or GB18030/GBK) to the knowledge base. A file's id is its absolute\n"
             "path; re-ingesting an unchanged file does nothing, a changed file\n"
             "replaces its old chunks. With --jsonl, each line is a document:\n"
             "  {\"id\" or \"_id\": ID, \"title\": T, \"text\": TEXT, \"metadata\": {...}?}\n"
             "and ID becomes the document's external id.\n\n"
             "Prints one line per document (indexed, unchanged, replaced, failed,\n"
             "skipped) and a summary; a progress bar instead when stderr is a terminal.\n"
             "Exit status 0 when every document was indexed or unchanged, 1 when some\n"
             "failed, 5 when the knowledge base was built with another embedder.");
        return 0;
    }
    if (!jsonl && npos == 0) return cli_usage_error("ingest", "nothing to ingest: give a PATH or --jsonl FILE");
    zk_rc rc;
    if ((rc = cli_open(c)) != ZK_OK) return cli_fail(c, rc);

    progress p = {isatty(2), quiet, 0, 0, zk_now()};
    idx_ingest_opts o;
    idx_ingest_opts_init(&o, c->cfg);
    if ((rc = cli_kb(c, kb_name, &o.kb)) != ZK_OK) return cli_fail(c, rc);
    o.report = on_report;
    o.bulk = 1;
    o.prune = prune;
    o.retry_failed = retry_failed;
    if ((rc = idx_ocr_configure(zk_config_get(c->cfg, "ocr", "url"), zk_config_get(c->cfg, "ocr", "api_key"),
                                zk_config_int(c->cfg, "ocr", "timeout_ms"))) != ZK_OK)
        return cli_fail(c, rc);
    o.report_ctx = &p;
    if (p.tty) {
        if (jsonl) p.total += strcmp(jsonl, "-") ? count_lines(jsonl) : 0;
        for (int i = 0; i < npos; i++) p.total += count_files(argv[i], 0);
    }
    int64_t *acl_ids = NULL;
    size_t nacl = 0;
    o.acl_replace = acl != NULL;
    if ((rc = ret_acl_parse_list(c->store, acl ? acl : zk_config_get(c->cfg, "acl", "default_read"), &acl_ids,
                                 &nacl, c->err)) != ZK_OK) {
        if (!acl) fprintf(stderr, "zhiku: in [acl] default_read:\n");
        return cli_fail(c, rc);
    }
    o.acl = acl_ids;
    o.nacl = nacl;
    json_t *tagobj = json_object();
    for (int i = 0; i < ntags; i++) {
        char *eq = strchr(tags[i], '=');
        if (!eq || eq == tags[i]) {
            json_decref(tagobj);
            zk_free(acl_ids);
            return cli_usage_error("ingest", "--tag '%s' is not KEY=VALUE", tags[i]);
        }
        *eq = '\0';
        json_object_set_new(tagobj, tags[i], json_string(eq + 1));
    }
    char *tagjson = ntags ? json_dumps(tagobj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(tagobj);
    o.tags = tagjson;
    idx_ingester *ing = NULL;
    if ((rc = idx_ingester_new(c->store, c->emb, &o, &ing, c->err)) != ZK_OK) {
        zk_free(acl_ids);
        free(tagjson);
        return cli_fail(c, rc);
    }
    /* this thread only walks, reads and queues files from here on: it
     * yields to the writer created above (5 same-run pairs, 10 MB: +5%) */
    idx_below_writer();
    if (jsonl) rc = idx_ingest_jsonl(ing, jsonl, c->err);
    for (int i = 0; rc == ZK_OK && i < npos; i++) rc = idx_ingest_path(ing, argv[i], c->err);
    if (rc == ZK_OK) rc = idx_ingester_finish(ing, c->err);
    const idx_ingest_stats *s = idx_ingester_stats(ing);
    if (p.tty) fprintf(stderr, "\r\033[K");
    double secs = zk_now() - p.start;
    fprintf(p.tty ? stderr : stdout,
            "%zu indexed, %zu replaced, %zu unchanged, %zu failed, %zu skipped%s; %zu chunks, %.1f MB read, "
            "%.1f MB text in %.1fs (%.2f MB/s, %.0f chunks/s, peak RSS %ld MB)\n",
            s->count[IDX_INDEXED], s->count[IDX_REPLACED], s->count[IDX_UNCHANGED], s->count[IDX_FAILED],
            s->count[IDX_SKIPPED], pruned_note(s->count[IDX_PRUNED]), s->chunks, (double)s->bytes / 1e6,
            (double)s->text_bytes / 1e6, secs, secs > 0 ? (double)s->text_bytes / 1e6 / secs : 0.0,
            secs > 0 ? (double)s->chunks / secs : 0.0, peak_rss_mb());
    size_t failed = s->count[IDX_FAILED], written = s->chunks;
    idx_ingester_free(ing);
    /* a bulk load merges the text index lazily (ingest.c): say when a merge
     * would speed BM25 up */
    int segs = 0;
    char ignore[ZK_ERRLEN];
    if (rc == ZK_OK && !quiet && written && ret_store_fts_segments(c->store, &segs, ignore) == ZK_OK &&
        segs >= OPTIMIZE_HINT_SEGMENTS)
        fprintf(stderr, "full-text index in %d segments: `zhiku optimize` merges them (faster BM25)\n", segs);
    zk_free(acl_ids);
    free(tagjson);
    if (rc != ZK_OK) return cli_fail(c, rc);
    return failed ? 1 : 0;
}
