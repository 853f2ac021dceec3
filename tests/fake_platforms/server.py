#!/usr/bin/env python3
"""Fake chat platforms for zhiku's webhook tests (python3 standard library only).

Plays the OUTGOING APIs a chat bot calls to answer, records every call, and
lets a test read what was received. Point a [webhook.X] api_base at it:

  Slack     ([webhook.slack]    api_base = http://127.0.0.1:PORT/slack/api)
    POST /slack/api/chat.postMessage        Bearer token; {"channel","text","thread_ts"?}
                                            -> {"ok":true,"channel":..,"ts":".."}
  WeCom     ([webhook.wecom]    api_base = http://127.0.0.1:PORT/wecom)
    GET  /wecom/cgi-bin/gettoken?corpid=&corpsecret=
                                            -> {"errcode":0,"access_token":"wecom-token-N","expires_in":7200}
    POST /wecom/cgi-bin/message/send?access_token=T
                                            -> {"errcode":0,"errmsg":"ok"}; a token that is not
                                               the latest one issued -> {"errcode":42001}
  DingTalk  ([webhook.dingtalk] api_base = http://127.0.0.1:PORT/dingtalk)
    POST /dingtalk/v1.0/oauth2/accessToken  {"appKey","appSecret"} -> {"accessToken":"ding-token-N","expireIn":7200}
    POST /dingtalk/session/ANYTHING         a sessionWebhook URL (put http://127.0.0.1:PORT/dingtalk/session/xyz
                                            in the incoming message) -> {"errcode":0,"errmsg":"ok"}
    POST /dingtalk/v1.0/robot/groupMessages/send, /dingtalk/v1.0/robot/oToMessages/batchSend
                                            header x-acs-dingtalk-access-token -> {"processQueryKey":"q"}
  Feishu    ([webhook.feishu]   api_base = http://127.0.0.1:PORT/feishu)
    POST /feishu/open-apis/auth/v3/tenant_access_token/internal {"app_id","app_secret"}
                                            -> {"code":0,"tenant_access_token":"t-fake-N","expire":7200}
    POST /feishu/open-apis/im/v1/messages/{message_id}/reply  Bearer t-fake-N
                                            -> {"code":0,"data":{"message_id":"om_reply_N"}}; a stale
                                               token -> {"code":99991663}
  (The prefixes /slack, /wecom, /dingtalk, /feishu are optional: the bare
  platform paths work too, e.g. /api/chat.postMessage or /cgi-bin/gettoken.)

Test control:
  GET  /_received[?kind=K][&all=1]  JSON list of recorded calls, oldest first. By default
                                only the replies (kinds slack.post, wecom.send, dingtalk.session,
                                dingtalk.send, feishu.reply); all=1 adds the token calls
                                (wecom.gettoken, dingtalk.token, feishu.token). Each entry:
                                {"kind","method","path","query":{k:v},"headers":{lower-case k:v},
                                 "body":<parsed JSON or null>,"raw":"<body text>","text":"<the
                                 reply's text, extracted per platform>","t":<unix time float>}
  POST /_reset                  forget everything recorded (token counters keep counting)
  POST /_control                {"fail": N, "kind": K?, "status": S?} — the next N calls (of kind K,
                                or of any reply kind) fail: the platform's error JSON
                                (Slack ok:false, WeCom errcode 42001 "access_token expired",
                                Feishu code 99991663, DingTalk errcode 300001) with HTTP S (default 200)
  GET  /_health                 "ok"

  python3 tests/fake_platforms/server.py --port 0 --portfile FILE
      [--slack-token xoxb-...]     (when set, chat.postMessage requires exactly this bearer)
"""
import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

REPLY_KINDS = ("slack.post", "wecom.send", "dingtalk.session", "dingtalk.send", "feishu.reply")


class State:
    def __init__(self, slack_token):
        self.lock = threading.Lock()
        self.received = []
        self.slack_token = slack_token
        self.wecom_n = 0
        self.ding_n = 0
        self.feishu_n = 0
        self.fail_n = 0
        self.fail_kind = None
        self.fail_status = 200
        self.msg_n = 0

    def take_failure(self, kind):
        with self.lock:
            if self.fail_n > 0 and (self.fail_kind == kind or (self.fail_kind is None and kind in REPLY_KINDS)):
                self.fail_n -= 1
                return True
            return False


STATE = None


def strip_prefix(path):
    for p in ("/slack", "/wecom", "/dingtalk", "/feishu"):
        if path.startswith(p + "/"):
            return path[len(p):]
    return path


def reply_text(kind, body):
    try:
        if kind == "slack.post":
            return body.get("text", "")
        if kind == "wecom.send":
            if body.get("msgtype") == "markdown":
                return body["markdown"]["content"]
            return body["text"]["content"]
        if kind == "dingtalk.session":
            if body.get("msgtype") == "markdown":
                return body["markdown"]["text"]
            return body["text"]["content"]
        if kind == "dingtalk.send":
            return json.loads(body["msgParam"]).get("content") or json.loads(body["msgParam"]).get("text", "")
        if kind == "feishu.reply":
            c = json.loads(body["content"])
            if "text" in c:
                return c["text"]
            return json.dumps(c, ensure_ascii=False)
    except Exception:
        return ""
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, obj, status=200):
        data = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self, kind, raw, query):
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = {
            "kind": kind,
            "method": self.command,
            "path": urlsplit(self.path).path,
            "query": {k: v[0] for k, v in query.items()},
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "raw": raw.decode("utf-8", "replace"),
            "text": reply_text(kind, body) if isinstance(body, dict) else "",
            "t": time.time(),
        }
        with STATE.lock:
            STATE.received.append(entry)
        return body

    def bearer(self):
        a = self.headers.get("Authorization", "")
        return a[7:] if a.startswith("Bearer ") else ""

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        u = urlsplit(self.path)
        query = parse_qs(u.query, keep_blank_values=True)
        raw = self.read_body() if method == "POST" else b""
        path = u.path

        # ---- control -------------------------------------------------------
        if path == "/_health":
            return self.send_json("ok")
        if path == "/_received" and method == "GET":
            kind = query.get("kind", [None])[0]
            allk = query.get("all", ["0"])[0] == "1"
            with STATE.lock:
                out = [e for e in STATE.received
                       if (allk or e["kind"] in REPLY_KINDS) and (kind is None or e["kind"] == kind)]
            return self.send_json(out)
        if path == "/_reset" and method == "POST":
            with STATE.lock:
                STATE.received = []
                STATE.fail_n = 0
            return self.send_json({"ok": True})
        if path == "/_control" and method == "POST":
            c = json.loads(raw or b"{}")
            with STATE.lock:
                STATE.fail_n = int(c.get("fail", 0))
                STATE.fail_kind = c.get("kind")
                STATE.fail_status = int(c.get("status", 200))
            return self.send_json({"ok": True})

        p = strip_prefix(path)

        # ---- Slack ---------------------------------------------------------
        if p == "/api/chat.postMessage" and method == "POST":
            body = self.record("slack.post", raw, query)
            tok = self.bearer()
            if STATE.take_failure("slack.post"):
                return self.send_json({"ok": False, "error": "ratelimited"}, STATE.fail_status)
            if not tok or (STATE.slack_token and tok != STATE.slack_token):
                return self.send_json({"ok": False, "error": "invalid_auth"})
            if not isinstance(body, dict) or not body.get("channel") or "text" not in body:
                return self.send_json({"ok": False, "error": "invalid_arguments"})
            with STATE.lock:
                STATE.msg_n += 1
                ts = "1700000000.%06d" % STATE.msg_n
            return self.send_json({"ok": True, "channel": body["channel"], "ts": ts})

        # ---- WeCom ---------------------------------------------------------
        if p == "/cgi-bin/gettoken" and method == "GET":
            self.record("wecom.gettoken", raw, query)
            if not query.get("corpid", [""])[0] or not query.get("corpsecret", [""])[0]:
                return self.send_json({"errcode": 40013, "errmsg": "invalid corpid"})
            with STATE.lock:
                STATE.wecom_n += 1
                tok = "wecom-token-%d" % STATE.wecom_n
            return self.send_json({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200})
        if p == "/cgi-bin/message/send" and method == "POST":
            self.record("wecom.send", raw, query)
            tok = query.get("access_token", [""])[0]
            if STATE.take_failure("wecom.send"):
                return self.send_json({"errcode": 42001, "errmsg": "access_token expired"}, STATE.fail_status)
            with STATE.lock:
                ok = tok == "wecom-token-%d" % STATE.wecom_n
            if not ok:
                return self.send_json({"errcode": 42001, "errmsg": "access_token expired"})
            return self.send_json({"errcode": 0, "errmsg": "ok", "msgid": "m%d" % time.time_ns()})

        # ---- DingTalk ------------------------------------------------------
        if p == "/v1.0/oauth2/accessToken" and method == "POST":
            body = self.record("dingtalk.token", raw, query)
            if not isinstance(body, dict) or not body.get("appKey") or not body.get("appSecret"):
                return self.send_json({"code": "invalidParameter", "message": "appKey"}, 400)
            with STATE.lock:
                STATE.ding_n += 1
                tok = "ding-token-%d" % STATE.ding_n
            return self.send_json({"accessToken": tok, "expireIn": 7200})
        if p.startswith("/session/") and method == "POST":
            self.record("dingtalk.session", raw, query)
            if STATE.take_failure("dingtalk.session"):
                return self.send_json({"errcode": 300001, "errmsg": "session expired"}, STATE.fail_status)
            return self.send_json({"errcode": 0, "errmsg": "ok"})
        if p in ("/v1.0/robot/groupMessages/send", "/v1.0/robot/oToMessages/batchSend") and method == "POST":
            self.record("dingtalk.send", raw, query)
            if STATE.take_failure("dingtalk.send"):
                return self.send_json({"code": "InvalidAuthentication", "message": "token"}, STATE.fail_status or 401)
            tok = self.headers.get("x-acs-dingtalk-access-token", "")
            with STATE.lock:
                ok = tok == "ding-token-%d" % STATE.ding_n
            if not ok:
                return self.send_json({"code": "InvalidAuthentication", "message": "token"}, 401)
            return self.send_json({"processQueryKey": "q%d" % time.time_ns()})

        # ---- Feishu --------------------------------------------------------
        if p == "/open-apis/auth/v3/tenant_access_token/internal" and method == "POST":
            body = self.record("feishu.token", raw, query)
            if not isinstance(body, dict) or not body.get("app_id") or not body.get("app_secret"):
                return self.send_json({"code": 10003, "msg": "invalid param"})
            with STATE.lock:
                STATE.feishu_n += 1
                tok = "t-fake-%d" % STATE.feishu_n
            return self.send_json({"code": 0, "msg": "ok", "tenant_access_token": tok, "expire": 7200})
        if p.startswith("/open-apis/im/v1/messages/") and p.endswith("/reply") and method == "POST":
            self.record("feishu.reply", raw, query)
            if STATE.take_failure("feishu.reply"):
                return self.send_json({"code": 99991663, "msg": "token invalid"}, STATE.fail_status)
            with STATE.lock:
                ok = self.bearer() == "t-fake-%d" % STATE.feishu_n
                STATE.msg_n += 1
                n = STATE.msg_n
            if not ok:
                return self.send_json({"code": 99991663, "msg": "token invalid"})
            return self.send_json({"code": 0, "msg": "success", "data": {"message_id": "om_reply_%d" % n}})

        self.send_json({"error": "no such fake endpoint", "path": path}, 404)


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--portfile")
    ap.add_argument("--slack-token", default="")
    args = ap.parse_args()
    STATE = State(args.slack_token)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if args.portfile:
        tmp = args.portfile + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.portfile)
    else:
        print(port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
