/* zipread.h — bounded, in-memory ZIP reading and small XML helpers shared
 * by the container-format parsers (docx, xlsx, pptx, odt, epub).
 *
 * Internal to indexer/parse/. Archives are read from memory only and entries
 * are never written to disk, so hostile names such as "../evil" are inert.
 * Every read is capped (entry count, bytes per entry, bytes per archive) by
 * counting the bytes actually inflated: sizes in the headers may lie. XML is
 * parsed with libxml2 without network access, DTD loading or entity
 * substitution. Not thread-safe per handle; handles are independent. */
#ifndef IDX_ZIPREAD_H
#define IDX_ZIPREAD_H

#include <stddef.h>
#include <libxml/tree.h>
#include "zk.h"

#define IDX_ZIP_MAX_ENTRIES 20000
#define IDX_ZIP_MAX_ENTRY   ((size_t)64 << 20)    /* bytes inflated per entry */
#define IDX_ZIP_MAX_TOTAL   ((size_t)256 << 20)   /* bytes inflated per archive */

typedef struct idx__zip idx__zip;

/* Open an archive held in data[0..len) (not copied: data must outlive the
 * handle). ZK_PARSE for a corrupt or truncated archive, ZK_TOOBIG for too
 * many entries. */
zk_rc idx__zip_open(const char *data, size_t len, idx__zip **out, char *err);
void idx__zip_close(idx__zip *z);

/* 1 when the archive has an entry of exactly this name. */
int idx__zip_has(idx__zip *z, const char *name);

/* Inflate entry `name` into a NUL-terminated buffer (*out, caller frees with
 * zk_free). ZK_NOTFOUND when absent, ZK_TOOBIG past the caps, ZK_PARSE when
 * the data is corrupt. */
zk_rc idx__zip_read(idx__zip *z, const char *name, char **out, size_t *out_len, char *err);

/* The document format of a ZIP container by its entries: "docx", "xlsx",
 * "pptx", "odt", "epub", or NULL (not a ZIP we handle / unreadable). */
const char *idx__zip_format(const char *data, size_t len);

/* Resolve a relationship/href target against the folder of part `base`
 * ("word/document.xml" + "media/a.png" -> "word/media/a.png"; "/x" is
 * absolute; "." and ".." segments folded; %XX decoded). Caller frees. */
char *idx__zip_resolve(const char *base, const char *target);

/* Target of relationship `id` in the OOXML .rels part `rels`, resolved
 * against the part `source` it belongs to; NULL when absent (caller frees).
 * With id NULL, the first relationship whose Type ends with type_suffix. */
char *idx__rel_target(idx__zip *z, const char *rels, const char *source, const char *id,
                      const char *type_suffix);

/* Read and parse entry `name` as XML (safe options). */
zk_rc idx__zip_xml(idx__zip *z, const char *name, xmlDoc **out, char *err);

/* dc:title of an OOXML docProps/core.xml or ODF meta.xml part, or NULL
 * when absent or blank. Caller frees. */
char *idx__zip_dc_title(idx__zip *z, const char *part);

/* ---- XML helpers (namespace prefixes ignored: local names compared) ----- */

int idx__xml_is(const xmlNode *n, const char *local);
/* Next node in document order inside root; descend into n's children or
 * not. Only element children are ever descended into by callers. */
xmlNode *idx__xml_next(xmlNode *n, xmlNode *root, int descend);
/* First element with this local name under root (document order), or NULL. */
xmlNode *idx__xml_find(xmlNode *root, const char *local);
/* Attribute value by local name (any namespace), owned by caller (free
 * with zk_free). NULL when missing. */
char *idx__xml_attr(const xmlNode *n, const char *local);
/* The same, only attributes in a namespace (r:id next to a plain id). */
char *idx__xml_attr_ns(const xmlNode *n, const char *local);
/* Concatenated text of the text/CDATA nodes under n; entity references are
 * not expanded. Caller frees with zk_free. */
char *idx__xml_text(xmlNode *n);

/* ---- heading paths ------------------------------------------------------ */

#define IDX_HSTACK_LEVELS 10
typedef struct {
    char *level[IDX_HSTACK_LEVELS];   /* heading text per level 0..9 */
    char *path;                       /* " > "-joined path, or NULL */
} idx__hstack;

/* Set heading `text` at level (0..9), dropping deeper levels; rebuilds path. */
zk_rc idx__hstack_set(idx__hstack *h, int level, const char *text);
void idx__hstack_free(idx__hstack *h);

#endif
