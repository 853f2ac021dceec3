#!/bin/bash
# server_llm.sh — streamed answers (POST /api/v1/ask, SSE) from `zhiku serve`
# against the fake model server replaying real provider transcripts
# (OpenAI, Ollama compatible and native, llama.cpp, vLLM, DeepSeek with
# reasoning_content): token events then one done whose answer is their
# concatenation, markers only whole and valid, reasoning never shown,
# citations opening real passages; then faults: 500 and 429 fall over to the
# next provider and, when every provider fails before any text, to the
# extractive answer; a first-token timeout; a mid-stream drop ends in
# `event: error` (never a half answer as done); a client that goes away
# mid-stream makes the server abandon the upstream request.
# Run: tests/run.sh build server_llm
ROOT="${ZHIKU_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$ROOT/tests/integration/lib.sh"
source "$ROOT/tests/integration/lib_server.sh"

D=$PWD/data
Z=(--data-dir "$D")
mkdir -p docs
printf '# Salaries\n\nThe zebrafish salary band for engineers is confidential.\nSalary reviews for the zebrafish team happen every March.\n' > docs/salary.md
printf 'The cafeteria serves okapi-shaped cookies on Fridays.\n' > docs/cafe.txt
zk "${Z[@]}" user add alice
zk "${Z[@]}" ingest --acl everyone docs
zk "${Z[@]}" token create --user alice --scopes search,ask
T=$OUT
Q="What is the zebrafish salary band?"

fake_start A
fake_start B
srv_start "$D" ZHIKU_LLM_PROVIDERS=local,backup \
    ZHIKU_LLM_LOCAL_BASE_URL="http://127.0.0.1:$A_PORT/v1" ZHIKU_LLM_LOCAL_MODEL=fake-local \
    ZHIKU_LLM_LOCAL_FIRST_TOKEN_TIMEOUT_MS=1500 \
    ZHIKU_LLM_BACKUP_BASE_URL="http://127.0.0.1:$B_PORT/v1" ZHIKU_LLM_BACKUP_MODEL=fake-backup \
    ZHIKU_LLM_REWRITE_FOLLOWUPS=false
expect 200 GET /api/v1/me -H "$(bearer "$T")"
assert_contains "$BODY" '"llm":true' "the server runs with a model"

# check_stream WHAT — the invariants every done stream keeps
check_stream() {
    [ "$(sse_get order_ok)" = 1 ] || { cat stream.txt; fail "$1: events out of order"; }
    assert_eq "$(sse_get terminal)" done "$1: ends with done"
    assert_eq "$(sse_get concat_eq)" 1 "$1: done answer = concatenated tokens"
    assert_eq "$(sse_get bad_token)" 0 "$1: no partial or dangling marker in any token"
    assert_eq "$(sse_get bad_marker)" 0 "$1: every [n] has citation n"
}

note "recorded transcripts, one flavor at a time"
for fl in openai ollama llamacpp vllm deepseek; do
    fake_ctl "$A_PORT" "{\"flavor\":\"$fl\",\"chat_reply\":null,\"chat_raw\":null,\"reset_stats\":true}"
    ask_stream "$T" "$Q"
    check_stream "$fl"
    assert_eq "$(sse_get provider)" local "$fl: answered by the local provider"
    assert_eq "$(fake_stats "$A_PORT" | grep -o '"chat": [0-9]*')" '"chat": 1' "$fl: one upstream call"
    assert_contains "$(fake_stats "$A_PORT")" '"stream": true' "$fl: the upstream request asked for a stream"
    case $fl in
    openai|llamacpp) assert_eq "$(sse_get answer)" '"Olá!"' "$fl: transcript text" ;;
    ollama) assert_eq "$(sse_get answer)" '"Hello there"' "$fl: transcript text" ;;
    vllm) assert_contains "$(sse_get answer)" "😊" "$fl: transcript text" ;;
    deepseek)
        # the recorded stream is cut to its first and last events: reasoning
        # only, no answer text; whatever comes out, no reasoning leaks
        note "deepseek transcript answer: $(sse_get answer) (provider $(sse_get provider))" ;;
    esac
    [ "$fl" = deepseek ] || assert_ge "$(sse_get ntokens)" 1 "$fl: token events"
done

note "Ollama native /api/chat (NDJSON)"
srv_stop
srv_start "$D" ZHIKU_LLM_PROVIDERS=local ZHIKU_LLM_LOCAL_BASE_URL="http://127.0.0.1:$A_PORT/api" \
    ZHIKU_LLM_LOCAL_MODEL=fake-local ZHIKU_LLM_REWRITE_FOLLOWUPS=false
fake_ctl "$A_PORT" '{"flavor":"ollama","reset_stats":true}'
ask_stream "$T" "$Q"
check_stream "ollama native"
assert_eq "$(sse_get answer)" '"Hello from Ollama."' "ollama native: reply text"
assert_ge "$(sse_get ntokens)" 2 "ollama native: several token events"
srv_stop
srv_start "$D" ZHIKU_LLM_PROVIDERS=local,backup \
    ZHIKU_LLM_LOCAL_BASE_URL="http://127.0.0.1:$A_PORT/v1" ZHIKU_LLM_LOCAL_MODEL=fake-local \
    ZHIKU_LLM_LOCAL_FIRST_TOKEN_TIMEOUT_MS=1500 \
    ZHIKU_LLM_BACKUP_BASE_URL="http://127.0.0.1:$B_PORT/v1" ZHIKU_LLM_BACKUP_MODEL=fake-backup \
    ZHIKU_LLM_REWRITE_FOLLOWUPS=false

note "citations split across chunks; an invalid marker never reaches the client"
fake_ctl "$A_PORT" '{"flavor":"openai","chat_chunk":3,"chat_reply":"The zebrafish salary band is confidential [1]. Reviews happen in March [1]. Nothing else is known [7]."}'
ask_stream "$T" "$Q"
check_stream "cited reply"
assert_ge "$(sse_get ntokens)" 5 "several token events"
assert_not_contains "$(cat stream.txt)" "[7]" "the invalid marker [7] is never streamed"
assert_contains "$(sse_get answer)" "confidential [1]." "the valid marker is kept"
assert_ge "$(sse_get ncitations)" 1 "citations"
for dc in $(sse_get cites); do
    expect 200 GET "/api/v1/documents/${dc%%:*}/chunks/${dc##*:}" -H "$(bearer "$T")"
    assert_contains "$BODY" "zebrafish salary band" "citation $dc opens the cited passage"
done

note "DeepSeek reasoning_content never reaches the answer"
ds() { printf 'data: {"id":"d","object":"chat.completion.chunk","created":1,"model":"deepseek-reasoner","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}\n\n' "$1" "$2"; }
RAW=$(ds '{"role":"assistant","content":null,"reasoning_content":""}' null
      ds '{"content":null,"reasoning_content":"SECRET-THINKING: the user asks [2] about"}' null
      ds '{"content":null,"reasoning_content":" salaries; look at source 1."}' null
      ds '{"content":"The zebrafish salary band","reasoning_content":null}' null
      ds '{"content":" is confidential [1].","reasoning_content":null}' null
      ds '{"content":"","reasoning_content":null}' '"stop"'
      printf 'data: [DONE]\n\n')
fake_ctl "$A_PORT" "$(python3 -c 'import json,sys; print(json.dumps({"chat_raw": sys.argv[1] + "\n\n", "chat_reply": None}))' "$RAW")"
ask_stream "$T" "$Q"
check_stream "deepseek reasoning"
assert_not_contains "$(cat stream.txt)" "SECRET-THINKING" "reasoning is never streamed"
assert_not_contains "$(cat stream.txt)" "look at source" "no reasoning in the done answer"
assert_eq "$(sse_get answer)" '"The zebrafish salary band is confidential [1]."' "deepseek: the answer text only"
fake_ctl "$A_PORT" '{"chat_raw":null,"chat_reply":"The zebrafish salary band is confidential [1].","chat_chunk":8}'

note "upstream 500 and 429: the next provider answers"
for code in 500 429; do
    fake_ctl "$A_PORT" "{\"mode\":\"$code\",\"count\":1,\"reset_stats\":true}"
    fake_ctl "$B_PORT" '{"chat_reply":"Backup says: the band is confidential [1].","reset_stats":true}'
    ask_stream "$T" "$Q"
    check_stream "local $code"
    assert_eq "$(sse_get provider)" backup "local answered $code → backup answered"
    assert_contains "$(sse_get answer)" "Backup says" "the backup's text"
    assert_contains "$(fake_stats "$A_PORT")" '"faults": 1' "local saw the fault"
done

note "every provider fails before any text: the extractive answer"
fake_ctl "$A_PORT" '{"mode":"500","count":0}'
fake_ctl "$B_PORT" '{"mode":"429","count":0}'
ask_stream "$T" "$Q"
check_stream "all providers down"
assert_eq "$(sse_get provider)" extractive "extractive fallback"
assert_contains "$(sse_get answer)" "confidential" "the extractive answer quotes the source"
assert_ge "$(sse_get ncitations)" 1 "the extractive answer is cited"
fake_ctl "$A_PORT" '{"mode":"ok"}'
fake_ctl "$B_PORT" '{"mode":"ok"}'

note "first-token timeout (local waits 4 s, its limit is 1.5 s)"
fake_ctl "$A_PORT" '{"latency_ms":4000}'
ask_stream "$T" "$Q"
check_stream "first-token timeout"
assert_eq "$(sse_get provider)" backup "a slow local provider is skipped for the backup"
[ "$ELAPSED" -lt 3800 ] || fail "the answer took ${ELAPSED} ms: the first-token timeout did not cut the wait"
ok "answered after ${ELAPSED} ms (< 3.8 s)"
fake_ctl "$A_PORT" '{"latency_ms":0}'

note "mid-stream disconnect after some text: error, not a half answer"
fake_ctl "$A_PORT" '{"mode":"midstream","count":1,"chat_chunk":40,"chat_reply":"The zebrafish salary band is confidential for all engineers, as the handbook says [1]. More text follows here."}'
ask_stream "$T" "$Q"
[ "$(sse_get order_ok)" = 1 ] || { cat stream.txt; fail "midstream: events out of order"; }
assert_ge "$(sse_get ntokens)" 1 "some text was streamed before the drop"
assert_eq "$(sse_get terminal)" error "a mid-stream drop ends in event: error"
assert_eq "$(sse_get error_code)" unavailable "the error event carries code unavailable"
assert_not_contains "$(cat stream.txt)" "event: done" "no half answer as done"
assert_not_contains "$(cat stream.txt)" "Backup says" "no second provider after text was streamed"
expect 200 GET /healthz

note "non-streamed ask with the model"
expect 200 POST /api/v1/ask -H "$(bearer "$T")" -H 'Content-Type: application/json' -d "{\"question\":\"$Q\"}"
assert_contains "$BODY" '"provider":"local"' "JSON ask answered by the model"
assert_contains "$BODY" '"n":1' "JSON ask cited"
srv_stop

note "a client that leaves mid-stream: the upstream request is abandoned"
slow_llm_start
srv_start "$D" ZHIKU_LLM_PROVIDERS=local ZHIKU_LLM_LOCAL_BASE_URL="http://127.0.0.1:$SLOW_PORT/v1" \
    ZHIKU_LLM_LOCAL_MODEL=slow ZHIKU_LLM_REWRITE_FOLLOWUPS=false
# leave as soon as tokens arrive (however slow the server is: valgrind)
curl -sN --max-time 30 -H "$(bearer "$T")" -H 'Content-Type: application/json' \
    -d "{\"question\":\"$Q\",\"stream\":true}" "$BASE/api/v1/ask" >partial.txt &
CURL_PID=$!
for _ in $(seq 300); do grep -q "event: token" partial.txt 2>/dev/null && break; sleep 0.1; done
sleep 0.3
kill "$CURL_PID" 2>/dev/null; wait "$CURL_PID" 2>/dev/null || true
assert_contains "$(cat partial.txt)" "event: token" "tokens were arriving when the client left"
closed=""
for _ in $(seq 40); do
    closed=$(grep -o 'closed [0-9]*\|complete' slow_llm.events 2>/dev/null || true)
    [ -n "$closed" ] && break
    sleep 0.1
done
case "$closed" in
closed*) ok "the upstream stream was abandoned ($closed chunks of 100, ~$(( ${closed#closed } / 10 )) s)" ;;
complete) fail "the upstream answer ran to the end although the client had left" ;;
*) fail "the upstream was still streaming 4 s after the client left (events: $(cat slow_llm.events))" ;;
esac
expect 200 GET /healthz
srv_stop
finish
