/* answer.c — the ask pipeline (see answer.h): standalone query → search →
 * optional rerank → not-found gate → LLM answer streamed through the
 * citation filter (or the extractive answer) → citations with support
 * scores → usage accounting. One call per question, from the CLI or a
 * server worker; cost is dominated by the model call. */
#include "llm/answer.h"

#include <stdio.h>
#include <string.h>

#include "retrieval/usage.h"

void llm_answer_opts_init(llm_answer_opts *o, const zk_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->top_sources = (int)zk_config_int(cfg, "answer", "top_sources");
    llm_extractive_opts_default(&o->extractive);
    o->extractive.max_sentences = (int)zk_config_int(cfg, "answer", "max_sentences");
    o->extractive.max_chars = (size_t)zk_config_int(cfg, "answer", "max_chars");
    o->extractive.min_score = zk_config_double(cfg, "answer", "min_score");
    o->min_bm25 = zk_config_double(cfg, "answer", "min_bm25");
    o->min_similarity = zk_config_double(cfg, "answer", "min_similarity");
    o->max_prompt_tokens = zk_config_int(cfg, "answer", "max_prompt_tokens");
    o->weak_support = zk_config_double(cfg, "answer", "weak_support");
    o->rewrite_followups = zk_config_bool(cfg, "llm", "rewrite_followups");
}

void llm_result_free(llm_result *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->ncitations; i++) {
        llm_citation *c = &r->citations[i];
        zk_free(c->ext_id);
        zk_free(c->source);
        zk_free(c->title);
        zk_free(c->heading);
        zk_free(c->quote);
    }
    zk_free(r->citations);
    zk_free(r->answer);
    zk_free(r->standalone);
    memset(r, 0, sizeof *r);
}

/* ---- helpers ---------------------------------------------------------------------- */

static int kb_local_only(ret_store *s, int64_t kb)
{
    sqlite3_stmt *st = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(ret_store_db(s), "SELECT local_only FROM kb WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, kb);
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0) != 0;
    }
    sqlite3_finalize(st);
    return v;
}

static void record_usage(ret_store *s, const ret_search_opts *so, const llm_chat_result *cr, llm_result *out)
{
    char err[ZK_ERRLEN];
    out->prompt_tokens += cr->prompt_tokens;
    out->completion_tokens += cr->completion_tokens;
    const char *who = so->caller && so->caller->name[0] ? so->caller->name : "admin";
    if (ret_usage_record(s, who, so->kb, cr->provider, cr->prompt_tokens, cr->completion_tokens, err) != ZK_OK)
        ZK_LOG(ZK_LOG_WARN, "usage accounting: %s", err);
}

/* The query used for retrieval: the question itself, or a follow-up
 * rewritten by the model, or the question plus the previous question's key
 * terms. */
static zk_rc standalone_query(ret_store *s, const char *question, const ret_search_opts *so,
                              const llm_answer_opts *o, int use_model, int local_only, llm_result *out, char *err)
{
    zk_rc rc;
    if (o->nhistory == 0 || !o->history) {
        out->standalone = zk_strdup(question);
        return out->standalone ? ZK_OK : zk_fail(err, ZK_NOMEM, "out of memory");
    }
    if (use_model && o->rewrite_followups) {
        char *sys = NULL, *user = NULL, cerr[ZK_ERRLEN];
        llm_chat_result cr;
        memset(&cr, 0, sizeof cr);
        if ((rc = llm_prompt_rewrite(o->history, o->nhistory, question, &sys, &user, err)) != ZK_OK) return rc;
        llm_message m[2] = {{"system", sys}, {"user", user}};
        rc = llm_chat(o->providers, m, 2, local_only, NULL, NULL, &cr, cerr);
        zk_free(sys);
        zk_free(user);
        if (rc == ZK_OK) {
            record_usage(s, so, &cr, out);
            /* first non-empty line, without quotes or a "Standalone question:" echo */
            char *t = cr.text;
            while (*t == ' ' || *t == '\n' || *t == '\r' || *t == '"' || *t == '\'') t++;
            size_t l = strcspn(t, "\r\n");
            while (l > 0 && (t[l - 1] == ' ' || t[l - 1] == '"' || t[l - 1] == '\'')) l--;
            if (l > 0 && l < 2000) out->standalone = zk_strndup(t, l);
            llm_chat_result_free(&cr);
            if (out->standalone) return ZK_OK;
        } else {
            ZK_LOG(ZK_LOG_WARN, "follow-up rewrite failed (%s); using key terms instead", cerr);
        }
    }
    return llm_followup_fallback(o->history, o->nhistory, question, &out->standalone, err);
}

/* Reorder hits[0..n) by the reranker; on failure keep the fused order. */
static void rerank_hits(const llm_reranker *r, const char *query, ret_hit *hits, size_t n)
{
    char err[ZK_ERRLEN];
    const char **docs = zk_calloc(n, sizeof *docs);
    size_t *order = zk_calloc(n, sizeof *order), got = 0;
    ret_hit *tmp = zk_calloc(n, sizeof *tmp);
    if (!docs || !order || !tmp) goto out;
    for (size_t i = 0; i < n; i++) docs[i] = hits[i].text ? hits[i].text : "";
    if (llm_rerank(r, query, docs, n, order, &got, err) != ZK_OK || got != n) {
        ZK_LOG(ZK_LOG_WARN, "rerank failed (%s); keeping the fused order", err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) tmp[i] = hits[order[i]];
    memcpy(hits, tmp, n * sizeof *hits);
out:
    zk_free(docs);
    zk_free(order);
    zk_free(tmp);
}

static int gate_passes(const ret_hit *hits, size_t n, const llm_answer_opts *o)
{
    for (size_t i = 0; i < n; i++)
        if (hits[i].bm25 >= o->min_bm25 || hits[i].vector_sim >= o->min_similarity) return 1;
    return 0;
}

static zk_rc set_answer(llm_result *out, const char *text, const llm_answer_opts *o, char *err)
{
    out->answer = zk_strdup(text);
    if (!out->answer) return zk_fail(err, ZK_NOMEM, "out of memory");
    if (o->on_text && *text && o->on_text(o->ctx, text, strlen(text)))
        return zk_fail(err, ZK_ERR, "ask: cancelled by the caller");
    return ZK_OK;
}

/* Citation k+1 → hits[src[k]]; span from the extractive answerer when
 * given, else the whole chunk. Support from the answer's sentences. */
static zk_rc build_citations(llm_result *out, const ret_hit *hits, size_t nhits, const int *src, size_t ncited,
                             const size_t *span_start, const size_t *span_end, double weak, char *err)
{
    if (!ncited) return ZK_OK;
    const char **chunks = zk_calloc(ncited, sizeof *chunks);
    double *support = zk_calloc(ncited, sizeof *support);
    out->citations = zk_calloc(ncited, sizeof *out->citations);
    zk_rc rc = ZK_OK;
    if (!chunks || !support || !out->citations) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    for (size_t k = 0; k < ncited; k++)
        chunks[k] = src[k] >= 0 && (size_t)src[k] < nhits ? hits[src[k]].text : NULL;
    if ((rc = llm_cite_support(out->answer, strlen(out->answer), chunks, ncited, support, err)) != ZK_OK) goto out;
    for (size_t k = 0; k < ncited; k++) {
        int si = src[k];
        if (si < 0 || (size_t)si >= nhits) continue;   /* never cite what was not retrieved */
        const ret_hit *h = &hits[si];
        llm_citation *c = &out->citations[out->ncitations++];
        c->n = (int)k + 1;
        c->chunk_id = h->chunk_id;
        c->doc_id = h->doc_id;
        c->ext_id = zk_strdup(h->ext_id);
        c->source = zk_strdup(h->source);
        c->title = zk_strdup(h->title);
        c->heading = zk_strdup(h->heading);
        c->quote = zk_strdup(h->text);
        c->page = h->page;
        c->start = h->start;
        c->end = h->end;
        if (span_start) {
            c->start = h->start + (int64_t)span_start[k];
            c->end = h->start + (int64_t)span_end[k];
            if (c->end > h->end) c->end = h->end;
        }
        c->support = support[k];
        c->weak = support[k] < weak;
        if (!c->ext_id || !c->source || !c->title || !c->heading || !c->quote) {
            rc = zk_fail(err, ZK_NOMEM, "out of memory");
            goto out;
        }
    }
out:
    zk_free(chunks);
    zk_free(support);
    return rc;
}

static zk_rc answer_extractive(const char *question, const ret_hit *hits, size_t nhits, const llm_answer_opts *o,
                               llm_result *out, char *err)
{
    zk_rc rc;
    llm_answer ans;
    memset(&ans, 0, sizeof ans);
    llm_source *src = zk_calloc(nhits ? nhits : 1, sizeof *src);
    if (!src) return zk_fail(err, ZK_NOMEM, "out of memory");
    for (size_t i = 0; i < nhits; i++) {
        src[i].text = hits[i].text;
        src[i].len = strlen(hits[i].text);
        src[i].title = hits[i].title;
    }
    snprintf(out->provider, sizeof out->provider, "extractive");
    if ((rc = llm_extractive_answer(question, src, nhits, &o->extractive, &ans, err)) != ZK_OK) goto out;
    out->not_found = ans.not_found;
    if ((rc = set_answer(out, ans.answer, o, err)) != ZK_OK) goto out;
    rc = build_citations(out, hits, nhits, ans.cited, ans.ncited, ans.span_start, ans.span_end, o->weak_support, err);
out:
    llm_answer_free(&ans);
    zk_free(src);
    return rc;
}

typedef struct {
    llm_stream_filter *f;
} model_sink;

static int on_model_text(void *ctx, const char *text, size_t len)
{
    return llm_stream_filter_feed(((model_sink *)ctx)->f, text, len);
}

/* 1 = answered (or failed: rc set); 0 = every provider failed before any
 * text reached the caller, fall back to the extractive answer. */
static int answer_model(ret_store *s, const char *question, const ret_search_opts *so, const ret_hit *hits,
                        size_t nhits, const llm_answer_opts *o, int local_only, llm_result *out, zk_rc *rc,
                        char *err)
{
    llm_prompt_source *ps = zk_calloc(nhits ? nhits : 1, sizeof *ps);
    char *sys = NULL, *user = NULL, cerr[ZK_ERRLEN];
    size_t nused = 0;
    llm_stream_filter *f = NULL;
    llm_chat_result cr;
    memset(&cr, 0, sizeof cr);
    int done = 1;
    if (!ps) { *rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < nhits; i++) ps[i] = (llm_prompt_source){hits[i].title, hits[i].heading, hits[i].text};
    if ((*rc = llm_prompt_answer(question, ps, nhits, o->max_prompt_tokens, &sys, &user, &nused, err)) != ZK_OK) goto out;
    if ((*rc = llm_stream_filter_new((int)nused, o->on_text, o->ctx, &f, err)) != ZK_OK) goto out;
    llm_message m[2] = {{"system", sys}, {"user", user}};
    model_sink sink = {f};
    *rc = llm_chat(o->providers, m, 2, local_only, on_model_text, &sink, &cr, cerr);
    size_t streamed = 0;
    llm_stream_filter_text(f, &streamed);
    if (*rc != ZK_OK) {
        if (streamed == 0 && !strstr(cerr, "cancelled")) {
            ZK_LOG(ZK_LOG_WARN, "%s; answering extractively", cerr);
            *rc = ZK_OK;
            done = 0;
        } else {
            snprintf(err, ZK_ERRLEN, "%s", cerr);
        }
        goto out;
    }
    record_usage(s, so, &cr, out);
    if (llm_stream_filter_finish(f)) { *rc = zk_fail(err, ZK_ERR, "ask: cancelled by the caller"); goto out; }
    snprintf(out->provider, sizeof out->provider, "%s", cr.provider);
    size_t len;
    const char *text = llm_stream_filter_text(f, &len);
    if (!(out->answer = zk_strndup(text, len))) { *rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    if (llm_is_not_found_reply(out->answer)) {
        out->not_found = 1;
        goto out;
    }
    const int *cited;
    size_t ncited = llm_stream_filter_cited(f, &cited);
    *rc = build_citations(out, hits, nused, cited, ncited, NULL, NULL, o->weak_support, err);
out:
    llm_chat_result_free(&cr);
    llm_stream_filter_free(f);
    zk_free(sys);
    zk_free(user);
    zk_free(ps);
    return done;
}

/* ---- the pipeline ---------------------------------------------------------------- */

zk_rc llm_ask(ret_store *s, llm_embedder *emb, const char *question, const ret_search_opts *sopts,
              const llm_answer_opts *aopts, llm_result *out, char *err)
{
    zk_rc rc;
    ret_hit *hits = NULL;
    size_t nhits = 0;
    memset(out, 0, sizeof *out);
    snprintf(out->provider, sizeof out->provider, "extractive");

    int local_only = aopts->local_only || kb_local_only(s, sopts->kb);
    int use_model = llm_providers_count(aopts->providers) > 0 &&
                    (!local_only || llm_providers_have_local(aopts->providers));
    if ((rc = standalone_query(s, question, sopts, aopts, use_model, local_only, out, err)) != ZK_OK) goto out;

    ret_search_opts so = *sopts;
    int top = aopts->top_sources > 0 ? aopts->top_sources : so.top_k;
    so.top_k = top;
    if (aopts->reranker && llm_reranker_candidates(aopts->reranker) > top)
        so.top_k = llm_reranker_candidates(aopts->reranker);
    if ((rc = ret_search(s, emb, out->standalone, &so, &hits, &nhits, err)) != ZK_OK) goto out;
    if (aopts->reranker && nhits > 1) rerank_hits(aopts->reranker, out->standalone, hits, nhits);
    size_t nuse = nhits < (size_t)top ? nhits : (size_t)top;

    if (use_model) {
        if (!gate_passes(hits, nuse, aopts)) {
            out->not_found = 1;
            rc = set_answer(out, llm_is_chinese(question) ? LLM_NOT_FOUND_ZH : LLM_NOT_FOUND_EN, aopts, err);
            goto out;
        }
        if (answer_model(s, question, sopts, hits, nuse, aopts, local_only, out, &rc, err)) goto out;
    }
    rc = answer_extractive(question, hits, nuse, aopts, out, err);
out:
    if (rc != ZK_OK) llm_result_free(out);
    ret_hits_free(hits, nhits);
    return rc;
}
