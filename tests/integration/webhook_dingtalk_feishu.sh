#!/bin/bash
# webhook_dingtalk_feishu.sh — the DingTalk and Feishu adapters end to end:
# `zhiku serve` with [webhook.dingtalk] and [webhook.feishu] pointing their
# APIs at tests/fake_platforms/server.py. DingTalk requests are signed here
# (python3 hmac) the way DingTalk signs them; Feishu events are encrypted
# with the openssl CLI (python3 has no AES) and signed with sha256. Checks:
# fast 200 acks, exactly one reply per message at the fake, duplicates not
# answered again, url_verification, the polite refusal for unknown
# senders, 4xx for wrong signatures / stale timestamps / wrong tokens, the
# DingTalk OpenAPI fallback (expired, failing or refused sessionWebhook,
# the SSRF allow-list) and the Feishu token refresh.
# Run: tests/run.sh build webhook_dingtalk_feishu
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/lib_server.sh"
need openssl

DT_KEY=dingappkey
DT_SECRET='ding secret/with+chars=='
FS_ID=cli_a1b2c3
FS_SECRET=feishu-app-secret
FS_VTOKEN=vtok-9f8e7d
FS_EKEY='feishu encrypt key'

D=$PWD/data
Z=(--data-dir "$D")
mkdir -p docs
printf 'The cafeteria serves okapi-shaped cookies on Fridays.\n' > docs/cafe.txt
printf 'The narwhal merger plan is known only to administrators.\n' > docs/merger.txt

note "data: alice linked to DingTalk staff42 and Feishu ou_alice; a public and an admin-only document"
zk "${Z[@]}" user add alice
zk "${Z[@]}" ingest --acl everyone docs/cafe.txt
zk "${Z[@]}" ingest docs/merger.txt
zk "${Z[@]}" user link alice dingtalk staff42
zk "${Z[@]}" user link alice feishu ou_alice

rm -f fake.port
python3 "$ROOT/tests/fake_platforms/server.py" --port 0 --portfile "$PWD/fake.port" >fake.log 2>&1 &
on_exit_kill $!
for i in $(seq 200); do [ -s fake.port ] && break; sleep 0.05; done
[ -s fake.port ] || fail "fake platform server did not start: $(cat fake.log)"
FP=$(tr -d '\n' < fake.port)
FAKE="http://127.0.0.1:$FP"

srv_start "$D" ZHIKU_WEBHOOK_DINGTALK_APP_KEY=$DT_KEY ZHIKU_WEBHOOK_DINGTALK_APP_SECRET="$DT_SECRET" \
    ZHIKU_WEBHOOK_DINGTALK_API_BASE="$FAKE/dingtalk" \
    ZHIKU_WEBHOOK_FEISHU_APP_ID=$FS_ID ZHIKU_WEBHOOK_FEISHU_APP_SECRET=$FS_SECRET \
    ZHIKU_WEBHOOK_FEISHU_VERIFICATION_TOKEN=$FS_VTOKEN ZHIKU_WEBHOOK_FEISHU_ENCRYPT_KEY="$FS_EKEY" \
    ZHIKU_WEBHOOK_FEISHU_API_BASE="$FAKE/feishu"

# recorded KIND PYEXPR — evaluate over the recorded calls of KIND (variable r)
recorded() {
    curl -fsS "$FAKE/_received?kind=$1&all=1" | python3 -c "import json,sys; r=json.load(sys.stdin); print($2)"
}
wait_calls() {   # KIND N — until the fake has N calls of KIND (at most 30 s)
    local i
    for i in $(seq 300); do
        [ "$(recorded "$1" 'len(r)')" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "fake got $(recorded "$1" 'len(r)') $1 calls, expected $2; server log: $(tail -20 "$SRV_LOG")"
}
elapsed_ok() {   # T0 — the ack came within 2 s
    local e
    e=$(python3 -c "print(round($(date +%s.%N) - $1, 3))")
    python3 -c "import sys; sys.exit(0 if $e < 2.0 else 1)" || fail "acknowledgement took ${e}s"
    ok "acknowledged in ${e}s"
}

# ==== DingTalk ==================================================================
# dt_post STAFF MSGID TEXT [SESSION_URL] [EXPIRY_MS] — a robot callback as DingTalk sends it
DT_SIG_SECRET=$DT_SECRET
DT_TS_SHIFT_MS=0
dt_post() {
    local staff=$1 id=$2 text=$3 url=${4:-$FAKE/dingtalk/session/s-$2} expiry=${5:-}
    python3 - "$staff" "$id" "$text" "$url" "$expiry" "$DT_SIG_SECRET" "$DT_TS_SHIFT_MS" <<'PY'
import base64, hashlib, hmac, json, sys, time
staff, mid, text, url, expiry, secret, shift = sys.argv[1:]
now = int(time.time() * 1000)
ts = str(now + int(shift))
sign = base64.b64encode(hmac.new(secret.encode(), (ts + "\n" + secret).encode(), hashlib.sha256).digest()).decode()
body = {"conversationId": "cid-group-1", "atUsers": [{"dingtalkId": "$:LWCP_v1:$bot", "staffId": "robot"}],
        "chatbotCorpId": "dingcorp", "chatbotUserId": "$:LWCP_v1:$bot", "msgId": mid, "senderNick": "someone",
        "isAdmin": False, "senderStaffId": staff,
        "sessionWebhookExpiredTime": int(expiry) if expiry else now + 5400000,
        "createAt": now, "senderCorpId": "dingcorp", "conversationType": "2", "senderId": "$:LWCP_v1:$s",
        "conversationTitle": "KB group", "isInAtList": True, "sessionWebhook": url,
        "text": {"content": " " + text}, "robotCode": "dingrobot", "msgtype": "text"}
open("dt_body.json", "w").write(json.dumps(body, ensure_ascii=False))
open("dt_headers", "w").write("timestamp: %s\nsign: %s\n" % (ts, sign))
PY
    local t0
    t0=$(date +%s.%N)
    http POST /hooks/dingtalk -H 'Content-Type: application/json; charset=utf-8' -H @dt_headers --data-binary @dt_body.json
    [ "$STATUS" != 200 ] || elapsed_ok "$t0"
}

note "DingTalk: a signed group message from a linked user → {} at once, one sessionWebhook reply"
dt_post staff42 dmsg-1 "What shape are the cookies on Fridays?"
assert_eq "$STATUS" 200 "signed callback → 200"
assert_eq "$BODY" "{}" "acknowledged with {}"
wait_calls dingtalk.session 1
assert_eq "$(recorded dingtalk.session 'r[0]["path"]')" /dingtalk/session/s-dmsg-1 "posted to the message's sessionWebhook"
assert_eq "$(recorded dingtalk.session 'r[0]["body"]["msgtype"]')" markdown "markdown reply"
assert_eq "$(recorded dingtalk.session 'r[0]["body"]["at"]["atUserIds"][0]')" staff42 "the sender is @-mentioned in the group"
assert_contains "$(recorded dingtalk.session 'r[0]["text"]')" okapi "the answer cites the cafeteria document"
assert_eq "$(recorded dingtalk.session 'r[0]["headers"].get("authorization", "")')" "" "no credentials sent to the sessionWebhook"

note "DingTalk: the same msgId again → 200, no second reply"
dt_post staff42 dmsg-1 "What shape are the cookies on Fridays?"
assert_eq "$STATUS" 200 "duplicate → 200"
sleep 2
assert_eq "$(recorded dingtalk.session 'len(r)')" 1 "still exactly one reply"

note "DingTalk: the user's permissions apply"
dt_post staff42 dmsg-2 "What about the narwhal merger plan?"
wait_calls dingtalk.session 2
assert_not_contains "$(recorded dingtalk.session 'r[1]["text"]')" "known only to administrators" "no text of the admin-only document"

note "DingTalk: an unknown sender gets the polite refusal"
dt_post staff99 dmsg-3 "What shape are the cookies on Fridays?"
assert_eq "$STATUS" 200 "unknown sender → 200"
wait_calls dingtalk.session 3
REFUSAL=$(recorded dingtalk.session 'r[2]["text"]')
assert_contains "$REFUSAL" "staff99" "the refusal names the unlinked id"
assert_not_contains "$REFUSAL" okapi "the refusal does not answer"

note "DingTalk: expired sessionWebhook → robot OpenAPI (token + groupMessages/send)"
dt_post staff42 dmsg-4 "okapi cookies?" "$FAKE/dingtalk/session/old" $(( $(date +%s) * 1000 - 60000 ))
assert_eq "$STATUS" 200 "→ 200"
wait_calls dingtalk.send 1
assert_eq "$(recorded dingtalk.send 'r[0]["path"]')" /dingtalk/v1.0/robot/groupMessages/send "group send API"
assert_eq "$(recorded dingtalk.send 'r[0]["headers"]["x-acs-dingtalk-access-token"]')" ding-token-1 "with the fetched token"
assert_eq "$(recorded dingtalk.send 'r[0]["body"]["openConversationId"]')" cid-group-1 "to the conversation"
assert_eq "$(recorded dingtalk.send 'r[0]["body"]["robotCode"]')" dingrobot "as the message's robot"
assert_contains "$(recorded dingtalk.send 'r[0]["text"]')" okapi "the answer"
assert_eq "$(recorded dingtalk.token 'r[0]["body"]["appKey"]')" $DT_KEY "accessToken with the app key"
assert_eq "$(recorded dingtalk.session 'len(r)')" 3 "the expired sessionWebhook was not called"

note "DingTalk: a failing sessionWebhook → OpenAPI (cached token)"
curl -fsS -X POST "$FAKE/_control" -d '{"fail": 1, "kind": "dingtalk.session"}' >/dev/null
dt_post staff42 dmsg-5 "okapi cookies?"
wait_calls dingtalk.send 2
assert_eq "$(recorded dingtalk.session 'len(r)')" 4 "the sessionWebhook was tried once"
assert_eq "$(recorded dingtalk.token 'len(r)')" 1 "the access token is cached"

note "DingTalk: SSRF — a sessionWebhook on another host is never called"
dt_post staff42 dmsg-6 "okapi cookies?" "http://localhost:$FP/dingtalk/session/ssrf"
assert_eq "$STATUS" 200 "→ 200 (answered through the OpenAPI)"
wait_calls dingtalk.send 3
assert_eq "$(recorded dingtalk.session '[e["path"] for e in r].count("/dingtalk/session/ssrf")')" 0 "the foreign URL was not called"

note "DingTalk: hostile requests"
DT_SIG_SECRET='not the secret' dt_post staff42 dmsg-7 "okapi?"
assert_eq "$STATUS" 401 "wrong sign → 401"
DT_TS_SHIFT_MS=-3700000 dt_post staff42 dmsg-8 "okapi?"
assert_eq "$STATUS" 401 "timestamp more than an hour old → 401"
http POST /hooks/dingtalk --data-binary '{}'
assert_eq "$STATUS" 401 "no headers → 401"
dt_post staff42 dmsg-9 "okapi?"
http POST /hooks/dingtalk -H @dt_headers --data-binary '{"msgId": '
assert_eq "$STATUS" 400 "signed but malformed JSON → 400"
wait_calls dingtalk.session 5   # dmsg-9's own reply
sleep 1
assert_eq "$(recorded dingtalk.session 'len(r)') $(recorded dingtalk.send 'len(r)')" "5 3" "no replies to rejected requests"

# ==== Feishu ====================================================================
# fs_envelope JSON_FILE → fs_body.json = {"encrypt": base64(IV || AES-256-CBC(SHA256(key), IV, PKCS#7))}
fs_envelope() {
    local key iv
    key=$(printf '%s' "$FS_EKEY" | openssl dgst -sha256 -r | cut -d' ' -f1)
    iv=$(openssl rand -hex 16)
    { python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$iv"
      openssl enc -aes-256-cbc -K "$key" -iv "$iv" -in "$1"; } > fs_raw.bin
    printf '{"encrypt":"%s"}' "$(base64 -w0 fs_raw.bin)" > fs_body.json
}
# fs_post [--unsigned] — POST fs_body.json, signed as Feishu signs it
FS_SIG_KEY=$FS_EKEY
fs_post() {
    local hdr=()
    if [ "${1:-}" != --unsigned ]; then
        local ts nonce sig
        ts=$(date +%s) nonce=n$RANDOM$RANDOM
        sig=$( { printf '%s%s%s' "$ts" "$nonce" "$FS_SIG_KEY"; cat fs_body.json; } | sha256sum | cut -d' ' -f1)
        hdr=(-H "X-Lark-Request-Timestamp: $ts" -H "X-Lark-Request-Nonce: $nonce" -H "X-Lark-Signature: $sig")
    fi
    local t0
    t0=$(date +%s.%N)
    http POST /hooks/feishu -H 'Content-Type: application/json; charset=utf-8' "${hdr[@]}" --data-binary @fs_body.json
    [ "$STATUS" != 200 ] || elapsed_ok "$t0"
}
# fs_event OPEN_ID EVENT_ID MESSAGE_ID TEXT [TOKEN] → fs_plain.json (im.message.receive_v1)
fs_event() {
    python3 - "$1" "$2" "$3" "$4" "${5:-$FS_VTOKEN}" <<'PY'
import json, sys, time
oid, eid, mid, text, token = sys.argv[1:]
ms = str(int(time.time() * 1000))
ev = {"schema": "2.0",
      "header": {"event_id": eid, "event_type": "im.message.receive_v1", "create_time": ms, "token": token,
                 "app_id": "cli_a1b2c3", "tenant_key": "tk"},
      "event": {"sender": {"sender_id": {"union_id": "on_x", "user_id": "ux", "open_id": oid}, "sender_type": "user",
                           "tenant_key": "tk"},
                "message": {"message_id": mid, "root_id": "", "parent_id": "", "create_time": ms,
                            "chat_id": "oc_group1", "chat_type": "group", "message_type": "text",
                            "content": json.dumps({"text": "@_user_1 " + text}, ensure_ascii=False),
                            "mentions": [{"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "zhiku",
                                          "tenant_key": "tk"}]}}}
open("fs_plain.json", "w").write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")))
PY
}

note "Feishu: url_verification (encrypted, unsigned as the console sends it) → the challenge"
printf '{"challenge":"chal-7731","token":"%s","type":"url_verification"}' "$FS_VTOKEN" > fs_plain.json
fs_envelope fs_plain.json
fs_post --unsigned
assert_eq "$STATUS" 200 "url_verification → 200"
assert_eq "$BODY" '{"challenge":"chal-7731"}' "the challenge echoed"
printf '{"challenge":"chal-x","token":"wrong","type":"url_verification"}' > fs_plain.json
fs_envelope fs_plain.json
fs_post --unsigned
assert_eq "$STATUS" 401 "url_verification with a wrong token → 401"

note "Feishu: an encrypted, signed message from a linked user → success at once, one reply"
fs_event ou_alice ev-1 om_msg1 "What shape are the cookies on Fridays?"
fs_envelope fs_plain.json
fs_post
assert_eq "$STATUS" 200 "event → 200"
assert_eq "$BODY" '{"msg":"success"}' "acknowledged"
wait_calls feishu.reply 1
assert_eq "$(recorded feishu.reply 'r[0]["path"]')" /feishu/open-apis/im/v1/messages/om_msg1/reply "reply to the message"
assert_eq "$(recorded feishu.reply 'r[0]["headers"]["authorization"]')" "Bearer t-fake-1" "with the tenant token"
assert_eq "$(recorded feishu.reply 'r[0]["body"]["msg_type"]')" text "a text message"
assert_contains "$(recorded feishu.reply 'r[0]["text"]')" okapi "the answer cites the cafeteria document"
assert_eq "$(recorded feishu.token 'r[0]["body"]["app_id"]')" $FS_ID "tenant token for the app"

note "Feishu: the same event_id again (a retry) → 200, no second reply"
fs_post
assert_eq "$STATUS" 200 "retry → 200"
sleep 2
assert_eq "$(recorded feishu.reply 'len(r)')" 1 "still exactly one reply"

note "Feishu: an unknown sender gets the polite refusal"
fs_event ou_stranger ev-2 om_msg2 "What shape are the cookies on Fridays?"
fs_envelope fs_plain.json
fs_post
wait_calls feishu.reply 2
assert_contains "$(recorded feishu.reply 'r[1]["text"]')" ou_stranger "the refusal names the unlinked id"
assert_not_contains "$(recorded feishu.reply 'r[1]["text"]')" okapi "the refusal does not answer"

note "Feishu: a stale tenant token is refreshed once"
curl -fsS -X POST "$FAKE/_control" -d '{"fail": 1, "kind": "feishu.reply"}' >/dev/null
fs_event ou_alice ev-3 om_msg3 "okapi cookies?"
fs_envelope fs_plain.json
fs_post
wait_calls feishu.reply 4
assert_eq "$(recorded feishu.reply 'r[3]["headers"]["authorization"]')" "Bearer t-fake-2" "retried with a fresh token"
assert_eq "$(recorded feishu.token 'len(r)')" 2 "two token calls in all (cached otherwise)"

note "Feishu: hostile requests"
fs_event ou_alice ev-4 om_msg4 "okapi?"
fs_envelope fs_plain.json
FS_SIG_KEY='other key' fs_post
assert_eq "$STATUS" 401 "wrong X-Lark-Signature → 401"
fs_post --unsigned
assert_eq "$STATUS" 401 "unsigned event → 401"
fs_event ou_alice ev-5 om_msg5 "okapi?" wrong-token
fs_envelope fs_plain.json
fs_post
assert_eq "$STATUS" 401 "wrong verification token → 401"
printf '{"schema":"2.0","header":' > fs_plain.json
fs_envelope fs_plain.json
fs_post
assert_eq "$STATUS" 400 "malformed decrypted JSON → 400"
printf '{"encrypt":"%s"}' "$(head -c 24 /dev/urandom | base64 -w0)" > fs_body.json
fs_post
assert_eq "$STATUS" 400 "truncated ciphertext → 400"
sleep 1
assert_eq "$(recorded feishu.reply 'len(r)')" 4 "no replies to rejected requests"

srv_stop
finish
