/* shapes.h — the JSON shapes every surface shares: the search HIT and the
 * answer with its CITATIONs, printed by `zhiku search|ask --json` and
 * returned by /api/v1/search and /api/v1/ask (docs/API.md). One place, so
 * the CLI and the HTTP API cannot drift apart. Pure; thread-safe. */
#ifndef SRV_SHAPES_H
#define SRV_SHAPES_H

#include <jansson.h>
#include "retrieval/search.h"
#include "llm/answer.h"

json_t *srv_hit_json(const ret_hit *h);
json_t *srv_citations_json(const llm_result *r);
/* {"answer","citations",["not_found"],"provider"} — callers add ids. */
json_t *srv_answer_json(const llm_result *r);

#endif
