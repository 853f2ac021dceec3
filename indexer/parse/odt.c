/* odt.c — OpenDocument text documents (.odt).
 *
 * Called by idx_parse() for ZIP containers whose mimetype entry says
 * application/vnd.oasis.opendocument.text. Reads content.xml: text:h
 * (outline-level builds the heading path), text:p, lists (one item per
 * line) and tables (" | "-joined rows); the title comes from meta.xml.
 * Iterative walk, linear in the XML size. */
#include "indexer/parse/parse.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "indexer/parse/zipread.h"

typedef struct {
    idx_parsed *doc;
    idx__hstack hs;
    zk_buf body, para, row;
    char *first_heading;
    size_t head_len;
    int p_depth, level, tbl, cell, cell_gap, list;
    zk_rc rc;
} odt_state;

static void rstrip(zk_buf *b)
{
    while (b->len && strchr(" \t\r\n", b->data[b->len - 1])) b->len--;
    if (b->data) b->data[b->len] = '\0';
}

static void flush_block(odt_state *st)
{
    if (st->rc != ZK_OK) return;
    rstrip(&st->body);
    if (st->body.len > st->head_len)
        st->rc = idx__add_block(st->doc, st->body.data, st->body.len, st->hs.path, 0);
    buf_reset(&st->body);
    st->head_len = 0;
}

static void end_para(odt_state *st)
{
    rstrip(&st->para);
    const char *t = buf_cstr(&st->para);
    t += strspn(t, " \t\r\n");
    if (*t && st->rc == ZK_OK) {
        if (st->level > 0) {
            flush_block(st);
            if (st->rc == ZK_OK) st->rc = idx__hstack_set(&st->hs, st->level, t);
            if (st->rc == ZK_OK && !st->first_heading && !(st->first_heading = zk_strdup(t)))
                st->rc = ZK_NOMEM;
            if (st->rc == ZK_OK) st->rc = buf_puts(&st->body, t);
            st->head_len = st->body.len;
            if (st->rc == ZK_OK) st->rc = buf_puts(&st->body, "\n\n");
        } else {
            st->rc = buf_puts(&st->body, t);
            /* list items one per line; other paragraphs apart */
            if (st->rc == ZK_OK) st->rc = buf_puts(&st->body, st->list ? "\n" : "\n\n");
        }
    }
    buf_reset(&st->para);
}

static void put(odt_state *st, const char *s, size_t n)
{
    if (st->rc != ZK_OK || n == 0) return;
    if (st->tbl) {
        if (st->cell_gap && st->row.len && st->row.data[st->row.len - 1] != ' ')
            st->rc = buf_putc(&st->row, ' ');
        st->cell_gap = 0;
        if (st->rc == ZK_OK) st->rc = buf_append(&st->row, s, n);
    } else if (st->p_depth) {
        st->rc = buf_append(&st->para, s, n);
    }
}

static int skip_subtree(const xmlNode *n)
{
    return idx__xml_is(n, "note") || idx__xml_is(n, "annotation") || idx__xml_is(n, "tracked-changes") ||
           idx__xml_is(n, "sequence-decls") || idx__xml_is(n, "variable-decls") || idx__xml_is(n, "forms") ||
           idx__xml_is(n, "desc") || idx__xml_is(n, "title") || idx__xml_is(n, "table-columns") ||
           idx__xml_is(n, "table-column") || idx__xml_is(n, "soft-page-break");
}

static int is_para(const xmlNode *n) { return idx__xml_is(n, "p") || idx__xml_is(n, "h"); }

static void open_elem(odt_state *st, xmlNode *n)
{
    if (is_para(n)) {
        if (st->tbl) { st->cell_gap = 1; return; }
        if (st->p_depth++ == 0) {
            buf_reset(&st->para);
            st->level = 0;
            if (idx__xml_is(n, "h")) {
                char *v = idx__xml_attr(n, "outline-level");
                st->level = v ? atoi(v) : 1;
                if (st->level < 1) st->level = 1;
                zk_free(v);
            }
        } else {
            put(st, " ", 1);
        }
    } else if (idx__xml_is(n, "list")) {
        st->list++;
    } else if (idx__xml_is(n, "table")) {
        if (st->tbl++ == 0) {
            if (st->p_depth) put(st, " ", 1);
            else {
                rstrip(&st->body);
                if (st->body.len && st->rc == ZK_OK) st->rc = buf_puts(&st->body, "\n\n");
            }
        }
    } else if (idx__xml_is(n, "table-row") && st->tbl == 1) {
        st->cell = 0;
        buf_reset(&st->row);
    } else if (idx__xml_is(n, "table-cell") && st->tbl == 1) {
        if (st->cell++ > 0 && st->rc == ZK_OK) st->rc = buf_puts(&st->row, " | ");
        st->cell_gap = 0;
    } else if (idx__xml_is(n, "s")) {
        put(st, " ", 1);
    } else if (idx__xml_is(n, "tab")) {
        put(st, "\t", 1);
    } else if (idx__xml_is(n, "line-break")) {
        put(st, st->tbl ? " " : "\n", 1);
    }
}

static void close_elem(odt_state *st, xmlNode *n)
{
    if (is_para(n) && !st->tbl) {
        if (st->p_depth > 0 && --st->p_depth == 0) end_para(st);
    } else if (idx__xml_is(n, "list") && st->list > 0) {
        if (--st->list == 0 && !st->p_depth && !st->tbl && st->rc == ZK_OK) {
            rstrip(&st->body);
            if (st->body.len > st->head_len) st->rc = buf_puts(&st->body, "\n\n");
        }
    } else if (idx__xml_is(n, "table-row") && st->tbl == 1) {
        rstrip(&st->row);
        if (st->row.len && st->rc == ZK_OK) {
            st->rc = buf_append(&st->body, st->row.data, st->row.len);
            if (st->rc == ZK_OK) st->rc = buf_putc(&st->body, '\n');
        }
        buf_reset(&st->row);
    } else if (idx__xml_is(n, "table") && st->tbl > 0) {
        if (--st->tbl == 0 && !st->p_depth && st->rc == ZK_OK) st->rc = buf_putc(&st->body, '\n');
    }
}

static void walk(odt_state *st, xmlNode *root)
{
    xmlNode *n = root->children;
    while (n && st->rc == ZK_OK) {
        int descend = 0;
        if (n->type == XML_ELEMENT_NODE && !skip_subtree(n)) {
            open_elem(st, n);
            if (n->children) descend = 1;
            else close_elem(st, n);
        } else if (n->type == XML_TEXT_NODE && n->content) {
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

zk_rc idx__parse_odt(const char *name, const char *data, size_t len, idx_parsed *doc, char *err)
{
    (void)name;
    zk_rc rc = ZK_OK;
    idx__zip *z = NULL;
    xmlDoc *d = NULL;
    odt_state st;
    memset(&st, 0, sizeof st);
    st.doc = doc;
    buf_init(&st.body, 0);
    buf_init(&st.para, 0);
    buf_init(&st.row, 0);
    if ((rc = idx__zip_open(data, len, &z, err)) != ZK_OK) goto out;
    if ((rc = idx__zip_xml(z, "content.xml", &d, err)) != ZK_OK) goto out;
    xmlNode *root = xmlDocGetRootElement(d);
    xmlNode *body = idx__xml_find(root, "body"), *text = NULL;
    for (xmlNode *c = body ? body->children : NULL; c && !text; c = c->next)
        if (idx__xml_is(c, "text")) text = c;
    walk(&st, text ? text : body ? body : root);
    if (st.p_depth && st.rc == ZK_OK) end_para(&st);
    if (doc->nblocks == 0) st.head_len = 0;   /* a heading-only document keeps its text */
    flush_block(&st);
    if ((rc = st.rc) != ZK_OK) { zk_fail(err, rc, "extracting ODT text"); goto out; }
    doc->title = idx__zip_dc_title(z, "meta.xml");
    if (!doc->title && st.first_heading) { doc->title = st.first_heading; st.first_heading = NULL; }
out:
    if (d) xmlFreeDoc(d);
    idx__zip_close(z);
    idx__hstack_free(&st.hs);
    buf_free(&st.body);
    buf_free(&st.para);
    buf_free(&st.row);
    zk_free(st.first_heading);
    return rc;
}
