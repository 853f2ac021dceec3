#!/bin/bash
# openapi_routes.sh — docs/openapi.yaml against the real router: every
# /api/v1 path + method the document lists must be routed by `zhiku serve`
# (not the router's 404 "no route for ..." nor a 405), and every route
# server/*.c registers with srv_route_add must be in the document. Requests
# use an admin token and placeholder ids, so 400/404-for-the-id are fine.
# Run: tests/run.sh build openapi_routes
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/lib_server.sh"

SPEC=$ROOT/docs/openapi.yaml
[ -f "$SPEC" ] || fail "no $SPEC"
D=$PWD/data
Z=(--data-dir "$D")

note "operations listed in docs/openapi.yaml"
# Paths are the 2-space-indented keys under `paths:`, methods the 4-space ones.
awk '
    /^paths:/ { inpaths = 1; next }
    /^[^ #]/ { inpaths = 0 }
    !inpaths { next }
    /^  \/[^ ]*:[ ]*$/ { path = $1; sub(/:$/, "", path); next }
    /^    (get|put|post|delete|patch|head|options):[ ]*$/ {
        m = $1; sub(/:$/, "", m)
        if (path ~ /^\/api\/v1\//) print toupper(m), path
    }' "$SPEC" | sort -u > spec_ops.txt
NOPS=$(wc -l < spec_ops.txt | tr -d ' ')
assert_ge "$NOPS" 30 "/api/v1 operations in the spec"

note "routes registered in the server sources are all in the spec"
grep -ho 'srv_route_add(s, "[A-Z]*", "/api/v1/[^"]*"' "$ROOT"/server/*.c \
    | sed 's/.*"\([A-Z]*\)", "\([^"]*\)"/\1 \2/' | sort -u > src_routes.txt
[ -s src_routes.txt ] || fail "no srv_route_add calls found under $ROOT/server"
sed 's/{[^}]*}/{}/g' spec_ops.txt | sort -u > spec_patterns.txt
missing=$(comm -23 src_routes.txt spec_patterns.txt)
[ -z "$missing" ] || fail "routes missing from docs/openapi.yaml: $(echo $missing)"
ok "all $(wc -l < src_routes.txt | tr -d ' ') registered /api/v1 routes are documented"
extra=$(comm -13 src_routes.txt spec_patterns.txt)
[ -z "$extra" ] || fail "docs/openapi.yaml lists routes no srv_route_add registers: $(echo $extra)"
ok "the spec lists no /api/v1 route the sources lack"

note "start the server with an admin token"
printf 'rootpw-123\n' | zk "${Z[@]}" user add root --admin --password-stdin
zk "${Z[@]}" token create --user root --scopes admin
T_ROOT=$OUT
[ -n "$T_ROOT" ] || fail "token create printed no token"
AUTH=(-H "$(bearer "$T_ROOT")")
srv_start "$D"

# sanity: the detector recognises an unimplemented route and a wrong method
http GET /api/v1/no/such/route "${AUTH[@]}"
assert_eq "$STATUS" 404 "unknown route status"
assert_contains "$BODY" "no route for" "unknown route body names the router"
http DELETE /api/v1/search "${AUTH[@]}"
assert_eq "$STATUS" 405 "wrong method status"

note "every documented operation is routed"
while read -r method path; do
    # placeholder ids: numeric where the handler parses a number, names elsewhere
    url=$(printf '%s' "$path" | sed 's/{doc}/999999/g; s/{chunk}/999999/g; s/{id}/999999/g; s/{name}/nosuch-openapi/g; s/{[^}]*}/x/g')
    args=("${AUTH[@]}")
    case "$method" in POST|PUT|PATCH) args+=(-H 'Content-Type: application/json' -d '{}') ;; esac
    http "$method" "$url" "${args[@]}"
    case "$BODY" in *"no route for"*) fail "$method $path: not routed (HTTP $STATUS: $BODY)" ;; esac
    [ "$STATUS" != 405 ] || fail "$method $path: 405 method not allowed ($BODY)"
    [ "$STATUS" != 000 ] || fail "$method $path: no answer"
    case "$STATUS" in 5*) echo "note: $method $url answered $STATUS: $(printf '%s' "$BODY" | head -c 200)" ;; esac
    ok "$method $path → $STATUS"
done < spec_ops.txt

note "the special paths outside /api/v1"
expect 200 GET /healthz
expect 200 GET /readyz
expect 200 GET /metrics
expect 200 GET /
assert_match "$(hdr Content-Type)" '^text/html' "portal index is HTML"

srv_stop
finish
