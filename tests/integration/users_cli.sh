#!/bin/bash
# users_cli.sh — `zhiku user`, `zhiku group` and `zhiku kb` end to end:
# add/list/rm with --json, passwords from stdin (stored hashed), nested
# group members, the built-in `everyone` group, kb create/list/rm (rm takes
# the documents with it), --help and the exit codes 0/1/2/3.
# Run: tests/run.sh build users_cli
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need sqlite3

D=$PWD/data
DB=$D/zhiku.db
Z=(--data-dir "$D")

# zk_stdin INPUT RC ARGS... — like zk_expect, with INPUT on standard input
zk_stdin() {
    local input=$1 want=$2; shift 2
    local e
    e=$(mktemp)
    set +e
    OUT=$(printf '%s' "$input" | "${ZK_WRAP[@]}" "$ZHIKU_BIN" "$@" 2>"$e")
    RC=$?
    set -e
    ERR=$(cat "$e"); rm -f "$e"
    [ "$RC" = "$want" ] || { echo "$OUT"; echo "$ERR"; fail "zhiku $* exited $RC, expected $want"; }
}

# ------------------------------------------------------------------ help
for verb in user group kb; do
    zk "${Z[@]}" "$verb" --help
    assert_contains "$OUT" "usage: zhiku $verb" "$verb --help"
    zk_expect 2 "${Z[@]}" "$verb"
    zk_expect 2 "${Z[@]}" "$verb" frobnicate
    zk_expect 2 "${Z[@]}" "$verb" list --bogus
done

# ------------------------------------------------------------------ users
note "users"
zk_stdin $'s3cret pass\n' 0 "${Z[@]}" user add alice --password-stdin
assert_contains "$OUT" "added user alice" "user add with password"
zk "${Z[@]}" user add bob --admin
zk "${Z[@]}" user add 张三
zk_expect 1 "${Z[@]}" user add alice
assert_contains "$ERR" "already exists" "duplicate user message"
zk_expect 2 "${Z[@]}" user add "bad name"
zk_expect 2 "${Z[@]}" user add "a:b"
zk_expect 2 "${Z[@]}" user add
zk_stdin $'\n' 2 "${Z[@]}" user add carol --password-stdin
assert_contains "$ERR" "empty" "empty password refused"
zk_stdin '' 2 "${Z[@]}" user add carol --password-stdin
assert_eq "$(sql "$DB" "SELECT count(*) FROM principals WHERE name = 'carol'")" 0 "refused user not created"
assert_eq "$(sql "$DB" "SELECT password_hash LIKE 'scrypt\$%' FROM principals WHERE name = 'alice'")" 1 \
    "password stored as scrypt hash"
assert_eq "$(sql "$DB" "SELECT count(*) FROM principals WHERE password_hash LIKE '%s3cret%'")" 0 \
    "password not stored in clear"
assert_eq "$(sql "$DB" "SELECT password_hash IS NULL FROM principals WHERE name = 'bob'")" 1 \
    "no --password-stdin: token-only user"

zk "${Z[@]}" user list
assert_match "$OUT" "^alice " "user list: alice"
assert_match "$OUT" "^bob +admin" "user list: bob is admin"
assert_contains "$OUT" "张三" "user list: Chinese name"
zk "${Z[@]}" user list --json
assert_eq "$(json_str "$OUT" name | tr '\n' ' ')" "alice bob 张三 " "user list --json names"
assert_eq "$(json_num "$OUT" admin | tr '\n' ' ')" "false true false " "user list --json admin flags"
assert_contains "$OUT" '"created":"' "user list --json created"

# ------------------------------------------------------------------ groups
note "groups"
zk "${Z[@]}" group add eng
zk "${Z[@]}" group add staff
zk_expect 1 "${Z[@]}" group add eng
assert_contains "$ERR" "already exists" "duplicate group message"
zk_expect 1 "${Z[@]}" group add everyone
zk "${Z[@]}" group members eng add alice user:张三
assert_contains "$OUT" "added user:alice to group eng" "members add (bare name = user)"
zk "${Z[@]}" group members staff add group:eng bob
zk "${Z[@]}" group members eng add group:staff          # a cycle is allowed
zk "${Z[@]}" group members eng
assert_eq "$(echo "$OUT" | tr '\n' ' ')" "user:alice user:张三 group:staff " "members list"
zk "${Z[@]}" group members staff list --json
assert_eq "$OUT" '{"group":"staff","members":["user:bob","group:eng"]}' "members list --json"
zk_expect 3 "${Z[@]}" group members eng add nobody
zk_expect 3 "${Z[@]}" group members nogroup add alice
zk_expect 3 "${Z[@]}" group members nogroup
zk_expect 2 "${Z[@]}" group members eng add
zk_expect 2 "${Z[@]}" group members eng frob alice
zk_expect 2 "${Z[@]}" group members everyone add alice
assert_contains "$ERR" "implicit" "everyone takes no members"
zk_expect 2 "${Z[@]}" group rm everyone
assert_contains "$ERR" "cannot be removed" "everyone cannot be removed"
zk "${Z[@]}" group members everyone
assert_eq "$(echo "$OUT" | wc -l | tr -d ' ')" 3 "everyone lists every user"

zk "${Z[@]}" user list --json
assert_contains "$OUT" '"name":"alice","admin":false,"password":true,"groups":["eng"]' "user list shows groups"
zk "${Z[@]}" group list --json
assert_eq "$(json_str "$OUT" name | tr '\n' ' ')" "everyone eng staff " "group list --json names"
zk "${Z[@]}" group list
assert_match "$OUT" "^eng +3 members" "group list member count"

zk "${Z[@]}" group members eng rm alice
zk_expect 3 "${Z[@]}" group members eng rm alice
zk "${Z[@]}" group members eng
assert_not_contains "$OUT" "user:alice" "member removed"

note "acl_version bumps on every change"
v0=$(sql "$DB" "SELECT seq FROM acl_version")
zk "${Z[@]}" group add temp
zk "${Z[@]}" group members temp add bob
zk "${Z[@]}" group rm temp
zk_expect 3 "${Z[@]}" group rm temp
assert_eq "$(sql "$DB" "SELECT seq FROM acl_version")" "$((v0 + 3))" "acl_version +3"

note "removing a user drops its memberships"
zk "${Z[@]}" user rm bob
zk_expect 3 "${Z[@]}" user rm bob
zk_expect 2 "${Z[@]}" user rm
assert_eq "$(sql "$DB" "SELECT count(*) FROM memberships m LEFT JOIN principals p ON p.id = m.member_id WHERE p.id IS NULL")" 0 \
    "no dangling memberships"
zk "${Z[@]}" group members staff
assert_eq "$OUT" "group:eng" "bob gone from staff"

# ------------------------------------------------------------------ knowledge bases
note "knowledge bases"
zk "${Z[@]}" kb create 研发
zk "${Z[@]}" kb create hr
zk_expect 1 "${Z[@]}" kb create hr
assert_contains "$ERR" "already exists" "duplicate kb message"
zk_expect 2 "${Z[@]}" kb create "bad,name"
mkdir -p corpus
echo "研发部门的代码评审流程：每个合并请求需要两名评审人批准。" >corpus/review.txt
echo "Vacation policy: employees get twenty days of paid leave per year." >corpus/vacation.txt
zk "${Z[@]}" ingest --kb 研发 corpus/review.txt
zk "${Z[@]}" ingest --kb hr corpus/vacation.txt
zk "${Z[@]}" ingest corpus/vacation.txt
zk "${Z[@]}" kb list --json
assert_eq "$(json_str "$OUT" name | tr '\n' ' ')" "default hr 研发 " "kb list --json names"
assert_eq "$(json_num "$OUT" documents | tr '\n' ' ')" "1 1 1 " "kb list --json documents"
assert_contains "$OUT" '"embedding_model":"' "kb list shows the embedding model"
zk "${Z[@]}" kb list
assert_match "$OUT" "^hr +1 documents" "kb list text"

zk "${Z[@]}" kb rm 研发
assert_eq "$(sql "$DB" "SELECT count(*) FROM documents")" 2 "kb rm removed its documents"
assert_eq "$(sql "$DB" "SELECT count(*) FROM kb WHERE name = '研发'")" 0 "kb row removed"
zk_expect 3 "${Z[@]}" kb rm 研发
zk_expect 3 "${Z[@]}" docs list --kb 研发
zk_expect 2 "${Z[@]}" kb rm default
assert_contains "$ERR" "cannot be removed" "default kb protected"
zk "${Z[@]}" check
assert_eq "$OUT" "ok" "store consistent after kb rm"
zk "${Z[@]}" search --kb hr vacation --json
assert_contains "$OUT" "vacation.txt" "other kbs unaffected"

finish
