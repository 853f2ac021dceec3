/* answer.c — the ask pipeline (see answer.h): search → extractive answer →
 * citations mapped to documents and spans. */
#include "llm/answer.h"

#include <string.h>

void llm_answer_opts_init(llm_answer_opts *o, const zk_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->top_sources = (int)zk_config_int(cfg, "answer", "top_sources");
    llm_extractive_opts_default(&o->extractive);
    o->extractive.max_sentences = (int)zk_config_int(cfg, "answer", "max_sentences");
    o->extractive.max_chars = (size_t)zk_config_int(cfg, "answer", "max_chars");
    o->extractive.min_score = zk_config_double(cfg, "answer", "min_score");
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
    memset(r, 0, sizeof *r);
}

zk_rc llm_ask(ret_store *s, llm_embedder *emb, const char *question, const ret_search_opts *sopts,
              const llm_answer_opts *aopts, llm_result *out, char *err)
{
    zk_rc rc;
    ret_hit *hits = NULL;
    size_t nhits = 0;
    llm_source *src = NULL;
    llm_answer ans;
    memset(&ans, 0, sizeof ans);
    memset(out, 0, sizeof *out);

    ret_search_opts so = *sopts;
    if (aopts->top_sources > 0) so.top_k = aopts->top_sources;
    if ((rc = ret_search(s, emb, question, &so, &hits, &nhits, err)) != ZK_OK) return rc;

    src = zk_calloc(nhits ? nhits : 1, sizeof *src);
    if (!src) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < nhits; i++) {
        src[i].text = hits[i].text;
        src[i].len = strlen(hits[i].text);
        src[i].title = hits[i].title;
    }
    if ((rc = llm_extractive_answer(question, src, nhits, &aopts->extractive, &ans, err)) != ZK_OK) goto out;

    out->not_found = ans.not_found;
    out->answer = ans.answer;
    ans.answer = NULL;
    if (ans.ncited) {
        out->citations = zk_calloc(ans.ncited, sizeof *out->citations);
        if (!out->citations) { rc = zk_fail(err, ZK_NOMEM, "out of memory"); goto out; }
    }
    for (size_t k = 0; k < ans.ncited; k++) {
        int si = ans.cited[k];
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
        c->start = h->start + (int64_t)ans.span_start[k];
        c->end = h->start + (int64_t)ans.span_end[k];
        if (c->end > h->end) c->end = h->end;
        if (!c->ext_id || !c->source || !c->title || !c->heading || !c->quote) {
            rc = zk_fail(err, ZK_NOMEM, "out of memory");
            goto out;
        }
    }
out:
    if (rc != ZK_OK) llm_result_free(out);
    llm_answer_free(&ans);
    zk_free(src);
    ret_hits_free(hits, nhits);
    return rc;
}
