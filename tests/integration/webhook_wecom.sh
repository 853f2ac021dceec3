#!/bin/bash
# webhook_wecom.sh — the WeCom adapter end to end: `zhiku serve` with
# [webhook.wecom] pointing its API at tests/fake_platforms/server.py. A WeCom
# client is played with tests/tools/wecom_crypt (the adapter's own AES/SHA1
# code, since python3 has no AES): URL verification (GET echostr), an
# encrypted text message acknowledged at once with "success" and answered by
# exactly one message/send for the linked user under their permissions, the
# same MsgId again (no second answer), an unknown sender (polite refusal),
# an expired access_token (refreshed once), a bad signature (401) and bad
# padding (400). Run: tests/run.sh build webhook_wecom
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/lib_server.sh"

CRYPT="${ZHIKU_TEST_TOOLS:-$ROOT/build/tests}/wecom_crypt"
[ -x "$CRYPT" ] || fail "test tool not built: $CRYPT (make build/tests/wecom_crypt)"

TOKEN=hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo
AESKEY=6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt
CORP=ww1436e0e65a779aee
AGENT=1000002

D=$PWD/data
Z=(--data-dir "$D")
mkdir -p docs
printf 'The cafeteria serves okapi-shaped cookies on Fridays.\n' > docs/cafe.txt
printf 'The narwhal merger plan is known only to administrators.\n' > docs/merger.txt

note "data: alice (linked to WeCom user zhangsan), a public and an admin-only document"
zk "${Z[@]}" user add alice
zk "${Z[@]}" ingest --acl everyone docs/cafe.txt
zk "${Z[@]}" ingest docs/merger.txt            # administrators only
zk "${Z[@]}" user link alice wecom zhangsan

# fake WeCom API
rm -f fake.port
python3 "$ROOT/tests/fake_platforms/server.py" --port 0 --portfile "$PWD/fake.port" >fake.log 2>&1 &
on_exit_kill $!
for i in $(seq 200); do [ -s fake.port ] && break; sleep 0.05; done
[ -s fake.port ] || fail "fake platform server did not start: $(cat fake.log)"
FP=$(tr -d '\n' < fake.port)
FAKE="http://127.0.0.1:$FP"

srv_start "$D" ZHIKU_WEBHOOK_WECOM_TOKEN=$TOKEN ZHIKU_WEBHOOK_WECOM_ENCODING_AES_KEY=$AESKEY \
    ZHIKU_WEBHOOK_WECOM_CORP_ID=$CORP ZHIKU_WEBHOOK_WECOM_AGENT_ID=$AGENT \
    ZHIKU_WEBHOOK_WECOM_SECRET=corp-secret-xyz ZHIKU_WEBHOOK_WECOM_API_BASE="$FAKE/wecom"

urlenc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
sign() { "$CRYPT" sign "$TOKEN" "$1" "$2" "$3"; }
received() { curl -fsS "$FAKE/_received?kind=wecom.send"; }
# py EXPR — evaluate over the recorded sends (variable r), print the result
sends() { received | python3 -c "import json,sys; r=json.load(sys.stdin); print($1)"; }
wait_sends() {   # N — until the fake has N sends (at most 30 s)
    local i
    for i in $(seq 300); do
        [ "$(sends 'len(r)')" -ge "$1" ] && return 0
        sleep 0.1
    done
    fail "fake WeCom got $(sends 'len(r)') message/send calls, expected $1; server log: $(tail -20 "$SRV_LOG")"
}

# post_msg FROM MSGID CONTENT [PAD] — a text message as WeCom sends it
post_msg() {
    local from=$1 id=$2 content=$3 pad=${4:-}
    local ts nonce inner enc sig
    ts=$(date +%s) nonce=$RANDOM$RANDOM
    inner="<xml><ToUserName><![CDATA[$CORP]]></ToUserName><FromUserName><![CDATA[$from]]></FromUserName><CreateTime>$ts</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[$content]]></Content><MsgId>$id</MsgId><AgentID>$AGENT</AgentID></xml>"
    enc=$(printf '%s' "$inner" | "$CRYPT" encrypt "$AESKEY" "$CORP" $pad)
    sig=$(sign "$ts" "$nonce" "$enc")
    [ -n "${BADSIG:-}" ] && sig=$(printf '%s' "$sig" | tr '0-9a-f' '1-9a-f0')
    printf '<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt><AgentID><![CDATA[%s]]></AgentID></xml>' \
        "$CORP" "$enc" "$AGENT" > env.xml
    local t0=$(date +%s.%N)
    http POST "/hooks/wecom?msg_signature=$sig&timestamp=$ts&nonce=$nonce" -H 'Content-Type: text/xml' --data-binary @env.xml
    ELAPSED=$(python3 -c "print(round($(date +%s.%N) - $t0, 3))")
}

note "URL verification (GET echostr)"
ECHO_PLAIN=5927403213546289117
ENC=$(printf '%s' "$ECHO_PLAIN" | "$CRYPT" encrypt "$AESKEY" "$CORP")
TS=$(date +%s)
SIG=$(sign "$TS" 1234 "$ENC")
expect 200 GET "/hooks/wecom?msg_signature=$SIG&timestamp=$TS&nonce=1234&echostr=$(urlenc "$ENC")"
assert_eq "$BODY" "$ECHO_PLAIN" "the echostr plaintext, nothing else"
[ "$(curl -s "$BASE/hooks/wecom?msg_signature=$SIG&timestamp=$TS&nonce=1234&echostr=$(urlenc "$ENC")" | wc -c)" = "${#ECHO_PLAIN}" ] ||
    fail "the verification body has extra bytes (newline?)"
ok "no trailing newline"
assert_match "$(hdr Content-Type)" '^text/plain' "verification answers text/plain"
expect 401 GET "/hooks/wecom?msg_signature=$SIG&timestamp=$((TS + 1))&nonce=1234&echostr=$(urlenc "$ENC")"

note "a text message from a linked user: 'success' at once, then one message/send"
curl -fsS -X POST "$FAKE/_reset" >/dev/null
post_msg zhangsan 7001 "What shape are the cookies on Fridays?"
assert_eq "$STATUS" 200 "POST message → 200"
assert_eq "$BODY" success "acknowledged with success"
python3 -c "import sys; sys.exit(0 if $ELAPSED < 2.0 else 1)" || fail "acknowledgement took ${ELAPSED}s"
ok "acknowledged in ${ELAPSED}s"
wait_sends 1
assert_eq "$(sends 'r[0]["body"]["touser"]')" zhangsan "answer goes to the sender"
assert_eq "$(sends 'r[0]["body"]["agentid"]')" "$AGENT" "agentid (a number)"
assert_eq "$(sends 'type(r[0]["body"]["agentid"]).__name__')" int "agentid is a JSON number"
assert_eq "$(sends 'r[0]["body"]["msgtype"]')" markdown "markdown message"
assert_contains "$(sends 'r[0]["text"]')" okapi "the answer cites the cafeteria document"
assert_eq "$(sends 'r[0]["query"]["access_token"]')" wecom-token-1 "the fetched access_token is used"
GT=$(curl -fsS "$FAKE/_received?kind=wecom.gettoken&all=1")
assert_contains "$GT" '"corpsecret": "corp-secret-xyz"' "gettoken with the corp secret"

note "the same MsgId again (a WeCom retry): acknowledged, no second answer"
post_msg zhangsan 7001 "What shape are the cookies on Fridays?"
assert_eq "$STATUS" 200 "retry → 200"
assert_eq "$BODY" success "retry acknowledged"
sleep 2
assert_eq "$(sends 'len(r)')" 1 "still exactly one message/send"

note "the user's permissions apply: an admin-only document stays hidden"
post_msg zhangsan 7002 "What about the narwhal merger plan?"
wait_sends 2
assert_not_contains "$(sends 'r[1]["text"]')" "known only to administrators" "no text of the admin-only document"

note "an unknown sender gets the polite refusal"
post_msg stranger 7003 "What shape are the cookies on Fridays?"
assert_eq "$STATUS" 200 "unknown sender → 200"
wait_sends 3
assert_eq "$(sends 'r[2]["body"]["touser"]')" stranger "the refusal goes to the stranger"
REFUSAL=$(sends 'r[2]["text"]')
[ -n "$REFUSAL" ] || fail "empty refusal"
assert_not_contains "$REFUSAL" okapi "the refusal does not answer"

note "an expired access_token is refreshed once"
curl -fsS -X POST "$FAKE/_control" -d '{"fail": 1, "kind": "wecom.send"}' >/dev/null
post_msg zhangsan 7004 "okapi cookies?"
wait_sends 5
assert_eq "$(sends 'r[3]["query"]["access_token"]')" wecom-token-1 "first try with the cached token"
assert_eq "$(sends 'r[4]["query"]["access_token"]')" wecom-token-2 "retry with a fresh token"
assert_eq "$(curl -fsS "$FAKE/_received?kind=wecom.gettoken&all=1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 2 \
    "two gettoken calls in all (the token is cached)"

note "hostile requests"
BADSIG=1 post_msg zhangsan 7005 "bad signature"
assert_eq "$STATUS" 401 "wrong msg_signature → 401"
post_msg zhangsan 7006 "bad padding" 0
assert_eq "$STATUS" 400 "pad byte 0 → 400"
post_msg zhangsan 7007 "bad padding" 33
assert_eq "$STATUS" 400 "pad byte 33 → 400"
http POST "/hooks/wecom?msg_signature=$SIG&timestamp=$TS&nonce=1234" --data-binary 'not xml'
assert_eq "$STATUS" 400 "malformed envelope → 400"
sleep 1
assert_eq "$(sends 'len(r)')" 5 "no message/send for rejected requests"

srv_stop
finish
