#!/usr/bin/env python3
"""Fake OpenAI-compatible server for zhiku's tests (python3 standard library only).

Serves, on 127.0.0.1 only:
  POST /v1/embeddings        deterministic bag-of-words vectors (texts sharing words
                             are similar), shaped like the recorded transcripts of
                             --flavor (openai | ollama | llamacpp | vllm)
  POST /v1/chat/completions  replays the recorded transcript of --flavor
                             (openai, ollama, llamacpp, vllm, deepseek), SSE when
                             the request says "stream": true
  POST /api/chat             Ollama native NDJSON stream of the reply
  POST /v1/rerank            Jina/llama.cpp-shaped scores from the fake embeddings
                             (or TEI's bare array when "rerank_shape": "tei")
  POST /_control             {"mode": "ok|429|500|timeout|malformed|drop|401",
                              "count": N (0 = until changed), "latency_ms": M,
                              "retry_after": S, "hang_ms": H, "shuffle": bool,
                              "dim": D, "reset_stats": bool,
                              "chat_reply": TEXT (null = the recorded transcript),
                              "chat_chunk": N (bytes per streamed event), "rerank_shape",
                              "flavor": F, "nostream": bool (answer JSON even to
                              stream requests, as some proxies do), "chat_raw": TEXT
                              (sent verbatim as the event stream)}
                             mode "midstream" streams the first events then drops.
  GET  /_stats               request counters (JSON)

Faults apply to /v1/embeddings, /v1/chat/completions and /v1/rerank: the next
`count` requests get `mode`, then the server answers normally again.

  python3 tests/fake_openai/server.py --port 0 --portfile FILE [--flavor F]
      [--dim 64] [--mode M --count N] [--latency-ms M] [--api-key KEY] [--shuffle]

Recorded bodies live in samples/ (see samples/SOURCES for where each came from).
"""
import argparse
import hashlib
import json
import math
import os
import random
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(HERE, "samples")
FLAVORS = ("openai", "ollama", "llamacpp", "vllm", "deepseek")


def sample(name):
    with open(os.path.join(SAMPLES, name), "rb") as f:
        return f.read()


class State:
    """Fault plan and counters, shared by the handler threads."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.flavor = args.flavor
        self.dim = args.dim
        self.api_key = args.api_key
        self.mode = args.mode
        self.count = args.count
        self.latency_ms = args.latency_ms
        self.retry_after = None
        self.hang_ms = 3000
        self.shuffle = args.shuffle
        self.chat_reply = None
        self.chat_chunk = 4
        self.rerank_shape = "jina"
        self.nostream = False
        self.chat_raw = None
        self.reset_stats()

    def reset_stats(self):
        self.stats = {"embeddings": 0, "inputs": 0, "batch_sizes": [], "chat": 0,
                      "rerank": 0, "faults": 0, "inflight": 0, "max_inflight": 0,
                      "last_auth": None, "last_model": None, "control": 0,
                      "last_chat": None}

    def take_fault(self):
        """The fault for this request ('ok' when none)."""
        with self.lock:
            if self.mode == "ok":
                return "ok"
            mode = self.mode
            if self.count > 0:
                self.count -= 1
                if self.count == 0:
                    self.mode = "ok"
            self.stats["faults"] += 1
            return mode


_word_re = re.compile(r"\w+", re.UNICODE)


def word_vector(word, dim):
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
    rnd = random.Random(seed)
    return [rnd.gauss(0.0, 1.0) for _ in range(dim)]


def embed_text(text, dim):
    words = _word_re.findall(text.lower()) or [text]
    v = [0.0] * dim
    for w in words:
        for i, x in enumerate(word_vector(w, dim)):
            v[i] += x
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [round(x / n, 7) for x in v]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"
    st = None  # State, set in main()

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing -----------------------------------------------------------
    def send_bytes(self, status, body, ctype="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj, headers=None):
        self.send_bytes(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), headers=headers)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        try:
            return json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            return None

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def apply_fault(self, fault):
        """Answer with the fault; False when the request should proceed."""
        st = self.st
        if fault == "ok":
            return False
        if fault == "401":
            self.send_bytes(401, sample("error_openai_401.json"))
        elif fault == "404":
            self.send_bytes(404, sample("error_openai_404.json"))
        elif fault == "429":
            hdr = {}
            if st.retry_after is not None:
                hdr["Retry-After"] = str(st.retry_after)
            self.send_bytes(429, sample("error_openai_429.json"), headers=hdr)
        elif fault == "500":
            self.send_bytes(500, sample("error_openai_500.json"))
        elif fault == "malformed":
            self.send_bytes(200, b'{"object":"list","data":[{"object":"embedding","embedding":[0.1,')
        elif fault == "drop":
            self.drop()
        elif fault == "midstream":
            return False
        elif fault == "timeout":
            time.sleep(st.hang_ms / 1000.0)
            self.drop()
        else:
            self.send_json(500, {"error": {"message": "unknown fault " + fault, "type": "server_error"}})
        return True

    def check_auth(self):
        st = self.st
        auth = self.headers.get("Authorization")
        with st.lock:
            st.stats["last_auth"] = auth
        if st.api_key and auth != "Bearer " + st.api_key:
            self.send_bytes(401, sample("error_openai_401.json"))
            return False
        return True

    # ---- routes ---------------------------------------------------------------
    def do_GET(self):
        if self.path == "/_stats":
            with self.st.lock:
                self.send_json(200, self.st.stats)
        elif self.path in ("/health", "/v1/health"):
            self.send_json(200, {"status": "ok"})
        else:
            self.send_json(404, {"error": {"message": "no route " + self.path, "type": "not_found_error"}})

    def do_POST(self):
        st = self.st
        path = self.path.split("?")[0]
        if path == "/_control":
            return self.control()
        req = self.read_body()
        route = {"/v1/embeddings": "embeddings", "/embeddings": "embeddings",
                 "/v1/chat/completions": "chat", "/chat/completions": "chat",
                 "/v1/rerank": "rerank", "/rerank": "rerank", "/api/chat": "native_chat"}.get(path)
        if route is None:
            return self.send_json(404, {"error": {"message": "no route " + path, "type": "not_found_error"}})
        with st.lock:
            st.stats["chat" if route == "native_chat" else route] += 1
            if route in ("chat", "native_chat"):
                st.stats["last_chat"] = req
            st.stats["inflight"] += 1
            st.stats["max_inflight"] = max(st.stats["max_inflight"], st.stats["inflight"])
            latency = st.latency_ms
        try:
            if latency:
                time.sleep(latency / 1000.0)
            fault = st.take_fault()
            if self.apply_fault(fault):
                return
            self.fault = fault
            if not self.check_auth():
                return
            if req is None:
                return self.send_json(400, {"error": {"message": "request body is not JSON",
                                                      "type": "invalid_request_error", "param": None, "code": None}})
            getattr(self, route)(req)
        finally:
            with st.lock:
                st.stats["inflight"] -= 1

    def control(self):
        st = self.st
        req = self.read_body() or {}
        with st.lock:
            st.stats["control"] += 1
            if req.get("reset_stats"):
                st.reset_stats()
            if "mode" in req:
                st.mode = str(req["mode"])
                st.count = int(req.get("count", 0))
            for k in ("latency_ms", "hang_ms", "dim"):
                if k in req:
                    setattr(st, k, int(req[k]))
            if "retry_after" in req:
                st.retry_after = req["retry_after"]
            if "shuffle" in req:
                st.shuffle = bool(req["shuffle"])
            if "chat_reply" in req:
                st.chat_reply = req["chat_reply"]
            if "chat_chunk" in req:
                st.chat_chunk = max(1, int(req["chat_chunk"]))
            if "rerank_shape" in req:
                st.rerank_shape = str(req["rerank_shape"])
            if "flavor" in req:
                st.flavor = str(req["flavor"])
            if "nostream" in req:
                st.nostream = bool(req["nostream"])
            if "chat_raw" in req:
                st.chat_raw = req["chat_raw"]
            state = {"mode": st.mode, "count": st.count, "latency_ms": st.latency_ms,
                     "dim": st.dim, "shuffle": st.shuffle}
        self.send_json(200, state)

    def embeddings(self, req):
        st = self.st
        inp = req.get("input")
        if isinstance(inp, str):
            inp = [inp]
        if not isinstance(inp, list) or not inp or not all(isinstance(x, str) and x for x in inp):
            return self.send_json(400, {"error": {"message": "'input' must be a non-empty string or array of non-empty strings",
                                                  "type": "invalid_request_error", "param": "input", "code": None}})
        model = req.get("model") or "fake-embed"
        dim = int(req.get("dimensions") or st.dim)
        with st.lock:
            st.stats["inputs"] += len(inp)
            st.stats["batch_sizes"].append(len(inp))
            st.stats["last_model"] = model
            shuffle = st.shuffle
            flavor = st.flavor
        name = "embeddings_%s.json" % (flavor if flavor in ("openai", "ollama", "llamacpp", "vllm") else "openai")
        tmpl = json.loads(sample(name))
        item_keys = list(tmpl["data"][0].keys())
        items = []
        for i, text in enumerate(inp):
            vec = embed_text(text, dim)
            items.append({k: (i if k == "index" else vec if k == "embedding" else tmpl["data"][0][k])
                          for k in item_keys})
        if shuffle:
            items.reverse()
        ntok = sum(len(_word_re.findall(t)) or 1 for t in inp)
        out = {}
        for k, v in tmpl.items():
            if k == "data":
                out[k] = items
            elif k == "model":
                out[k] = model
            elif k == "usage" and isinstance(v, dict):
                out[k] = {uk: (ntok if uk in ("prompt_tokens", "total_tokens") else uv) for uk, uv in v.items()}
            elif k == "created":
                out[k] = int(time.time())
            else:
                out[k] = v
        self.send_json(200, out)

    def reply_pieces(self):
        """The configured reply cut into chat_chunk-byte pieces (UTF-8 safe)."""
        st = self.st
        text, n = st.chat_reply, st.chat_chunk
        out, cur = [], ""
        for ch in text:
            if len((cur + ch).encode("utf-8")) > n and cur:
                out.append(cur)
                cur = ""
            cur += ch
        if cur:
            out.append(cur)
        return out

    def stream_events(self, events, ctype="text/event-stream"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        midstream = getattr(self, "fault", "ok") == "midstream"
        for i, ev in enumerate(events):
            if midstream and i >= 3:
                time.sleep(0.05)
                return self.drop()
            self.wfile.write(ev)
            self.wfile.flush()

    def reply_chat(self, req):
        """Stream (or return) the text set with /_control chat_reply, OpenAI-shaped."""
        model = req.get("model") or "fake-chat"
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        usage = {"prompt_tokens": 100, "completion_tokens": len(self.st.chat_reply), "total_tokens": 100 + len(self.st.chat_reply)}
        if not req.get("stream"):
            body = dict(base, object="chat.completion",
                        choices=[{"index": 0, "message": {"role": "assistant", "content": self.st.chat_reply},
                                  "finish_reason": "stop"}], usage=usage)
            return self.send_json(200, body)
        def ev(obj):
            return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"
        events = [b": keep-alive\n\n", ev(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))]
        for piece in self.reply_pieces():
            events.append(ev(dict(base, choices=[{"index": 0, "delta": {"content": piece}, "finish_reason": None}])))
        events.append(ev(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])))
        if (req.get("stream_options") or {}).get("include_usage"):
            events.append(ev(dict(base, choices=[], usage=usage)))
        events.append(b"data: [DONE]\n\n")
        self.stream_events(events)

    def native_chat(self, req):
        """Ollama native /api/chat: NDJSON, final line with done and counts."""
        model = req.get("model") or "fake-chat"
        text = self.st.chat_reply if self.st.chat_reply is not None else "Hello from Ollama."
        lines = []
        pieces = self.reply_pieces() if self.st.chat_reply is not None else ["Hello", " from", " Ollama."]
        for piece in pieces:
            lines.append({"model": model, "created_at": "2024-01-01T00:00:00Z",
                          "message": {"role": "assistant", "content": piece}, "done": False})
        lines.append({"model": model, "created_at": "2024-01-01T00:00:00Z", "message": {"role": "assistant", "content": ""},
                      "done": True, "done_reason": "stop", "prompt_eval_count": 26, "eval_count": len(text)})
        self.stream_events([json.dumps(l, ensure_ascii=False).encode("utf-8") + b"\n" for l in lines],
                           "application/x-ndjson")

    def chat(self, req):
        flavor = self.st.flavor if self.st.flavor in FLAVORS else "openai"
        if self.st.chat_raw is not None:
            return self.stream_events([self.st.chat_raw.encode("utf-8")])
        if self.st.chat_reply is not None:
            return self.reply_chat(req)
        if not req.get("stream") or self.st.nostream:
            return self.send_bytes(200, sample("chat_%s.json" % flavor))
        if flavor == "deepseek":
            ev = [json.loads(sample("chat_deepseek_first.json")), json.loads(sample("chat_deepseek_last.json"))]
            body = b"".join(b"data: " + json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                            + b"\n\n" for e in ev) + b"data: [DONE]\n\n"
        elif flavor in ("llamacpp", "vllm"):
            body = sample("chat_%s_first.sse" % flavor).rstrip(b"\n") + b"\n\n" + sample("chat_%s_last.sse" % flavor)
        else:
            body = sample("chat_%s.sse" % flavor)
        # send event by event, flushing, as a real server streams
        self.stream_events([ev for ev in re.split(rb"(?<=\n\n)", body) if ev])

    def rerank(self, req):
        st = self.st
        docs = req.get("documents")
        query = req.get("query")
        if not isinstance(query, str) or not isinstance(docs, list) or not docs:
            return self.send_json(400, {"error": {"code": 400, "message": "\"documents\" must be a non-empty array",
                                                  "type": "invalid_request_error"}})
        q = embed_text(query, st.dim)
        res = []
        for i, d in enumerate(docs):
            text = d if isinstance(d, str) else (d or {}).get("text", "")
            v = embed_text(text, st.dim)
            res.append({"index": i, "relevance_score": round(sum(a * b for a, b in zip(q, v)), 6)})
        res.sort(key=lambda r: -r["relevance_score"])
        top = req.get("top_n")
        if isinstance(top, int) and top > 0:
            res = res[:top]
        if st.rerank_shape == "tei":
            return self.send_json(200, [{"index": r["index"], "score": r["relevance_score"]} for r in res])
        tmpl = json.loads(sample("rerank_llamacpp.json"))
        tmpl["model"] = req.get("model") or tmpl["model"]
        tmpl["results"] = res
        self.send_json(200, tmpl)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--portfile")
    ap.add_argument("--flavor", default="openai", choices=FLAVORS)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--api-key")
    ap.add_argument("--shuffle", action="store_true")
    args = ap.parse_args()

    Handler.st = State(args)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if args.portfile:
        tmp = args.portfile + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.portfile)   # readers never see a half-written file
    else:
        print(port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
