/* files.h — the web portal's files (web/), compiled into the binary by
 * tools/embed_files.sh so a deployment is one executable. Served at / by
 * server/http.c; [server] web_dir overrides them from disk (development). */
#ifndef SRV_FILES_H
#define SRV_FILES_H

#include <stddef.h>

typedef struct {
    const char *path;          /* "/index.html" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} srv_file;

extern const srv_file srv_files[];   /* terminated by an entry with path NULL */

#endif
