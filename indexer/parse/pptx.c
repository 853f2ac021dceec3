/* pptx.c — Office Open XML presentations (.pptx).
 *
 * Called by idx_parse() for ZIP containers holding ppt/presentation.xml.
 * Slides are read in presentation order (p:sldIdLst through the
 * presentation's relationships); each slide is one block headed
 * "Slide N: <title placeholder text>" holding its text (a:p paragraphs,
 * tables as " | " rows) and its speaker notes. Iterative walks, linear. */
#include "indexer/parse/parse.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "indexer/parse/zipread.h"

#define MAX_SLIDES 10000

typedef struct {
    zk_buf *out;      /* slide text */
    zk_buf para;      /* paragraph being read */
    zk_buf row;       /* table row being read */
    int tbl, cell;
    zk_rc rc;
} slide_walk;

static void put(slide_walk *w, const char *s, size_t n)
{
    if (w->rc == ZK_OK && n) w->rc = buf_append(&w->para, s, n);
}

static void trim_buf(zk_buf *b)
{
    while (b->len && strchr(" \t\r\n", b->data[b->len - 1])) b->len--;
    if (b->data) b->data[b->len] = '\0';
}

static void end_para(slide_walk *w)
{
    trim_buf(&w->para);
    const char *t = buf_cstr(&w->para);
    t += strspn(t, " \t\r\n");
    if (*t && w->rc == ZK_OK) {
        if (w->tbl) {
            if (w->row.len && w->row.data[w->row.len - 1] != ' ')
                w->rc = buf_putc(&w->row, ' ');
            if (w->rc == ZK_OK) w->rc = buf_puts(&w->row, t);
        } else {
            w->rc = buf_puts(w->out, t);
            if (w->rc == ZK_OK) w->rc = buf_putc(w->out, '\n');
        }
    }
    buf_reset(&w->para);
}

static void shape_break(slide_walk *w)
{
    trim_buf(w->out);
    if (w->out->len && w->rc == ZK_OK) w->rc = buf_puts(w->out, "\n\n");
}

static void open_elem(slide_walk *w, xmlNode *n)
{
    if (idx__xml_is(n, "p")) buf_reset(&w->para);
    else if (idx__xml_is(n, "br")) put(w, w->tbl ? " " : "\n", 1);
    else if (idx__xml_is(n, "tbl")) { if (w->tbl++ == 0) shape_break(w); }
    else if (idx__xml_is(n, "tr") && w->tbl == 1) { w->cell = 0; buf_reset(&w->row); }
    else if (idx__xml_is(n, "tc") && w->tbl == 1 && w->cell++ > 0 && w->rc == ZK_OK)
        w->rc = buf_puts(&w->row, " | ");
}

static void close_elem(slide_walk *w, xmlNode *n)
{
    if (idx__xml_is(n, "p")) end_para(w);
    else if (idx__xml_is(n, "sp") || idx__xml_is(n, "graphicFrame")) shape_break(w);
    else if (idx__xml_is(n, "tr") && w->tbl == 1) {
        trim_buf(&w->row);
        if (w->row.len && w->rc == ZK_OK) {
            w->rc = buf_append(w->out, w->row.data, w->row.len);
            if (w->rc == ZK_OK) w->rc = buf_putc(w->out, '\n');
        }
        buf_reset(&w->row);
    } else if (idx__xml_is(n, "tbl") && w->tbl > 0) {
        w->tbl--;
    }
}

static int skip_subtree(const xmlNode *n)
{
    return idx__xml_is(n, "Fallback") || idx__xml_is(n, "rPr") || idx__xml_is(n, "pPr") ||
           idx__xml_is(n, "nvSpPr") || idx__xml_is(n, "spPr") || idx__xml_is(n, "tblPr");
}

static zk_rc walk(xmlNode *root, zk_buf *out)
{
    slide_walk w;
    memset(&w, 0, sizeof w);
    w.out = out;
    buf_init(&w.para, 0);
    buf_init(&w.row, 0);
    xmlNode *n = root->children;
    while (n && w.rc == ZK_OK) {
        int descend = 0;
        if (n->type == XML_ELEMENT_NODE && !skip_subtree(n)) {
            open_elem(&w, n);
            if (n->children) descend = 1;
            else close_elem(&w, n);
        } else if (n->type == XML_TEXT_NODE && n->content && n->parent && idx__xml_is(n->parent, "t")) {
            put(&w, (const char *)n->content, strlen((const char *)n->content));
        }
        if (descend) { n = n->children; continue; }
        while (n && n != root && !n->next) {
            n = n->parent;
            if (n && n != root) close_elem(&w, n);
        }
        if (!n || n == root) break;
        n = n->next;
    }
    zk_rc rc = w.rc;
    buf_free(&w.para);
    buf_free(&w.row);
    return rc;
}

/* The placeholder type of a p:sp ("title", "body", ...) or NULL. */
static char *ph_type(xmlNode *sp)
{
    for (xmlNode *c = sp->children; c; c = c->next) {
        if (!idx__xml_is(c, "nvSpPr")) continue;
        xmlNode *ph = idx__xml_find(c, "ph");
        return ph ? idx__xml_attr(ph, "type") : NULL;
    }
    return NULL;
}

static int is_title_ph(const char *t) { return t && (!strcmp(t, "title") || !strcmp(t, "ctrTitle")); }

/* Collapsed one-line text of a shape (the slide title). */
static char *shape_line(xmlNode *sp)
{
    zk_buf b;
    buf_init(&b, 0);
    if (walk(sp, &b) != ZK_OK) { buf_free(&b); return NULL; }
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] == '\n' || b.data[i] == '\t' || b.data[i] == '\r') b.data[i] = ' ';
    trim_buf(&b);
    return buf_steal(&b, NULL);
}

/* Speaker notes: the body placeholders of the slide's notes part. */
static zk_rc add_notes(idx__zip *z, const char *slide_part, zk_buf *out)
{
    char rels[1100], err[ZK_ERRLEN];
    const char *slash = strrchr(slide_part, '/');
    if (!slash || strlen(slide_part) > 1000) return ZK_OK;
    snprintf(rels, sizeof rels, "%.*s/_rels/%s.rels", (int)(slash - slide_part), slide_part, slash + 1);
    char *notes = idx__rel_target(z, rels, slide_part, NULL, "/notesSlide");
    xmlDoc *d = NULL;
    zk_rc rc = ZK_OK;
    if (!notes || !idx__zip_has(z, notes) || idx__zip_xml(z, notes, &d, err) != ZK_OK) goto out;
    zk_buf nb;
    buf_init(&nb, 0);
    xmlNode *root = xmlDocGetRootElement(d);
    for (xmlNode *n = root; n && rc == ZK_OK; n = idx__xml_next(n, root, !idx__xml_is(n, "sp"))) {
        if (!idx__xml_is(n, "sp")) continue;
        char *t = ph_type(n);
        if (t && !strcmp(t, "body")) rc = walk(n, &nb);
        zk_free(t);
    }
    trim_buf(&nb);
    if (rc == ZK_OK && nb.len) {
        trim_buf(out);
        rc = buf_printf(out, "%sNotes: %s", out->len ? "\n\n" : "", nb.data);
    }
    buf_free(&nb);
out:
    if (d) xmlFreeDoc(d);
    zk_free(notes);
    return rc;
}

static zk_rc parse_slide(idx__zip *z, const char *part, int number, idx_parsed *doc, char **first_title,
                         char *err)
{
    xmlDoc *d = NULL;
    char *title = NULL, *heading = NULL;
    zk_buf out;
    buf_init(&out, 0);
    zk_rc rc = idx__zip_xml(z, part, &d, err);
    if (rc != ZK_OK) goto out;
    xmlNode *root = xmlDocGetRootElement(d);
    xmlNode *tree = idx__xml_find(root, "spTree");
    for (xmlNode *n = tree; n; n = idx__xml_next(n, tree, !idx__xml_is(n, "sp"))) {
        if (!idx__xml_is(n, "sp")) continue;
        char *t = ph_type(n);
        int is_title = is_title_ph(t);
        zk_free(t);
        if (is_title) { title = shape_line(n); break; }
    }
    if (tree && (rc = walk(tree, &out)) != ZK_OK) { zk_fail(err, rc, "slide %d", number); goto out; }
    if ((rc = add_notes(z, part, &out)) != ZK_OK) { zk_fail(err, rc, "notes of slide %d", number); goto out; }
    trim_buf(&out);
    zk_buf h;
    buf_init(&h, 0);
    rc = title && *title ? buf_printf(&h, "Slide %d: %s", number, title) : buf_printf(&h, "Slide %d", number);
    heading = buf_steal(&h, NULL);
    if (rc != ZK_OK || !heading) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (out.len && (rc = idx__add_block(doc, out.data, out.len, heading, 0)) != ZK_OK) {
        zk_fail(err, rc, "slide %d", number);
        goto out;
    }
    if (!*first_title && title && *title) { *first_title = title; title = NULL; }
out:
    if (d) xmlFreeDoc(d);
    zk_free(title);
    zk_free(heading);
    buf_free(&out);
    return rc;
}

zk_rc idx__parse_pptx(const char *name, const char *data, size_t len, idx_parsed *doc, char *err)
{
    (void)name;
    zk_rc rc = ZK_OK;
    idx__zip *z = NULL;
    xmlDoc *pres = NULL;
    char *first_title = NULL;
    if ((rc = idx__zip_open(data, len, &z, err)) != ZK_OK) goto out;
    if ((rc = idx__zip_xml(z, "ppt/presentation.xml", &pres, err)) != ZK_OK) goto out;
    xmlNode *lst = idx__xml_find(xmlDocGetRootElement(pres), "sldIdLst");
    int number = 0;
    for (xmlNode *s = lst ? lst->children : NULL; s && rc == ZK_OK && number < MAX_SLIDES; s = s->next) {
        if (!idx__xml_is(s, "sldId")) continue;
        number++;
        char *rid = idx__xml_attr_ns(s, "id");
        char *part = rid ? idx__rel_target(z, "ppt/_rels/presentation.xml.rels", "ppt/presentation.xml",
                                           rid, NULL) : NULL;
        if (part && idx__zip_has(z, part)) rc = parse_slide(z, part, number, doc, &first_title, err);
        zk_free(rid);
        zk_free(part);
    }
    if (rc != ZK_OK) goto out;
    doc->title = idx__zip_dc_title(z, "docProps/core.xml");
    if (!doc->title) { doc->title = first_title; first_title = NULL; }
out:
    if (pres) xmlFreeDoc(pres);
    zk_free(first_title);
    idx__zip_close(z);
    return rc;
}
