/* ingest.c — the ingestion pipeline (see ingest.h).
 *
 * The driving thread walks files/folders/JSONL, skips unchanged documents
 * (SHA-256, looked up on a read-only connection of its own; a document the
 * kb has never seen is hashed by its worker), then queues a job. Worker
 * threads take jobs, parse them (files: in the worker's long-lived sandboxed
 * helper process), chunk, embed, convert the vectors to float16 and tokenize
 * the chunks for FTS5, and queue the result. The writer thread writes
 * results as they complete — document + chunks + FTS rows (replaying the
 * workers' tokens) + vectors, batch_docs documents per transaction — so
 * SQLite (the bottleneck: FTS5 insertion) runs without pause on one core
 * while everything else shares the other. The writer has its own thread so
 * that a commit (an FTS5 flush can take a quarter second) stops neither the
 * driving thread nor the workers. At most 8 * workers + 8 jobs are in
 * flight, bounding memory (~0.5 MB per 100 KB of text). The writer's
 * connection is the driving thread's again only when nothing is in flight
 * (quiesce): for --prune, for re-granting unchanged documents, at the end.
 * Whenever it waits, the driving thread replays the batches committed so
 * far into the vector index and checkpoints the WAL from connections of its
 * own (catch_up), so neither is left for one core at the end or done by
 * the writer; the end replays only the last batch and saves the snapshot. */
#include "indexer/ingest.h"

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <jansson.h>

#include "buf.h"
#include "half.h"
#include "indexer/parse/parse.h"
#include "retrieval/acl.h"
#include "retrieval/tokenizer.h"

/* One document on its way through the pipeline. */
typedef struct job {
    struct job *next;
    uint64_t seq;                           /* submission order: the writer keeps it */
    /* input (set by the driving thread) */
    char *ext_id, *source, *name, *where;  /* where: report label (path or file:line) */
    char *data;                             /* file bytes, or JSONL text */
    size_t len;
    int is_text;                            /* data is plain UTF-8 text (JSONL) */
    char *title, *meta;                     /* JSONL title and metadata JSON */
    char sha[65];                           /* version; "" = a new document, the worker hashes */
    /* output (set by a worker) */
    zk_rc rc;
    int fatal;                              /* stop the whole run (embedder down) */
    char err[ZK_ERRLEN];
    idx_parsed *doc;
    idx_chunk *chunks;
    size_t nchunks;
    float *vecs;
    uint16_t *halves;           /* vecs as stored (float16), converted here off the writer */
    ret_pretok *pretok;                     /* FTS5 tokens of the chunks, or NULL */
} job;

typedef struct {
    job *head, *tail;
} jobq;

/* An outcome written in the open transaction: reported once it commits. */
typedef struct {
    char *label, *reason;
    idx_status st;
    size_t nchunks, text_bytes;
} outcome;

struct idx_ingester {
    ret_store *store;
    llm_embedder *emb;
    idx_ingest_opts opts;
    idx_ingest_stats stats;
    int in_txn;
    int pending;          /* documents written in the open transaction */
    outcome *outcomes;    /* their outcomes, reported after COMMIT */
    size_t noutcomes, capoutcomes;
    int model_checked;
    /* worker pool and writer */
    pthread_t *threads;
    int nthreads;
    pthread_t writer;
    int have_writer;
    pthread_mutex_t mu;
    pthread_cond_t have_work, have_done, space;
    pthread_mutex_t rmu;  /* report() and the stats: driving thread and writer */
    ret_store *rstore;    /* the driving thread's read-only connection */
    sqlite3_stmt *known;  /* on rstore: does the kb have a document with this ext_id? */
    jobq todo, done;
    int in_flight;        /* queued + being processed + done-but-unwritten */
    uint64_t submitted, next_write;   /* job sequence numbers */
    uint64_t commits, replayed;       /* batches committed; of them, replayed into the vector index */
    sqlite3 *ckpt;        /* the driving thread's connection for WAL checkpoints (catch_up) */
    int stopping;
    zk_rc fatal_rc;       /* first fatal error seen while writing */
    char fatal_err[ZK_ERRLEN];
};

const char *idx_status_name(idx_status st)
{
    static const char *const names[] = {"indexed", "unchanged", "replaced", "failed", "skipped", "pruned"};
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
    o->workers = (int)zk_config_int(cfg, "ingest", "workers");
    if (o->workers <= 0) o->workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o->workers <= 0) o->workers = 1;
    if (o->workers > 64) o->workers = 64;
    idx_sandbox_opts_init(&o->sandbox, cfg);
    o->kb = 1;
}

static void job_free(job *j)
{
    if (!j) return;
    zk_free(j->ext_id);
    zk_free(j->source);
    zk_free(j->name);
    zk_free(j->where);
    zk_free(j->data);
    zk_free(j->title);
    zk_free(j->meta);
    idx_parsed_free(j->doc);
    idx_chunks_free(j->chunks, j->nchunks);
    zk_free(j->vecs);
    zk_free(j->halves);
    ret_pretok_free(j->pretok);
    zk_free(j);
}

static void q_push(jobq *q, job *j)
{
    j->next = NULL;
    if (q->tail) q->tail->next = j;
    else q->head = j;
    q->tail = j;
}

/* The job with sequence number seq, taken out of q; NULL if not there. */
static job *q_take(jobq *q, uint64_t seq)
{
    job *prev = NULL;
    for (job *j = q->head; j; prev = j, j = j->next) {
        if (j->seq != seq) continue;
        if (prev) prev->next = j->next;
        else q->head = j->next;
        if (q->tail == j) q->tail = prev;
        return j;
    }
    return NULL;
}

static job *q_pop(jobq *q)
{
    job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head) q->tail = NULL;
    }
    return j;
}

/* ---- worker side: parse, chunk, embed ---------------------------------- */

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

/* Tokenize the chunks' text and headings for FTS5 here, so the writer
 * thread only replays the tokens (tokenizing was a third of its time).
 * Best effort: without it the writer tokenizes. */
static void pretokenize(job *j, ret_tokenizer *tok)
{
    char err[ZK_ERRLEN];
    if (!tok || !(j->pretok = ret_pretok_new(tok))) return;
    for (size_t i = 0; i < j->nchunks; i++) {
        const idx_chunk *c = &j->chunks[i];
        if (ret_pretok_add(j->pretok, c->text, c->len, err) != ZK_OK ||
            (c->heading && ret_pretok_add(j->pretok, c->heading, strlen(c->heading), err) != ZK_OK)) {
            ret_pretok_free(j->pretok);
            j->pretok = NULL;
            return;
        }
    }
}

static void process(idx_ingester *ing, job *j, idx_sandbox *sb, ret_tokenizer *tok)
{
    int dim = llm_embedder_dim(ing->emb);
    if (j->is_text) {
        j->doc = idx__parsed_new();
        if (!j->doc) { j->rc = zk_fail(j->err, ZK_NOMEM, "out of memory"); return; }
        j->doc->format = "jsonl";
        strcpy(j->doc->charset, "UTF-8");
        j->doc->title = zk_strdup(j->title);
        if (!j->doc->title || idx__add_block(j->doc, j->data, j->len, NULL, 0) != ZK_OK) {
            j->rc = zk_fail(j->err, ZK_NOMEM, "out of memory");
            return;
        }
    } else {
        if (!j->sha[0]) version_sha(ing, j->data, j->len, j->sha);
        j->rc = sb ? idx_sandbox_run(sb, j->name, j->data, j->len, &j->doc, j->err)
                   : idx_sandbox_parse(&ing->opts.sandbox, j->name, j->data, j->len, &j->doc, j->err);
        if (j->rc != ZK_OK) {
            if (!j->err[0]) snprintf(j->err, sizeof j->err, "%s", zk_strerror(j->rc));
            return;
        }
    }
    zk_free(j->data);   /* the parsed text is all we need from here on */
    j->data = NULL;
    if ((j->rc = idx_chunk_doc(j->doc, &ing->opts.chunk, &j->chunks, &j->nchunks, j->err)) != ZK_OK) return;
    size_t n = j->nchunks;
    const char **texts = zk_calloc(n ? n : 1, sizeof *texts);
    size_t *lens = zk_calloc(n ? n : 1, sizeof *lens);
    j->vecs = zk_malloc((n ? n : 1) * (size_t)dim * sizeof *j->vecs);
    if (!texts || !lens || !j->vecs) {
        j->rc = zk_fail(j->err, ZK_NOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            texts[i] = j->chunks[i].text;
            lens[i] = j->chunks[i].len;
        }
        if (n && (j->rc = llm_embed(ing->emb, n, texts, lens, j->vecs, j->err)) != ZK_OK)
            j->fatal = 1;   /* the embedder failing fails every document: stop */
    }
    if (j->rc == ZK_OK && n && (j->halves = zk_malloc(n * (size_t)dim * sizeof *j->halves))) {
        zk_floats_to_halves(j->vecs, j->halves, n * (size_t)dim);
        zk_free(j->vecs);   /* the writer stores the halves */
        j->vecs = NULL;
    }
    if (j->rc == ZK_OK) pretokenize(j, tok);
    zk_free(texts);
    zk_free(lens);
}

void idx_below_writer(void)
{
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
}

static void *worker_main(void *arg)
{
    idx_ingester *ing = arg;
    char err[ZK_ERRLEN];
    /* on two cores two workers at the writer's priority took a third of its
     * core (median of 5 same-run pairs, 10 MB synthetic: 6.65 -> 7.18 MB/s) */
    idx_below_writer();
    /* this worker's parser helper process, started on its first file (on
     * allocation failure every file gets a helper of its own) */
    idx_sandbox *sb = NULL;
    if (idx_sandbox_new(&ing->opts.sandbox, &sb, err) != ZK_OK) sb = NULL;
    ret_tokenizer *tok = ret_tokenizer_new();   /* NULL: the writer tokenizes */
    pthread_mutex_lock(&ing->mu);
    for (;;) {
        job *j;
        while (!(j = q_pop(&ing->todo)) && !ing->stopping) pthread_cond_wait(&ing->have_work, &ing->mu);
        if (!j) break;
        pthread_mutex_unlock(&ing->mu);
        process(ing, j, sb, tok);
        pthread_mutex_lock(&ing->mu);
        q_push(&ing->done, j);
        pthread_cond_signal(&ing->have_done);
    }
    pthread_mutex_unlock(&ing->mu);
    idx_sandbox_free(sb);
    ret_tokenizer_free(tok);
    return NULL;
}

/* FTS5 writes its in-memory index out as a new segment whenever `hashsize`
 * bytes of it are pending (1 MB by default), at every commit and at every
 * savepoint, then merges the segments as they pile up. A small hash is
 * cheaper than a large one on a rich vocabulary: each token is a lookup in
 * it and each flush sorts its terms, both chasing pointers, so past the
 * caches every term costs misses (`perf`, writer thread: 57% of its time
 * in the hash at 8 MB, 25% with a document's worth in it). On the scale
 * corpus (125k chunks, ~50,000 words and CJK bigrams) 256 KB ingests in
 * 16–19 s against 23 s with 8 MB, 21 s with 1 MB and 21–22 s with 128 KB
 * (more segments to merge); on the small-vocabulary synthetic corpus every
 * size from 256 KB to 8 MB is the same. The setting lives in the table's
 * config: written once, kept.
 *
 * How soon segments merge is `automerge`: FTS5 merges a level once it holds
 * that many (4 by default). A bulk load (the CLI) raises it to 16 while it
 * runs, so each posting is rewritten about half as often: 38% faster at
 * 125k chunks, and with the `zhiku optimize` that follows a bulk load (one
 * merge of everything) still 30% faster than eager merging. Every ingester
 * sets the value it wants and the bulk one puts 4 back when it ends, so an
 * interrupted bulk load leaves at most lazier merging until the next
 * ingest or upload. */
#define FTS_HASHSIZE (256 << 10)
#define FTS_AUTOMERGE 4
#define FTS_AUTOMERGE_BULK 16

static zk_rc fts_config(sqlite3 *db, const char *key, int want, int dflt, char *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT v FROM chunks_fts_config WHERE k = ?", -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "fts config: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int have = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : dflt;
    sqlite3_finalize(st);
    if (have == want) return ZK_OK;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('%s', %d)", key, want);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "fts config %s: %s", key, sqlite3_errmsg(db));
    return ZK_OK;
}

static zk_rc tune_fts(ret_store *s, int bulk, char *err)
{
    sqlite3 *db = ret_store_db(s);
    zk_rc rc = fts_config(db, "hashsize", FTS_HASHSIZE, 1 << 20, err);
    /* best effort: merging sooner or later is only a matter of speed, and
     * another process's long write must not stop an ingest from starting */
    char ignore[ZK_ERRLEN];
    if (rc == ZK_OK) fts_config(db, "automerge", bulk ? FTS_AUTOMERGE_BULK : FTS_AUTOMERGE, FTS_AUTOMERGE, ignore);
    return rc;
}

static void *writer_main(void *arg);

zk_rc idx_ingester_new(ret_store *s, llm_embedder *emb, const idx_ingest_opts *o,
                       idx_ingester **out, char *err)
{
    zk_rc rc = tune_fts(s, o->bulk, err);
    if (rc != ZK_OK) return rc;
    idx_ingester *ing = zk_calloc(1, sizeof *ing);
    if (!ing) return zk_fail(err, ZK_NOMEM, "out of memory");
    ing->store = s;
    ing->emb = emb;
    sqlite3_exec(ret_store_db(s), "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL);   /* checkpoint(); reset by _free */
    ing->opts = *o;
    if (ing->opts.workers <= 0) ing->opts.workers = 1;
    if (ing->opts.batch_docs <= 0) ing->opts.batch_docs = 1;
    pthread_mutex_init(&ing->mu, NULL);
    pthread_cond_init(&ing->have_work, NULL);
    pthread_cond_init(&ing->have_done, NULL);
    pthread_cond_init(&ing->space, NULL);
    pthread_mutexattr_t ma;   /* recursive: flush_outcomes reports while counting */
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&ing->rmu, &ma);
    pthread_mutexattr_destroy(&ma);
    ing->threads = zk_calloc((size_t)ing->opts.workers, sizeof *ing->threads);
    if (!ing->threads) {
        idx_ingester_free(ing);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    for (int i = 0; i < ing->opts.workers; i++) {
        if (pthread_create(&ing->threads[i], NULL, worker_main, ing) != 0) {
            idx_ingester_free(ing);
            return zk_fail(err, ZK_ERR, "cannot start ingestion workers");
        }
        ing->nthreads++;
    }
    if (pthread_create(&ing->writer, NULL, writer_main, ing) != 0) {
        idx_ingester_free(ing);
        return zk_fail(err, ZK_ERR, "cannot start the ingestion writer");
    }
    ing->have_writer = 1;
    *out = ing;
    return ZK_OK;
}

const idx_ingest_stats *idx_ingester_stats(const idx_ingester *ing) { return &ing->stats; }

static void report(idx_ingester *ing, const char *id, idx_status st, size_t nchunks, const char *reason)
{
    pthread_mutex_lock(&ing->rmu);
    ing->stats.count[st]++;
    if (ing->opts.report) ing->opts.report(ing->opts.report_ctx, id, st, nchunks, reason);
    pthread_mutex_unlock(&ing->rmu);
}

static zk_rc defer(idx_ingester *ing, const char *label, idx_status st, size_t nchunks, size_t text_bytes,
                   const char *reason, char *err)
{
    if (ing->noutcomes == ing->capoutcomes) {
        size_t cap = ing->capoutcomes ? ing->capoutcomes * 2 : 64;
        outcome *p = zk_realloc(ing->outcomes, cap * sizeof *p);
        if (!p) return zk_fail(err, ZK_NOMEM, "out of memory");
        ing->outcomes = p;
        ing->capoutcomes = cap;
    }
    outcome *o = &ing->outcomes[ing->noutcomes];
    o->label = zk_strdup(label);
    o->reason = reason ? zk_strdup(reason) : NULL;
    if (!o->label || (reason && !o->reason)) {
        zk_free(o->label);
        zk_free(o->reason);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    o->st = st;
    o->nchunks = nchunks;
    o->text_bytes = text_bytes;
    ing->noutcomes++;
    return ZK_OK;
}

/* Report the batch's outcomes: as written when it committed, as failed
 * (with why) when it was rolled back. */
static void flush_outcomes(idx_ingester *ing, const char *rollback_reason)
{
    for (size_t i = 0; i < ing->noutcomes; i++) {
        outcome *o = &ing->outcomes[i];
        if (rollback_reason) {
            report(ing, o->label, IDX_FAILED, 0, rollback_reason);
        } else {
            if (o->st == IDX_INDEXED || o->st == IDX_REPLACED) {
                pthread_mutex_lock(&ing->rmu);
                ing->stats.chunks += o->nchunks;
                ing->stats.text_bytes += o->text_bytes;
                pthread_mutex_unlock(&ing->rmu);
            }
            report(ing, o->label, o->st, o->nchunks, o->reason);
        }
        zk_free(o->label);
        zk_free(o->reason);
    }
    ing->noutcomes = 0;
}

/* The WAL restarts from its beginning only when a write transaction
 * starts after everything in it was checkpointed and no reader still uses
 * it. checkpoint() runs while the writer has already begun its next batch,
 * so on its own it never lets the WAL restart and the file would grow by
 * the whole ingest. Past WAL_BOUND bytes the writer checkpoints once
 * itself, between batches (usually only its last batch is left to copy),
 * with RESTART: it waits (busy timeout) for a reader such as the driving
 * thread's replay to finish, so the next batch starts the WAL over. With
 * PASSIVE, a replay caught at that moment let the file grow by another
 * bound (test_wal_bounded failed ~1 run in 15 under load). */
#define WAL_BOUND ((long)64 << 20)

static void bound_wal(idx_ingester *ing)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/zhiku.db-wal", ret_store_dir(ing->store));
    if (stat(path, &st) == 0 && st.st_size > (ing->opts.wal_bound > 0 ? ing->opts.wal_bound : WAL_BOUND))
        sqlite3_wal_checkpoint_v2(ret_store_db(ing->store), NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
}

static zk_rc commit_batch(idx_ingester *ing, char *err)
{
    if (!ing->in_txn) return ZK_OK;
    ing->in_txn = 0;
    ing->pending = 0;
    zk_rc rc = ret_store_commit(ing->store, err);
    flush_outcomes(ing, rc == ZK_OK ? NULL : "not saved: the write transaction failed");
    if (rc == ZK_OK) {
        bound_wal(ing);
        pthread_mutex_lock(&ing->mu);
        ing->commits++;
        pthread_cond_broadcast(&ing->space);   /* the driving thread replays it (catch_up) */
        pthread_mutex_unlock(&ing->mu);
    }
    return rc;
}

static zk_rc begin_batch(idx_ingester *ing, char *err)
{
    if (ing->in_txn) return ZK_OK;
    zk_rc rc = ret_store_begin(ing->store, err);
    if (rc == ZK_OK) ing->in_txn = 1;
    return rc;
}

/* Errors that stop the whole run rather than one document. */
static int fatal(zk_rc rc) { return rc == ZK_DB || rc == ZK_MISMATCH || rc == ZK_NOMEM || rc == ZK_INDEX; }

/* ---- driving side: write one completed job ------------------------------ */

static zk_rc write_job(idx_ingester *ing, job *j, char *err)
{
    zk_rc rc;
    /* failures name where (file:line for JSONL), successes the document */
    const char *label = j->rc != ZK_OK && j->where ? j->where : j->ext_id;
    ret_doc_in din = {.ext_id = j->ext_id, .source = j->source, .sha256 = j->sha, .bytes = (int64_t)j->len,
                      .metadata = j->is_text ? j->meta : ing->opts.tags, .acl = ing->opts.acl,
                      .nacl = ing->opts.nacl, .acl_replace = ing->opts.acl_replace, .vec_halves = j->halves};
    if (j->rc != ZK_OK) {
        if (j->fatal || fatal(j->rc)) {
            report(ing, label, IDX_FAILED, 0, j->err);
            return zk_fail(err, j->rc, "%s", j->err);
        }
        din.title = j->title ? j->title : j->ext_id;
        if ((rc = begin_batch(ing, err)) != ZK_OK) return rc;
        if ((rc = ret_doc_put_failed(ing->store, ing->opts.kb, &din, j->err, err)) != ZK_OK) return rc;
        return defer(ing, label, IDX_FAILED, 0, 0, j->err, err);
    }
    int dim = llm_embedder_dim(ing->emb);
    if (!ing->model_checked) {
        if ((rc = ret_kb_check_model(ing->store, ing->opts.kb, llm_embedder_model(ing->emb), dim, err)) != ZK_OK)
            return rc;
        ing->model_checked = 1;
    }
    size_t n = j->nchunks;
    ret_chunk_in *cin = zk_calloc(n ? n : 1, sizeof *cin);
    if (!cin) return zk_fail(err, ZK_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        cin[i] = (ret_chunk_in){j->chunks[i].text, j->chunks[i].len, j->chunks[i].heading, j->chunks[i].page,
                                j->chunks[i].ordinal, (int64_t)j->chunks[i].start, (int64_t)j->chunks[i].end};
    }
    din.title = j->doc->title;
    din.format = j->doc->format;
    din.charset = j->doc->charset;
    ret_put_status st = RET_PUT_INDEXED;
    char derr[ZK_ERRLEN];
    if ((rc = begin_batch(ing, err)) == ZK_OK) {
        ret_pretok_activate(j->pretok);
        rc = ret_doc_put(ing->store, ing->opts.kb, &din, cin, n, j->vecs, dim, &st, NULL, derr);
        ret_pretok_activate(NULL);
    }
    zk_free(cin);
    if (rc != ZK_OK) {
        /* inside a batch a failed write dooms the batch (it rolls back) */
        report(ing, label, IDX_FAILED, 0, derr);
        return zk_fail(err, rc == ZK_OK ? ZK_DB : rc, "%s", derr);
    }
    size_t text_bytes = 0;
    for (size_t b = 0; b < j->doc->nblocks; b++) text_bytes += j->doc->blocks[b].len;
    if ((rc = defer(ing, label, st == RET_PUT_REPLACED ? IDX_REPLACED : st == RET_PUT_UNCHANGED ? IDX_UNCHANGED
                                                                                                 : IDX_INDEXED,
                    n, text_bytes, NULL, err)) != ZK_OK)
        return rc;
    if (++ing->pending >= ing->opts.batch_docs) return commit_batch(ing, err);
    return ZK_OK;
}

#define IN_FLIGHT(ing) (8 * (ing)->nthreads + 8)

/* The writer thread: completed jobs in the order they were submitted (a
 * later line of a JSONL file with the same id wins; outcomes are reported
 * in walk order), waiting for the next one while later ones complete.
 * After a fatal error (kept in fatal_rc) jobs are only freed. */
static void *writer_main(void *arg)
{
    idx_ingester *ing = arg;
    char err[ZK_ERRLEN];
    pthread_mutex_lock(&ing->mu);
    for (;;) {
        job *j;
        while (!(j = ing->stopping ? q_pop(&ing->done) : q_take(&ing->done, ing->next_write)) && !ing->stopping)
            pthread_cond_wait(&ing->have_done, &ing->mu);
        if (!j) break;
        ing->next_write++;
        int write = ing->fatal_rc == ZK_OK && !ing->stopping;
        pthread_mutex_unlock(&ing->mu);
        zk_rc rc = write ? write_job(ing, j, err) : ZK_OK;
        job_free(j);
        pthread_mutex_lock(&ing->mu);
        if (rc != ZK_OK && ing->fatal_rc == ZK_OK) {
            ing->fatal_rc = rc;
            snprintf(ing->fatal_err, sizeof ing->fatal_err, "%s", err);
        }
        ing->in_flight--;
        pthread_cond_broadcast(&ing->space);
    }
    pthread_mutex_unlock(&ing->mu);
    return NULL;
}

static zk_rc fatal_locked(idx_ingester *ing, char *err)
{
    return ing->fatal_rc != ZK_OK ? zk_fail(err, ing->fatal_rc, "%s", ing->fatal_err) : ZK_OK;
}

static zk_rc reader(idx_ingester *ing, char *err);

/* Copy committed WAL pages into the database from the driving thread's
 * own connection (PASSIVE: alongside the writer, never blocking it). The
 * writer's connection does not checkpoint while the ingester lives
 * (idx_ingester_new): SQLite's automatic checkpoint after a commit made
 * the writer, the pipeline's busiest thread, copy and fsync every batch
 * again. Failures only leave the WAL longer; the next commit or close
 * checkpoints it. */
static void checkpoint(idx_ingester *ing)
{
    if (!ing->ckpt) {
        char path[4096];
        snprintf(path, sizeof path, "%s/zhiku.db", ret_store_dir(ing->store));
        if (sqlite3_open_v2(path, &ing->ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
            sqlite3_close(ing->ckpt);
            ing->ckpt = NULL;
            return;
        }
    }
    int rc = sqlite3_wal_checkpoint_v2(ing->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) ZK_LOG(ZK_LOG_DEBUG, "checkpoint: %s", sqlite3_errmsg(ing->ckpt));
}

/* Called with ing->mu held, by the driving thread while it waits: bring
 * the kb's vector index up to the batches committed so far, reading them
 * back on the read-only connection. Otherwise all of it would be replayed
 * by ret_store_sync at the end, on one core, after the pipeline has
 * drained (10 MB: ~0.07 s of a 1.4 s run). Failures are left to that final
 * sync, which reports them. */
static void catch_up(idx_ingester *ing)
{
    if (ing->commits == ing->replayed) return;
    ing->replayed = ing->commits;
    pthread_mutex_unlock(&ing->mu);
    char err[ZK_ERRLEN];
    ret_vindex *vi;
    if (reader(ing, err) == ZK_OK && ret_store_vindex(ing->rstore, ing->opts.kb, &vi, err) != ZK_OK)
        ZK_LOG(ZK_LOG_DEBUG, "vector index catch-up: %s", err);
    checkpoint(ing);
    pthread_mutex_lock(&ing->mu);
}

/* Wait until every job is written: the writer's connection is then the
 * driving thread's until the next submit. */
static zk_rc quiesce(idx_ingester *ing, char *err)
{
    pthread_mutex_lock(&ing->mu);
    while (ing->in_flight > 0) {
        catch_up(ing);
        if (ing->in_flight > 0) pthread_cond_wait(&ing->space, &ing->mu);
    }
    zk_rc rc = fatal_locked(ing, err);
    pthread_mutex_unlock(&ing->mu);
    return rc;
}

/* Hand a job to the workers (takes ownership), first waiting while too
 * many are in flight. */
static zk_rc submit(idx_ingester *ing, job *j, char *err)
{
    pthread_mutex_lock(&ing->mu);
    while (ing->in_flight >= IN_FLIGHT(ing) && ing->fatal_rc == ZK_OK) {
        catch_up(ing);
        if (ing->in_flight >= IN_FLIGHT(ing) && ing->fatal_rc == ZK_OK) pthread_cond_wait(&ing->space, &ing->mu);
    }
    zk_rc rc = fatal_locked(ing, err);
    if (rc == ZK_OK) {
        j->seq = ing->submitted++;
        q_push(&ing->todo, j);
        ing->in_flight++;
        pthread_cond_signal(&ing->have_work);
    }
    pthread_mutex_unlock(&ing->mu);
    if (rc != ZK_OK) job_free(j);
    return rc;
}

zk_rc idx_ingester_finish(idx_ingester *ing, char *err)
{
    zk_rc rc = quiesce(ing, err);
    if (rc == ZK_OK) rc = commit_batch(ing, err);
    if (rc != ZK_OK) return rc;
    if (ing->commits) checkpoint(ing);
    return ret_store_sync(ing->store, !ing->opts.no_save, err);
}

void idx_ingester_free(idx_ingester *ing)
{
    if (!ing) return;
    pthread_mutex_lock(&ing->mu);
    ing->stopping = 1;
    pthread_cond_broadcast(&ing->have_work);
    pthread_mutex_unlock(&ing->mu);
    for (int i = 0; i < ing->nthreads; i++) pthread_join(ing->threads[i], NULL);
    if (ing->have_writer) {
        pthread_mutex_lock(&ing->mu);
        pthread_cond_broadcast(&ing->have_done);
        pthread_mutex_unlock(&ing->mu);
        pthread_join(ing->writer, NULL);
    }
    job *j;
    while ((j = q_pop(&ing->todo))) job_free(j);
    while ((j = q_pop(&ing->done))) job_free(j);
    sqlite3_finalize(ing->known);
    ret_store_close(ing->rstore);
    sqlite3_close(ing->ckpt);
    sqlite3_exec(ret_store_db(ing->store), "PRAGMA wal_autocheckpoint=1000", NULL, NULL, NULL);   /* SQLite's default */
    if (ing->in_txn) ret_store_rollback(ing->store);
    if (ing->opts.bulk) {
        char ignore[ZK_ERRLEN];   /* best effort: the next ingester sets it again */
        fts_config(ret_store_db(ing->store), "automerge", FTS_AUTOMERGE, FTS_AUTOMERGE, ignore);
    }
    flush_outcomes(ing, "not saved: ingestion stopped before this batch was committed");
    zk_free(ing->outcomes);
    pthread_mutex_destroy(&ing->mu);
    pthread_cond_destroy(&ing->have_work);
    pthread_cond_destroy(&ing->have_done);
    pthread_cond_destroy(&ing->space);
    pthread_mutex_destroy(&ing->rmu);
    zk_free(ing->threads);
    zk_free(ing);
}

/* An explicit --acl also applies to documents that did not change. */
static zk_rc regrant(idx_ingester *ing, const char *ext_id, char *err)
{
    int64_t doc_id;
    if (!ing->opts.acl_replace) return ZK_OK;
    zk_rc rc = quiesce(ing, err);   /* a write: on the writer's connection */
    if (rc == ZK_OK) rc = ret_doc_find(ing->store, ing->opts.kb, ext_id, &doc_id, err);
    if (rc != ZK_OK) return rc;
    return ret_acl_set(ing->store, doc_id, ing->opts.acl, ing->opts.nacl, err);
}

/* The driving thread's read-only connection (lookups of committed
 * documents while the writer writes). */
static zk_rc reader(idx_ingester *ing, char *err)
{
    if (ing->rstore) return ZK_OK;
    zk_rc rc = ret_store_open(ret_store_dir(ing->store), RET_OPEN_READONLY, &ing->rstore, err);
    if (rc == ZK_OK) ret_store_share_indexes(ing->rstore, ret_store_indexes(ing->store));   /* catch_up */
    return rc;
}

/* 1 if the kb has a committed document ext_id, 0 if not, -1 on a database
 * error. (One written in the open batch is found by the writer instead:
 * ret_doc_put reports it unchanged or replaces it.) */
static int known_doc(idx_ingester *ing, const char *ext_id, char *err)
{
    if (reader(ing, err) != ZK_OK) return -1;
    sqlite3 *db = ret_store_db(ing->rstore);
    if (!ing->known &&
        sqlite3_prepare_v2(db, "SELECT 1 FROM documents WHERE kb_id = ?1 AND ext_id = ?2", -1, &ing->known, NULL) !=
            SQLITE_OK) {
        zk_fail(err, ZK_DB, "document lookup: %s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(ing->known, 1, ing->opts.kb);
    sqlite3_bind_text(ing->known, 2, ext_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(ing->known);
    sqlite3_reset(ing->known);
    if (r == SQLITE_ROW) return 1;
    if (r == SQLITE_DONE) return 0;
    zk_fail(err, ZK_DB, "document lookup: %s", sqlite3_errmsg(db));
    return -1;
}

/* Queue a file-like document; takes ownership of data (zk_malloc'd). A
 * document the kb has not seen is hashed by the worker (the hash only
 * decides "unchanged"), keeping SHA-256 off the writing thread. */
static zk_rc submit_bytes(idx_ingester *ing, const char *ext_id, const char *source, const char *name,
                          char *data, size_t len, char *err)
{
    zk_rc rc = ZK_OK;
    char sha[65] = "";
    ing->stats.bytes += len;
    int same = 0, known = known_doc(ing, ext_id, err);
    if (known < 0) rc = ZK_DB;
    if (known > 0) {
        version_sha(ing, data, len, sha);
        if ((rc = ret_doc_is_unchanged(ing->rstore, ing->opts.kb, ext_id, sha, ing->opts.retry_failed, &same, err)) ==
                ZK_OK &&
            same)
            rc = regrant(ing, ext_id, err);
    }
    if (rc != ZK_OK) {
        zk_free(data);
        return rc;
    }
    if (same) {
        zk_free(data);
        report(ing, ext_id, IDX_UNCHANGED, 0, NULL);
        return ZK_OK;
    }
    job *j = zk_calloc(1, sizeof *j);
    if (!j) { zk_free(data); return zk_fail(err, ZK_NOMEM, "out of memory"); }
    j->data = data;
    j->len = len;
    memcpy(j->sha, sha, sizeof sha);
    j->ext_id = zk_strdup(ext_id);
    j->source = zk_strdup(source);
    j->name = zk_strdup(name);
    if (!j->ext_id || !j->source || !j->name) {
        job_free(j);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    return submit(ing, j, err);
}

zk_rc idx_ingest_bytes(idx_ingester *ing, const char *ext_id, const char *source, const char *name,
                       const char *data, size_t len, char *err)
{
    char *copy = zk_malloc(len + 1);
    if (!copy) return zk_fail(err, ZK_NOMEM, "out of memory");
    memcpy(copy, data, len);
    copy[len] = '\0';
    return submit_bytes(ing, ext_id, source, name, copy, len, err);
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
    /* legacy office files are not detected as a format, but reporting them
     * as failed with the parser's "convert to ..." reason beats skipping */
    const char *ext = strrchr(path, '.');
    int legacy = ext && (!strcasecmp(ext, ".doc") || !strcasecmp(ext, ".rtf") || !strcasecmp(ext, ".xls") ||
                         !strcasecmp(ext, ".ppt"));
    if (!explicit_file && !legacy && !idx_detect_format(path, data, len)) {
        report(ing, path, IDX_SKIPPED, 0, "unsupported format");
        zk_free(data);
        return ZK_OK;
    }
    return submit_bytes(ing, path, path, path, data, len, err);
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

/* --prune: documents whose source lies under root but whose file is gone. */
static zk_rc prune_missing(idx_ingester *ing, const char *root, char *err)
{
    sqlite3 *db = ret_store_db(ing->store);
    sqlite3_stmt *st = NULL;
    int64_t *ids = NULL;
    char **srcs = NULL;
    size_t n = 0, cap = 0;
    zk_rc rc = quiesce(ing, err);   /* the writer's connection, once idle */
    if (rc != ZK_OK) return rc;
    char prefix[PATH_MAX + 2];
    snprintf(prefix, sizeof prefix, "%s/", root);
    if (sqlite3_prepare_v2(db, "SELECT id, source FROM documents WHERE kb_id = ?1 AND "
                               "substr(source, 1, length(?2)) = ?2", -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "prune: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, ing->opts.kb);
    sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *src = (const char *)sqlite3_column_text(st, 1);
        struct stat sb;
        if (!src || lstat(src, &sb) == 0 || errno != ENOENT) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *pi = zk_realloc(ids, cap * sizeof *pi);
            char **ps = pi ? zk_realloc(srcs, cap * sizeof *ps) : NULL;
            if (pi) ids = pi;
            if (ps) srcs = ps;
            if (!pi || !ps) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
        }
        ids[n] = sqlite3_column_int64(st, 0);
        if (!(srcs[n] = zk_strdup(src))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
        n++;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < n && rc == ZK_OK; i++) {
        if ((rc = begin_batch(ing, err)) == ZK_OK && (rc = ret_doc_delete(ing->store, ids[i], err)) == ZK_OK)
            rc = defer(ing, srcs[i], IDX_PRUNED, 0, 0, "source file no longer exists", err);
    }
    for (size_t i = 0; i < n; i++) zk_free(srcs[i]);
    zk_free(srcs);
    zk_free(ids);
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
    if (S_ISDIR(st.st_mode)) {
        zk_rc rc = walk(ing, real, real, 0, err);
        if (rc == ZK_OK && ing->opts.prune) rc = prune_missing(ing, real, err);
        return rc;
    }
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
    if ((rc = reader(ing, err)) != ZK_OK ||
        (rc = ret_doc_is_unchanged(ing->rstore, ing->opts.kb, id, sha, ing->opts.retry_failed, &same, err)) != ZK_OK)
        goto out;
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
    job *j = zk_calloc(1, sizeof *j);
    if (!j) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    j->is_text = 1;
    j->len = strlen(text);
    j->data = zk_strndup(text, j->len);
    j->ext_id = zk_strdup(id);
    j->source = zk_strdup(where);
    j->where = zk_strdup(where);
    j->title = zk_strdup(title && *title ? title : id);
    memcpy(j->sha, sha, sizeof sha);
    if (jmeta) {
        char *m = json_dumps(jmeta, JSON_COMPACT | JSON_SORT_KEYS);
        j->meta = m ? zk_strdup(m) : NULL;
        free(m);
    }
    if (!j->data || !j->ext_id || !j->source || !j->where || !j->title || (jmeta && !j->meta)) {
        job_free(j);
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    rc = submit(ing, j, err);
out:
    json_decref(o);
    return rc;
}

zk_rc idx_ingest_json(idx_ingester *ing, const char *json, size_t len, const char *where, char *err)
{
    return ingest_json_doc(ing, json, len, where, err);
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
