# lib.sh — shared helpers for the integration tests in tests/integration/*.sh.
# Sourced by each test (which tests/run.sh starts in a fresh temp dir with
# ZHIKU_BIN set). Gives: zk_run (capture stdout/stderr/exit code of one
# zhiku call), assertions that print what they check and fail loudly, and
# small JSON/SQLite helpers that need only grep, sed and the sqlite3 CLI.

set -euo pipefail

if [ -z "${ZHIKU_BIN:-}" ]; then
    ZHIKU_BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/zhiku"
fi
# The environment must not leak configuration into the tests.
while read -r v; do
    case "$v" in ZHIKU_BIN|ZHIKU_ROOT|ZHIKU_TEST_TOOLS|ZHIKU_SHARED) ;; *) unset "$v" ;; esac
done < <(compgen -e | grep '^ZHIKU_' || true)

[ -x "$ZHIKU_BIN" ] || { echo "zhiku binary not found at $ZHIKU_BIN"; exit 77; }

TEST_NAME=$(basename "$0" .sh)
NCHECKS=0

skip() { echo "$*"; exit 77; }
fail() { echo "FAIL [$TEST_NAME]: $*"; exit 1; }
note() { echo "-- $*"; }
ok()   { NCHECKS=$((NCHECKS + 1)); echo "ok   $*"; }

need() { command -v "$1" >/dev/null 2>&1 || skip "needs $1"; }

# Every zhiku call is killed after ZK_TIMEOUT seconds (a hang is a failure).
ZK_TIMEOUT=${ZK_TIMEOUT:-120}
ZK_WRAP=()
command -v timeout >/dev/null 2>&1 && ZK_WRAP=(timeout -s KILL "$ZK_TIMEOUT")

# zk_run ARGS... — run zhiku; sets OUT, ERR, RC (never exits on failure,
# except when zhiku dies from a signal or hangs).
zk_run() {
    local o e
    o=$(mktemp) e=$(mktemp)
    set +e
    "${ZK_WRAP[@]}" "$ZHIKU_BIN" "$@" >"$o" 2>"$e"
    RC=$?
    set -e
    OUT=$(cat "$o") ERR=$(cat "$e")
    rm -f "$o" "$e"
    if [ "$RC" -ge 128 ]; then
        echo "zhiku $* died with signal $((RC - 128)) (9 = killed after ${ZK_TIMEOUT}s: hang?); stderr:"
        echo "$ERR" | tail -30
        fail "zhiku $* crashed (exit $RC)"
    fi
}

# zk_expect RC ARGS... — run zhiku and require exit code RC.
zk_expect() {
    local want=$1; shift
    zk_run "$@"
    if [ "$RC" != "$want" ]; then
        echo "stdout:"; echo "$OUT" | tail -20; echo "stderr:"; echo "$ERR" | tail -20
        fail "zhiku $* exited $RC, expected $want"
    fi
}

# zk ARGS... — run zhiku, require exit 0.
zk() { zk_expect 0 "$@"; }

assert_eq() {        # ACTUAL EXPECTED WHAT
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
    ok "$3 = $2"
}
assert_ge() {        # ACTUAL MIN WHAT
    [ "$1" -ge "$2" ] || fail "$3: got $1, expected >= $2"
    ok "$3 = $1 (>= $2)"
}
assert_contains() {  # HAYSTACK NEEDLE WHAT
    case "$1" in *"$2"*) ok "$3" ;; *) echo "--- text was:"; echo "$1" | head -c 3000; echo; fail "$3: missing '$2'" ;; esac
}
assert_not_contains() {
    case "$1" in *"$2"*) echo "--- text was:"; echo "$1" | head -c 3000; echo; fail "$3: unexpectedly contains '$2'" ;; *) ok "$3" ;; esac
}
# (a here-string, not a pipe: grep -q exits at the first match, and under
# pipefail the writer's SIGPIPE on a large text turned a match into a miss)
assert_match() {     # TEXT ERE WHAT
    if grep -Eq -- "$2" <<<"$1"; then ok "$3"
    else echo "--- text was:"; echo "$1" | head -c 3000; echo; fail "$3: no match for /$2/"; fi
}

# JSON helpers for zhiku's compact one-line output (no jq needed).
# json_str JSON KEY — every string value of "KEY":"..." in order, one a line.
json_str() { printf '%s' "$1" | grep -o "\"$2\":\"[^\"]*\"" | sed "s/^\"$2\":\"//; s/\"\$//" || true; }
# json_num JSON KEY — every number/null/bool value of "KEY":..., one a line.
json_num() { printf '%s' "$1" | grep -oE "\"$2\":(-?[0-9.eE+-]+|null|true|false)" | sed "s/^\"$2\"://" || true; }
# json_first_str JSON KEY
json_first_str() { json_str "$1" "$2" | head -1; }
# hit count of a {"hits":[...]} answer (each hit has exactly one "snippet" or "chunk").
json_count() { printf '%s' "$1" | grep -o "\"$2\":" | wc -l | tr -d ' '; }

# sql DB QUERY — one sqlite3 query, fails the test on error.
sql() {
    local r
    r=$(sqlite3 -batch "$1" "$2" 2>&1) || fail "sqlite3 '$2' failed: $r"
    printf '%s\n' "$r"
}

# summary_count OUTPUT WORD — N from the ingest summary "N WORD".
summary_count() {
    printf '%s\n' "$1" | grep -E '^[0-9]+ indexed, ' | tail -1 | grep -oE "[0-9]+ $2" | grep -oE '^[0-9]+'
}

finish() { echo "PASS [$TEST_NAME]: $NCHECKS checks"; exit 0; }
