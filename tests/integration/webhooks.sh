#!/bin/bash
# webhooks.sh — the chat-bot webhooks of `zhiku serve` over real HTTP: the
# generic signed webhook answers synchronously (bad/missing/expired
# signatures → 401, unknown users → a polite refusal); Slack events are
# acknowledged fast and answered once through chat.postMessage on the fake
# platform server (tests/fake_platforms/server.py), retries are deduplicated,
# bots are ignored, unknown senders get a refusal, and a linked user never
# receives a document their zhiku account may not read. Identities are
# linked with `zhiku user link`; answers are audited as "user:NAME via slack".
# Run: tests/run.sh build webhooks
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/lib_server.sh"

D=$PWD/data
Z=(--data-dir "$D")
GSECRET=generic-secret-0123456789
SSECRET=8f742231b10e8888abcd99yyyzzz85a5
mkdir -p docs
printf '# Annual leave\n\nEvery employee gets fifteen days of paid walrus leave per year. Walrus leave requests go to your manager.\n' > docs/leave.md
printf '# Platypus compensation secrets\n\nThe platypus bonus pool for executives is seven million yuan. Platypus bonus figures are strictly confidential.\n' > docs/bonus.md

note "fake platforms"
rm -f fp.port
python3 "$ROOT/tests/fake_platforms/server.py" --port 0 --portfile fp.port --slack-token xoxb-test-token >fp.log 2>&1 &
on_exit_kill $!
for i in $(seq 200); do [ -s fp.port ] && break; sleep 0.05; done
[ -s fp.port ] || fail "fake platforms did not start: $(cat fp.log)"
FP="http://127.0.0.1:$(cat fp.port)"
received() { curl -fsS "$FP/_received?kind=slack.post"; }
nreceived() { received | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# wait_replies N — until the fake got N Slack replies (20 s at most)
wait_replies() {
    local i
    for i in $(seq 200); do [ "$(nreceived)" -ge "$1" ] && return 0; sleep 0.1; done
    fail "the fake Slack got $(nreceived) replies, expected $1; server log: $(tail -20 "$SRV_LOG")"
}
last_text() { received | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["text"])'; }
last_field() { received | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["body"].get(sys.argv[1], ""))' "$1"; }

cat > zhiku.conf <<EOF
[webhooks]
unknown_sender = refuse
workers = 2
queue = 16
portal_url = https://kb.example.com/
[webhook.generic]
secret = $GSECRET
[webhook.slack]
signing_secret = \${TEST_SLACK_SECRET}
bot_token = xoxb-test-token
api_base = $FP/slack/api
EOF

note "users, documents, links"
zk "${Z[@]}" user add alice
zk "${Z[@]}" user add bob
zk "${Z[@]}" group add hr
zk "${Z[@]}" group members hr add alice
zk "${Z[@]}" ingest --acl everyone docs/leave.md
zk "${Z[@]}" ingest --acl group:hr docs/bonus.md
zk "${Z[@]}" user link alice slack UALICE
zk "${Z[@]}" user link bob slack UBOB
zk "${Z[@]}" user link bob generic ext-bob
zk "${Z[@]}" user link alice slack UTEMP
zk "${Z[@]}" user unlink slack UTEMP
zk_expect 3 "${Z[@]}" user unlink slack UTEMP
zk_expect 3 "${Z[@]}" user link nobody slack UX
zk_expect 2 "${Z[@]}" user link alice myspace UX
zk_expect 2 "${Z[@]}" user link alice slack

srv_start "$D" ZHIKU_CONFIG="$PWD/zhiku.conf" TEST_SLACK_SECRET="$SSECRET"

# send.py generic|slack BODY [--retry N] [--ts-offset S] [--bad-sig] [--no-sig]
# → prints "STATUS SECONDS" then the body
cat > send.py <<'PY'
import hashlib, hmac, os, sys, time, urllib.request, urllib.error
kind, body, args = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
base, gsecret, ssecret = os.environ["BASE"], os.environ["GSECRET"], os.environ["SSECRET"]
ts = str(int(time.time()) + (int(args[args.index("--ts-offset") + 1]) if "--ts-offset" in args else 0))
h = {"Content-Type": "application/json"}
if kind == "generic":
    sig = hmac.new(gsecret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if "--bad-sig" in args: sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    if "--no-sig" not in args: h.update({"X-Zhiku-Timestamp": ts, "X-Zhiku-Signature": sig})
else:
    sig = "v0=" + hmac.new(ssecret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    if "--bad-sig" in args: sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    if "--no-sig" not in args: h.update({"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig})
    if "--retry" in args:
        h.update({"X-Slack-Retry-Num": args[args.index("--retry") + 1], "X-Slack-Retry-Reason": "http_timeout"})
req = urllib.request.Request(base + "/hooks/" + kind, data=body, headers=h, method="POST")
t0 = time.time()
try:
    with urllib.request.urlopen(req, timeout=30) as r: status, out = r.status, r.read()
except urllib.error.HTTPError as e: status, out = e.code, e.read()
print(status, "%.3f" % (time.time() - t0))
print(out.decode("utf-8", "replace"))
PY
export BASE GSECRET SSECRET
# (split with expansions, not `printf | head -1`: a long answer is written in
# several chunks, head exits after the first, and pipefail made the SIGPIPE
# end the test silently)
send() {
    local o first; o=$(python3 send.py "$@")
    first=${o%%$'\n'*}; STATUS=${first%% *}; SECS=${first#* }
    BODY=${o#*$'\n'}; [ "$BODY" = "$o" ] && BODY=""
    return 0
}

note "generic webhook: synchronous answers"
send generic '{"user":"alice","question":"How many days of walrus leave do employees get?"}'
assert_eq "$STATUS" 200 "generic: signed question"
assert_contains "$BODY" "fifteen days" "generic: the answer comes in the response"
assert_contains "$BODY" '"citations":[{' "generic: with citations (the /api/v1/ask shape)"
assert_contains "$BODY" '"title":"Annual leave"' "generic: citing the leave document"
send generic '{"user":"ext-bob","question":"walrus leave days"}'
assert_eq "$STATUS" 200 "generic: an id linked under platform generic"
assert_contains "$BODY" "fifteen days" "generic: linked id answered"
send generic '{"user":"bob","question":"How big is the platypus bonus pool for executives?"}'
assert_eq "$STATUS" 200 "generic: bob asks about the hr document"
assert_not_contains "$BODY" "seven million" "generic: bob never sees the hr document's text"
assert_not_contains "$BODY" "compensation secrets" "generic: nor its title"
send generic '{"user":"alice","question":"How big is the platypus bonus pool for executives?"}'
assert_contains "$BODY" "seven million" "generic: alice (hr) does get the hr document"
send generic '{"user":"mallory","question":"walrus leave?"}'
assert_eq "$STATUS" 200 "generic: unknown user → 200"
assert_contains "$BODY" '"refused":true' "generic: unknown user refused"
assert_contains "$BODY" "zhiku user link" "generic: the refusal says how to get linked"
assert_not_contains "$BODY" "fifteen" "generic: the refusal carries no answer"
send generic '{"user":"alice","question":"walrus?"}' --bad-sig
assert_eq "$STATUS" 401 "generic: wrong signature → 401"
send generic '{"user":"alice","question":"walrus?"}' --no-sig
assert_eq "$STATUS" 401 "generic: missing signature → 401"
send generic '{"user":"alice","question":"walrus?"}' --ts-offset -400
assert_eq "$STATUS" 401 "generic: expired timestamp → 401"
send generic '{"user":"alice"}'
assert_eq "$STATUS" 400 "generic: signed but malformed body → 400"
expect 405 PUT /hooks/generic

note "slack: url_verification, signatures"
send slack '{"token":"x","challenge":"chal-123-abc","type":"url_verification"}'
assert_eq "$STATUS" 200 "slack: url_verification"
assert_eq "$BODY" "chal-123-abc" "slack: the challenge echoed"
send slack '{"token":"x","challenge":"chal-123-abc","type":"url_verification"}' --bad-sig
assert_eq "$STATUS" 401 "slack: wrong signature → 401"
send slack '{"token":"x","challenge":"chal-123-abc","type":"url_verification"}' --ts-offset -301
assert_eq "$STATUS" 401 "slack: stale timestamp → 401"
send slack '{"token":"x","challenge":"chal-123-abc","type":"url_verification"}' --no-sig
assert_eq "$STATUS" 401 "slack: unsigned → 401"

ev() {   # ev EVENT_ID USER TEXT [extra event fields]
    printf '{"token":"x","team_id":"T1","api_app_id":"A1","type":"event_callback","event_id":"%s","event_time":1,"event":{"type":"app_mention","user":"%s","text":"<@UBOT> %s","ts":"1515449522.000016","channel":"C0LAN2Q65","event_ts":"1515449522.000016"%s}}' "$1" "$2" "$3" "${4:-}"
}

note "slack: a mention is acknowledged fast and answered once"
send slack "$(ev Ev001 UALICE 'How many days of walrus leave do employees get?')"
assert_eq "$STATUS" 200 "slack: event acknowledged"
python3 -c "import sys; sys.exit(0 if float('$SECS') < 1.0 else 1)" || fail "slack ack took ${SECS}s (must be well under 1 s)"
ok "slack: acknowledged in ${SECS}s"
wait_replies 1
T=$(last_text)
note "alice's reply: $T"
assert_contains "$T" "fifteen days" "slack: the reply answers the question"
assert_contains "$T" "<https://kb.example.com/#/doc/" "slack: sources link to the portal (mrkdwn)"
assert_eq "$(last_field channel)" C0LAN2Q65 "slack: reply in the same channel"
assert_eq "$(last_field thread_ts)" 1515449522.000016 "slack: in the question's thread"
assert_eq "$(received | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["headers"]["authorization"])')" \
    "Bearer xoxb-test-token" "slack: chat.postMessage with the bot token"

note "slack: retries are acknowledged and never answered twice"
send slack "$(ev Ev001 UALICE 'How many days of walrus leave do employees get?')" --retry 1
assert_eq "$STATUS" 200 "slack: retry 1 acknowledged"
send slack "$(ev Ev001 UALICE 'How many days of walrus leave do employees get?')" --retry 2
assert_eq "$STATUS" 200 "slack: retry 2 acknowledged"
sleep 1.5
assert_eq "$(nreceived)" 1 "slack: still exactly one reply"

note "slack: bots and other events are ignored"
send slack "$(ev Ev002 UALICE 'walrus' ',"bot_id":"B1"')"
assert_eq "$STATUS" 200 "slack: bot message acknowledged"
send slack '{"type":"event_callback","event_id":"Ev003","event":{"type":"message","channel_type":"channel","user":"UALICE","text":"walrus","channel":"C1","ts":"1.1"}}'
assert_eq "$STATUS" 200 "slack: plain channel message acknowledged"
sleep 1
assert_eq "$(nreceived)" 1 "slack: no reply to bots or unaddressed messages"

note "slack: unknown sender gets a polite refusal"
send slack "$(ev Ev004 UNOBODY 'walrus leave?')"
assert_eq "$STATUS" 200 "slack: unknown sender acknowledged"
wait_replies 2
T=$(last_text)
assert_contains "$T" "zhiku user link" "slack: refusal explains how to get linked"
assert_contains "$T" "UNOBODY" "slack: refusal names the platform id"
assert_contains "$T" "抱歉" "slack: refusal is bilingual"
assert_not_contains "$T" "fifteen" "slack: refusal carries no answer"

note "slack: a linked user without access never receives the hr document"
send slack "$(ev Ev005 UBOB 'How big is the platypus bonus pool for executives?')"
wait_replies 3
T=$(last_text)
note "bob's reply: $T"
assert_not_contains "$T" "seven million" "slack: bob's reply lacks the hr document's text"
assert_not_contains "$T" "compensation secrets" "slack: and its title"
assert_not_contains "$T" "bonus.md" "slack: and its id"
send slack "$(ev Ev006 UALICE 'How big is the platypus bonus pool for executives?')"
wait_replies 4
assert_contains "$(last_text)" "seven million" "slack: alice (hr) gets it (the document is answerable)"

note "slack: direct messages"
send slack '{"type":"event_callback","event_id":"Ev007","event":{"type":"message","channel_type":"im","user":"UALICE","text":"walrus leave days?","channel":"D42","ts":"2.2"}}'
wait_replies 5
assert_eq "$(last_field channel)" D42 "slack: DM answered in the DM"
assert_eq "$(last_field thread_ts)" "" "slack: DMs are not threaded"

note "audit and dedup records"
zk "${Z[@]}" audit --json
assert_contains "$OUT" '"principal":"user:alice via slack"' "audit: slack answers logged as user via slack"
assert_contains "$OUT" '"principal":"user:bob via generic"' "audit: generic answers logged too"
assert_eq "$(sql "$D/zhiku.db" "SELECT count(*) FROM webhook_events WHERE platform='slack' AND event_id='Ev001'")" 1 \
    "dedup: the event recorded once"

srv_stop

note "unknown_sender = everyone: unlinked senders get answers from everyone's documents only"
srv_start "$D" ZHIKU_CONFIG="$PWD/zhiku.conf" TEST_SLACK_SECRET="$SSECRET" ZHIKU_WEBHOOKS_UNKNOWN_SENDER=everyone
send generic '{"user":"mallory","question":"How many days of walrus leave do employees get?"}'
assert_eq "$STATUS" 200 "everyone mode: unknown user answered"
assert_contains "$BODY" "fifteen days" "everyone mode: from a document readable by everyone"
send generic '{"user":"mallory","question":"How big is the platypus bonus pool for executives?"}'
assert_not_contains "$BODY" "seven million" "everyone mode: never the hr document"
send slack "$(ev Ev001 UALICE 'How many days of walrus leave do employees get?')" --retry 3
assert_eq "$STATUS" 200 "dedup survives a restart: acknowledged"
sleep 1
assert_eq "$(nreceived)" 5 "dedup survives a restart: not answered again"
srv_stop
finish
