/* epub.c — EPUB e-books (2 and 3).
 *
 * Called by idx_parse() for ZIP containers whose mimetype entry says
 * application/epub+zip. Follows META-INF/container.xml to the OPF package,
 * then reads the spine in order; each XHTML item goes through the HTML
 * parser (html.c) and its blocks are appended, so heading paths are per
 * chapter. The title is the OPF's dc:title. Linear in the book's size. */
#include "indexer/parse/parse.h"

#include <string.h>

#include "indexer/charset.h"
#include "indexer/parse/zipread.h"

#define MAX_SPINE 10000

/* Parse one XHTML item and append its blocks to doc. A chapter that is
 * missing or does not parse is skipped; resource errors propagate. */
static zk_rc add_chapter(idx__zip *z, const char *path, idx_parsed *doc, char *err)
{
    char *raw = NULL, *utf8 = NULL;
    size_t rlen = 0, ulen = 0;
    idx_parsed *part = NULL;
    zk_rc rc = idx__zip_read(z, path, &raw, &rlen, err);
    if (rc == ZK_NOTFOUND || rc == ZK_PARSE) { rc = ZK_OK; goto out; }
    if (rc != ZK_OK) goto out;
    if ((rc = idx_to_utf8(raw, rlen, &utf8, &ulen, NULL, err)) != ZK_OK) goto out;
    if (!(part = idx__parsed_new())) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    rc = idx__parse_html(path, utf8, ulen, part, err);
    if (rc == ZK_PARSE) { rc = ZK_OK; goto out; }
    /* html.c drops heading-only blocks; a chapter that is only a heading
     * (a title page) keeps that heading as its text */
    if (rc == ZK_OK && part->nblocks == 0 && part->title && part->title[0])
        rc = idx__add_block(doc, part->title, strlen(part->title), NULL, 0);
    for (size_t i = 0; i < part->nblocks && rc == ZK_OK; i++)
        rc = idx__add_block(doc, part->blocks[i].text, part->blocks[i].len, part->blocks[i].heading,
                            part->blocks[i].page);
    if (rc != ZK_OK) zk_fail(err, rc, "EPUB chapter %s", path);
out:
    zk_free(raw);
    zk_free(utf8);
    idx_parsed_free(part);
    return rc;
}

static char *rootfile_path(idx__zip *z, char *err)
{
    xmlDoc *d = NULL;
    if (idx__zip_xml(z, "META-INF/container.xml", &d, err) != ZK_OK) return NULL;
    xmlNode *rf = idx__xml_find(xmlDocGetRootElement(d), "rootfile");
    char *p = rf ? idx__xml_attr(rf, "full-path") : NULL;
    char *resolved = p ? idx__zip_resolve(NULL, p) : NULL;
    zk_free(p);
    xmlFreeDoc(d);
    return resolved;
}

zk_rc idx__parse_epub(const char *name, const char *data, size_t len, idx_parsed *doc, char *err)
{
    (void)name;
    zk_rc rc = ZK_OK;
    idx__zip *z = NULL;
    xmlDoc *opf = NULL;
    char *opf_path = NULL;
    if ((rc = idx__zip_open(data, len, &z, err)) != ZK_OK) goto out;
    if (!(opf_path = rootfile_path(z, err))) {
        rc = zk_fail(err, ZK_PARSE, "EPUB without a readable META-INF/container.xml rootfile");
        goto out;
    }
    if ((rc = idx__zip_xml(z, opf_path, &opf, err)) != ZK_OK) goto out;
    xmlNode *root = xmlDocGetRootElement(opf);
    xmlNode *manifest = idx__xml_find(root, "manifest"), *spine = idx__xml_find(root, "spine");
    int n = 0;
    for (xmlNode *ref = spine ? spine->children : NULL; ref && rc == ZK_OK && n < MAX_SPINE; ref = ref->next) {
        if (!idx__xml_is(ref, "itemref")) continue;
        n++;
        char *idref = idx__xml_attr(ref, "idref"), *href = NULL;
        for (xmlNode *it = manifest ? manifest->children : NULL; it && idref && !href; it = it->next) {
            if (!idx__xml_is(it, "item")) continue;
            char *id = idx__xml_attr(it, "id");
            if (id && !strcmp(id, idref)) href = idx__xml_attr(it, "href");
            zk_free(id);
        }
        char *path = href ? idx__zip_resolve(opf_path, href) : NULL;
        if (path) rc = add_chapter(z, path, doc, err);
        zk_free(idref);
        zk_free(href);
        zk_free(path);
    }
    if (rc != ZK_OK) goto out;
    xmlNode *meta = idx__xml_find(root, "metadata");
    xmlNode *t = meta ? idx__xml_find(meta, "title") : NULL;
    char *title = t ? idx__xml_text(t) : NULL;
    if (title && strspn(title, " \t\r\n") == strlen(title)) { zk_free(title); title = NULL; }
    doc->title = title;
out:
    if (opf) xmlFreeDoc(opf);
    zk_free(opf_path);
    idx__zip_close(z);
    return rc;
}
