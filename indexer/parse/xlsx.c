/* xlsx.c — Office Open XML spreadsheets (.xlsx).
 *
 * Called by idx_parse() for ZIP containers holding xl/workbook.xml. Each
 * sheet (named in the workbook, located through its relationships) becomes
 * one block headed by the sheet name; the first non-empty row is the header
 * and every later row reads "Header: value; Header: value", so any chunk of
 * rows keeps its column names. Values are shared strings, inline strings or
 * the number as written. Linear in the sheet XML; cells per row capped. */
#include "indexer/parse/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "indexer/parse/zipread.h"

#define MAX_COLS 16384          /* Excel's own column limit */
#define MAX_SST  ((size_t)4 << 20)

typedef struct {
    char **s;
    size_t n;
} sst_table;

typedef struct {
    int col;
    char *val;
} cell;

/* Text of a string item (<si>, <is>): its <t> runs, phonetic runs left out. */
static char *item_text(xmlNode *root)
{
    zk_buf b;
    buf_init(&b, 0);
    for (xmlNode *n = idx__xml_next(root, root, 1); n;) {
        if (idx__xml_is(n, "rPh")) { n = idx__xml_next(n, root, 0); continue; }
        if (n->type == XML_TEXT_NODE && n->content && n->parent && idx__xml_is(n->parent, "t") &&
            buf_puts(&b, (const char *)n->content) != ZK_OK) {
            buf_free(&b);
            return NULL;
        }
        n = idx__xml_next(n, root, 1);
    }
    return buf_steal(&b, NULL);
}

static void sst_free(sst_table *t)
{
    for (size_t i = 0; i < t->n; i++) zk_free(t->s[i]);
    zk_free(t->s);
}

static zk_rc load_sst(idx__zip *z, sst_table *t, char *err)
{
    xmlDoc *d = NULL;
    zk_rc rc = ZK_OK;
    if (!idx__zip_has(z, "xl/sharedStrings.xml")) return ZK_OK;
    if ((rc = idx__zip_xml(z, "xl/sharedStrings.xml", &d, err)) != ZK_OK) return rc;
    size_t cap = 0;
    for (xmlNode *si = xmlDocGetRootElement(d)->children; si; si = si->next) {
        if (!idx__xml_is(si, "si")) continue;
        if (t->n >= MAX_SST) { rc = zk_fail(err, ZK_TOOBIG, "too many shared strings"); break; }
        if (t->n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **ns = zk_realloc(t->s, nc * sizeof *ns);
            if (!ns) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
            t->s = ns;
            cap = nc;
        }
        if (!(t->s[t->n] = item_text(si))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
        t->n++;
    }
    xmlFreeDoc(d);
    return rc;
}

/* "BC12" -> 54 (0-based column); -1 when there are no letters. */
static int col_of(const char *ref)
{
    int col = 0, any = 0;
    for (; ref && *ref >= 'A' && *ref <= 'Z' && col <= MAX_COLS; ref++, any = 1)
        col = col * 26 + (*ref - 'A' + 1);
    return any ? col - 1 : -1;
}

static void col_name(int col, char out[8])
{
    char tmp[8];
    int k = 0;
    for (col++; col > 0 && k < 7; col = (col - 1) / 26) tmp[k++] = (char)('A' + (col - 1) % 26);
    for (int i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
    out[k] = '\0';
}

static char *cell_value(xmlNode *c, const sst_table *sst)
{
    char *t = idx__xml_attr(c, "t");
    xmlNode *v = NULL, *is = NULL;
    for (xmlNode *k = c->children; k; k = k->next) {
        if (idx__xml_is(k, "v")) v = k;
        else if (idx__xml_is(k, "is")) is = k;
    }
    char *out = NULL;
    if (t && !strcmp(t, "inlineStr")) {
        out = is ? item_text(is) : zk_strdup("");
    } else if (v) {
        char *raw = idx__xml_text(v);
        if (raw && t && !strcmp(t, "s")) {
            char *end = NULL;
            long i = strtol(raw, &end, 10);
            out = zk_strdup(end != raw && i >= 0 && (size_t)i < sst->n ? sst->s[i] : "");
            zk_free(raw);
        } else if (raw && t && !strcmp(t, "b")) {
            out = zk_strdup(raw[0] == '1' ? "TRUE" : "FALSE");
            zk_free(raw);
        } else {
            out = raw;
        }
    } else {
        out = zk_strdup("");
    }
    zk_free(t);
    return out;
}

static void trim(char *s)
{
    size_t a = strspn(s, " \t\r\n"), n = strlen(s);
    while (n > a && strchr(" \t\r\n", s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
}

static void cells_free(cell *cells, size_t n)
{
    for (size_t i = 0; i < n; i++) zk_free(cells[i].val);
}

/* Render one data row: "H: v; H: v" (cells without a value left out). */
static zk_rc render_row(zk_buf *out, const cell *row, size_t n, char **header, int ncols)
{
    zk_rc rc = ZK_OK;
    int first = 1;
    for (size_t i = 0; i < n && rc == ZK_OK; i++) {
        if (!row[i].val[0]) continue;
        char cn[8];
        const char *h = row[i].col < ncols && header[row[i].col] && header[row[i].col][0]
                        ? header[row[i].col] : (col_name(row[i].col, cn), cn);
        rc = buf_printf(out, "%s%s: %s", first ? "" : "; ", h, row[i].val);
        first = 0;
    }
    if (!first && rc == ZK_OK) rc = buf_putc(out, '\n');
    return rc;
}

static zk_rc parse_sheet(idx__zip *z, const char *part, const char *sheet_name, const sst_table *sst,
                         idx_parsed *doc, char *err)
{
    zk_rc rc = ZK_OK;
    xmlDoc *d = NULL;
    cell *row = NULL;
    size_t nrow = 0, caprow = 0;
    char **header = NULL;
    int ncols = 0, have_header = 0, data_rows = 0;
    zk_buf out, hdr;
    buf_init(&out, 0);
    buf_init(&hdr, 0);
    if ((rc = idx__zip_xml(z, part, &d, err)) != ZK_OK) goto out;
    xmlNode *data = idx__xml_find(xmlDocGetRootElement(d), "sheetData");
    for (xmlNode *r = data ? data->children : NULL; r && rc == ZK_OK; r = r->next) {
        if (!idx__xml_is(r, "row")) continue;
        cells_free(row, nrow);
        nrow = 0;
        int next_col = 0, any = 0;
        for (xmlNode *c = r->children; c; c = c->next) {
            if (!idx__xml_is(c, "c")) continue;
            char *ref = idx__xml_attr(c, "r");
            int col = col_of(ref);
            zk_free(ref);
            if (col < 0) col = next_col;
            if (col >= MAX_COLS) continue;
            next_col = col + 1;
            char *val = cell_value(c, sst);
            if (!val) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
            trim(val);
            any |= val[0] != '\0';
            if (nrow == caprow) {
                size_t nc = caprow ? caprow * 2 : 16;
                cell *nr = zk_realloc(row, nc * sizeof *nr);
                if (!nr) { zk_free(val); rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
                row = nr;
                caprow = nc;
            }
            row[nrow].col = col;
            row[nrow++].val = val;
        }
        if (!any) continue;
        if (!have_header) {
            have_header = 1;
            for (size_t i = 0; i < nrow; i++) ncols = ZK_MAX(ncols, row[i].col + 1);
            if (!(header = zk_calloc((size_t)ncols + 1, sizeof *header))) {
                rc = zk_fail(err, ZK_NOMEM, "out of memory");
                goto out;
            }
            for (size_t i = 0; i < nrow && rc == ZK_OK; i++) {
                zk_free(header[row[i].col]);
                header[row[i].col] = row[i].val;
                row[i].val = NULL;
                if (header[row[i].col][0])
                    rc = buf_printf(&hdr, "%s%s", hdr.len ? " | " : "", header[row[i].col]);
            }
            if (rc != ZK_OK) { zk_fail(err, rc, "sheet %s header", sheet_name); goto out; }
            continue;
        }
        data_rows++;
        if ((rc = render_row(&out, row, nrow, header, ncols)) != ZK_OK) {
            zk_fail(err, rc, "sheet %s too large", sheet_name);
            goto out;
        }
    }
    /* a header-only sheet still has text */
    if (!data_rows && hdr.len) rc = buf_append(&out, hdr.data, hdr.len);
    while (out.len && out.data[out.len - 1] == '\n') out.len--;
    if (rc == ZK_OK && out.len) rc = idx__add_block(doc, out.data, out.len, sheet_name, 0);
    if (rc != ZK_OK) zk_fail(err, rc, "sheet %s", sheet_name);
out:
    if (d) xmlFreeDoc(d);
    cells_free(row, nrow);
    zk_free(row);
    for (int i = 0; header && i < ncols; i++) zk_free(header[i]);
    zk_free(header);
    buf_free(&out);
    buf_free(&hdr);
    return rc;
}

zk_rc idx__parse_xlsx(const char *name, const char *data, size_t len, idx_parsed *doc, char *err)
{
    (void)name;
    zk_rc rc = ZK_OK;
    idx__zip *z = NULL;
    xmlDoc *wb = NULL;
    sst_table sst = {0};
    if ((rc = idx__zip_open(data, len, &z, err)) != ZK_OK) goto out;
    if ((rc = load_sst(z, &sst, err)) != ZK_OK) goto out;
    if ((rc = idx__zip_xml(z, "xl/workbook.xml", &wb, err)) != ZK_OK) goto out;
    xmlNode *sheets = idx__xml_find(xmlDocGetRootElement(wb), "sheets");
    int n = 0;
    for (xmlNode *s = sheets ? sheets->children : NULL; s && rc == ZK_OK; s = s->next) {
        if (!idx__xml_is(s, "sheet")) continue;
        char *sname = idx__xml_attr(s, "name"), *rid = idx__xml_attr_ns(s, "id");
        char *part = rid ? idx__rel_target(z, "xl/_rels/workbook.xml.rels", "xl/workbook.xml", rid, NULL) : NULL;
        n++;
        if (!part) {   /* no relationships: the conventional name */
            char guess[64];
            snprintf(guess, sizeof guess, "xl/worksheets/sheet%d.xml", n);
            part = zk_strdup(guess);
        }
        if (part && idx__zip_has(z, part)) {
            char fallback[32];
            snprintf(fallback, sizeof fallback, "Sheet %d", n);
            rc = parse_sheet(z, part, sname && *sname ? sname : fallback, &sst, doc, err);
        }
        zk_free(sname);
        zk_free(rid);
        zk_free(part);
    }
    if (rc != ZK_OK) goto out;
    doc->title = idx__zip_dc_title(z, "docProps/core.xml");
out:
    if (wb) xmlFreeDoc(wb);
    sst_free(&sst);
    idx__zip_close(z);
    return rc;
}
