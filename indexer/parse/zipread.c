/* zipread.c — bounded in-memory ZIP access (libzip) and the small XML and
 * heading-path helpers shared by the container parsers (see zipread.h).
 *
 * Called a handful of times per document (detection, then each part the
 * parser needs). Caps are enforced on bytes actually inflated, so a zip
 * bomb costs at most IDX_ZIP_MAX_TOTAL bytes of work and memory. */
#include "indexer/parse/zipread.h"

#include <libxml/parser.h>
#include <string.h>
#include <zip.h>

#include "buf.h"

struct idx__zip {
    zip_t *za;
    size_t total;      /* bytes inflated so far from this archive */
};

zk_rc idx__zip_open(const char *data, size_t len, idx__zip **out, char *err)
{
    zip_error_t ze;
    zip_error_init(&ze);
    *out = NULL;
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
    if (!src) {
        zip_error_fini(&ze);
        return zk_fail(err, ZK_NOMEM, "out of memory");
    }
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY, &ze);
    if (!za) {
        zk_rc rc = zk_fail(err, ZK_PARSE, "corrupt or truncated ZIP archive: %s", zip_error_strerror(&ze));
        zip_source_free(src);
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    zip_int64_t n = zip_get_num_entries(za, 0);
    if (n < 0 || n > IDX_ZIP_MAX_ENTRIES) {
        zip_discard(za);
        return zk_fail(err, ZK_TOOBIG, "ZIP archive has %lld entries (limit %d)", (long long)n,
                       IDX_ZIP_MAX_ENTRIES);
    }
    idx__zip *z = zk_calloc(1, sizeof *z);
    if (!z) { zip_discard(za); return zk_fail(err, ZK_NOMEM, "out of memory"); }
    z->za = za;
    *out = z;
    return ZK_OK;
}

void idx__zip_close(idx__zip *z)
{
    if (!z) return;
    zip_discard(z->za);   /* read-only: nothing to write back */
    zk_free(z);
}

static zip_int64_t locate(idx__zip *z, const char *name)
{
    zip_int64_t i = zip_name_locate(z->za, name, 0);
    if (i < 0) i = zip_name_locate(z->za, name, ZIP_FL_NOCASE);
    return i;
}

int idx__zip_has(idx__zip *z, const char *name) { return locate(z, name) >= 0; }

zk_rc idx__zip_read(idx__zip *z, const char *name, char **out, size_t *out_len, char *err)
{
    zk_rc rc = ZK_OK;
    zip_file_t *f = NULL;
    zk_buf b;
    buf_init(&b, 0);
    *out = NULL;
    if (out_len) *out_len = 0;
    zip_int64_t idx = locate(z, name);
    if (idx < 0) return zk_fail(err, ZK_NOTFOUND, "ZIP entry %s not found", name);

    size_t budget = ZK_MIN(IDX_ZIP_MAX_ENTRY, IDX_ZIP_MAX_TOTAL - z->total);
    zip_stat_t sb;
    zip_stat_init(&sb);
    if (zip_stat_index(z->za, (zip_uint64_t)idx, 0, &sb) == 0 && (sb.valid & ZIP_STAT_SIZE) &&
        sb.size > budget) {
        rc = zk_fail(err, ZK_TOOBIG, "ZIP entry %s is %llu bytes uncompressed (limit %zu)", name,
                     (unsigned long long)sb.size, budget);
        goto out;
    }
    if (!(f = zip_fopen_index(z->za, (zip_uint64_t)idx, 0))) {
        rc = zk_fail(err, ZK_PARSE, "cannot open ZIP entry %s: %s", name, zip_strerror(z->za));
        goto out;
    }
    char chunk[16384];
    for (;;) {
        zip_int64_t r = zip_fread(f, chunk, sizeof chunk);
        if (r < 0) {
            rc = zk_fail(err, ZK_PARSE, "corrupt ZIP entry %s: %s", name,
                         zip_error_strerror(zip_file_get_error(f)));
            goto out;
        }
        if (r == 0) break;
        /* sizes in headers may lie: count what is really inflated */
        if ((size_t)r > budget - b.len) {
            rc = zk_fail(err, ZK_TOOBIG, "ZIP entry %s inflates past the limit of %zu bytes", name, budget);
            goto out;
        }
        if ((rc = buf_append(&b, chunk, (size_t)r)) != ZK_OK) {
            zk_fail(err, rc, "reading ZIP entry %s", name);
            goto out;
        }
    }
    z->total += b.len;
    *out = buf_steal(&b, out_len);
    if (!*out) rc = zk_fail(err, ZK_NOMEM, "out of memory");
out:
    if (f) zip_fclose(f);
    buf_free(&b);
    return rc;
}

/* mimetype entry (ODF, EPUB): compare its first bytes, leading/trailing
 * whitespace tolerated. */
static int mimetype_is(idx__zip *z, const char *want)
{
    char *m = NULL, err[ZK_ERRLEN];
    size_t n = 0;
    if (!idx__zip_has(z, "mimetype") || idx__zip_read(z, "mimetype", &m, &n, err) != ZK_OK) return 0;
    size_t a = 0;
    while (a < n && (m[a] == ' ' || m[a] == '\n' || m[a] == '\r' || m[a] == '\t')) a++;
    while (n > a && (m[n - 1] == ' ' || m[n - 1] == '\n' || m[n - 1] == '\r' || m[n - 1] == '\t')) n--;
    int ok = n - a == strlen(want) && memcmp(m + a, want, n - a) == 0;
    zk_free(m);
    return ok;
}

const char *idx__zip_format(const char *data, size_t len)
{
    idx__zip *z = NULL;
    char err[ZK_ERRLEN];
    const char *f = NULL;
    if (idx__zip_open(data, len, &z, err) != ZK_OK) return NULL;
    if (idx__zip_has(z, "[Content_Types].xml")) {
        if (idx__zip_has(z, "word/document.xml")) f = "docx";
        else if (idx__zip_has(z, "xl/workbook.xml")) f = "xlsx";
        else if (idx__zip_has(z, "ppt/presentation.xml")) f = "pptx";
    }
    if (!f && mimetype_is(z, "application/vnd.oasis.opendocument.text")) f = "odt";
    if (!f && mimetype_is(z, "application/epub+zip")) f = "epub";
    idx__zip_close(z);
    return f;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *idx__zip_resolve(const char *base, const char *target)
{
    zk_buf b;
    buf_init(&b, 0);
    if (!target) return NULL;
    size_t tlen = strcspn(target, "#?");   /* drop fragments and queries */
    if (tlen > 0 && target[0] != '/' && base) {
        const char *slash = strrchr(base, '/');
        if (slash && buf_append(&b, base, (size_t)(slash - base + 1)) != ZK_OK) goto fail;
    }
    for (size_t i = 0; i < tlen; i++) {
        char c = target[i];
        if (c == '%' && i + 2 < tlen && hexval(target[i + 1]) >= 0 && hexval(target[i + 2]) >= 0) {
            c = (char)(hexval(target[i + 1]) * 16 + hexval(target[i + 2]));
            i += 2;
        }
        if (buf_putc(&b, c) != ZK_OK) goto fail;
    }
    /* fold "." and ".." segments; drop empty ones (leading "/") */
    char *raw = buf_steal(&b, NULL);
    if (!raw) goto fail;
    char *seg[256];
    size_t nseg = 0;
    for (char *save = NULL, *s = strtok_r(raw, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (!strcmp(s, ".")) continue;
        if (!strcmp(s, "..")) { if (nseg) nseg--; continue; }
        if (nseg < ZK_ARRAY_LEN(seg)) seg[nseg++] = s;
    }
    for (size_t i = 0; i < nseg; i++)
        if ((i && buf_putc(&b, '/') != ZK_OK) || buf_puts(&b, seg[i]) != ZK_OK) {
            zk_free(raw);
            goto fail;
        }
    zk_free(raw);
    if (b.len == 0) { buf_free(&b); return zk_strdup(""); }
    return buf_steal(&b, NULL);
fail:
    buf_free(&b);
    return NULL;
}

zk_rc idx__zip_xml(idx__zip *z, const char *name, xmlDoc **out, char *err)
{
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    zk_rc rc = idx__zip_read(z, name, &data, &len, err);
    if (rc != ZK_OK) return rc;
    if (len > (size_t)0x7fffffff) { zk_free(data); return zk_fail(err, ZK_TOOBIG, "%s too large", name); }
    /* No XML_PARSE_NOENT (entities stay references: billion laughs is
     * inert), no DTDLOAD/DTDATTR (nothing fetched), NONET; no HUGE, so
     * libxml2 keeps its depth and node-size limits. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA |
               XML_PARSE_COMPACT;
    xmlDoc *d = xmlReadMemory(data, (int)len, name, NULL, opts);
    if (!d) d = xmlReadMemory(data, (int)len, name, NULL, opts | XML_PARSE_RECOVER);
    zk_free(data);
    if (!d || !xmlDocGetRootElement(d)) {
        if (d) xmlFreeDoc(d);
        return zk_fail(err, ZK_PARSE, "malformed XML in %s", name);
    }
    *out = d;
    return ZK_OK;
}

/* dc:title from docProps/core.xml (or an ODF meta.xml), trimmed; NULL if none. */
char *idx__zip_dc_title(idx__zip *z, const char *part)
{
    xmlDoc *d = NULL;
    char err[ZK_ERRLEN];
    if (!idx__zip_has(z, part) || idx__zip_xml(z, part, &d, err) != ZK_OK) return NULL;
    xmlNode *t = idx__xml_find(xmlDocGetRootElement(d), "title");
    char *s = t ? idx__xml_text(t) : NULL;
    xmlFreeDoc(d);
    if (s && strspn(s, " \t\r\n") == strlen(s)) { zk_free(s); s = NULL; }
    return s;
}

char *idx__rel_target(idx__zip *z, const char *rels, const char *source, const char *id,
                      const char *type_suffix)
{
    xmlDoc *d = NULL;
    char err[ZK_ERRLEN], *out = NULL;
    if (!idx__zip_has(z, rels) || idx__zip_xml(z, rels, &d, err) != ZK_OK) return NULL;
    for (xmlNode *r = xmlDocGetRootElement(d)->children; r && !out; r = r->next) {
        if (!idx__xml_is(r, "Relationship")) continue;
        char *rid = idx__xml_attr(r, "Id"), *type = idx__xml_attr(r, "Type");
        int match = 0;
        if (id) match = rid && !strcmp(rid, id);
        else if (type_suffix && type) {
            size_t a = strlen(type), b = strlen(type_suffix);
            match = a >= b && !strcmp(type + a - b, type_suffix);
        }
        if (match) {
            char *mode = idx__xml_attr(r, "TargetMode"), *target = idx__xml_attr(r, "Target");
            if (target && !(mode && !strcmp(mode, "External"))) out = idx__zip_resolve(source, target);
            zk_free(mode);
            zk_free(target);
        }
        zk_free(rid);
        zk_free(type);
    }
    xmlFreeDoc(d);
    return out;
}

/* ---- XML helpers -------------------------------------------------------- */

int idx__xml_is(const xmlNode *n, const char *local)
{
    return n && n->type == XML_ELEMENT_NODE && n->name && strcmp((const char *)n->name, local) == 0;
}

xmlNode *idx__xml_next(xmlNode *n, xmlNode *root, int descend)
{
    if (descend && n->type == XML_ELEMENT_NODE && n->children) return n->children;
    while (n && n != root && !n->next) n = n->parent;
    return (!n || n == root) ? NULL : n->next;
}

xmlNode *idx__xml_find(xmlNode *root, const char *local)
{
    if (!root) return NULL;
    if (idx__xml_is(root, local)) return root;
    for (xmlNode *n = idx__xml_next(root, root, 1); n; n = idx__xml_next(n, root, 1))
        if (idx__xml_is(n, local)) return n;
    return NULL;
}

static char *attr(const xmlNode *n, const char *local, int need_ns)
{
    if (!n || n->type != XML_ELEMENT_NODE) return NULL;
    for (xmlAttr *a = n->properties; a; a = a->next) {
        if (!a->name || strcmp((const char *)a->name, local) != 0 || (need_ns && !a->ns)) continue;
        zk_buf b;
        buf_init(&b, 0);
        for (xmlNode *c = a->children; c; c = c->next)
            if (c->type == XML_TEXT_NODE && c->content && buf_puts(&b, (const char *)c->content) != ZK_OK) {
                buf_free(&b);
                return NULL;
            }
        if (b.len == 0) { buf_free(&b); return zk_strdup(""); }
        return buf_steal(&b, NULL);
    }
    return NULL;
}

char *idx__xml_attr(const xmlNode *n, const char *local) { return attr(n, local, 0); }
char *idx__xml_attr_ns(const xmlNode *n, const char *local) { return attr(n, local, 1); }

char *idx__xml_text(xmlNode *root)
{
    zk_buf b;
    buf_init(&b, 0);
    if (!root) return zk_strdup("");
    for (xmlNode *n = root->type == XML_ELEMENT_NODE ? idx__xml_next(root, root, 1) : root; n;
         n = idx__xml_next(n, root, 1)) {
        if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content &&
            buf_puts(&b, (const char *)n->content) != ZK_OK) {
            buf_free(&b);
            return NULL;
        }
        if (n == root) break;
    }
    if (b.len == 0) { buf_free(&b); return zk_strdup(""); }
    return buf_steal(&b, NULL);
}

/* ---- heading paths ------------------------------------------------------ */

zk_rc idx__hstack_set(idx__hstack *h, int level, const char *text)
{
    if (level < 0) level = 0;
    if (level >= IDX_HSTACK_LEVELS) level = IDX_HSTACK_LEVELS - 1;
    for (int l = level; l < IDX_HSTACK_LEVELS; l++) { zk_free(h->level[l]); h->level[l] = NULL; }
    if (text && *text && !(h->level[level] = zk_strdup(text))) return ZK_NOMEM;
    zk_buf p;
    buf_init(&p, 0);
    for (int l = 0; l <= level; l++) {
        if (!h->level[l]) continue;
        if ((p.len && buf_puts(&p, " > ") != ZK_OK) || buf_puts(&p, h->level[l]) != ZK_OK) {
            buf_free(&p);
            return ZK_NOMEM;
        }
    }
    zk_free(h->path);
    h->path = p.len ? buf_steal(&p, NULL) : NULL;
    buf_free(&p);
    return ZK_OK;
}

void idx__hstack_free(idx__hstack *h)
{
    for (int l = 0; l < IDX_HSTACK_LEVELS; l++) { zk_free(h->level[l]); h->level[l] = NULL; }
    zk_free(h->path);
    h->path = NULL;
}
