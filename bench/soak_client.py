#!/usr/bin/env python3
"""soak_client.py — the non-search half of bench/soak.sh's load: for
--seconds, two threads against a running `zhiku serve`:
  ask:     POST /api/v1/ask alternately not streamed (JSON with "answer")
           and streamed (SSE that must end with exactly one `event: done`);
  uploads: POST /api/v1/documents alternately as JSON and as multipart
           (201 with "doc"), then DELETE the oldest once more than --live
           uploaded documents exist (200), so the corpus size stays steady.
Every --interval seconds it appends one line to --out (TSV):
  t_s asks ask_err ask_p50_ms ask_p99_ms uploads upload_err deletes delete_err upload_p50_ms
An error is any non-2xx status, a socket error or timeout, or a malformed
answer; the first few are printed. Exit 1 if any error happened.
Standard library only."""
import argparse, http.client, json, random, sys, threading, time, uuid

ap = argparse.ArgumentParser()
ap.add_argument("--base", required=True)
ap.add_argument("--token", required=True)
ap.add_argument("--queries", required=True)
ap.add_argument("--seconds", type=float, default=600)
ap.add_argument("--interval", type=float, default=10)
ap.add_argument("--live", type=int, default=20)
ap.add_argument("--out", required=True)
args = ap.parse_args()

host, port = args.base.split("//", 1)[1].rstrip("/").split(":")
port = int(port)
queries = [l.strip() for l in open(args.queries, encoding="utf-8") if l.strip()]
AUTH = {"Authorization": "Bearer " + args.token}
lock = threading.Lock()
stats = {"ask": [], "ask_err": 0, "up": [], "up_err": 0, "del": 0, "del_err": 0}
total_err = 0
t0 = time.monotonic()
deadline = t0 + args.seconds


def error(kind, what):
    global total_err
    with lock:
        stats[kind + "_err"] += 1
        total_err += 1
        if total_err <= 10:
            print("soak_client: %s error at %.0fs: %s" % (kind, time.monotonic() - t0, what[:300]), flush=True)


def request(method, path, body=None, headers=None):
    """One request on a fresh connection; returns (status, body bytes)."""
    c = http.client.HTTPConnection(host, port, timeout=30)
    try:
        h = dict(AUTH)
        h.update(headers or {})
        c.request(method, path, body, h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def ask_loop():
    rng = random.Random(1)
    stream = False
    while time.monotonic() < deadline:
        q = rng.choice(queries)
        body = json.dumps({"question": q + "?", "stream": stream}).encode()
        t = time.monotonic()
        try:
            st, b = request("POST", "/api/v1/ask", body, {"Content-Type": "application/json"})
            dt = (time.monotonic() - t) * 1000
            if st != 200:
                error("ask", "HTTP %d: %s" % (st, b[:200]))
            elif stream:
                events = [l[7:].strip() for l in b.decode("utf-8", "replace").splitlines() if l.startswith("event: ")]
                if not events or events[-1] != "done" or events.count("done") != 1:
                    error("ask", "stream did not end with one done: %s" % events[-3:])
                else:
                    with lock: stats["ask"].append(dt)
            else:
                j = json.loads(b)
                if "answer" not in j:
                    error("ask", "no answer: %s" % b[:200])
                else:
                    with lock: stats["ask"].append(dt)
        except Exception as e:  # socket errors, timeouts, bad JSON
            error("ask", repr(e))
        stream = not stream


def upload_loop():
    rng = random.Random(2)
    words = "知识 管理 系统 文档 检索 企业 员工 数据 soak upload document policy backup".split()
    live = []
    n = 0
    while time.monotonic() < deadline:
        n += 1
        text = "\n\n".join(" ".join(rng.choice(words) for _ in range(80)) + "。" for _ in range(4))
        text = "# soak %d\n\n%s\n" % (n, text)
        t = time.monotonic()
        try:
            if n % 2:
                body = json.dumps({"id": "soak-%d" % n, "title": "soak %d" % n, "text": text,
                                   "acl": ["everyone"]}, ensure_ascii=False).encode()
                st, b = request("POST", "/api/v1/documents", body, {"Content-Type": "application/json"})
            else:
                bnd = uuid.uuid4().hex
                body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"soak-%d.md\"\r\n"
                        "Content-Type: text/markdown\r\n\r\n%s\r\n--%s\r\nContent-Disposition: form-data; "
                        "name=\"acl\"\r\n\r\neveryone\r\n--%s--\r\n" % (bnd, n, text, bnd, bnd)).encode()
                st, b = request("POST", "/api/v1/documents", body,
                                {"Content-Type": "multipart/form-data; boundary=" + bnd})
            dt = (time.monotonic() - t) * 1000
            if st != 201:
                error("up", "HTTP %d: %s" % (st, b[:200]))
            else:
                live.append(json.loads(b)["doc"])
                with lock: stats["up"].append(dt)
        except Exception as e:
            error("up", repr(e))
        while len(live) > args.live:
            doc = live.pop(0)
            try:
                st, b = request("DELETE", "/api/v1/documents/%s" % doc)
                if st != 200:
                    error("del", "HTTP %d: %s" % (st, b[:200]))
                else:
                    with lock: stats["del"] += 1
            except Exception as e:
                error("del", repr(e))
        time.sleep(0.2)


def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


threads = [threading.Thread(target=f, daemon=True) for f in (ask_loop, upload_loop)]
for th in threads:
    th.start()
with open(args.out, "w") as out:
    out.write("t_s\tasks\task_err\task_p50_ms\task_p99_ms\tuploads\tupload_err\tdeletes\tdelete_err\tupload_p50_ms\n")
    out.flush()
    nxt = t0 + args.interval
    while any(th.is_alive() for th in threads):
        time.sleep(max(0.0, min(nxt, deadline + 60) - time.monotonic()))
        with lock:
            s = dict(stats)
            stats.update({"ask": [], "ask_err": 0, "up": [], "up_err": 0, "del": 0, "del_err": 0})
        out.write("%.0f\t%d\t%d\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%.1f\n" % (
            time.monotonic() - t0, len(s["ask"]), s["ask_err"], pct(s["ask"], 50), pct(s["ask"], 99),
            len(s["up"]), s["up_err"], s["del"], s["del_err"], pct(s["up"], 50)))
        out.flush()
        nxt += args.interval
        if time.monotonic() > deadline + 60:
            print("soak_client: a worker is stuck past the deadline", flush=True)
            total_err += 1
            break
print("soak_client: %d errors" % total_err, flush=True)
sys.exit(1 if total_err else 0)
