/* chunker.c — split parsed blocks into overlapping retrieval chunks
 * (see chunker.h).
 *
 * Called by the ingestion pipeline once per document. Each block is scanned
 * once into sentence units (with paragraph ends marked), then packed
 * greedily; oversized sentences are cut at whitespace/clause marks or at a
 * code point. Everything is linear in the text size (a 10 MB line without
 * spaces is fine); memory is one small record per sentence. */
#include "indexer/chunker.h"

#include <string.h>

#include "utf8.h"

typedef struct {
    size_t b0, b1;   /* byte range of the sentence (no surrounding spaces) */
    size_t c0, c1;   /* the same in code points, block-relative */
    int para;        /* the sentence ends a paragraph */
} unit;

typedef struct {
    size_t b, c;     /* byte offset and code-point offset, block-relative */
} pos_t;

typedef struct {
    size_t target, overlap, max;
    idx_chunk *v;
    size_t n, cap;
} chunk_out;

void idx_chunk_opts_default(idx_chunk_opts *o)
{
    o->target_chars = 500;
    o->overlap_chars = 80;
    o->max_chunks = 100000;
}

static int is_closer(uint32_t c)
{
    switch (c) {
    case '"': case '\'': case ')': case ']': case '}':
    case 0x201D: /* ” */ case 0x2019: /* ’ */ case 0x300D: /* 」 */ case 0x300F: /* 』 */
    case 0xFF09: /* ） */ case 0x3011: /* 】 */ case 0x300B: /* 》 */ case 0x3009: /* 〉 */
    case 0x3015: /* 〕 */ case 0xFF3D: /* ］ */ case 0xFF5D: /* ｝ */ case 0x00BB: /* » */
        return 1;
    default:
        return 0;
    }
}

/* Clause marks: acceptable cut points inside an over-long sentence. */
static int is_clause(uint32_t c)
{
    return c == ',' || c == ';' || c == ':' || c == 0xFF0C /* ， */ || c == 0x3001 /* 、 */ ||
           c == 0xFF1A /* ： */;
}

static uint32_t decode_at(const char *t, size_t len, size_t b, size_t *out_n)
{
    uint32_t cp;
    if ((unsigned char)t[b] < 0x80) { *out_n = 1; return (unsigned char)t[b]; }
    *out_n = utf8_decode((const unsigned char *)t + b, len - b, &cp);
    return cp;
}

/* Byte offset of the character that ends at b (b > lo). */
static size_t prev_char(const char *t, size_t lo, size_t b)
{
    size_t k = b - 1;
    while (k > lo && ((unsigned char)t[k] & 0xC0) == 0x80 && b - k < 4) k--;
    uint32_t cp;
    if (k + utf8_decode((const unsigned char *)t + k, b - k, &cp) != b) k = b - 1;
    return k;
}

/* ---- sentence units ----------------------------------------------------- */

static int push_unit(unit **v, size_t *n, size_t *cap, const unit *u)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        unit *nv = zk_realloc(*v, ncap * sizeof *nv);
        if (!nv) return -1;
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*n)++] = *u;
    return 0;
}

/* After an ASCII . ! ? run ending at i: is this a sentence boundary? Yes at
 * the end, before whitespace (unless a lowercase word follows on the same
 * line, as in "e.g. foo") and before CJK; "3.14" and "e.g" are not. */
static int ascii_boundary(const char *t, size_t len, size_t i)
{
    if (i >= len) return 1;
    size_t n;
    uint32_t d = decode_at(t, len, i, &n);
    if (utf8_is_cjk(d)) return 1;
    if (!utf8_is_space(d)) return 0;
    while (i < len) {
        d = decode_at(t, len, i, &n);
        if (d == '\n') return 1;
        if (!utf8_is_space(d)) return !(d >= 'a' && d <= 'z');
        i += n;
    }
    return 1;
}

/* Scan one block into sentence units; *out_cps receives its length in code
 * points. */
static zk_rc build_units(const char *t, size_t len, unit **out_v, size_t *out_n, size_t *out_cps)
{
    unit *v = NULL, cur = {0, 0, 0, 0, 0};
    size_t n = 0, cap = 0, i = 0, cp = 0, newlines = 0, last_b = 0, last_c = 0;
    int open = 0;

    while (i < len) {
        size_t k;
        uint32_t c = decode_at(t, len, i, &k);
        if (utf8_is_space(c)) {
            if (c == '\n') newlines++;
            i += k;
            cp++;
            continue;
        }
        if (newlines >= 2) {   /* a blank line ends the paragraph */
            if (open) {
                cur.b1 = last_b; cur.c1 = last_c; cur.para = 1;
                if (push_unit(&v, &n, &cap, &cur)) goto nomem;
                open = 0;
            } else if (n > 0) {
                v[n - 1].para = 1;
            }
        }
        newlines = 0;
        if (!open) { cur.b0 = i; cur.c0 = cp; open = 1; }
        i += k;
        cp++;
        last_b = i;
        last_c = cp;
        if (!utf8_is_sentence_end(c)) continue;
        int wide = c >= 0x80;   /* a CJK-style terminator always ends a sentence */
        while (i < len) {
            uint32_t d = decode_at(t, len, i, &k);
            if (!utf8_is_sentence_end(d) && !is_closer(d)) break;
            if (utf8_is_sentence_end(d) && d >= 0x80) wide = 1;
            i += k;
            cp++;
            last_b = i;
            last_c = cp;
        }
        if (wide || ascii_boundary(t, len, i)) {
            cur.b1 = last_b; cur.c1 = last_c; cur.para = 0;
            if (push_unit(&v, &n, &cap, &cur)) goto nomem;
            open = 0;
        }
    }
    if (open) {
        cur.b1 = last_b; cur.c1 = last_c; cur.para = 1;
        if (push_unit(&v, &n, &cap, &cur)) goto nomem;
    } else if (n > 0) {
        v[n - 1].para = 1;
    }
    *out_v = v;
    *out_n = n;
    *out_cps = cp;
    return ZK_OK;
nomem:
    zk_free(v);
    return ZK_NOMEM;
}

/* ---- emitting ------------------------------------------------------------ */

static zk_rc emit(chunk_out *o, const char *t, size_t len, const idx_block *blk, size_t base,
                  pos_t s, pos_t e, char *err)
{
    size_t k;
    while (s.b < e.b && utf8_is_space(decode_at(t, len, s.b, &k))) { s.b += k; s.c++; }
    while (e.b > s.b) {
        size_t p = prev_char(t, s.b, e.b);
        if (!utf8_is_space(decode_at(t, len, p, &k))) break;
        e.b = p;
        e.c--;
    }
    if (s.b >= e.b) return ZK_OK;
    if (o->n >= o->max)
        return zk_fail(err, ZK_TOOBIG, "document exceeds %zu chunks", o->max);
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 16;
        idx_chunk *nv = zk_realloc(o->v, ncap * sizeof *nv);
        if (!nv) return zk_fail(err, ZK_NOMEM, "out of memory");
        o->v = nv;
        o->cap = ncap;
    }
    idx_chunk *c = &o->v[o->n];
    memset(c, 0, sizeof *c);
    c->text = zk_strndup(t + s.b, e.b - s.b);
    c->heading = blk->heading ? zk_strdup(blk->heading) : NULL;
    if (!c->text || (blk->heading && !c->heading)) {
        zk_free(c->text);
        zk_free(c->heading);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    c->len = e.b - s.b;
    c->page = blk->page;
    c->ordinal = (int)o->n;
    c->start = base + s.c;
    c->end = base + e.c;
    o->n++;
    return ZK_OK;
}

/* Step forward up to k code points from p (not past limit). */
static pos_t advance(const char *t, size_t limit, pos_t p, size_t k)
{
    while (k-- > 0 && p.b < limit) {
        uint32_t cp;
        if ((unsigned char)t[p.b] < 0x80) p.b++;
        else p.b += utf8_decode((const unsigned char *)t + p.b, limit - p.b, &cp);
        p.c++;
    }
    return p;
}

/* Cut an over-long sentence that starts at *pos: emit up to target code
 * points ending at a newline, space or clause mark in the last quarter of
 * the window, else at a code point; move *pos on, keeping some overlap. */
static zk_rc cut_oversized(chunk_out *o, const char *t, size_t len, const idx_block *blk,
                           size_t base, const unit *u, pos_t *pos, char *err)
{
    pos_t limit = advance(t, u->b1, *pos, o->target);
    size_t min_c = pos->c + ZK_MAX(o->target * 3 / 4, (size_t)1);
    pos_t q = limit, nl_at = {0, 0}, weak_at = {0, 0};
    pos_t nl_next = {0, 0}, weak_next = {0, 0};
    int have_nl = 0, have_weak = 0;
    while (q.c > min_c && !have_nl) {
        size_t k, p = prev_char(t, pos->b, q.b);
        uint32_t c = decode_at(t, len, p, &k);
        pos_t before = {p, q.c - 1};
        if (c == '\n') { have_nl = 1; nl_at = before; nl_next = q; }
        else if (!have_weak && utf8_is_space(c)) { have_weak = 1; weak_at = before; weak_next = q; }
        else if (!have_weak && is_clause(c)) { have_weak = 1; weak_at = q; weak_next = q; }
        q = before;
    }
    pos_t end = limit, next = limit;
    if (have_nl) { end = nl_at; next = nl_next; }
    else if (have_weak) { end = weak_at; next = weak_next; }
    zk_rc rc = emit(o, t, len, blk, base, *pos, end, err);
    if (rc != ZK_OK) return rc;

    /* overlap: back off up to overlap code points, then forward to just
     * after a space or clause mark so the chunk starts on a word */
    pos_t s = next;
    size_t back = ZK_MIN(o->overlap, (next.c - pos->c) / 2);
    while (back-- > 0 && s.b > pos->b) { s.b = prev_char(t, pos->b, s.b); s.c--; }
    for (pos_t f = s; f.b < next.b;) {
        size_t k;
        uint32_t c = decode_at(t, len, f.b, &k);
        f.b += k;
        f.c++;
        if (utf8_is_space(c) || is_clause(c)) { s = f; break; }
    }
    if (s.c <= pos->c) s = next;
    *pos = s;
    return ZK_OK;
}

static zk_rc chunk_block(chunk_out *o, const idx_block *blk, size_t base, size_t *out_cps,
                         char *err)
{
    const char *t = blk->text ? blk->text : "";
    size_t len = blk->text ? blk->len : 0;
    unit *u = NULL;
    size_t nu = 0;
    zk_rc rc = build_units(t, len, &u, &nu, out_cps);
    if (rc != ZK_OK) return zk_fail(err, rc, "out of memory");

    size_t i = 0;
    pos_t pos = {nu ? u[0].b0 : 0, nu ? u[0].c0 : 0};
    while (i < nu) {
        if (pos.b < u[i].b0) { pos.b = u[i].b0; pos.c = u[i].c0; }
        size_t j = i;
        while (j < nu && u[j].c1 - pos.c <= o->target) j++;
        if (j == i) {   /* the sentence at pos alone is too long */
            if ((rc = cut_oversized(o, t, len, blk, base, &u[i], &pos, err)) != ZK_OK) goto out;
            continue;
        }
        size_t k = j - 1;
        if (j < nu) {   /* full: prefer ending at a paragraph if that is not too short */
            for (size_t m = k + 1; m-- > i;) {
                if (!u[m].para) continue;
                if (u[m].c1 - pos.c >= o->target / 2) k = m;
                break;
            }
        }
        pos_t end = {u[k].b1, u[k].c1};
        if ((rc = emit(o, t, len, blk, base, pos, end, err)) != ZK_OK) goto out;
        if (k + 1 >= nu) break;
        /* overlap: whole sentences at the end of this chunk, when the next
         * chunk can still take in the following sentence */
        size_t s = k + 1;
        while (s - 1 > i && u[k].c1 - u[s - 1].c0 <= o->overlap) s--;
        if (s <= k && u[k + 1].c1 - u[s].c0 > o->target) s = k + 1;
        i = s;
        pos.b = u[s].b0;
        pos.c = u[s].c0;
    }
out:
    zk_free(u);
    return rc;
}

zk_rc idx_chunk_doc(const idx_parsed *doc, const idx_chunk_opts *opts,
                    idx_chunk **out_chunks, size_t *out_n, char *err)
{
    idx_chunk_opts def;
    chunk_out o;
    zk_rc rc = ZK_OK;

    *out_chunks = NULL;
    *out_n = 0;
    if (!doc) return zk_fail(err, ZK_INVALID, "no document");
    idx_chunk_opts_default(&def);
    if (!opts) opts = &def;
    memset(&o, 0, sizeof o);
    o.target = opts->target_chars ? opts->target_chars : def.target_chars;
    if (o.target < 8) o.target = 8;
    o.overlap = ZK_MIN(opts->overlap_chars, o.target / 2 - 1);
    o.max = opts->max_chunks ? opts->max_chunks : def.max_chunks;

    size_t base = 0;
    for (size_t b = 0; b < doc->nblocks; b++) {
        size_t cps = 0;
        if ((rc = chunk_block(&o, &doc->blocks[b], base, &cps, err)) != ZK_OK) goto out;
        base += cps + 2;   /* blocks are joined with "\n\n" */
    }
    *out_chunks = o.v;
    *out_n = o.n;
    o.v = NULL;
    o.n = 0;
out:
    idx_chunks_free(o.v, o.n);
    return rc;
}

void idx_chunks_free(idx_chunk *chunks, size_t n)
{
    if (!chunks) return;
    for (size_t i = 0; i < n; i++) {
        zk_free(chunks[i].text);
        zk_free(chunks[i].heading);
    }
    zk_free(chunks);
}
