/* ingest.c — the ingestion pipeline (see ingest.h). Per document: hash the
 * bytes and skip if unchanged, parse, chunk, embed all chunks in one call,
 * and write document + chunks + FTS rows + vectors in one savepoint; every
 * batch_docs documents the outer transaction commits. At the end the vector
 * index replays the change log and its snapshot is saved. */
#include "indexer/ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "buf.h"
#include "indexer/parse/parse.h"
#include "retrieval/acl.h"

struct idx_ingester {
    ret_store *store;
    llm_embedder *emb;
    idx_ingest_opts opts;
    idx_ingest_stats stats;
    int in_txn;
    int pending;          /* documents written in the open transaction */
    int model_checked;
};

const char *idx_status_name(idx_status st)
{
    static const char *const names[] = {"indexed", "unchanged", "replaced", "failed", "skipped"};
    return (unsigned)st < IDX__NSTATUS ? names[st] : "?";
}

void idx_ingest_opts_init(idx_ingest_opts *o, const zk_config *cfg)
{
    memset(o, 0, sizeof *o);
    idx_chunk_opts_default(&o->chunk);
    long v;
    if ((v = zk_config_int(cfg, "chunk", "size")) > 0) o->chunk.target_chars = (size_t)v;
    if ((v = zk_config_int(cfg, "chunk", "overlap")) >= 0) o->chunk.overlap_chars = (size_t)v;
    if ((v = zk_config_int(cfg, "chunk", "max_chunks")) > 0) o->chunk.max_chunks = (size_t)v;
    o->max_file_bytes = (size_t)zk_config_int(cfg, "ingest", "max_file_mb") << 20;
    o->batch_docs = (int)zk_config_int(cfg, "ingest", "batch_docs");
    if (o->batch_docs <= 0) o->batch_docs = 1;
    o->kb = 1;
}

zk_rc idx_ingester_new(ret_store *s, llm_embedder *emb, const idx_ingest_opts *o,
                       idx_ingester **out, char *err)
{
    idx_ingester *ing = zk_calloc(1, sizeof *ing);
    if (!ing) return zk_fail(err, ZK_NOMEM, "out of memory");
    ing->store = s;
    ing->emb = emb;
    ing->opts = *o;
    *out = ing;
    return ZK_OK;
}

const idx_ingest_stats *idx_ingester_stats(const idx_ingester *ing) { return &ing->stats; }

static void report(idx_ingester *ing, const char *id, idx_status st, size_t nchunks, const char *reason)
{
    ing->stats.count[st]++;
    if (ing->opts.report) ing->opts.report(ing->opts.report_ctx, id, st, nchunks, reason);
}

static zk_rc commit_batch(idx_ingester *ing, char *err)
{
    if (!ing->in_txn) return ZK_OK;
    ing->in_txn = 0;
    ing->pending = 0;
    return ret_store_commit(ing->store, err);
}

zk_rc idx_ingester_finish(idx_ingester *ing, char *err)
{
    zk_rc rc = commit_batch(ing, err);
    if (rc != ZK_OK) return rc;
    return ret_store_sync(ing->store, 1, err);
}

void idx_ingester_free(idx_ingester *ing)
{
    if (!ing) return;
    if (ing->in_txn) ret_store_rollback(ing->store);
    zk_free(ing);
}

/* Chunk, embed and write one parsed document. */
static zk_rc write_doc(idx_ingester *ing, const ret_doc_in *din, const idx_parsed *doc,
                       ret_put_status *out_st, size_t *out_chunks, char *err)
{
    zk_rc rc;
    idx_chunk *chunks = NULL;
    size_t n = 0;
    ret_chunk_in *cin = NULL;
    const char **texts = NULL;
    size_t *lens = NULL;
    float *vecs = NULL;
    int dim = llm_embedder_dim(ing->emb);

    if (!ing->model_checked) {
        if ((rc = ret_kb_check_model(ing->store, ing->opts.kb, llm_embedder_model(ing->emb), dim, err)) != ZK_OK)
            return rc;
        ing->model_checked = 1;
    }
    if ((rc = idx_chunk_doc(doc, &ing->opts.chunk, &chunks, &n, err)) != ZK_OK) return rc;
    cin = zk_calloc(n ? n : 1, sizeof *cin);
    texts = zk_calloc(n ? n : 1, sizeof *texts);
    lens = zk_calloc(n ? n : 1, sizeof *lens);
    vecs = zk_malloc((n ? n : 1) * (size_t)dim * sizeof *vecs);
    if (!cin || !texts || !lens || !vecs) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        cin[i].text = chunks[i].text;
        cin[i].len = chunks[i].len;
        cin[i].heading = chunks[i].heading;
        cin[i].page = chunks[i].page;
        cin[i].ordinal = chunks[i].ordinal;
        cin[i].start = (int64_t)chunks[i].start;
        cin[i].end = (int64_t)chunks[i].end;
        texts[i] = chunks[i].text;
        lens[i] = chunks[i].len;
    }
    if (n && (rc = llm_embed(ing->emb, n, texts, lens, vecs, err)) != ZK_OK) goto out;
    if (!ing->in_txn) {
        if ((rc = ret_store_begin(ing->store, err)) != ZK_OK) goto out;
        ing->in_txn = 1;
    }
    rc = ret_doc_put(ing->store, ing->opts.kb, din, cin, n, vecs, dim, out_st, NULL, err);
    if (rc == ZK_OK) {
        *out_chunks = n;
        if (*out_st != RET_PUT_UNCHANGED) ing->stats.chunks += n;
        if (++ing->pending >= ing->opts.batch_docs) rc = commit_batch(ing, err);
    }
out:
    idx_chunks_free(chunks, n);
    zk_free(cin);
    zk_free(texts);
    zk_free(lens);
    zk_free(vecs);
    return rc;
}

/* SHA-256 identifying a document version: its bytes, plus the --tag
 * metadata when given, so re-ingesting with other tags updates it. */
static void version_sha(const idx_ingester *ing, const char *data, size_t len, char out[65])
{
    zk_sha256_hex(data, len, out);
    if (ing->opts.tags) {
        char mix[65 + 4096];
        int n = snprintf(mix, sizeof mix, "%s\n%s", out, ing->opts.tags);
        zk_sha256_hex(mix, (size_t)ZK_MIN(n, (int)sizeof mix - 1), out);
    }
}

/* An explicit --acl also applies to documents that did not change. */
static zk_rc regrant(idx_ingester *ing, const char *ext_id, char *err)
{
    int64_t doc_id;
    if (!ing->opts.acl_replace) return ZK_OK;
    zk_rc rc = ret_doc_find(ing->store, ing->opts.kb, ext_id, &doc_id, err);
    if (rc != ZK_OK) return rc;
    return ret_acl_set(ing->store, doc_id, ing->opts.acl, ing->opts.nacl, err);
}

/* Errors that stop the whole run rather than one document. */
static int fatal(zk_rc rc) { return rc == ZK_DB || rc == ZK_MISMATCH || rc == ZK_NOMEM || rc == ZK_INDEX; }

zk_rc idx_ingest_bytes(idx_ingester *ing, const char *ext_id, const char *source, const char *name,
                       const char *data, size_t len, char *err)
{
    zk_rc rc;
    char sha[65], derr[ZK_ERRLEN] = "";
    idx_parsed *doc = NULL;
    version_sha(ing, data, len, sha);
    ing->stats.bytes += len;

    int same = 0;
    if ((rc = ret_doc_is_unchanged(ing->store, ing->opts.kb, ext_id, sha, &same, err)) != ZK_OK) return rc;
    if (same) {
        if ((rc = regrant(ing, ext_id, err)) != ZK_OK) return rc;
        report(ing, ext_id, IDX_UNCHANGED, 0, NULL);
        return ZK_OK;
    }
    rc = idx_parse(name, data, len, &doc, derr);
    if (rc != ZK_OK) {
        report(ing, ext_id, IDX_FAILED, 0, derr[0] ? derr : zk_strerror(rc));
        return fatal(rc) ? zk_fail(err, rc, "%s", derr) : ZK_OK;
    }
    ret_doc_in din = {.ext_id = ext_id, .source = source, .title = doc->title, .format = doc->format,
                      .charset = doc->charset, .sha256 = sha, .bytes = (int64_t)len, .metadata = ing->opts.tags,
                      .acl = ing->opts.acl, .nacl = ing->opts.nacl, .acl_replace = ing->opts.acl_replace};
    ret_put_status st = RET_PUT_INDEXED;
    size_t nchunks = 0;
    rc = write_doc(ing, &din, doc, &st, &nchunks, derr);
    idx_parsed_free(doc);
    if (rc != ZK_OK) {
        report(ing, ext_id, IDX_FAILED, 0, derr);
        return fatal(rc) ? zk_fail(err, rc, "%s", derr) : ZK_OK;
    }
    report(ing, ext_id, st == RET_PUT_REPLACED ? IDX_REPLACED : st == RET_PUT_UNCHANGED ? IDX_UNCHANGED : IDX_INDEXED,
           nchunks, NULL);
    return ZK_OK;
}

static zk_rc read_file(const char *path, size_t max, char **out, size_t *out_len, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return zk_fail(err, ZK_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return zk_fail(err, ZK_IO, "not a regular file");
    }
    if ((size_t)st.st_size > max) {
        close(fd);
        return zk_fail(err, ZK_TOOBIG, "file is %lld bytes, more than the limit of %zu (ingest.max_file_mb)",
                       (long long)st.st_size, max);
    }
    size_t cap = (size_t)st.st_size, len = 0;
    char *buf = zk_malloc(cap + 1);
    if (!buf) { close(fd); return zk_fail(err, ZK_NOMEM, "out of memory"); }
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { zk_free(buf); close(fd); return zk_fail(err, ZK_IO, "read: %s", strerror(errno)); }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return ZK_OK;
}

static zk_rc ingest_file(idx_ingester *ing, const char *path, int explicit_file, char *err)
{
    char *data = NULL, derr[ZK_ERRLEN];
    size_t len = 0;
    zk_rc rc = read_file(path, ing->opts.max_file_bytes, &data, &len, derr);
    if (rc != ZK_OK) {
        report(ing, path, IDX_FAILED, 0, derr);
        return ZK_OK;
    }
    if (!explicit_file && !idx_detect_format(path, data, len)) {
        report(ing, path, IDX_SKIPPED, 0, "unsupported format");
        zk_free(data);
        return ZK_OK;
    }
    rc = idx_ingest_bytes(ing, path, path, path, data, len, err);
    zk_free(data);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Walk root recursively in sorted order. root is a canonical absolute path. */
static zk_rc walk(idx_ingester *ing, const char *root, const char *dir, int depth, char *err)
{
    zk_rc rc = ZK_OK;
    if (depth > 64) {
        report(ing, dir, IDX_SKIPPED, 0, "folder nesting deeper than 64");
        return ZK_OK;
    }
    DIR *d = opendir(dir);
    if (!d) {
        report(ing, dir, IDX_FAILED, 0, strerror(errno));
        return ZK_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;          /* ., .., hidden files */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = zk_realloc(names, cap * sizeof *p);
            if (!p) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            names = p;
        }
        if (!(names[n] = zk_strdup(e->d_name))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        n++;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == ZK_OK; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path) {
            report(ing, names[i], IDX_SKIPPED, 0, "path too long");
            continue;
        }
        struct stat st;
        if (lstat(path, &st) != 0) { report(ing, path, IDX_FAILED, 0, strerror(errno)); continue; }
        if (S_ISLNK(st.st_mode)) {
            char real[PATH_MAX];
            size_t rl = strlen(root);
            if (!realpath(path, real)) {
                report(ing, path, IDX_SKIPPED, 0, "dangling symlink");
                continue;
            }
            if (strncmp(real, root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0')) {
                report(ing, path, IDX_SKIPPED, 0, "symlink leads outside the folder");
                continue;
            }
            if (stat(path, &st) != 0 || S_ISDIR(st.st_mode)) {
                report(ing, path, IDX_SKIPPED, 0, "symlink to a folder not followed");
                continue;
            }
            /* a link to a file inside the folder: index the target, under
             * its own path, so a file reached twice is stored once */
            if (S_ISREG(st.st_mode)) rc = ingest_file(ing, real, 0, err);
            else report(ing, path, IDX_SKIPPED, 0, "not a regular file (fifo, socket or device)");
            continue;
        }
        if (S_ISDIR(st.st_mode)) rc = walk(ing, root, path, depth + 1, err);
        else if (S_ISREG(st.st_mode)) rc = ingest_file(ing, path, 0, err);
        else report(ing, path, IDX_SKIPPED, 0, "not a regular file (fifo, socket or device)");
    }
out:
    for (size_t i = 0; i < n; i++) zk_free(names[i]);
    zk_free(names);
    closedir(d);
    return rc;
}

zk_rc idx_ingest_path(idx_ingester *ing, const char *path, char *err)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(path, real) || stat(real, &st) != 0) {
        report(ing, path, IDX_FAILED, 0, strerror(errno));
        return ZK_OK;
    }
    if (S_ISDIR(st.st_mode)) return walk(ing, real, real, 0, err);
    if (!S_ISREG(st.st_mode)) {
        report(ing, path, IDX_SKIPPED, 0, "not a regular file (fifo, socket or device)");
        return ZK_OK;
    }
    return ingest_file(ing, real, 1, err);
}

/* ---- JSONL bulk import ---------------------------------------------------------- */

static zk_rc ingest_json_doc(idx_ingester *ing, const char *line, size_t len, const char *where, char *err)
{
    json_error_t jerr;
    char derr[ZK_ERRLEN];
    zk_rc rc = ZK_OK;
    char *meta = NULL;
    idx_parsed *doc = NULL;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        snprintf(derr, sizeof derr, "invalid JSON: %.150s", o ? "not an object" : jerr.text);
        report(ing, where, IDX_FAILED, 0, derr);
        json_decref(o);
        return ZK_OK;
    }
    json_t *jid = json_object_get(o, "id");
    if (!jid) jid = json_object_get(o, "_id");
    const char *text = json_string_value(json_object_get(o, "text"));
    const char *title = json_string_value(json_object_get(o, "title"));
    json_t *jmeta = json_object_get(o, "metadata");
    char idbuf[64];
    const char *id = json_string_value(jid);
    if (!id && json_is_integer(jid)) {
        snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(jid));
        id = idbuf;
    }
    if (!id || !*id || !text) {
        snprintf(derr, sizeof derr, "needs \"id\" (or \"_id\") and \"text\" strings");
        report(ing, where, IDX_FAILED, 0, derr);
        goto out;
    }
    if (jmeta && !json_is_object(jmeta)) {
        snprintf(derr, sizeof derr, "\"metadata\" must be an object");
        report(ing, where, IDX_FAILED, 0, derr);
        goto out;
    }
    char sha[65];
    version_sha(ing, line, len, sha);
    ing->stats.bytes += len;
    int same = 0;
    if ((rc = ret_doc_is_unchanged(ing->store, ing->opts.kb, id, sha, &same, err)) != ZK_OK) goto out;
    if (same) {
        if ((rc = regrant(ing, id, err)) == ZK_OK) report(ing, id, IDX_UNCHANGED, 0, NULL);
        goto out;
    }
    if (ing->opts.tags) {   /* --tag values override the line's own keys */
        json_t *tags = json_loads(ing->opts.tags, 0, NULL);
        if (!jmeta) jmeta = json_object(), json_object_set_new(o, "metadata", jmeta);
        if (tags) json_object_update(jmeta, tags);
        json_decref(tags);
    }
    if (jmeta) meta = json_dumps(jmeta, JSON_COMPACT | JSON_SORT_KEYS);
    doc = idx__parsed_new();
    if (!doc) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    doc->format = "jsonl";
    strcpy(doc->charset, "UTF-8");
    doc->title = zk_strdup(title && *title ? title : id);
    if (!doc->title || idx__add_block(doc, text, strlen(text), NULL, 0) != ZK_OK) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    ret_doc_in din = {.ext_id = id, .source = where, .title = doc->title, .format = "jsonl",
                      .charset = "UTF-8", .sha256 = sha, .bytes = (int64_t)len, .metadata = meta,
                      .acl = ing->opts.acl, .nacl = ing->opts.nacl, .acl_replace = ing->opts.acl_replace};
    ret_put_status st;
    size_t nchunks = 0;
    rc = write_doc(ing, &din, doc, &st, &nchunks, derr);
    if (rc != ZK_OK) {
        report(ing, where, IDX_FAILED, 0, derr);
        rc = fatal(rc) ? zk_fail(err, rc, "%s", derr) : ZK_OK;
        goto out;
    }
    report(ing, id, st == RET_PUT_REPLACED ? IDX_REPLACED : st == RET_PUT_UNCHANGED ? IDX_UNCHANGED : IDX_INDEXED,
           nchunks, NULL);
out:
    idx_parsed_free(doc);
    free(meta);
    json_decref(o);
    return rc;
}

zk_rc idx_ingest_jsonl(idx_ingester *ing, const char *path, char *err)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return zk_fail(err, ZK_IO, "cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    zk_rc rc = ZK_OK;
    while (rc == ZK_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        char where[PATH_MAX + 32];
        snprintf(where, sizeof where, "%s:%ld", path, lineno);
        rc = ingest_json_doc(ing, line, (size_t)len, where, err);
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}
