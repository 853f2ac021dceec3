/* html.c — HTML parser on libxml2's forgiving HTML reader.
 *
 * Called by idx_parse() for HTML documents (already UTF-8). Keeps the main
 * text only: <main>/<article> when present and not tiny, else <body>, minus
 * scripts, navigation, forms and hidden elements. h1–h6 build the heading
 * path; block elements give paragraph breaks; cells are joined with " | ".
 * The DOM walk is iterative (no recursion on hostile nesting); linear. */
#include "indexer/parse/parse.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "utf8.h"

#define TINY_MAIN 200   /* bytes of text below which <main>/<article> is ignored */

enum { BRK_NONE = 0, BRK_SPACE, BRK_LINE, BRK_PARA };

typedef struct {
    idx_parsed *doc;
    zk_buf body;          /* text of the block being built */
    zk_buf head;          /* text of the heading being read */
    char *stack[7];       /* heading text per level 1..6 */
    char *path;           /* heading path of the current block */
    char *first_h1;
    size_t head_len;      /* bytes of body taken by the block's own heading */
    size_t counted;       /* count-only mode: text bytes seen */
    int count_only;
    int in_heading;
    int pending;          /* BRK_* before the next text */
    int soft_nl;          /* the pending space came from a newline */
    int pre;              /* <pre> depth */
    int cell;             /* cells seen in the current table row */
    zk_rc rc;
} html_state;

static int name_is(const xmlNode *n, const char *name)
{
    return n->name && strcmp((const char *)n->name, name) == 0;
}

static int name_in(const xmlNode *n, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (name_is(n, names[i])) return 1;
    return 0;
}

static int heading_level(const xmlNode *n)
{
    const char *s = (const char *)n->name;
    if (s && (s[0] == 'h' || s[0] == 'H') && s[1] >= '1' && s[1] <= '6' && s[2] == '\0')
        return s[1] - '0';
    return 0;
}

static int inside_main(const xmlNode *n)
{
    for (n = n->parent; n; n = n->parent)
        if (n->type == XML_ELEMENT_NODE && (name_is(n, "article") || name_is(n, "main")))
            return 1;
    return 0;
}

static int is_hidden(xmlNode *n)
{
    if (xmlHasProp(n, (const xmlChar *)"hidden")) return 1;
    xmlChar *v = xmlGetProp(n, (const xmlChar *)"aria-hidden");
    int hidden = v && strcasecmp((const char *)v, "true") == 0;
    xmlFree(v);
    if (hidden) return 1;
    v = xmlGetProp(n, (const xmlChar *)"style");
    if (v) {
        char compact[128];
        size_t k = 0;
        for (const xmlChar *p = v; *p && k + 1 < sizeof compact; p++)
            if (*p != ' ' && *p != '\t') compact[k++] = (char)(*p | 0x20);
        compact[k] = '\0';
        hidden = strstr(compact, "display:none") || strstr(compact, "visibility:hidden");
        xmlFree(v);
    }
    return hidden;
}

static int skipped(xmlNode *n)
{
    static const char *const skip[] = {"script", "style", "noscript", "template", "nav",
                                       "aside", "form", "button", "svg", "head", "iframe",
                                       "object", "canvas", "select", "textarea", "math"};
    if (name_in(n, skip, ZK_ARRAY_LEN(skip))) return 1;
    if ((name_is(n, "header") || name_is(n, "footer")) && !inside_main(n)) return 1;
    return is_hidden(n);
}

static int is_block(const xmlNode *n)
{
    static const char *const blocks[] = {
        "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "pre", "blockquote", "section",
        "article", "main", "table", "thead", "tbody", "tfoot", "tr", "caption", "figure",
        "figcaption", "hr", "address", "details", "summary", "center", "fieldset", "body",
        "header", "footer", "legend", "h1", "h2", "h3", "h4", "h5", "h6"};
    return name_in(n, blocks, ZK_ARRAY_LEN(blocks));
}

/* ---- text assembly (same scheme as markdown.c) ------------------------ */

static uint32_t last_cp(const zk_buf *b)
{
    if (b->len == 0) return 0;
    size_t k = b->len - 1;
    while (k > 0 && ((unsigned char)b->data[k] & 0xC0) == 0x80 && b->len - k < 4) k--;
    uint32_t cp;
    utf8_decode((const unsigned char *)b->data + k, b->len - k, &cp);
    return cp;
}

static void rstrip(zk_buf *b)
{
    while (b->len > 0 && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\n' ||
                          b->data[b->len - 1] == '\t'))
        b->len--;
    if (b->data) b->data[b->len] = '\0';
}

static void brk(html_state *st, int kind)
{
    if (kind > st->pending) st->pending = kind;
}

static void put(html_state *st, const char *s, size_t n)
{
    if (st->rc != ZK_OK || n == 0) return;
    if (st->count_only) { st->counted += n; st->pending = BRK_NONE; return; }
    zk_buf *b = st->in_heading ? &st->head : &st->body;
    if (st->pending != BRK_NONE && b->len > 0) {
        if (st->pending == BRK_SPACE) {
            uint32_t next, prev = last_cp(b);
            utf8_decode((const unsigned char *)s, n, &next);
            if (!(st->soft_nl && utf8_is_cjk(prev) && utf8_is_cjk(next)) && !utf8_is_space(prev))
                st->rc = buf_putc(b, ' ');
        } else {
            rstrip(b);
            st->rc = st->in_heading ? buf_putc(b, ' ')
                     : buf_append(b, st->pending == BRK_PARA ? "\n\n" : "\n",
                                  st->pending == BRK_PARA ? 2 : 1);
        }
    }
    st->pending = BRK_NONE;
    st->soft_nl = 0;
    if (st->rc == ZK_OK) st->rc = buf_append(b, s, n);
}

static void put_text(html_state *st, const char *s)
{
    size_t len = strlen(s);
    if (st->pre && !st->in_heading) {
        size_t run = 0;   /* keep layout, but drop CRs */
        for (size_t i = 0; i < len; i++)
            if (s[i] == '\r') { put(st, s + run, i - run); run = i + 1; }
        put(st, s + run, len - run);
        return;
    }
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != ' ' && s[j] != '\t' && s[j] != '\n' && s[j] != '\r' &&
               s[j] != '\f')
            j++;
        put(st, s + i, j - i);
        if (j >= len) break;
        int nl = 0;
        while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r' ||
                           s[j] == '\f')) {
            nl |= s[j] == '\n';
            j++;
        }
        if (st->pending < BRK_SPACE) { st->pending = BRK_SPACE; st->soft_nl = nl; }
        else if (st->pending == BRK_SPACE) st->soft_nl &= nl;
        i = j;
    }
}

static void flush_block(html_state *st)
{
    if (st->rc != ZK_OK || st->count_only) return;
    rstrip(&st->body);
    if (st->body.len > st->head_len)
        st->rc = idx__add_block(st->doc, st->body.data, st->body.len, st->path, 0);
    buf_reset(&st->body);
    st->head_len = 0;
    st->pending = BRK_NONE;
}

static void end_heading(html_state *st, int level)
{
    st->in_heading = 0;
    if (st->count_only || st->rc != ZK_OK) return;
    rstrip(&st->head);
    const char *h = buf_cstr(&st->head);
    while (*h == ' ') h++;
    for (int l = level; l <= 6; l++) { zk_free(st->stack[l]); st->stack[l] = NULL; }
    if (*h && !(st->stack[level] = zk_strdup(h))) { st->rc = ZK_NOMEM; return; }
    if (level == 1 && *h && !st->first_h1 && !(st->first_h1 = zk_strdup(h))) {
        st->rc = ZK_NOMEM;
        return;
    }
    zk_buf p;
    buf_init(&p, 0);
    for (int l = 1; l <= level && st->rc == ZK_OK; l++) {
        if (!st->stack[l]) continue;
        if (p.len) st->rc = buf_puts(&p, " > ");
        if (st->rc == ZK_OK) st->rc = buf_puts(&p, st->stack[l]);
    }
    zk_free(st->path);
    st->path = p.len ? buf_steal(&p, NULL) : NULL;
    buf_free(&p);
    if (*h && st->rc == ZK_OK) {
        st->rc = buf_puts(&st->body, h);
        st->head_len = st->body.len;
    }
    st->pending = BRK_PARA;
}

/* ---- the walk ----------------------------------------------------------- */

static void open_elem(html_state *st, xmlNode *n)
{
    int lvl = heading_level(n);
    if (lvl && !st->in_heading) {
        flush_block(st);
        st->in_heading = 1;
        buf_reset(&st->head);
        return;
    }
    if (name_is(n, "br")) { brk(st, BRK_LINE); return; }
    if (name_is(n, "pre")) st->pre++;
    if (name_is(n, "tr")) st->cell = 0;
    if (name_is(n, "td") || name_is(n, "th")) {
        if (st->cell++ > 0) put(st, " | ", 3);
        return;
    }
    if (is_block(n)) brk(st, BRK_PARA);
}

static void close_elem(html_state *st, xmlNode *n)
{
    int lvl = heading_level(n);
    if (lvl && st->in_heading) { end_heading(st, lvl); return; }
    if (name_is(n, "pre") && st->pre > 0) st->pre--;
    if (is_block(n)) brk(st, BRK_PARA);
}

static void walk(html_state *st, xmlNode *root)
{
    xmlNode *n = root->children;
    while (n && st->rc == ZK_OK) {
        int descend = 0;
        if (n->type == XML_ELEMENT_NODE) {
            if (!skipped(n)) {
                open_elem(st, n);
                if (n->children) descend = 1;
                else close_elem(st, n);
            }
        } else if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content) {
            put_text(st, (const char *)n->content);
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

/* The node after n in document order within root; descend into n or not. */
static xmlNode *next_node(xmlNode *n, xmlNode *root, int descend)
{
    if (descend && n->children) return n->children;
    while (n && n != root && !n->next) n = n->parent;
    return (!n || n == root) ? NULL : n->next;
}

/* First element named `name` under root after `after`'s subtree (or from the
 * start when after is NULL), or NULL. */
static xmlNode *find_elem(xmlNode *root, const char *name, xmlNode *after)
{
    xmlNode *n = after ? next_node(after, root, 0) : next_node(root, root, 1);
    for (; n; n = next_node(n, root, 1))
        if (n->type == XML_ELEMENT_NODE && name_is(n, name)) return n;
    return NULL;
}

static size_t text_size(xmlNode *n)
{
    html_state st;
    memset(&st, 0, sizeof st);
    st.count_only = 1;
    walk(&st, n);
    return st.counted;
}

/* <main>, else the <article> with the most text, unless that is tiny. */
static xmlNode *content_root(xmlNode *body)
{
    xmlNode *best = find_elem(body, "main", NULL);
    size_t best_size = best ? text_size(best) : 0;
    if (!best) {
        xmlNode *a = NULL;
        for (int i = 0; i < 16 && (a = find_elem(body, "article", a)) != NULL; i++) {
            size_t sz = text_size(a);
            if (sz > best_size) { best = a; best_size = sz; }
        }
    }
    if (best && best_size >= TINY_MAIN) return best;
    return body;
}

static char *node_text(xmlNode *n)
{
    xmlChar *c = xmlNodeGetContent(n);
    char *s = c ? zk_strdup((const char *)c) : NULL;
    xmlFree(c);
    return s;
}

zk_rc idx__parse_html(const char *name, const char *utf8, size_t len, idx_parsed *doc, char *err)
{
    (void)name;
    zk_rc rc = ZK_OK;
    html_state st;
    memset(&st, 0, sizeof st);
    st.doc = doc;
    buf_init(&st.body, 0);
    buf_init(&st.head, 0);

    /* The text is UTF-8 already: IGNORE_ENC stops <meta charset=gbk> from
     * re-decoding it. HUGE lifts libxml2's depth (256) and text-node limits:
     * input size is capped upstream and our walk is iterative. */
    int opts = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
               HTML_PARSE_NONET | HTML_PARSE_NOBLANKS | HTML_PARSE_IGNORE_ENC | XML_PARSE_HUGE;
    htmlDocPtr hd = htmlReadMemory(utf8, (int)len, NULL, "UTF-8", opts);
    if (!hd) {
        /* an empty or tag-free document: nothing to keep */
        if (len == 0) goto out;
        rc = zk_fail(err, ZK_PARSE, "HTML could not be parsed");
        goto out;
    }
    xmlNode *html = xmlDocGetRootElement(hd);
    if (!html) goto out;

    xmlNode *title = find_elem(html, "title", NULL);
    if (title && !(doc->title = node_text(title))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (doc->title && !*doc->title) { zk_free(doc->title); doc->title = NULL; }

    xmlNode *body = name_is(html, "body") ? html : find_elem(html, "body", NULL);
    if (!body) body = html;
    walk(&st, content_root(body));
    flush_block(&st);
    if ((rc = st.rc) != ZK_OK) { zk_fail(err, rc, "extracting HTML text"); goto out; }
    if (!doc->title && st.first_h1) { doc->title = st.first_h1; st.first_h1 = NULL; }
out:
    if (hd) xmlFreeDoc(hd);
    buf_free(&st.body);
    buf_free(&st.head);
    for (int l = 0; l <= 6; l++) zk_free(st.stack[l]);
    zk_free(st.path);
    zk_free(st.first_h1);
    return rc;
}
