/* csv.c — delimited text tables (CSV, TSV; RFC 4180 quoting).
 *
 * Called by idx_parse() for .csv/.tsv files and text detected as delimited.
 * The delimiter (, ; tab |) is chosen from the first records; the first
 * non-empty record is the header and each later record reads
 * "Header: value; Header: value", so any chunk keeps its column names.
 * Records go into blocks of ROWS_PER_BLOCK lines. One pass, linear. */
#include "indexer/parse/parse.h"

#include <string.h>
#include <strings.h>

#include "buf.h"

#define ROWS_PER_BLOCK 100
#define MAX_FIELDS 16384
#define SAMPLE_RECORDS 20

typedef struct {
    const char *s;
    size_t len, pos;
    char delim;
} csv_reader;

typedef struct {
    char **f;
    size_t n, cap;
} record;

static void record_clear(record *r)
{
    for (size_t i = 0; i < r->n; i++) zk_free(r->f[i]);
    r->n = 0;
}

static void record_free(record *r)
{
    record_clear(r);
    zk_free(r->f);
    r->f = NULL;
    r->cap = 0;
}

/* Read one record into r. Returns 0 at end of input, 1 when a record was
 * read, -1 on allocation failure. */
static int next_record(csv_reader *cr, record *r)
{
    record_clear(r);
    if (cr->pos >= cr->len) return 0;
    zk_buf f;
    buf_init(&f, 0);
    int quoted = 0, done = 0, was_quoted = 0;
    while (!done) {
        int end_field = 0;
        if (cr->pos >= cr->len) { end_field = done = 1; }
        else {
            char c = cr->s[cr->pos++];
            if (quoted) {
                if (c == '"') {
                    if (cr->pos < cr->len && cr->s[cr->pos] == '"') { cr->pos++; if (buf_putc(&f, '"')) goto fail; }
                    else quoted = 0;
                } else if (buf_putc(&f, c) != ZK_OK) goto fail;
            } else if (c == '"' && f.len == 0 && !was_quoted) {
                quoted = was_quoted = 1;
            } else if (c == cr->delim) {
                end_field = 1;
            } else if (c == '\n' || c == '\r') {
                if (c == '\r' && cr->pos < cr->len && cr->s[cr->pos] == '\n') cr->pos++;
                end_field = done = 1;
            } else if (buf_putc(&f, c) != ZK_OK) goto fail;
        }
        if (end_field) {
            if (r->n < MAX_FIELDS) {
                if (r->n == r->cap) {
                    size_t nc = r->cap ? r->cap * 2 : 16;
                    char **nf = zk_realloc(r->f, nc * sizeof *nf);
                    if (!nf) goto fail;
                    r->f = nf;
                    r->cap = nc;
                }
                char *v = buf_steal(&f, NULL);
                if (!v) goto fail;
                /* trim surrounding blanks */
                size_t a = strspn(v, " \t"), n = strlen(v);
                while (n > a && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
                memmove(v, v + a, n - a);
                v[n - a] = '\0';
                r->f[r->n++] = v;
            }
            buf_reset(&f);
            was_quoted = 0;
        }
    }
    buf_free(&f);
    return 1;
fail:
    buf_free(&f);
    return -1;
}

static int record_empty(const record *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->f[i][0]) return 0;
    return 1;
}

/* The delimiter whose per-record count is most consistent (then largest)
 * over the first records, quote-aware. */
static char pick_delim(const char *name, const char *s, size_t len)
{
    static const char cands[] = {',', '\t', ';', '|'};
    const char *dot = name ? strrchr(name, '.') : NULL;
    char best = dot && !strcasecmp(dot, ".tsv") ? '\t' : ',';
    size_t best_score = 0;
    for (size_t d = 0; d < sizeof cands; d++) {
        size_t counts[SAMPLE_RECORDS], nrec = 0, cnt = 0;
        int quoted = 0;
        for (size_t i = 0; i <= len && nrec < SAMPLE_RECORDS; i++) {
            char c = i < len ? s[i] : '\n';
            if (c == '"') quoted = !quoted;
            else if (!quoted && c == cands[d]) cnt++;
            else if (!quoted && c == '\n') {
                if (i > 0 && s[i - 1] != '\n') counts[nrec++] = cnt;
                cnt = 0;
            }
        }
        if (!nrec || !counts[0]) continue;
        size_t same = 0;
        for (size_t i = 0; i < nrec; i++) same += counts[i] == counts[0];
        size_t score = same * 1000 / nrec * 64 + ZK_MIN(counts[0], (size_t)63);
        if (score > best_score) { best_score = score; best = cands[d]; }
    }
    return best;
}

static zk_rc flush(idx_parsed *doc, zk_buf *out)
{
    zk_rc rc = ZK_OK;
    while (out->len && out->data[out->len - 1] == '\n') out->len--;
    if (out->len) rc = idx__add_block(doc, out->data, out->len, NULL, 0);
    buf_reset(out);
    return rc;
}

zk_rc idx__parse_csv(const char *name, const char *utf8, size_t len, idx_parsed *doc, char *err)
{
    zk_rc rc = ZK_OK;
    record hdr = {0}, row = {0};
    zk_buf out;
    buf_init(&out, 0);
    csv_reader cr = {.s = utf8, .len = len, .pos = 0, .delim = 0};
    if (len >= 3 && memcmp(utf8, "\xEF\xBB\xBF", 3) == 0) cr.pos = 3;
    cr.delim = pick_delim(name, utf8 + cr.pos, len - cr.pos);
    int r, have_header = 0;
    size_t rows = 0, in_block = 0;
    while ((r = next_record(&cr, &row)) > 0) {
        if (record_empty(&row)) continue;
        if (!have_header) {
            record t = hdr;
            hdr = row;
            row = t;
            have_header = 1;
            continue;
        }
        int first = 1;
        for (size_t i = 0; i < row.n && rc == ZK_OK; i++) {
            if (!row.f[i][0]) continue;
            if (i < hdr.n && hdr.f[i][0])
                rc = buf_printf(&out, "%s%s: %s", first ? "" : "; ", hdr.f[i], row.f[i]);
            else
                rc = buf_printf(&out, "%sColumn %zu: %s", first ? "" : "; ", i + 1, row.f[i]);
            first = 0;
        }
        if (rc == ZK_OK) rc = buf_putc(&out, '\n');
        if (rc != ZK_OK) { zk_fail(err, rc, "CSV row %zu", rows + 1); goto out; }
        rows++;
        if (++in_block == ROWS_PER_BLOCK) {
            in_block = 0;
            if ((rc = flush(doc, &out)) != ZK_OK) { zk_fail(err, rc, "CSV block"); goto out; }
        }
    }
    if (r < 0) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (!rows && have_header) {   /* header only: keep its text */
        for (size_t i = 0; i < hdr.n && rc == ZK_OK; i++)
            if (hdr.f[i][0]) rc = buf_printf(&out, "%s%s", out.len ? " | " : "", hdr.f[i]);
    }
    if (rc == ZK_OK) rc = flush(doc, &out);
    if (rc != ZK_OK) zk_fail(err, rc, "CSV block");
out:
    record_free(&hdr);
    record_free(&row);
    buf_free(&out);
    return rc;
}
