/* config.c — the INI loader and the table of every known key with its
 * default and documentation (the single source for docs/CONFIG.md and
 * `zhiku config`). Loaded once at start-up; lookups are linear over a small
 * table, done at start-up, not per request. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"

typedef struct {
    const char *section, *key, *def, *doc;
    int secret;
} known_key;

/* Every key zhiku reads, with its documented default. */
static const known_key known[] = {
    {"server", "listen", "127.0.0.1:8080", "address zhiku serve listens on (IPv4 HOST:PORT); --listen overrides", 0},
    {"server", "max_body_kb", "1024", "largest JSON request body", 0},
    {"server", "max_upload_mb", "64", "largest document upload", 0},
    {"server", "max_connections", "512", "concurrent connections at most", 0},
    {"server", "max_connections_per_ip", "64", "concurrent connections from one address at most (bounds slow-header clients)", 0},
    {"server", "shutdown_grace_s", "30", "on SIGTERM, wait this long for in-flight requests and answer streams", 0},
    {"server", "idle_timeout_s", "30", "idle connections (and slow clients) are closed after this", 0},
    {"server", "header_timeout_ms", "10000", "a connection must complete its request headers within this (slowloris), 0 = off", 0},
    {"server", "session_hours", "12", "portal login session lifetime", 0},
    {"server", "rate_limit_per_minute", "600", "requests per minute per principal (token, user); 0 = unlimited", 0},
    {"server", "trusted_proxies", "", "addresses whose proxy_user_header is trusted (comma-separated)", 0},
    {"server", "proxy_user_header", "X-Forwarded-User", "header carrying the SSO user from a trusted proxy", 0},
    {"server", "proxy_groups_header", "X-Forwarded-Groups", "header carrying the SSO user's groups (comma-separated)", 0},
    {"server", "metrics_from", "", "addresses allowed to read /metrics (comma-separated); empty = anyone", 0},
    {"server", "web_dir", "", "serve the portal from this folder instead of the built-in copy (development)", 0},
    {"server", "tls_cert", "", "PEM certificate: serve HTTPS (session cookies get Secure)", 0},
    {"server", "tls_key", "", "PEM private key for tls_cert", 1},
    {"store", "data_dir", "./data", "data directory (zhiku.db, vectors/); --data-dir and ZHIKU_DATA_DIR override it", 0},
    {"store", "vector_layout", "auto", "auto (column index for the builtin embedder, FAISS for others) | faiss | columns", 0},
    {"log", "level", "warn", "debug | info | warn | error", 0},
    {"chunk", "size", "700", "target chunk size in characters (code points)", 0},
    {"chunk", "overlap", "80", "overlap between consecutive chunks, in characters", 0},
    {"chunk", "max_chunks", "100000", "refuse documents that would produce more chunks", 0},
    {"ingest", "max_file_mb", "256", "files larger than this are refused", 0},
    {"ingest", "batch_docs", "64", "documents per write transaction during bulk ingestion", 0},
    {"embedding", "provider", "builtin", "builtin (hashed features, no model) | openai (any OpenAI-compatible /v1/embeddings)", 0},
    {"embedding", "dimensions", "512", "vector dimension (builtin: any; openai: sent as `dimensions` when the model supports it, else must match the model)", 0},
    {"embedding", "base_url", "", "openai: API root, e.g. http://127.0.0.1:11434/v1", 0},
    {"embedding", "model", "", "openai: model name, e.g. bge-m3", 0},
    {"embedding", "api_key", "", "openai: bearer key; use ${ENV_VAR}", 1},
    {"embedding", "batch_size", "32", "openai: texts per request", 0},
    {"embedding", "concurrency", "2", "openai: requests in flight at most", 0},
    {"embedding", "timeout_ms", "30000", "openai: per-request timeout", 0},
    {"embedding", "max_retries", "5", "openai: retries on 429/5xx/timeouts (exponential backoff, Retry-After honoured)", 0},
    {"ocr", "url", "", "OCR service for scanned PDF pages: POST image/png, answer text/plain (docs/OCR.md); empty = no OCR", 0},
    {"ocr", "api_key", "", "bearer key for the OCR service; use ${ENV_VAR}", 1},
    {"ocr", "timeout_ms", "60000", "per-page OCR timeout", 0},
    {"sandbox", "enabled", "true", "parse each document in a child process with the limits below", 0},
    {"sandbox", "cpu_seconds", "60", "CPU-time limit per document", 0},
    {"sandbox", "memory_mb", "2048", "address-space limit per document parse", 0},
    {"sandbox", "wall_seconds", "120", "wall-clock limit per document parse", 0},
    {"sandbox", "max_output_mb", "256", "largest extracted text accepted from a parse", 0},
    {"ingest", "workers", "2", "parallel parse+embed workers (one writer); 0 = number of cores", 0},
    {"search", "top_k", "10", "hits returned by default", 0},
    {"search", "bm25_k", "50", "BM25 candidates fused", 0},
    {"search", "vector_k", "50", "vector candidates fused", 0},
    {"search", "rrf_k", "60", "reciprocal rank fusion constant", 0},
    {"search", "bm25_weight", "1.0", "RRF weight of the BM25 list", 0},
    {"search", "vector_weight", "0.12", "RRF weight of the vector list", 0},
    {"search", "heading_weight", "0.5", "BM25 weight of the heading column relative to text", 0},
    {"search", "max_query_terms", "32", "most selective query terms kept in the BM25 query", 0},
    {"search", "bm25_budget", "2000", "rows the rarest query terms may match before common terms only score", 0},
    {"search", "bm25_max_rows", "2000", "matched rows BM25 ranks at most, the newest first, never fewer than bm25_budget (only queries of very common words reach it); 0 = all", 0},
    {"search", "bm25_max_matches", "8000", "matches BM25 walks at most, the newest first, looking for rows the caller may read (never fewer than bm25_max_rows); 0 = all", 0},
    {"acl", "default_read", "", "readers of documents ingested without --acl (comma-separated principals, e.g. everyone or group:staff); empty = administrators only", 0},
    {"audit", "retention_days", "365", "audit log rows older than this are pruned; 0 keeps them forever", 0},
    {"answer", "top_sources", "5", "hits given to the answerer", 0},
    {"answer", "max_sentences", "3", "extractive answer: sentences at most", 0},
    {"answer", "max_chars", "600", "extractive answer: characters at most", 0},
    {"answer", "min_score", "0.2", "extractive answer: minimum query-term coverage, else not found", 0},
    {"answer", "min_bm25", "6", "LLM not-found gate: unless some hit reaches this raw BM25 score or min_similarity, answer \"not found\" without calling the model (measured: passes 99-99.8% of answerable eval questions, stops ~25% of unanswerable ones)", 0},
    {"answer", "min_similarity", "0.35", "LLM not-found gate: cosine similarity that also lets a question through (builtin embedder: unanswerable p95 0.25; raise it for dense models)", 0},
    {"answer", "max_prompt_tokens", "3000", "LLM answers: token budget of the numbered sources in the prompt", 0},
    {"answer", "weak_support", "0.5", "citations whose sentences share less of their content terms with the cited chunk are flagged weak", 0},
    {"llm", "providers", "", "chat providers tried in order, e.g. local, cloud (each configured in [llm.NAME]); empty = extractive answers", 0},
    {"llm", "rewrite_followups", "true", "rewrite a follow-up question into a standalone query with the model before retrieval", 0},
    {"llm.*", "base_url", "", "OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1 (Ollama native: .../api)", 0},
    {"llm.*", "model", "", "model name", 0},
    {"llm.*", "api_key", "", "bearer key; use ${ENV_VAR}", 1},
    {"llm.*", "remote", "auto", "true: data leaves the host (never used for local_only knowledge bases); auto = false only for loopback URLs", 0},
    {"llm.*", "connect_timeout_ms", "3000", "connection timeout", 0},
    {"llm.*", "first_token_timeout_ms", "30000", "no answer text within this → next provider", 0},
    {"llm.*", "timeout_ms", "120000", "whole-answer timeout", 0},
    {"llm.*", "max_tokens", "1024", "answer length cap sent to the model", 0},
    {"llm.*", "temperature", "0.1", "sampling temperature", 0},
    {"rerank", "base_url", "", "optional reranker: POST {base_url}/rerank (Jina/Cohere/llama.cpp/TEI); empty = fused order", 0},
    {"rerank", "model", "", "reranker model name", 0},
    {"rerank", "api_key", "", "bearer key; use ${ENV_VAR}", 1},
    {"rerank", "timeout_ms", "2000", "on timeout or error the fused order is kept", 0},
    {"rerank", "top_n", "20", "fused hits sent to the reranker", 0},
    {"webhooks", "unknown_sender", "refuse", "chat senders not linked with `zhiku user link`: refuse (a polite reply) or everyone (answer from documents readable by everyone)", 0},
    {"webhooks", "workers", "4", "threads answering chat-bot questions after the platform was acknowledged", 0},
    {"webhooks", "queue", "256", "questions waiting for a worker at most; beyond it the platform gets 503 and retries later", 0},
    {"webhooks", "portal_url", "", "portal root for source links in chat replies, e.g. https://kb.example.com (links go to .../#/doc/ID); empty = titles only", 0},
    {"webhook.generic", "secret", "", "enables POST /hooks/generic: HMAC-SHA256 key of X-Zhiku-Signature; use ${ENV_VAR}", 1},
    {"webhook.slack", "signing_secret", "", "enables /hooks/slack: the app's Signing Secret; use ${ENV_VAR}", 1},
    {"webhook.slack", "bot_token", "", "xoxb- bot token for chat.postMessage; use ${ENV_VAR}", 1},
    {"webhook.slack", "api_base", "https://slack.com/api", "Slack Web API root", 0},
    {"webhook.wecom", "token", "", "WeCom callback Token (signatures); use ${ENV_VAR}", 1},
    {"webhook.wecom", "encoding_aes_key", "", "WeCom callback EncodingAESKey (43 chars); use ${ENV_VAR}", 1},
    {"webhook.wecom", "corp_id", "", "WeCom CorpID (ReceiveId of the callback crypto)", 0},
    {"webhook.wecom", "agent_id", "", "WeCom self-built app AgentId", 0},
    {"webhook.wecom", "secret", "", "WeCom app Secret for gettoken; use ${ENV_VAR}", 1},
    {"webhook.wecom", "api_base", "https://qyapi.weixin.qq.com", "WeCom API root", 0},
    {"webhook.dingtalk", "robot_code", "", "robotCode for the OpenAPI fallback when a sessionWebhook expired; empty = app_key", 0},
    {"webhook.dingtalk", "app_key", "", "DingTalk robot AppKey", 0},
    {"webhook.dingtalk", "app_secret", "", "DingTalk robot AppSecret (signatures, access tokens); use ${ENV_VAR}", 1},
    {"webhook.dingtalk", "api_base", "https://api.dingtalk.com", "DingTalk OpenAPI root", 0},
    {"webhook.feishu", "app_id", "", "Feishu/Lark app id", 0},
    {"webhook.feishu", "app_secret", "", "Feishu/Lark app secret; use ${ENV_VAR}", 1},
    {"webhook.feishu", "verification_token", "", "Feishu/Lark event Verification Token; use ${ENV_VAR}", 1},
    {"webhook.feishu", "encrypt_key", "", "Feishu/Lark event Encrypt Key (empty = plain events); use ${ENV_VAR}", 1},
    {"webhook.feishu", "api_base", "https://open.feishu.cn", "Feishu API root (Lark: https://open.larksuite.com)", 0},
};

typedef struct {
    char *section, *key, *value;
    int line;
} entry;

struct zk_config {
    entry *entries;
    size_t n, cap;
    char **expanded;          /* cache of expanded values, freed with cfg */
    size_t nexp, capexp;
    int unknown;
    char *path;
};

/* 1 when section matches the table's section name; "llm.*" stands for
 * every [llm.NAME] with a non-empty NAME without further dots. */
static int section_matches(const char *pattern, const char *section)
{
    size_t pl = strlen(pattern);
    if (pl >= 2 && !strcmp(pattern + pl - 2, ".*")) {
        size_t prefix = pl - 1;   /* "llm." */
        return !strncmp(section, pattern, prefix) && section[prefix] != '\0' &&
               !strchr(section + prefix, '.');
    }
    return !strcmp(pattern, section);
}

static const known_key *find_known(const char *section, const char *key)
{
    for (size_t i = 0; i < ZK_ARRAY_LEN(known); i++)
        if (section_matches(known[i].section, section) && !strcmp(known[i].key, key)) return &known[i];
    return NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

static zk_rc add_entry(zk_config *c, const char *sec, const char *key, const char *val, int line)
{
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 32;
        entry *p = zk_realloc(c->entries, ncap * sizeof *p);
        if (!p) return ZK_NOMEM;
        c->entries = p;
        c->cap = ncap;
    }
    entry *e = &c->entries[c->n];
    e->section = zk_strdup(sec);
    e->key = zk_strdup(key);
    e->value = zk_strdup(val);
    e->line = line;
    if (!e->section || !e->key || !e->value) {
        zk_free(e->section); zk_free(e->key); zk_free(e->value);
        return ZK_NOMEM;
    }
    c->n++;
    return ZK_OK;
}

static zk_rc parse(zk_config *c, FILE *f, const char *path, char *err)
{
    char line[8192], section[128] = "";
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t l = strlen(line);
        if (l == sizeof line - 1 && line[l - 1] != '\n')
            return zk_fail(err, ZK_CONFIG, "%s:%d: line too long", path, lineno);
        char *s = trim(line);
        if (!*s || *s == ';' || *s == '#') continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e) return zk_fail(err, ZK_CONFIG, "%s:%d: missing ']'", path, lineno);
            *e = '\0';
            char *name = trim(s + 1);
            if (strlen(name) >= sizeof section || !*name)
                return zk_fail(err, ZK_CONFIG, "%s:%d: bad section name", path, lineno);
            strcpy(section, name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) return zk_fail(err, ZK_CONFIG, "%s:%d: expected key = value", path, lineno);
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        /* inline comment: " ; ..." or " # ..." after the value */
        for (char *p = val; *p; p++) {
            if ((*p == ';' || *p == '#') && p > val && isspace((unsigned char)p[-1])) {
                *p = '\0';
                val = trim(val);
                break;
            }
        }
        /* optional quotes */
        size_t vl = strlen(val);
        if (vl >= 2 && ((val[0] == '"' && val[vl - 1] == '"') || (val[0] == '\'' && val[vl - 1] == '\''))) {
            val[vl - 1] = '\0';
            val++;
        }
        if (!*section) return zk_fail(err, ZK_CONFIG, "%s:%d: key outside a [section]", path, lineno);
        if (!*key) return zk_fail(err, ZK_CONFIG, "%s:%d: empty key", path, lineno);
        if (!find_known(section, key)) {
            c->unknown++;
            ZK_LOG(ZK_LOG_WARN, "config %s:%d: unknown key '%s' in [%s]", path, lineno, key, section);
        }
        zk_rc rc = add_entry(c, section, key, val, lineno);
        if (rc != ZK_OK) return zk_fail(err, rc, "out of memory");
    }
    if (ferror(f)) return zk_fail(err, ZK_IO, "%s: read error", path);
    return ZK_OK;
}

zk_rc zk_config_load(const char *path, int required, zk_config **out, char *err)
{
    *out = NULL;
    zk_config *c = zk_calloc(1, sizeof *c);
    if (!c) return zk_fail(err, ZK_NOMEM, "out of memory");
    zk_rc rc = ZK_OK;
    if (path) {
        FILE *f = fopen(path, "r");
        if (!f) {
            if (required || errno != ENOENT) {
                rc = zk_fail(err, ZK_CONFIG, "cannot read config %s: %s", path, strerror(errno));
                zk_config_free(c);
                return rc;
            }
        } else {
            c->path = zk_strdup(path);
            rc = parse(c, f, path, err);
            fclose(f);
            if (rc != ZK_OK) {
                zk_config_free(c);
                return rc;
            }
        }
    }
    *out = c;
    return ZK_OK;
}

void zk_config_free(zk_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        zk_free(c->entries[i].section);
        zk_free(c->entries[i].key);
        zk_free(c->entries[i].value);
    }
    for (size_t i = 0; i < c->nexp; i++) zk_free(c->expanded[i]);
    zk_free(c->expanded);
    zk_free(c->entries);
    zk_free(c->path);
    zk_free(c);
}

/* ${NAME} → getenv("NAME") (empty when unset). */
static const char *expand(const zk_config *cc, const char *v)
{
    if (!strstr(v, "${")) return v;
    zk_config *c = (zk_config *)cc;   /* cache is logically const */
    zk_buf b;
    buf_init(&b, 1 << 16);
    const char *p = v;
    while (*p) {
        const char *s = strstr(p, "${");
        if (!s) { buf_puts(&b, p); break; }
        buf_append(&b, p, (size_t)(s - p));
        const char *e = strchr(s + 2, '}');
        if (!e) { buf_puts(&b, s); break; }
        char name[256];
        size_t nl = (size_t)(e - s - 2);
        if (nl < sizeof name) {
            memcpy(name, s + 2, nl);
            name[nl] = '\0';
            const char *ev = getenv(name);
            if (ev) buf_puts(&b, ev);
        }
        p = e + 1;
    }
    if (c->nexp == c->capexp) {
        size_t ncap = c->capexp ? c->capexp * 2 : 8;
        char **np = zk_realloc(c->expanded, ncap * sizeof *np);
        if (!np) { buf_free(&b); return ""; }
        c->expanded = np;
        c->capexp = ncap;
    }
    char *r = buf_steal(&b, NULL);
    c->expanded[c->nexp++] = r;
    return r;
}

static void env_name(const char *section, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "ZHIKU_%s_%s", section, key);
    for (char *p = out; *p; p++) {
        if (*p == '.' || *p == '-') *p = '_';
        else *p = (char)toupper((unsigned char)*p);
    }
}

const char *zk_config_get(const zk_config *c, const char *section, const char *key)
{
    char envname[256];
    env_name(section, key, envname, sizeof envname);
    const char *ev = getenv(envname);
    if (ev) return c ? expand(c, ev) : ev;
    if (c) {
        for (size_t i = c->n; i-- > 0;)   /* last definition wins */
            if (!strcmp(c->entries[i].section, section) && !strcmp(c->entries[i].key, key))
                return expand(c, c->entries[i].value);
    }
    const known_key *k = find_known(section, key);
    return k ? k->def : NULL;
}

long zk_config_int(const zk_config *c, const char *section, const char *key)
{
    const char *v = zk_config_get(c, section, key);
    return v ? strtol(v, NULL, 10) : 0;
}

double zk_config_double(const zk_config *c, const char *section, const char *key)
{
    const char *v = zk_config_get(c, section, key);
    return v ? strtod(v, NULL) : 0.0;
}

int zk_config_bool(const zk_config *c, const char *section, const char *key)
{
    const char *v = zk_config_get(c, section, key);
    if (!v) return 0;
    return !strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on");
}

int zk_config_unknown_count(const zk_config *c) { return c ? c->unknown : 0; }

void zk_config_dump(const zk_config *c, FILE *out)
{
    const char *cur = "";
    for (size_t i = 0; i < ZK_ARRAY_LEN(known); i++) {
        const known_key *k = &known[i];
        if (strcmp(cur, k->section)) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
            cur = k->section;
        }
        const char *v = zk_config_get(c, k->section, k->key);
        fprintf(out, "%s = %s    ; %s (default %s)\n", k->key,
                k->secret && v && *v ? "********" : (v ? v : ""), k->doc, k->def);
    }
}
