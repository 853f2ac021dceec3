#!/bin/bash
# tokens_cli.sh — `zhiku token create|list|revoke` and `zhiku audit` through
# the real binary: create prints the token alone on stdout, only its SHA-256
# is stored, listings never show it, revoke, exit codes of usage errors and
# unknown users or ids, and an empty audit log before any search.
# Run: tests/run.sh build tokens_cli
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need sqlite3
need sha256sum

D=$PWD/data
DB=$D/zhiku.db

note "a user to own the tokens"
zk_run --data-dir "$D" user add alice
if [ "$RC" != 0 ]; then   # principals CLI not there: create the store, insert directly
    zk --data-dir "$D" token list
    sql "$DB" "INSERT INTO principals(kind, name) VALUES ('user', 'alice')" >/dev/null
fi
assert_eq "$(sql "$DB" "SELECT count(*) FROM principals WHERE kind='user' AND name='alice'")" 1 "user alice exists"

note "create prints the token alone"
zk --data-dir "$D" token create --user alice --scopes search,ask --expires 30
TOKEN=$OUT
assert_match "$TOKEN" '^zk_[A-Za-z0-9_-]{43}$' "stdout is exactly one token"
assert_eq "$(printf '%s\n' "$OUT" | wc -l | tr -d ' ')" 1 "one line on stdout"
assert_contains "$ERR" "not shown again" "stderr warns the token is shown once"
HASH=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
assert_eq "$(sql "$DB" "SELECT count(*) FROM api_tokens WHERE token_sha256 = '$HASH'")" 1 "SHA-256 of the token stored"
assert_eq "$(sql "$DB" "SELECT count(*) FROM api_tokens WHERE expires_at BETWEEN created_at + 30*86400 - 5 AND created_at + 30*86400 + 5")" 1 "expires in 30 days"
DUMP=$(sqlite3 "$DB" .dump)
assert_not_contains "$DUMP" "${TOKEN#zk_}" "token text not in the database"

zk --data-dir "$D" token create --user alice --scopes admin
TOKEN2=$OUT
[ "$TOKEN" != "$TOKEN2" ] || fail "two tokens are equal"
ok "second token differs"

note "list shows metadata, never the token or its hash"
zk --data-dir "$D" token list
TABLE=$OUT
assert_contains "$TABLE" "alice" "table names the user"
assert_contains "$TABLE" "${TOKEN:0:11}" "table shows the prefix"
assert_contains "$TABLE" "search,ask" "table shows scopes"
zk --data-dir "$D" token list --json
JSON=$OUT
assert_eq "$(printf '%s\n' "$JSON" | wc -l | tr -d ' ')" 2 "one JSON line per token"
assert_eq "$(json_first_str "$JSON" status)" active "first token active"
for out in "$TABLE" "$JSON"; do
    assert_not_contains "$out" "$TOKEN" "listing does not contain token 1"
    assert_not_contains "$out" "${TOKEN:11}" "listing does not contain the secret part of token 1"
    assert_not_contains "$out" "$TOKEN2" "listing does not contain token 2"
    assert_not_contains "$out" "$HASH" "listing does not contain the hash"
done

note "revoke"
ID=$(sql "$DB" "SELECT id FROM api_tokens WHERE token_sha256 = '$HASH'")
zk --data-dir "$D" token revoke "$ID"
assert_eq "$(sql "$DB" "SELECT revoked_at IS NOT NULL FROM api_tokens WHERE id = $ID")" 1 "revoked_at set"
zk --data-dir "$D" token list --json
assert_eq "$(json_first_str "$OUT" status)" revoked "listed as revoked"
assert_eq "$(json_str "$OUT" status | sed -n 2p)" active "other token still active"

note "usage errors and not found"
zk_expect 2 --data-dir "$D" token create --user alice --scopes search,bogus
assert_contains "$ERR" "bogus" "bad scope named"
zk_expect 2 --data-dir "$D" token create --user alice --scopes search --expires 0
zk_expect 2 --data-dir "$D" token create --user alice --scopes search --expires -3
zk_expect 2 --data-dir "$D" token create --user alice --scopes search --expires soon
zk_expect 2 --data-dir "$D" token create --user alice
zk_expect 3 --data-dir "$D" token create --user nobody --scopes search
assert_eq "$OUT" "" "nothing on stdout for an unknown user"
zk_expect 3 --data-dir "$D" token revoke 99999
zk_expect 2 --data-dir "$D" token revoke abc
zk_expect 2 --data-dir "$D" token frobnicate
zk_expect 2 --data-dir "$D" audit --since yesterday
zk_expect 2 --data-dir "$D" audit --limit 0
assert_eq "$(sql "$DB" "SELECT count(*) FROM api_tokens")" 2 "failed creates stored nothing"

note "help"
zk token --help
assert_contains "$OUT" "zhiku token create" "token --help"
zk audit --help
assert_contains "$OUT" "--since" "audit --help"

note "audit is empty before any search"
zk --data-dir "$D" audit
assert_eq "$OUT" "" "audit table empty"
zk --data-dir "$D" audit --json --since 2020-01-01 --limit 10
assert_eq "$OUT" "" "audit JSON empty"
sql "$D/audit.db" "INSERT INTO audit_log(principal, action, kb_id, query, results) VALUES ('user:alice', 'search', 1, 'backup', '[{\"doc\":1,\"chunk\":2}]')" >/dev/null
zk --data-dir "$D" audit --json
assert_eq "$(json_first_str "$OUT" principal)" "user:alice" "a recorded row is exported"
assert_contains "$OUT" '"results":[{"doc":1,"chunk":2}]' "results exported as JSON"
zk --data-dir "$D" audit --since "$(( $(date +%s) + 3600 ))"
assert_eq "$OUT" "" "--since in the future: nothing"

note "deleting the user removes its tokens"
sqlite3 "$DB" "PRAGMA foreign_keys=ON; DELETE FROM principals WHERE kind='user' AND name='alice'"
assert_eq "$(sql "$DB" "SELECT count(*) FROM api_tokens")" 0 "tokens cascade with the user"

finish
