/* docx.c — Office Open XML word-processing documents (.docx).
 *
 * Called by idx_parse() for ZIP containers holding word/document.xml. Reads
 * word/styles.xml (which paragraph styles are headings), the document body
 * (paragraphs from w:p/w:r/w:t, tables as " | "-joined rows) and
 * docProps/core.xml (dc:title). Iterative walk, linear in the XML size. */
#include "indexer/parse/parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "indexer/parse/zipread.h"

typedef struct {
    char *id;
    int level;      /* 0 = Title, 1..9 = Heading N */
} docx_style;

typedef struct {
    idx_parsed *doc;
    docx_style *styles;
    size_t nstyles;
    idx__hstack hs;
    zk_buf body;          /* the block being built */
    zk_buf para;          /* the paragraph being read (outside tables) */
    zk_buf row;           /* the table row being read */
    char *first_heading;
    size_t head_len;      /* bytes of body that are the block's own heading */
    int p_depth, tbl, cell, level, cell_gap;
    zk_rc rc;
} docx_state;

/* "Heading3", "heading 3", "Title" -> level; -1 otherwise. */
static int level_from_name(const char *s)
{
    if (!s) return -1;
    if (!strcasecmp(s, "title")) return 0;
    if (strncasecmp(s, "heading", 7) == 0) {
        const char *q = s + 7;
        if (*q == ' ') q++;
        if (q[0] >= '1' && q[0] <= '9' && q[1] == '\0') return q[0] - '0';
    }
    return -1;
}

static int outline_level(xmlNode *ppr)
{
    xmlNode *o = idx__xml_find(ppr, "outlineLvl");
    char *v = o ? idx__xml_attr(o, "val") : NULL;
    int lvl = v ? atoi(v) : 9;
    zk_free(v);
    return lvl >= 0 && lvl < 9 ? lvl + 1 : -1;
}

static zk_rc load_styles(docx_state *st, idx__zip *z, char *err)
{
    xmlDoc *d = NULL;
    if (!idx__zip_has(z, "word/styles.xml")) return ZK_OK;
    zk_rc rc = idx__zip_xml(z, "word/styles.xml", &d, err);
    if (rc != ZK_OK) return rc == ZK_PARSE ? ZK_OK : rc;   /* styles are optional */
    xmlNode *root = xmlDocGetRootElement(d);
    for (xmlNode *s = root->children; s && rc == ZK_OK; s = s->next) {
        if (!idx__xml_is(s, "style")) continue;
        char *id = idx__xml_attr(s, "styleId");
        if (!id) continue;
        xmlNode *nm = NULL, *ppr = NULL;
        for (xmlNode *c = s->children; c; c = c->next) {
            if (idx__xml_is(c, "name")) nm = c;
            else if (idx__xml_is(c, "pPr")) ppr = c;
        }
        char *name = nm ? idx__xml_attr(nm, "val") : NULL;
        int lvl = level_from_name(name);
        if (lvl < 0) lvl = level_from_name(id);
        if (lvl < 0 && ppr) lvl = outline_level(ppr);
        zk_free(name);
        if (lvl < 0) { zk_free(id); continue; }
        docx_style *ns = zk_realloc(st->styles, (st->nstyles + 1) * sizeof *ns);
        if (!ns) { zk_free(id); rc = zk_fail(err, ZK_NOMEM, "out of memory"); break; }
        st->styles = ns;
        st->styles[st->nstyles].id = id;
        st->styles[st->nstyles++].level = lvl;
    }
    xmlFreeDoc(d);
    return rc;
}

static int para_level(docx_state *st, xmlNode *p)
{
    xmlNode *ppr = NULL;
    for (xmlNode *c = p->children; c; c = c->next)
        if (idx__xml_is(c, "pPr")) { ppr = c; break; }
    if (!ppr) return -1;
    int lvl = -1;
    for (xmlNode *c = ppr->children; c; c = c->next) {
        if (!idx__xml_is(c, "pStyle")) continue;
        char *v = idx__xml_attr(c, "val");
        for (size_t i = 0; v && i < st->nstyles && lvl < 0; i++)
            if (!strcmp(st->styles[i].id, v)) lvl = st->styles[i].level;
        if (lvl < 0) lvl = level_from_name(v);
        zk_free(v);
    }
    if (lvl < 0) {
        for (xmlNode *c = ppr->children; c; c = c->next)
            if (idx__xml_is(c, "outlineLvl")) lvl = outline_level(ppr);
    }
    return lvl;
}

static void rstrip(zk_buf *b)
{
    while (b->len > 0 && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\n' ||
                          b->data[b->len - 1] == '\t' || b->data[b->len - 1] == '\r'))
        b->len--;
    if (b->data) b->data[b->len] = '\0';
}

static void flush_block(docx_state *st)
{
    if (st->rc != ZK_OK) return;
    rstrip(&st->body);
    if (st->body.len > st->head_len)
        st->rc = idx__add_block(st->doc, st->body.data, st->body.len, st->hs.path, 0);
    buf_reset(&st->body);
    st->head_len = 0;
}

static void end_para(docx_state *st)
{
    rstrip(&st->para);
    const char *t = buf_cstr(&st->para);
    while (*t == ' ' || *t == '\t' || *t == '\n') t++;
    if (!*t) { buf_reset(&st->para); return; }
    if (st->level >= 0) {
        flush_block(st);
        if (st->rc == ZK_OK) st->rc = idx__hstack_set(&st->hs, st->level, t);
        if (st->rc == ZK_OK && !st->first_heading && !(st->first_heading = zk_strdup(t))) st->rc = ZK_NOMEM;
        if (st->rc == ZK_OK) st->rc = buf_puts(&st->body, t);
        st->head_len = st->body.len;
    } else if (st->rc == ZK_OK) {
        st->rc = buf_puts(&st->body, t);
    }
    if (st->rc == ZK_OK) st->rc = buf_puts(&st->body, "\n\n");
    buf_reset(&st->para);
}

static void put(docx_state *st, const char *s, size_t n)
{
    if (st->rc != ZK_OK || n == 0) return;
    if (st->tbl) {
        if (st->cell_gap && st->row.len && st->row.data[st->row.len - 1] != ' ')
            st->rc = buf_putc(&st->row, ' ');
        st->cell_gap = 0;
        if (st->rc == ZK_OK) st->rc = buf_append(&st->row, s, n);
    } else {
        st->rc = buf_append(&st->para, s, n);
    }
}

static int skip_subtree(const xmlNode *n)
{
    return idx__xml_is(n, "pPr") || idx__xml_is(n, "rPr") || idx__xml_is(n, "Fallback") ||
           idx__xml_is(n, "instrText") || idx__xml_is(n, "delText") || idx__xml_is(n, "tblPr") ||
           idx__xml_is(n, "tcPr") || idx__xml_is(n, "trPr") || idx__xml_is(n, "sectPr");
}

static void open_elem(docx_state *st, xmlNode *n)
{
    if (idx__xml_is(n, "p")) {
        if (st->tbl) { st->cell_gap = 1; return; }
        if (st->p_depth++ == 0) { buf_reset(&st->para); st->level = para_level(st, n); }
        else put(st, " ", 1);
    } else if (idx__xml_is(n, "tbl")) {
        if (st->tbl++ == 0) {
            if (st->p_depth) put(st, " ", 1);
            else {
                rstrip(&st->body);
                if (st->body.len && st->rc == ZK_OK) st->rc = buf_puts(&st->body, "\n\n");
            }
            buf_reset(&st->row);
        }
    } else if (idx__xml_is(n, "tr") && st->tbl == 1) {
        st->cell = 0;
        buf_reset(&st->row);
    } else if (idx__xml_is(n, "tc") && st->tbl == 1) {
        if (st->cell++ > 0 && st->rc == ZK_OK) st->rc = buf_puts(&st->row, " | ");
        st->cell_gap = 0;
    } else if (idx__xml_is(n, "tab")) {
        put(st, "\t", 1);
    } else if (idx__xml_is(n, "br") || idx__xml_is(n, "cr")) {
        put(st, st->tbl ? " " : "\n", 1);
    } else if (idx__xml_is(n, "noBreakHyphen")) {
        put(st, "-", 1);
    }
}

static void close_elem(docx_state *st, xmlNode *n)
{
    if (idx__xml_is(n, "p") && !st->tbl) {
        if (st->p_depth > 0 && --st->p_depth == 0) end_para(st);
    } else if (idx__xml_is(n, "tr") && st->tbl == 1) {
        rstrip(&st->row);
        if (st->row.len && st->rc == ZK_OK) {
            st->rc = buf_append(&st->body, st->row.data, st->row.len);
            if (st->rc == ZK_OK) st->rc = buf_putc(&st->body, '\n');
        }
        buf_reset(&st->row);
    } else if (idx__xml_is(n, "tbl") && st->tbl > 0) {
        if (--st->tbl == 0 && !st->p_depth && st->rc == ZK_OK) st->rc = buf_putc(&st->body, '\n');
    }
}

static void walk(docx_state *st, xmlNode *root)
{
    xmlNode *n = root->children;
    while (n && st->rc == ZK_OK) {
        int descend = 0;
        if (n->type == XML_ELEMENT_NODE && !skip_subtree(n)) {
            open_elem(st, n);
            if (n->children) descend = 1;
            else close_elem(st, n);
        } else if (n->type == XML_TEXT_NODE && n->content && n->parent && idx__xml_is(n->parent, "t")) {
            put(st, (const char *)n->content, strlen((const char *)n->content));
        }
        if (descend) { n = n->children; continue; }
        while (n && n != root && !n->next) {
            n = n->parent;
            if (n && n != root) close_elem(st, n);
        }
        if (!n || n == root) break;
        n = n->next;
    }
}

zk_rc idx__parse_docx(const char *name, const char *data, size_t len, idx_parsed *doc, char *err)
{
    (void)name;
    zk_rc rc = ZK_OK;
    idx__zip *z = NULL;
    xmlDoc *d = NULL;
    docx_state st;
    memset(&st, 0, sizeof st);
    st.doc = doc;
    st.level = -1;
    buf_init(&st.body, 0);
    buf_init(&st.para, 0);
    buf_init(&st.row, 0);

    if ((rc = idx__zip_open(data, len, &z, err)) != ZK_OK) goto out;
    if ((rc = load_styles(&st, z, err)) != ZK_OK) goto out;
    if ((rc = idx__zip_xml(z, "word/document.xml", &d, err)) != ZK_OK) goto out;
    xmlNode *root = xmlDocGetRootElement(d);
    xmlNode *body = idx__xml_find(root, "body");
    walk(&st, body ? body : root);
    if (st.p_depth && st.rc == ZK_OK) end_para(&st);
    if (doc->nblocks == 0) st.head_len = 0;   /* a heading-only document keeps its text */
    flush_block(&st);
    if ((rc = st.rc) != ZK_OK) { zk_fail(err, rc, "extracting DOCX text"); goto out; }
    doc->title = idx__zip_dc_title(z, "docProps/core.xml");
    if (!doc->title && st.first_heading) { doc->title = st.first_heading; st.first_heading = NULL; }
out:
    if (d) xmlFreeDoc(d);
    idx__zip_close(z);
    for (size_t i = 0; i < st.nstyles; i++) zk_free(st.styles[i].id);
    zk_free(st.styles);
    idx__hstack_free(&st.hs);
    buf_free(&st.body);
    buf_free(&st.para);
    buf_free(&st.row);
    zk_free(st.first_heading);
    return rc;
}
