/* shapes.c — the shared JSON shapes (see shapes.h). */
#include "server/shapes.h"

json_t *srv_hit_json(const ret_hit *h)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(h->ext_id));
    json_object_set_new(o, "doc", json_integer(h->doc_id));
    json_object_set_new(o, "source", json_string(h->source));
    json_object_set_new(o, "title", json_string(h->title));
    json_object_set_new(o, "heading", json_string(h->heading));
    json_object_set_new(o, "chunk", json_integer(h->chunk_id));
    if (h->page > 0) json_object_set_new(o, "page", json_integer(h->page));
    json_object_set_new(o, "snippet", json_string(h->snippet));
    json_object_set_new(o, "score", json_real(h->score));
    json_object_set_new(o, "bm25_rank", h->bm25_rank ? json_integer(h->bm25_rank) : json_null());
    json_object_set_new(o, "vector_rank", h->vector_rank ? json_integer(h->vector_rank) : json_null());
    return o;
}

json_t *srv_citations_json(const llm_result *res)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < res->ncitations; i++) {
        const llm_citation *c = &res->citations[i];
        json_t *j = json_object();
        json_object_set_new(j, "n", json_integer(c->n));
        json_object_set_new(j, "id", json_string(c->ext_id));
        json_object_set_new(j, "doc", json_integer(c->doc_id));
        json_object_set_new(j, "source", json_string(c->source));
        json_object_set_new(j, "title", json_string(c->title));
        json_object_set_new(j, "heading", json_string(c->heading));
        json_object_set_new(j, "chunk", json_integer(c->chunk_id));
        json_object_set_new(j, "start", json_integer(c->start));
        json_object_set_new(j, "end", json_integer(c->end));
        if (c->page > 0) json_object_set_new(j, "page", json_integer(c->page));
        json_object_set_new(j, "support", json_real(c->support));
        if (c->weak) json_object_set_new(j, "weak", json_true());
        json_array_append_new(arr, j);
    }
    return arr;
}

json_t *srv_answer_json(const llm_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "answer", json_string(r->answer ? r->answer : ""));
    json_object_set_new(o, "citations", srv_citations_json(r));
    if (r->not_found) json_object_set_new(o, "not_found", json_true());
    json_object_set_new(o, "provider", json_string(r->provider));
    return o;
}
