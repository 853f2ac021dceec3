#!/bin/bash
# server_api.sh — every /api/v1 route of `zhiku serve` over real HTTP on a
# loopback port: health, unknown routes and methods, tokens (missing, bad,
# revoked mid-run, scopes), search/ask/documents/passages/files under ACLs
# (a forbidden document is a 404 like a missing one), ACL changes applying
# to the next request, bad JSON and oversized bodies, multipart and JSON
# uploads, sessions (cookie flags, CSRF, logout), conversations and
# feedback ownership, trusted-proxy headers, rate limits, /metrics, the
# admin routes, and a CLI ingest becoming searchable while the server runs.
# Run: tests/run.sh build server_api
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/lib_server.sh"

D=$PWD/data
Z=(--data-dir "$D")
mkdir -p docs
printf '# Salaries\n\nThe zebrafish salary band for engineers is confidential.\n' > docs/salary.md
printf 'The cafeteria serves okapi-shaped cookies on Fridays.\n' > docs/cafe.txt
printf 'The narwhal merger plan is known only to administrators.\n' > docs/merger.txt

note "prepare the data directory with the CLI"
printf 'alicepw-123\n' | zk "${Z[@]}" user add alice --password-stdin
zk "${Z[@]}" user add bob
printf 'rootpw-123\n' | zk "${Z[@]}" user add root --admin --password-stdin
zk "${Z[@]}" group add hr
zk "${Z[@]}" group members hr add alice
zk "${Z[@]}" ingest --acl everyone docs/cafe.txt
zk "${Z[@]}" ingest --acl group:hr docs/salary.md
zk "${Z[@]}" ingest docs/merger.txt          # default_read empty: administrators only
SAL=$PWD/docs/salary.md
MER=$PWD/docs/merger.txt
tok() { zk "${Z[@]}" token create --user "$2" --scopes "$3"; printf -v "$1" '%s' "$OUT"; }
tok T_ALICE alice search,ask,ingest
tok T_BOB bob search,ask,ingest
tok T_ASEARCH alice search
tok T_ROOT root admin
tok T_DOOMED bob search
DOOMED_ID=$(printf '%s' "$ERR" | grep -oE 'token [0-9]+' | grep -oE '[0-9]+' || true)
[ -n "$DOOMED_ID" ] || fail "no token id in: $ERR"
A=(-H "$(bearer "$T_ALICE")")
B=(-H "$(bearer "$T_BOB")")
R=(-H "$(bearer "$T_ROOT")")
J=(-H 'Content-Type: application/json')

srv_start "$D" ZHIKU_SERVER_MAX_BODY_KB=4

note "health and routing"
expect 200 GET /healthz
expect 200 GET /readyz
expect 404 GET /api/v1/nosuchroute "${A[@]}"
assert_eq "$(err_code)" not_found "unknown route: JSON error code"
assert_match "$(hdr Content-Type)" '^application/json' "unknown route answers JSON"
expect 405 DELETE /api/v1/search "${A[@]}"
assert_eq "$(err_code)" method_not_allowed "wrong method: JSON error code"

note "authentication"
expect 401 POST /api/v1/search "${J[@]}" -d '{"query":"okapi"}'
assert_eq "$(err_code)" unauthorized "no credentials → unauthorized"
expect 401 POST /api/v1/search "${J[@]}" -H 'Authorization: Bearer zk_notarealtoken' -d '{"query":"okapi"}'
expect 401 GET /api/v1/me -H 'Authorization: Bearer '
expect 200 POST /api/v1/search -H "$(bearer "$T_DOOMED")" "${J[@]}" -d '{"query":"okapi"}'
zk "${Z[@]}" token revoke "$DOOMED_ID"
expect 401 POST /api/v1/search -H "$(bearer "$T_DOOMED")" "${J[@]}" -d '{"query":"okapi"}'
ok "a token revoked with the CLI is refused on the very next request"

note "scopes"
expect 403 POST /api/v1/ask -H "$(bearer "$T_ASEARCH")" "${J[@]}" -d '{"question":"okapi?"}'
assert_eq "$(err_code)" forbidden "search-only token on /ask"
expect 403 POST /api/v1/documents -H "$(bearer "$T_ASEARCH")" "${J[@]}" -d '{"id":"x","text":"y"}'
expect 403 GET /api/v1/admin/users "${A[@]}"
expect 403 PUT "/api/v1/documents/cafe/acl" "${A[@]}" "${J[@]}" -d '{"read":["everyone"]}'
expect 200 GET /api/v1/me "${A[@]}"
assert_contains "$BODY" '"user":"alice"' "/me names the token's user"
assert_contains "$BODY" '"hr"' "/me lists alice's group"

note "search"
expect 200 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":"zebrafish salary"}'
assert_eq "$(json_first_str "$BODY" id)" "$SAL" "alice finds the hr document"
for f in id doc source title heading chunk snippet score bm25_rank vector_rank; do
    assert_contains "$BODY" "\"$f\":" "HIT has $f"
done
SAL_DOC=$(json_num "$BODY" doc | head -1)
SAL_CHUNK=$(json_num "$BODY" chunk | head -1)
expect 200 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":"okapi cookies","top_k":1,"mode":"bm25"}'
assert_eq "$(json_count "$BODY" snippet)" 1 "top_k 1 gives one hit"
expect 400 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":"x","mode":"psychic"}'
expect 400 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":"x","top_k":0}'
expect 404 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":"x","kb":"nosuchkb"}'

note "ACL: bob never sees the hr document"
for mode in bm25 vector hybrid; do
    expect 200 POST /api/v1/search "${B[@]}" "${J[@]}" -d "{\"query\":\"zebrafish salary okapi\",\"mode\":\"$mode\"}"
    assert_not_contains "$BODY" "salary.md" "bob ($mode): no hr hit"
    assert_not_contains "$BODY" "zebrafish" "bob ($mode): no hr snippet"
done
expect 200 POST /api/v1/ask "${B[@]}" "${J[@]}" -d '{"question":"What is the zebrafish salary band?"}'
assert_not_contains "$BODY" "confidential" "bob's answer quotes nothing from hr"
assert_not_contains "$BODY" "salary.md" "bob's citations name nothing from hr"
expect 200 GET /api/v1/documents "${B[@]}"
assert_not_contains "$BODY" "salary.md" "bob's listing has no hr document"
assert_contains "$BODY" "cafe.txt" "bob's listing has the public document"
assert_eq "$(json_num "$BODY" total)" 1 "bob's total counts only what he may read"
expect 404 GET "/api/v1/documents/$SAL_DOC" "${B[@]}"
FORBIDDEN_BODY=$BODY
expect 404 GET "/api/v1/documents/999999" "${B[@]}"
assert_eq "$(err_code)" "not_found" "missing document: not_found"
assert_eq "$(printf '%s' "$FORBIDDEN_BODY" | sed 's/[0-9]\{1,\}//g')" "$(printf '%s' "$BODY" | sed 's/[0-9]\{1,\}//g')" \
    "a forbidden document answers exactly like a missing one"
expect 404 GET "/api/v1/documents/$SAL_DOC/chunks/$SAL_CHUNK" "${B[@]}"
expect 404 GET "/api/v1/documents/$SAL_DOC/file" "${B[@]}"
expect 404 DELETE "/api/v1/documents/$SAL_DOC" "${B[@]}"
note "alice does"
expect 200 POST /api/v1/ask "${A[@]}" "${J[@]}" -d '{"question":"What is the zebrafish salary band?"}'
assert_contains "$BODY" "confidential" "alice's answer comes from salary.md"
assert_contains "$BODY" '"n":1' "alice's answer is cited"
assert_contains "$BODY" '"message_id":' "ask answers a message id"
expect 200 GET /api/v1/documents "${A[@]}"
assert_contains "$BODY" "salary.md" "alice's listing has the hr document"
expect 200 GET "/api/v1/documents/$SAL_DOC" "${A[@]}"
assert_contains "$BODY" '"chunks":[{' "document get lists chunks"
expect 200 GET "/api/v1/documents/$SAL_DOC/chunks/$SAL_CHUNK" "${A[@]}"
assert_contains "$BODY" "zebrafish salary band" "passage text"
expect 404 GET "/api/v1/documents/$SAL_DOC/chunks/999999" "${A[@]}"
expect 200 GET "/api/v1/documents/$SAL_DOC/file" "${A[@]}"
assert_eq "$BODY" "$(cat "$SAL")" "original file of a path-ingested document"

note "PUT /documents/{doc}/acl applies to the next request"
expect 200 POST /api/v1/search "${B[@]}" "${J[@]}" -d '{"query":"narwhal merger"}'
assert_not_contains "$BODY" "merger.txt" "bob cannot see the admin-only document"
expect 200 POST /api/v1/search "${R[@]}" "${J[@]}" -d '{"query":"narwhal merger"}'
assert_eq "$(json_first_str "$BODY" id)" "$MER" "the administrator sees the admin-only document"
MER_DOC=$(json_num "$BODY" doc | head -1)
# TODO(server): an external id holding '/' (every path-ingested document)
# cannot be addressed even %2F-encoded: the URL is decoded before routing.
# Numeric ids work; see the report.
expect 200 PUT "/api/v1/documents/$MER_DOC/acl" "${R[@]}" "${J[@]}" -d '{"read":["user:bob"]}'
assert_contains "$BODY" '"user:bob"' "acl answer lists the grant"
expect 200 POST /api/v1/search "${B[@]}" "${J[@]}" -d '{"query":"narwhal merger"}'
assert_contains "$BODY" "merger.txt" "bob sees it on the very next request"
expect 400 PUT "/api/v1/documents/$SAL_DOC/acl" "${R[@]}" "${J[@]}" -d '{"read":"everyone"}'
expect 400 PUT "/api/v1/documents/$SAL_DOC/acl" "${R[@]}" "${J[@]}" -d '{"read":[7]}'
http PUT "/api/v1/documents/$SAL_DOC/acl" "${R[@]}" "${J[@]}" -d '{"read":["group:nosuch"]}'
[ "$STATUS" = 400 ] || [ "$STATUS" = 404 ] || fail "unknown group in an ACL: HTTP $STATUS"
ok "unknown group in an ACL refused ($STATUS)"

note "bad bodies"
expect 400 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":'
assert_eq "$(err_code)" bad_request "broken JSON → bad_request"
expect 400 POST /api/v1/search "${A[@]}" "${J[@]}" -d '["query"]'
expect 400 POST /api/v1/search "${A[@]}" "${J[@]}" -d '"query"'
expect 400 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{}'
expect 400 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":42}'
expect 400 POST /api/v1/ask "${A[@]}" "${J[@]}" -d '{"question":""}'
expect 400 POST /api/v1/search "${A[@]}" "${J[@]}" -d $'{"query":"a\xff\xfeb"}'
head -c 6000 /dev/zero | tr '\0' 'a' | sed 's/^/{"query":"/; s/$/"}/' > big.json
expect 413 POST /api/v1/search "${A[@]}" "${J[@]}" --data-binary @big.json
assert_eq "$(err_code)" too_large "oversized body → too_large"
expect 200 GET /healthz

note "uploads"
printf '# Benefits\n\nThe axolotl dental plan covers two cleanings a year.\n' > benefits.md
expect 201 POST /api/v1/documents "${A[@]}" -F file=@benefits.md -F acl=group:hr -F tags=dept=hr
assert_contains "$BODY" '"status":"indexed"' "multipart upload indexed"
UP_DOC=$(json_num "$BODY" doc | head -1)
expect 200 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":"axolotl dental"}'
assert_eq "$(json_first_str "$BODY" id)" "benefits.md" "the upload is searchable"
expect 200 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":"axolotl dental","filter":{"dept":"hr"}}'
assert_eq "$(json_first_str "$BODY" id)" "benefits.md" "tags from the upload filter"
expect 200 POST /api/v1/search "${B[@]}" "${J[@]}" -d '{"query":"axolotl dental"}'
assert_not_contains "$BODY" "benefits.md" "acl=group:hr applied to the upload"
STATUS=$(curl -s -o got.md -w '%{http_code}' "${A[@]}" "$BASE/api/v1/documents/$UP_DOC/file")
[ "$STATUS" = 200 ] && cmp -s got.md benefits.md || fail "downloaded file differs (HTTP $STATUS)"
ok "GET /documents/{doc}/file returns the original bytes"
expect 200 GET "/api/v1/documents/$UP_DOC/file" "${A[@]}"
assert_eq "$(hdr X-Content-Type-Options)" nosniff "file download: nosniff"
printf 'PK\003\004 this is no zip at all' > broken.docx
expect 422 POST /api/v1/documents "${A[@]}" -F file=@broken.docx
assert_eq "$(err_code)" unprocessable "broken docx → unprocessable"
assert_match "$(printf '%s' "$BODY" | grep -o '"message":"[^"]*"')" '"message":"[^"]{5,}"' "422 carries a reason"
printf '\177ELF\002\001\001\000\000\000' > tool.exe
http POST /api/v1/documents "${A[@]}" -F file=@tool.exe
[ "$STATUS" = 422 ] || [ "$STATUS" = 415 ] || fail "unsupported upload: HTTP $STATUS: $BODY"
ok "unsupported file refused ($STATUS)"
http POST /api/v1/documents "${A[@]}" -F "file=@benefits.md;filename=../../x.md"
case "$STATUS:$BODY" in 400:*|201:*'"id":"x.md"'*) ok "a path in the upload file name is dropped or refused ($STATUS)" ;;
    *) fail "upload named ../../x.md: HTTP $STATUS $BODY" ;; esac
[ "$STATUS" = 201 ] && expect 200 DELETE /api/v1/documents/x.md "${R[@]}"   # default_read: only admins read it
expect 201 POST /api/v1/documents "${A[@]}" "${J[@]}" -d '{"id":"kb-note","title":"Note","text":"The capybara parking rules changed in May.","acl":["everyone"]}'
expect 200 POST /api/v1/search "${B[@]}" "${J[@]}" -d '{"query":"capybara parking"}'
assert_eq "$(json_first_str "$BODY" id)" "kb-note" "JSON upload searchable by everyone"
expect 400 POST /api/v1/documents "${A[@]}" "${J[@]}" -d '{"title":"no id"}'
expect 200 DELETE /api/v1/documents/kb-note "${A[@]}"
expect 404 GET /api/v1/documents/kb-note "${A[@]}"
expect 200 POST /api/v1/search "${B[@]}" "${J[@]}" -d '{"query":"capybara parking"}'
assert_not_contains "$BODY" "kb-note" "deleted document no longer found"

note "sessions"
expect 401 POST /api/v1/login "${J[@]}" -d '{"username":"root","password":"wrong"}'
expect 400 POST /api/v1/login "${J[@]}" -d '{"username":"root"}'
expect 200 POST /api/v1/login "${J[@]}" -d '{"username":"root","password":"rootpw-123"}'
SETC=$(hdr Set-Cookie)
assert_contains "$SETC" "zk_session=" "login sets the session cookie"
assert_contains "$SETC" "HttpOnly" "cookie is HttpOnly"
assert_contains "$SETC" "SameSite=Strict" "cookie is SameSite=Strict"
assert_not_contains "$SETC" "Secure" "no Secure flag on plain HTTP"
CSRF=$(json_first_str "$BODY" csrf_token)
[ -n "$CSRF" ] || fail "login answered no csrf_token: $BODY"
COOKIE=$(printf '%s' "$SETC" | sed 's/;.*//')
C=(-H "Cookie: $COOKIE")
expect 200 GET /api/v1/me "${C[@]}"
assert_contains "$BODY" '"is_admin":true' "session /me: admin"
assert_contains "$BODY" "\"csrf_token\":\"$CSRF\"" "session /me repeats the CSRF token"
expect 403 POST /api/v1/search "${C[@]}" "${J[@]}" -d '{"query":"okapi"}'
assert_eq "$(err_code)" forbidden "session POST without X-CSRF-Token"
expect 403 POST /api/v1/search "${C[@]}" "${J[@]}" -H "X-CSRF-Token: x$CSRF" -d '{"query":"okapi"}'
expect 200 POST /api/v1/search "${C[@]}" "${J[@]}" -H "X-CSRF-Token: $CSRF" -d '{"query":"okapi"}'
expect 200 POST /api/v1/logout "${C[@]}" -H "X-CSRF-Token: $CSRF"
expect 401 GET /api/v1/me "${C[@]}"
ok "logout invalidates the cookie server-side"
printf 'alicepw-123\n' >/dev/null
expect 200 POST /api/v1/login "${J[@]}" -d '{"username":"alice","password":"alicepw-123"}'
assert_contains "$BODY" '"is_admin":false' "alice logs in, not admin"

note "conversations and feedback"
expect 201 POST /api/v1/conversations "${A[@]}" "${J[@]}" -d '{"title":"Pay"}'
CONV=$(json_num "$BODY" id)
expect 200 POST /api/v1/ask "${A[@]}" "${J[@]}" -d "{\"question\":\"What is the zebrafish salary band?\",\"conversation_id\":$CONV}"
assert_contains "$BODY" "\"conversation_id\":$CONV" "ask appended to the conversation"
MSG=$(json_num "$BODY" message_id)
expect 200 GET /api/v1/conversations "${A[@]}"
assert_contains "$BODY" "\"id\":$CONV" "alice lists her conversation"
expect 200 GET "/api/v1/conversations/$CONV" "${A[@]}"
assert_contains "$BODY" '"question":"What is the zebrafish salary band?"' "the conversation holds the question"
expect 404 GET "/api/v1/conversations/$CONV" "${B[@]}"
expect 200 GET /api/v1/conversations "${B[@]}"
assert_not_contains "$BODY" "\"id\":$CONV," "bob does not list alice's conversation"
expect 404 POST /api/v1/ask "${B[@]}" "${J[@]}" -d "{\"question\":\"okapi?\",\"conversation_id\":$CONV}"
expect 200 POST /api/v1/feedback "${A[@]}" "${J[@]}" -d "{\"message_id\":$MSG,\"rating\":-1,\"comment\":\"too short\"}"
expect 404 POST /api/v1/feedback "${B[@]}" "${J[@]}" -d "{\"message_id\":$MSG,\"rating\":1}"
expect 400 POST /api/v1/feedback "${A[@]}" "${J[@]}" -d '{"message_id":"x","rating":1}'

note "admin routes"
expect_created() {   # METHOD PATH ARGS... — 201
    http "$@"
    [ "$STATUS" = 201 ] || fail "$1 $2: HTTP $STATUS $BODY"
    ok "$1 $2 → 201"
}
expect 200 GET /api/v1/admin/users "${R[@]}"
assert_contains "$BODY" '"alice"' "users listed"
expect_created POST /api/v1/admin/users "${R[@]}" "${J[@]}" -d '{"name":"dave","password":"davepw-123"}'
expect 200 GET /api/v1/admin/users "${R[@]}"
assert_contains "$BODY" '"dave"' "dave was added"
expect 409 POST /api/v1/admin/users "${R[@]}" "${J[@]}" -d '{"name":"dave"}'
expect_created POST /api/v1/admin/groups "${R[@]}" "${J[@]}" -d '{"name":"finance"}'
expect 200 POST /api/v1/admin/groups/finance/members "${R[@]}" "${J[@]}" -d '{"add":["dave","user:bob"]}'
expect 200 GET /api/v1/admin/groups "${R[@]}"
assert_contains "$BODY" '"finance"' "groups listed"
expect 404 POST /api/v1/admin/groups/nosuch/members "${R[@]}" "${J[@]}" -d '{"add":["dave"]}'
expect 201 POST /api/v1/admin/tokens "${R[@]}" "${J[@]}" -d '{"user":"dave","scopes":["search"]}'
T_DAVE=$(json_first_str "$BODY" token)
DAVE_TID=$(json_num "$BODY" id)
assert_match "$T_DAVE" '^zk_' "a new token is shown once"
expect 200 GET /api/v1/me -H "$(bearer "$T_DAVE")"
assert_contains "$BODY" '"finance"' "dave is in finance"
expect 200 GET /api/v1/admin/tokens "${R[@]}"
assert_not_contains "$BODY" "$T_DAVE" "the token list never shows a token"
expect 400 POST /api/v1/admin/tokens "${R[@]}" "${J[@]}" -d '{"user":"dave","scopes":["root"]}'
expect 200 DELETE "/api/v1/admin/tokens/$DAVE_TID" "${R[@]}"
expect 401 GET /api/v1/me -H "$(bearer "$T_DAVE")"
expect 200 DELETE /api/v1/admin/users/dave "${R[@]}"
expect 404 DELETE /api/v1/admin/users/dave "${R[@]}"
expect 200 DELETE /api/v1/admin/groups/finance "${R[@]}"
expect_created POST /api/v1/admin/kbs "${R[@]}" "${J[@]}" -d '{"name":"legal","local_only":true}'
expect 200 GET /api/v1/admin/kbs "${R[@]}"
assert_contains "$BODY" '"legal"' "kbs listed"
expect 200 POST /api/v1/search "${R[@]}" "${J[@]}" -d '{"query":"okapi","kb":"legal"}'
assert_eq "$BODY" '{"hits":[]}' "the new kb is empty"
expect 200 DELETE /api/v1/admin/kbs/legal "${R[@]}"
expect 200 GET /api/v1/admin/audit "${R[@]}"
assert_contains "$BODY" '"principal":"user:bob"' "bob's searches are audited"
assert_contains "$BODY" '"action":"ask"' "answers are audited"
expect 200 GET /api/v1/admin/review "${R[@]}"
assert_contains "$BODY" "zebrafish" "the thumbs-down answer is up for review"
expect 200 GET '/api/v1/admin/review?format=jsonl' "${R[@]}"
assert_contains "$(hdr Content-Type)" "ndjson" "review export is JSONL"

note "metrics"
expect 200 GET /metrics
assert_contains "$BODY" "zhiku_http_requests_total" "request counter"
assert_contains "$BODY" 'route="search"' "route label"
assert_match "$BODY" 'zhiku_http_requests_total\{route="search",outcome="ok"\} [1-9]' "search requests counted"

note "a CLI ingest while the server runs is searchable within 1 s"
printf 'The pangolin parade starts at noon in the courtyard.\n' > docs/pangolin.txt
zk "${Z[@]}" ingest --acl everyone docs/pangolin.txt
found=0
t0=$(date +%s%N)
for _ in $(seq 10); do
    http POST /api/v1/search "${B[@]}" "${J[@]}" -d '{"query":"pangolin parade","mode":"vector"}'
    case "$BODY" in *pangolin.txt*) found=1; break ;; esac
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$found" = 1 ] || fail "CLI-ingested document not found through HTTP (vector mode) after ${ms} ms"
ok "CLI ingest visible through HTTP vector search after ${ms} ms"
http POST /api/v1/search "${B[@]}" "${J[@]}" -d '{"query":"pangolin parade","mode":"bm25"}'
assert_contains "$BODY" "pangolin.txt" "and through BM25"

srv_stop

note "trusted proxy headers and rate limits"
P=(-H 'X-Forwarded-User: carol' -H 'X-Forwarded-Groups: hr')
srv_start "$D"
expect 401 POST /api/v1/search "${P[@]}" "${J[@]}" -d '{"query":"zebrafish salary"}'
ok "without trusted_proxies the proxy header is ignored"
srv_stop
srv_start "$D" ZHIKU_SERVER_TRUSTED_PROXIES=127.0.0.1 ZHIKU_SERVER_RATE_LIMIT_PER_MINUTE=5
expect 200 POST /api/v1/search "${P[@]}" "${J[@]}" -d '{"query":"zebrafish salary"}'
assert_eq "$(json_first_str "$BODY" id)" "$SAL" "carol via the proxy with group hr sees the hr document"
expect 200 POST /api/v1/search -H 'X-Forwarded-User: carol' "${J[@]}" -d '{"query":"zebrafish salary"}'
assert_not_contains "$BODY" "salary.md" "without the group header carol sees no hr document"
got429=0
for i in $(seq 8); do
    http POST /api/v1/search "${B[@]}" "${J[@]}" -d '{"query":"okapi"}'
    if [ "$STATUS" = 429 ]; then got429=$i; break; fi
    [ "$STATUS" = 200 ] || fail "burst request $i: HTTP $STATUS"
done
[ "$got429" -ge 2 ] || fail "no 429 within a burst of 8 at 5/minute (got429=$got429)"
ok "rate limited at request $got429 of the burst"
assert_eq "$(err_code)" rate_limited "429 code"
assert_match "$(hdr Retry-After)" '^[0-9]+$' "429 carries Retry-After"
expect 200 POST /api/v1/search "${A[@]}" "${J[@]}" -d '{"query":"okapi"}'
ok "another principal is not limited by bob's burst"
srv_stop
finish
