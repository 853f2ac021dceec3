#!/bin/bash
# acl_cli.sh — access control through the real CLI: ingest --acl and the
# [acl] default_read default, `zhiku acl show|grant|revoke` by document and
# by --path, search/ask/docs/stats --as USER seeing only what the user may
# read (no titles, snippets, ids or counts of anything else), revocation and
# group changes applying to the very next command, --tag/--filter, and the
# audit log recording each search and answer.
# Run: tests/run.sh build acl_cli
source "${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
need sqlite3

D=$PWD/data
Z=(--data-dir "$D")
mkdir -p docs/hr docs/pub
printf '# Salaries\n\nThe zebrafish salary band for engineers is confidential.\n' > docs/hr/salary.md
printf 'Performance reviews of the okapi team happen in March.\n' > docs/hr/reviews.txt
printf 'The cafeteria serves okapi-shaped cookies on Fridays.\n' > docs/pub/cafe.txt
printf '会议室预订需要提前一天在系统中提交。\n' > docs/pub/rooms.txt

note "principals"
zk "${Z[@]}" user add alice
zk "${Z[@]}" user add bob
zk "${Z[@]}" user add carol
zk "${Z[@]}" group add hr
zk "${Z[@]}" group add managers
zk "${Z[@]}" group members hr add alice
zk "${Z[@]}" group members managers add carol
zk "${Z[@]}" group members hr add group:managers      # nested: managers ⊂ hr

note "ingest with and without --acl"
zk "${Z[@]}" ingest --acl everyone --tag dept=pub docs/pub
zk "${Z[@]}" ingest docs/hr                            # default_read: administrators only
zk "${Z[@]}" acl show "$PWD/docs/hr/salary.md"
assert_contains "$OUT" "administrators only" "default_read gives no grants"
zk "${Z[@]}" search --as alice --json zebrafish salary
assert_not_contains "$OUT" "docs/hr" "alice sees nothing of an ungranted document"
zk "${Z[@]}" search --json zebrafish salary
assert_eq "$(json_first_str "$OUT" id)" "$PWD/docs/hr/salary.md" "the administrator sees it"

note "grant by --path"
zk "${Z[@]}" acl grant --path "$PWD/docs/hr/" group:hr
assert_eq "$(grep -c '^granted' <<<"$OUT")" 2 "two documents granted"
zk "${Z[@]}" acl show --json --path "$PWD/docs/hr/"
assert_contains "$OUT" '"group:hr"' "acl show lists the group"
for who in alice carol; do
    zk "${Z[@]}" search --as $who --json zebrafish salary
    assert_eq "$(json_first_str "$OUT" id)" "$PWD/docs/hr/salary.md" "$who (hr, or managers ⊂ hr) reads salary.md"
done
for mode in bm25 vector hybrid; do
    zk "${Z[@]}" search --as bob --json --mode $mode zebrafish salary okapi
    assert_not_contains "$OUT" "docs/hr" "bob ($mode): no id, source or title from hr"
    assert_not_contains "$OUT" "zebrafish" "bob ($mode): no snippet from hr"
done
zk "${Z[@]}" ask --as bob --json "What is the zebrafish salary band?"
assert_not_contains "$OUT" "confidential" "bob's answer quotes nothing from hr"
assert_not_contains "$OUT" "docs/hr" "bob's citations name nothing from hr"
zk "${Z[@]}" ask --as alice --json "What is the zebrafish salary band?"
assert_contains "$OUT" "confidential" "alice's answer comes from salary.md"
assert_contains "$OUT" '"n":1' "alice's answer is cited"

note "listings, fetch and counts"
zk "${Z[@]}" docs list --as bob --json
assert_not_contains "$OUT" "docs/hr" "bob's listing has no hr document"
zk_expect 3 "${Z[@]}" docs show --as bob "$PWD/docs/hr/salary.md"
assert_contains "$ERR" "no document" "fetching a forbidden document looks like a missing one"
zk "${Z[@]}" docs show --as alice "$PWD/docs/hr/salary.md"
zk "${Z[@]}" stats --as bob --json
assert_eq "$(json_num "$OUT" documents)" 2 "bob counts only the 2 public documents"
zk "${Z[@]}" stats --json
assert_eq "$(json_num "$OUT" documents)" 4 "the administrator counts all 4"

note "revocation and membership changes apply to the next command"
zk "${Z[@]}" acl revoke "$PWD/docs/hr/salary.md" group:hr
zk "${Z[@]}" search --as alice --json zebrafish
assert_not_contains "$OUT" "salary.md" "revoked: alice no longer sees salary.md"
zk "${Z[@]}" acl grant "$PWD/docs/hr/salary.md" group:hr
zk "${Z[@]}" group members managers rm carol
zk "${Z[@]}" search --as carol --json zebrafish
assert_not_contains "$OUT" "salary.md" "carol left managers: no longer sees salary.md"
zk "${Z[@]}" group members hr rm group:managers

note "re-ingest keeps grants unless --acl is given"
printf '# Salaries\n\nThe zebrafish salary band for engineers is confidential and revised.\n' > docs/hr/salary.md
zk "${Z[@]}" ingest docs/hr
assert_contains "$OUT" "replaced" "changed file replaced"
zk "${Z[@]}" acl show "$PWD/docs/hr/salary.md"
assert_contains "$OUT" "group:hr" "grants kept across a replace"
zk "${Z[@]}" ingest --acl user:bob docs/hr
zk "${Z[@]}" acl show "$PWD/docs/hr/salary.md"
assert_contains "$OUT" "user:bob" "explicit --acl applies to unchanged documents"
assert_not_contains "$OUT" "group:hr" "explicit --acl replaces grants"

note "[acl] default_read from the config"
ZHIKU_ACL_DEFAULT_READ=group:hr zk "${Z[@]}" ingest --jsonl /dev/stdin <<<'{"id":"memo","title":"Memo","text":"The quokka memo is for HR."}'
zk "${Z[@]}" acl show memo
assert_contains "$OUT" "group:hr" "default_read applied to a new document"
ZHIKU_ACL_DEFAULT_READ=group:nosuch zk_expect 3 "${Z[@]}" ingest --jsonl /dev/stdin <<<'{"id":"m2","text":"x"}'
zk_expect 3 "${Z[@]}" ingest --acl user:nosuch docs/pub
zk_expect 2 "${Z[@]}" ingest --acl "bad spec" docs/pub

note "tags and filters"
zk "${Z[@]}" search --as bob --json --filter dept=pub okapi cookies
assert_eq "$(json_first_str "$OUT" id)" "$PWD/docs/pub/cafe.txt" "--filter dept=pub finds tagged documents"
zk "${Z[@]}" search --json --filter dept=hr okapi cookies
assert_eq "$OUT" '{"hits":[]}' "--filter dept=hr: nothing tagged hr"
zk_expect 2 "${Z[@]}" search --filter nokey okapi

note "usage errors"
zk_expect 3 "${Z[@]}" search --as nobody okapi
zk_expect 3 "${Z[@]}" acl grant nosuchdoc everyone
zk_expect 3 "${Z[@]}" acl grant "$PWD/docs/pub/cafe.txt" group:nosuch
zk_expect 2 "${Z[@]}" acl grant "$PWD/docs/pub/cafe.txt"
zk_expect 2 "${Z[@]}" acl frobnicate x
zk "${Z[@]}" acl --help

note "audit log"
zk "${Z[@]}" audit --json
assert_contains "$OUT" '"principal":"user:bob"' "bob's searches are audited"
assert_contains "$OUT" '"action":"ask"' "answers are audited"
n=$(sqlite3 "$D/audit.db" "SELECT count(*) FROM audit_log WHERE principal = 'user:alice' AND action = 'search'")
assert_ge "$n" 2 "alice's searches recorded"
assert_eq "$(sqlite3 "$D/zhiku.db" "SELECT count(*) FROM sqlite_schema WHERE name = 'audit_log'")" 0 \
    "the audit log is its own file (audit.db), not a table of zhiku.db"
finish
