/* ocr.c — the OCR HTTP client (see ocr.h and docs/OCR.md).
 *
 * Called by the PDF parser (indexer/parse/pdf.c) once per page that has no
 * text layer: one blocking libcurl POST of a PNG (typically 0.2-2 MiB at
 * 200 dpi) per page, with the configured timeout. The answer is text/plain
 * or JSON {"text": "..."}, capped at OCR_MAX_ANSWER bytes. */
#include "indexer/ocr.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

#define OCR_MAX_ANSWER ((size_t)16 << 20)
#define OCR_DEFAULT_TIMEOUT_MS 60000L

/* Set once at start-up by idx_ocr_configure(), read-only afterwards. */
static struct {
    char *url;        /* NULL = OCR disabled */
    char *api_key;    /* NULL = no Authorization header */
    long timeout_ms;
} ocr_cfg;

zk_rc idx_ocr_configure(const char *url, const char *api_key, long timeout_ms)
{
    char *u = NULL, *k = NULL;
    if (url && *url) {
        if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
            return ZK_CONFIG;
        if (!(u = zk_strdup(url))) return ZK_NOMEM;
        if (api_key && *api_key && !(k = zk_strdup(api_key))) { zk_free(u); return ZK_NOMEM; }
        curl_global_init(CURL_GLOBAL_DEFAULT);
    }
    zk_free(ocr_cfg.url);
    zk_free(ocr_cfg.api_key);
    ocr_cfg.url = u;
    ocr_cfg.api_key = k;
    ocr_cfg.timeout_ms = timeout_ms > 0 ? timeout_ms : OCR_DEFAULT_TIMEOUT_MS;
    return ZK_OK;
}

void idx_ocr_get(const char **url, const char **api_key, long *timeout_ms)
{
    *url = ocr_cfg.url;
    *api_key = ocr_cfg.api_key;
    *timeout_ms = ocr_cfg.timeout_ms;
}

int idx_ocr_enabled(void)
{
    return ocr_cfg.url != NULL;
}

typedef struct {
    zk_buf buf;
    zk_rc rc;       /* first append failure (ZK_TOOBIG, ZK_NOMEM) */
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    answer *a = user;
    size_t total = size * n;
    if ((a->rc = buf_append(&a->buf, p, total)) != ZK_OK) return 0;   /* 0 aborts the transfer */
    return total;
}

/* The text of a JSON answer {"text": "..."}, copied. */
static zk_rc json_text(const char *body, size_t len, char **out_text, size_t *out_len, char *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *t = root ? json_object_get(root, "text") : NULL;
    zk_rc rc = ZK_OK;
    if (!json_is_string(t)) {
        rc = zk_fail(err, ZK_PARSE, "OCR answer is not JSON with a \"text\" string%s%s",
                     root ? "" : ": ", root ? "" : jerr.text);
        goto out;
    }
    *out_len = json_string_length(t);
    if (!(*out_text = zk_strndup(json_string_value(t), *out_len))) rc = zk_fail(err, ZK_NOMEM, "out of memory");
out:
    json_decref(root);
    return rc;
}

zk_rc idx_ocr_page(const void *png, size_t png_len, int page, char **out_text, size_t *out_len,
                   char *err)
{
    zk_rc rc = ZK_OK;
    CURL *curl = NULL;
    struct curl_slist *hdrs = NULL;
    answer ans = {.rc = ZK_OK};
    zk_buf *body = &ans.buf;
    char line[64], *auth = NULL;
    buf_init(body, OCR_MAX_ANSWER);

    *out_text = NULL;
    *out_len = 0;
    if (!ocr_cfg.url) return zk_fail(err, ZK_CONFIG, "OCR is not configured ([ocr] url)");
    if (!(curl = curl_easy_init())) { rc = zk_fail(err, ZK_NOMEM, "curl_easy_init failed"); goto out; }

    snprintf(line, sizeof line, "X-Zhiku-Page: %d", page);
    struct curl_slist *h;
    if (!(h = curl_slist_append(hdrs, "Content-Type: image/png")) || !(hdrs = h) ||
        !(h = curl_slist_append(hdrs, line)) || !(hdrs = h) ||
        !(h = curl_slist_append(hdrs, "Expect:")) || !(hdrs = h)) {
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
        goto out;
    }
    if (ocr_cfg.api_key) {
        size_t n = strlen(ocr_cfg.api_key) + 32;
        if (!(auth = zk_malloc(n))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        snprintf(auth, n, "Authorization: Bearer %s", ocr_cfg.api_key);
        if (!(h = curl_slist_append(hdrs, auth))) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
        hdrs = h;
    }
    curl_easy_setopt(curl, CURLOPT_URL, ocr_cfg.url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)png);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)png_len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, ocr_cfg.timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, ZK_MIN(ocr_cfg.timeout_ms, 10000L));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "zhiku-ocr/1");

    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        if (cc == CURLE_WRITE_ERROR && ans.rc == ZK_TOOBIG)
            rc = zk_fail(err, ZK_TOOBIG, "OCR answer for page %d is larger than %zu bytes", page, OCR_MAX_ANSWER);
        else if (cc == CURLE_WRITE_ERROR && ans.rc != ZK_OK)
            rc = zk_fail(err, ans.rc, "OCR answer for page %d: %s", page, zk_strerror(ans.rc));
        else
            rc = zk_fail(err, ZK_IO, "OCR request for page %d failed: %s", page, curl_easy_strerror(cc));
        goto out;
    }
    long status = 0;
    char *ctype = NULL;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype);
    if (status != 200) {
        rc = zk_fail(err, ZK_IO, "OCR service answered HTTP %ld for page %d", status, page);
        goto out;
    }
    if (ctype && strncasecmp(ctype, "application/json", 16) == 0) {
        rc = json_text(body->data ? body->data : "", body->len, out_text, out_len, err);
        goto out;
    }
    *out_len = body->len;
    if (!(*out_text = body->len ? buf_steal(body, NULL) : zk_strdup("")))
        rc = zk_fail(err, ZK_NOMEM, "out of memory");
out:
    buf_free(body);
    zk_free(auth);
    curl_slist_free_all(hdrs);
    if (curl) curl_easy_cleanup(curl);
    return rc;
}
