/* docmap.c — the in-memory access map (see docmap.h). Called by search.c
 * once per query: one cheap version probe (max change seq, acl_version, max
 * document id), then, only when something moved, a replay of the new change
 * log rows under the write lock. Arrays are indexed by id (chunk and
 * document ids are dense AUTOINCREMENT keys): 4 bytes per chunk and per
 * document, 40 MB of chunk map at 10M chunks. Caller bitmaps live in a small
 * LRU keyed by principal set and kb. */
#include "retrieval/docmap.h"
#include "retrieval/stmt.h"

#include <pthread.h>
#include <string.h>

#define NCACHE 64

typedef struct {
    char *key;                  /* principals_json; NULL = free slot */
    int64_t kb, acl_seq, max_doc;
    uint64_t *bits;
    size_t nwords;
    size_t allowed_chunks;      /* counted at chunks_seq */
    int64_t *chunks;            /* readable live chunks of kb (built on demand) */
    size_t nchunks;
    int64_t count_seq, list_seq; /* map seq the count / list were made at; -1 none */
    uint64_t used;
} allow_entry;

struct ret_docmap {
    pthread_rwlock_t lock;
    int loaded;
    int64_t seq;                /* last change-log seq applied */
    int64_t max_doc;            /* documents table max id seen */
    int32_t *chunk_doc;         /* [chunk id] -> doc id; 0: none or deleted */
    size_t nchunk_slots;
    uint16_t *chunk_len;        /* [chunk id] -> tokens in the row; 0: unknown */
    size_t nlen_slots;
    int32_t *doc_kb;            /* [doc id] -> kb id */
    size_t ndoc_slots;
    int64_t *kb_chunks;         /* [kb id] -> live chunks */
    size_t nkb_slots;
    int64_t len_next;           /* lengths of chunk ids below this are loaded */
    allow_entry cache[NCACHE];
    uint64_t tick;
};

ret_docmap *ret_docmap_new(void)
{
    ret_docmap *m = zk_calloc(1, sizeof *m);
    if (!m) return NULL;
    if (pthread_rwlock_init(&m->lock, NULL) != 0) { zk_free(m); return NULL; }
    return m;
}

static void entry_clear(allow_entry *e)
{
    zk_free(e->key);
    zk_free(e->bits);
    zk_free(e->chunks);
    memset(e, 0, sizeof *e);
}

void ret_docmap_free(ret_docmap *m)
{
    if (!m) return;
    for (int i = 0; i < NCACHE; i++) entry_clear(&m->cache[i]);
    zk_free(m->chunk_doc);
    zk_free(m->chunk_len);
    zk_free(m->doc_kb);
    zk_free(m->kb_chunks);
    pthread_rwlock_destroy(&m->lock);
    zk_free(m);
}

/* Grow *arr (elements of size sz) so index i fits; new slots zeroed. */
static int ensure(void **arr, size_t *n, size_t sz, int64_t i)
{
    if (i < 0) return -1;
    if ((size_t)i < *n) return 0;
    size_t want = *n ? *n : 1024;
    while (want <= (size_t)i) want *= 2;
    char *p = zk_realloc(*arr, want * sz);
    if (!p) return -1;
    memset(p + *n * sz, 0, (want - *n) * sz);
    *arr = p;
    *n = want;
    return 0;
}

static int set_chunk(ret_docmap *m, int64_t chunk, int64_t doc, int64_t kb)
{
    if (ensure((void **)&m->chunk_doc, &m->nchunk_slots, sizeof(int32_t), chunk) ||
        ensure((void **)&m->doc_kb, &m->ndoc_slots, sizeof(int32_t), doc) ||
        ensure((void **)&m->kb_chunks, &m->nkb_slots, sizeof(int64_t), kb))
        return -1;
    if (!m->chunk_doc[chunk]) m->kb_chunks[kb]++;
    m->chunk_doc[chunk] = (int32_t)doc;
    m->doc_kb[doc] = (int32_t)kb;
    return 0;
}

static void drop_chunk(ret_docmap *m, int64_t chunk)
{
    if (chunk <= 0 || (size_t)chunk >= m->nchunk_slots || !m->chunk_doc[chunk]) return;
    int32_t doc = m->chunk_doc[chunk];
    int64_t kb = (size_t)doc < m->ndoc_slots ? m->doc_kb[doc] : 0;
    if (kb > 0 && (size_t)kb < m->nkb_slots && m->kb_chunks[kb] > 0) m->kb_chunks[kb]--;
    m->chunk_doc[chunk] = 0;
    if ((size_t)chunk < m->nlen_slots) m->chunk_len[chunk] = 0;
}

/* FTS5's %_docsize row: one varint per column (SQLite's varint: big-endian
 * 7-bit groups, the ninth byte whole), its tokens in that column. The sum,
 * or 0 if it does not parse or does not fit 16 bits. */
static unsigned docsize_sum(const unsigned char *p, int n)
{
    uint64_t sum = 0;
    for (int i = 0; i < n;) {
        uint64_t v = 0;
        for (int k = 0, more = 1; more; k++) {
            if (i >= n) return 0;   /* cut short */
            unsigned char b = p[i++];
            if (k == 8) {
                v = (v << 8) | b;
                more = 0;
            } else {
                v = (v << 7) | (b & 0x7f);
                more = b & 0x80;
            }
        }
        if ((sum += v) > UINT16_MAX) return 0;
    }
    return (unsigned)sum;
}

/* Row lengths of live chunks with ids in [from, to), from FTS5's own record of
 * them (what xColumnSize reads with one B-tree probe per ranked row, which
 * was half of BM25's time at a million chunks: zk_bm25 reads them here).
 * Best effort: a row not found here keeps 0 and BM25 asks FTS5. */
static void load_lengths(ret_docmap *m, sqlite3 *db, int64_t from, int64_t to)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT id, sz FROM chunks_fts_docsize WHERE id >= ? AND id < ?", -1, &st, NULL) !=
        SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, to);
    if (m->nchunk_slots > m->nlen_slots &&
        ensure((void **)&m->chunk_len, &m->nlen_slots, sizeof(uint16_t), (int64_t)m->nchunk_slots - 1)) {
        sqlite3_finalize(st);
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (id <= 0 || (size_t)id >= m->nlen_slots || !m->chunk_doc[id]) continue;
        const unsigned char *sz = sqlite3_column_blob(st, 1);
        m->chunk_len[id] = (uint16_t)docsize_sum(sz, sqlite3_column_bytes(st, 1));
    }
    sqlite3_finalize(st);
}

typedef struct { int64_t seq, acl_seq, max_doc; } versions;

static zk_rc read_versions(sqlite3 *db, versions *v, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (ret__prepare(db, "SELECT (SELECT coalesce(max(seq), 0) FROM changes), "
                               "(SELECT seq FROM acl_version WHERE id = 1), "
                               "(SELECT coalesce(max(id), 0) FROM documents)", &st) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    } else {
        v->seq = sqlite3_column_int64(st, 0);
        v->acl_seq = sqlite3_column_int64(st, 1);
        v->max_doc = sqlite3_column_int64(st, 2);
    }
    ret__release(st);
    return rc;
}

/* First use: each document's kb, then every live chunk from the chunks_doc
 * index (covering, so the chunk rows with their text are not read; a join
 * with documents per chunk row cost 40% more), at the log position read
 * before; with lengths, the row lengths too (else len_next stays at 1 and
 * ret_docmap_load_lengths loads them later). */
static zk_rc load_all(ret_docmap *m, sqlite3 *db, int64_t seq, int with_lengths, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    int r;
    if (sqlite3_prepare_v2(db, "SELECT id, kb_id FROM documents", -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t d = sqlite3_column_int64(st, 0);
        if (d <= 0 || d > INT32_MAX) continue;
        if (ensure((void **)&m->doc_kb, &m->ndoc_slots, sizeof(int32_t), d)) {
            rc = zk_fail(err, ZK_NOMEM, "out of memory");
            break;
        }
        m->doc_kb[d] = (int32_t)sqlite3_column_int64(st, 1);
    }
    if (rc == ZK_OK && r != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc != ZK_OK) return rc;
    if (sqlite3_prepare_v2(db, "SELECT id, doc_id FROM chunks INDEXED BY chunks_doc", -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t c = sqlite3_column_int64(st, 0), d = sqlite3_column_int64(st, 1);
        if (d <= 0 || (size_t)d >= m->ndoc_slots || !m->doc_kb[d]) continue;   /* a chunk without its document */
        if (set_chunk(m, c, d, m->doc_kb[d])) {
            rc = zk_fail(err, ZK_NOMEM, "out of memory");
            break;
        }
    }
    if (rc == ZK_OK && r != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc == ZK_OK) {
        m->len_next = 1;
        if (with_lengths) {
            load_lengths(m, db, 1, INT64_MAX);
            m->len_next = INT64_MAX;
        }
        m->seq = seq;
        m->loaded = 1;
    }
    return rc;
}

/* Changes after m->seq, in order: adds (op 1) name a run of n chunks of one
 * document, which comes from the run's first chunk row (gone again: later
 * deletes follow); deletes (op 0) drop theirs. */
static zk_rc replay(ret_docmap *m, sqlite3 *db, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    if (sqlite3_prepare_v2(db, "SELECT ch.seq, ch.kb_id, ch.chunk_id, ch.op, c.doc_id, ch.n FROM changes ch "
                               "LEFT JOIN chunks c ON c.id = ch.chunk_id WHERE ch.seq > ? ORDER BY ch.seq",
                           -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, m->seq);
    int r;
    int64_t first_add = 0;   /* smallest chunk id added: lengths are read from there */
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0), chunk = sqlite3_column_int64(st, 2);
        int64_t run = sqlite3_column_int64(st, 5);
        if (run < 1 || run > RET_MAX_RUN) {
            rc = zk_fail(err, ZK_CORRUPT, "access map: a change-log run of %lld chunks", (long long)run);
            break;
        }
        for (int64_t k = 0; k < run && rc == ZK_OK; k++) {
            if (sqlite3_column_int(st, 3) == 0) drop_chunk(m, chunk + k);
            else if (sqlite3_column_type(st, 4) != SQLITE_NULL &&
                     set_chunk(m, chunk + k, sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 1)))
                rc = zk_fail(err, ZK_NOMEM, "out of memory");
        }
        if (sqlite3_column_int(st, 3) != 0 && (!first_add || chunk < first_add)) first_add = chunk;
        if (rc != ZK_OK) break;
        m->seq = seq;
    }
    if (rc == ZK_OK && r != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc == ZK_OK && first_add > 0) load_lengths(m, db, first_add, INT64_MAX);
    return rc;
}

static allow_entry *find_entry(ret_docmap *m, const ret_caller *c, int64_t kb)
{
    for (int i = 0; i < NCACHE; i++)
        if (m->cache[i].key && m->cache[i].kb == kb && !strcmp(m->cache[i].key, c->principals_json))
            return &m->cache[i];
    return NULL;
}

/* Readable documents with id > e->max_doc added to the bitmap. */
static zk_rc grants_since(allow_entry *e, sqlite3 *db, const ret_caller *c, int64_t max_doc, char *err)
{
    sqlite3_stmt *st = NULL;
    zk_rc rc = ZK_OK;
    size_t words = (size_t)(max_doc / 64) + 1;
    if (words > e->nwords) {
        uint64_t *p = zk_realloc(e->bits, words * sizeof *p);
        if (!p) return zk_fail(err, ZK_NOMEM, "out of memory");
        memset(p + e->nwords, 0, (words - e->nwords) * sizeof *p);
        e->bits = p;
        e->nwords = words;
    }
    if (sqlite3_prepare_v2(db, "SELECT a.doc_id FROM json_each(?1) p CROSS JOIN doc_acl a "
                               "WHERE a.principal_id = p.value AND a.doc_id > ?2 AND a.doc_id <= ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, c->principals_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, e->max_doc);
    sqlite3_bind_int64(st, 3, max_doc);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t d = sqlite3_column_int64(st, 0);
        if (d > 0 && (size_t)(d / 64) < e->nwords) e->bits[d / 64] |= 1ULL << (d % 64);
    }
    if (r != SQLITE_DONE) rc = zk_fail(err, ZK_DB, "access map: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc == ZK_OK) e->max_doc = max_doc;
    return rc;
}

static int bit(const uint64_t *bits, size_t nwords, int64_t d)
{
    return d > 0 && (size_t)(d / 64) < nwords && (bits[d / 64] >> (d % 64) & 1);
}

/* The caller's entry for kb, current at v (write lock held). */
static zk_rc update_entry(ret_docmap *m, sqlite3 *db, const ret_caller *c, int64_t kb, const versions *v,
                          int want_list, allow_entry **out, char *err)
{
    zk_rc rc;
    allow_entry *e = find_entry(m, c, kb);
    if (e && e->acl_seq < v->acl_seq) {
        zk_free(e->bits);
        e->bits = NULL;
        e->nwords = 0;
        e->max_doc = 0;
        e->count_seq = e->list_seq = -1;
        e->acl_seq = v->acl_seq;
    }
    if (!e) {
        allow_entry *lru = &m->cache[0];
        for (int i = 0; i < NCACHE; i++) {
            if (!m->cache[i].key) { lru = &m->cache[i]; break; }
            if (m->cache[i].used < lru->used) lru = &m->cache[i];
        }
        entry_clear(lru);
        if (!(lru->key = zk_strdup(c->principals_json))) return zk_fail(err, ZK_NOMEM, "out of memory");
        lru->kb = kb;
        lru->acl_seq = v->acl_seq;
        lru->count_seq = lru->list_seq = -1;
        e = lru;
    }
    if (e->max_doc < v->max_doc || !e->bits) {
        if ((rc = grants_since(e, db, c, v->max_doc, err)) != ZK_OK) {
            entry_clear(e);
            return rc;
        }
        e->count_seq = e->list_seq = -1;
    }
    int need_list = want_list && e->list_seq != m->seq;
    if (e->count_seq != m->seq || need_list) {
        /* one pass over the chunk map: count, and collect (kept only when
         * the caller reads a minority: the vector side then scores those) */
        size_t n = 0, cap = want_list ? 1024 : 0;
        int64_t *l = want_list ? zk_malloc(cap * sizeof *l) : NULL;
        if (want_list && !l) return zk_fail(err, ZK_NOMEM, "out of memory");
        for (size_t i = 1; i < m->nchunk_slots; i++) {
            int32_t d = m->chunk_doc[i];
            if (!d || m->doc_kb[d] != kb || !bit(e->bits, e->nwords, d)) continue;
            if (l && n == cap) {
                int64_t *p = zk_realloc(l, (cap *= 2) * sizeof *l);
                if (!p) { zk_free(l); return zk_fail(err, ZK_NOMEM, "out of memory"); }
                l = p;
            }
            if (l) l[n] = (int64_t)i;
            n++;
        }
        e->allowed_chunks = n;
        e->count_seq = m->seq;
        size_t kbn = (size_t)kb < m->nkb_slots ? (size_t)m->kb_chunks[kb] : 0;
        zk_free(e->chunks);
        e->chunks = NULL;
        e->nchunks = 0;
        if (l && n * 2 < kbn) {
            e->chunks = l;
            e->nchunks = n;
        } else {
            zk_free(l);
        }
        e->list_seq = want_list ? m->seq : -1;
    }
    *out = e;
    return ZK_OK;
}

static int fresh(const ret_docmap *m, const versions *v)
{
    return m->loaded && m->seq >= v->seq && m->max_doc >= v->max_doc;
}

static int entry_fresh(const ret_docmap *m, const allow_entry *e, const versions *v, int want_list)
{
    return e && e->acl_seq >= v->acl_seq && e->max_doc >= v->max_doc && e->bits && e->count_seq == m->seq &&
           (!want_list || e->list_seq == m->seq);
}

static void fill_view(ret_docmap *m, const allow_entry *e, int64_t kb, ret_view *out)
{
    memset(out, 0, sizeof *out);
    out->m = m;
    out->kb = kb;
    out->kb_chunks = (size_t)kb < m->nkb_slots ? (size_t)m->kb_chunks[kb] : 0;
    for (size_t i = 0; i < m->nkb_slots; i++) out->total_chunks += (size_t)m->kb_chunks[i];
    if (!e) {
        out->admin = 1;
        out->allowed_chunks = out->kb_chunks;
        return;
    }
    out->bits = e->bits;
    out->nbits = e->nwords * 64;
    out->chunks = e->chunks;
    out->nchunks = e->nchunks;
    out->allowed_chunks = e->allowed_chunks;
}

/* Under the write lock: load the map if this is its first use (with or
 * without the row lengths), then replay the changes since. */
static zk_rc bring_up_to_date(ret_docmap *m, sqlite3 *db, const versions *v, int with_lengths, char *err)
{
    zk_rc rc = m->loaded ? ZK_OK : load_all(m, db, v->seq, with_lengths, err);
    if (rc == ZK_OK) rc = replay(m, db, err);
    if (rc == ZK_OK && v->max_doc > m->max_doc) m->max_doc = v->max_doc;
    return rc;
}

zk_rc ret_docmap_view(ret_docmap *m, sqlite3 *db, const ret_caller *c, int64_t kb, int want_list,
                      ret_view *out, char *err)
{
    versions v = {0, 0, 0};
    zk_rc rc = read_versions(db, &v, err);
    if (rc != ZK_OK) return rc;
    for (int attempt = 0;; attempt++) {
        /* fast path: nothing moved since the map and this caller's entry
         * were made; the read lock is kept until ret_view_release */
        pthread_rwlock_rdlock(&m->lock);
        if (fresh(m, &v)) {
            allow_entry *e = c->admin ? NULL : find_entry(m, c, kb);
            if (c->admin || entry_fresh(m, e, &v, want_list)) {
                if (e) __atomic_store_n(&e->used, __atomic_add_fetch(&m->tick, 1, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
                fill_view(m, e, kb, out);
                return ZK_OK;
            }
        }
        pthread_rwlock_unlock(&m->lock);

        pthread_rwlock_wrlock(&m->lock);
        rc = bring_up_to_date(m, db, &v, 1, err);
        allow_entry *e = NULL;
        if (rc == ZK_OK && !c->admin) {
            rc = update_entry(m, db, c, kb, &v, want_list, &e, err);
            if (e) e->used = ++m->tick;
        }
        if (rc != ZK_OK) {
            pthread_rwlock_unlock(&m->lock);
            return rc;
        }
        if (attempt < 2) {
            /* updated: search under the shared lock like everyone else
             * (another writer may move it again in between; retry) */
            pthread_rwlock_unlock(&m->lock);
            continue;
        }
        /* still moving under heavy writes: keep the lock as a writer, the
         * view's arrays cannot change under it */
        fill_view(m, e, kb, out);
        return ZK_OK;
    }
}

zk_rc ret_docmap_warm(ret_docmap *m, sqlite3 *db, char *err)
{
    versions v = {0, 0, 0};
    zk_rc rc = read_versions(db, &v, err);
    if (rc != ZK_OK) return rc;
    pthread_rwlock_wrlock(&m->lock);
    rc = bring_up_to_date(m, db, &v, 0, err);
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

int ret_docmap_load_lengths(ret_docmap *m, sqlite3 *db, int64_t ids)
{
    pthread_rwlock_wrlock(&m->lock);
    int more = m->loaded && m->len_next < (int64_t)m->nchunk_slots;
    if (more) {
        int64_t to = m->len_next + ids;
        load_lengths(m, db, m->len_next, to);
        m->len_next = to;
        more = to < (int64_t)m->nchunk_slots;
    }
    pthread_rwlock_unlock(&m->lock);
    return more;
}

void ret_view_release(ret_view *v)
{
    if (v && v->m) {
        pthread_rwlock_unlock(&v->m->lock);
        v->m = NULL;
    }
}

int ret_view_chunk_ok(const ret_view *v, int64_t chunk_id)
{
    const ret_docmap *m = v->m;
    if (chunk_id <= 0 || (size_t)chunk_id >= m->nchunk_slots) return 0;
    int32_t d = m->chunk_doc[chunk_id];
    if (!d || m->doc_kb[d] != v->kb) return 0;
    return v->admin || ((size_t)d < v->nbits && (v->bits[d / 64] >> (d % 64) & 1));
}

unsigned ret_view_chunk_len(const ret_view *v, int64_t chunk_id)
{
    const ret_docmap *m = v->m;
    return chunk_id > 0 && (size_t)chunk_id < m->nlen_slots ? m->chunk_len[chunk_id] : 0;
}

static void chunk_ok_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const ret_view *v = sqlite3_value_pointer(argv[1], RET_VIEW_PTR);
    sqlite3_result_int(ctx, v && v->m && ret_view_chunk_ok(v, sqlite3_value_int64(argv[0])));
}

zk_rc ret_docmap_register(sqlite3 *db, char *err)
{
    if (sqlite3_create_function_v2(db, "zk_chunk_ok", 2, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL, chunk_ok_fn,
                                   NULL, NULL, NULL) != SQLITE_OK)
        return zk_fail(err, ZK_DB, "register zk_chunk_ok: %s", sqlite3_errmsg(db));
    return ZK_OK;
}
