// mock_server.mjs — a tiny stand-in for `zhiku serve`, enough of the
// docs/API.md contract to develop and test the portal without the C server:
// sessions with CSRF, streamed /ask (SSE, one token every ~40 ms),
// conversations, feedback, documents, chunks, the admin review queue.
// Serves web/ at "/". Used by `run.sh --mock`; not a reference server.
//
//   node mock_server.mjs [--port N] [--web DIR]     (prints "listening URL")
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const PORT = Number(opt("--port", "0"));
const WEB = path.resolve(opt("--web", path.join(here, "..", "..", "web")));
const TOKEN_MS = Number(opt("--token-ms", "40"));

const USERS = { alice: { password: "alice-pass-123", admin: false }, admin: { password: "admin-pass-123", admin: true } };

const DOCS = [
  {
    doc: 1, id: "samples/员工手册.md", title: "员工手册（示例公司：青禾科技）", format: "markdown",
    text: "# 员工手册（示例公司：青禾科技）\n\n## 休假制度\n\n### 年假\n\n入职满一年的正式员工每年享有十天带薪年假；工作满十年后，年假增加到十五天。年假可以分次使用，每次至少半天。\n\n### 病假\n\n员工因病无法工作时，应在当天上午十点前通知直属主管。",
    chunks: [{ heading: "员工手册（示例公司：青禾科技） > 休假制度 > 年假", from: "入职满一年", to: "每次至少半天。" },
             { heading: "员工手册（示例公司：青禾科技） > 休假制度 > 病假", from: "员工因病", to: "直属主管。" }],
  },
  {
    doc: 2, id: "samples/onboarding.txt", title: "Welcome to Qinghe Technology (sample onboarding notes)", format: "text",
    text: "Welcome to Qinghe Technology (sample onboarding notes)\n\nYour first week: on Monday you meet your buddy. Probation lasts three months. At the end of probation your manager schedules a review meeting with you and a representative from human resources.\n\nThe canteen on the second floor serves lunch from 11:30 to 13:30.",
    chunks: [{ heading: "", from: "Your first week", to: "human resources." }, { heading: "", from: "The canteen", to: "13:30." }],
    page: 2,
  },
  { doc: 3, id: "samples/broken.pdf", title: "broken.pdf", format: "pdf", text: "", chunks: [], status: "failed", error: "parse error: not a PDF (bad header)" },
];
// code-point offsets of each chunk within its document
for (const d of DOCS) {
  const cps = Array.from(d.text);
  d.chunks = d.chunks.map((c, i) => {
    const s = cpIndex(d.text, d.text.indexOf(c.from));
    const e = cpIndex(d.text, d.text.indexOf(c.to) + c.to.length);
    return { chunk: i + 1, heading: c.heading, start: s, end: e, text: cps.slice(s, e).join("") };
  });
}
function cpIndex(str, utf16) { return Array.from(str.slice(0, utf16)).length; }
function spanOf(d, phrase) {
  const i = d.text.indexOf(phrase);
  const s = cpIndex(d.text, i), e = s + Array.from(phrase).length;
  const ch = d.chunks.find((c) => c.start <= s && e <= c.end);
  return { start: s, end: e, chunk: ch.chunk, heading: ch.heading };
}
function citation(n, d, phrase, extra) {
  const sp = spanOf(d, phrase);
  return Object.assign({ n, id: d.id, doc: d.doc, source: d.id, title: d.title, heading: sp.heading, chunk: sp.chunk,
    start: sp.start, end: sp.end, support: 0.8 }, d.page ? { page: d.page } : {}, extra || {});
}

function answerFor(q) {
  if (/年假|annual|leave/i.test(q)) {
    const d = DOCS[0];
    return { answer: "入职满一年的正式员工每年享有十天带薪年假；工作满十年后，年假增加到十五天。[1] 年假可以分次使用，每次至少半天。[2]",
      citations: [citation(1, d, "入职满一年的正式员工每年享有十天带薪年假；工作满十年后，年假增加到十五天。"),
                  citation(2, d, "年假可以分次使用，每次至少半天。", { weak: true, support: 0.2 })] };
  }
  if (/probation|试用/i.test(q)) {
    const d = DOCS[1];
    return { answer: "Probation lasts three months.[1] At the end of probation your manager schedules a review meeting with you and a representative from human resources.[1]",
      citations: [citation(1, d, "Probation lasts three months.")] };
  }
  return { answer: "知识库中没有找到与该问题相关的内容。", citations: [], not_found: true };
}

const sessions = new Map();      // sid -> {user, csrf}
const conversations = [];        // {id, owner, title, updated, messages:[]}
const feedback = [];             // {message_id, rating, comment, user}
let nextId = 100;

function send(res, status, body, headers) {
  const data = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, Object.assign({ "Content-Type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json; charset=utf-8" }, headers || {}));
  res.end(data);
}
const fail = (res, status, code, message) => send(res, status, { error: { code, message } });

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}

function cookieSid(req) {
  const m = /(?:^|;\s*)zk_session=([^;]+)/.exec(req.headers.cookie || "");
  return m && sessions.has(m[1]) ? m[1] : null;
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml", ".ico": "image/x-icon" };
function serveStatic(req, res, p) {
  if (p === "/") p = "/index.html";
  const file = path.join(WEB, path.normalize(decodeURIComponent(p)).replace(/^(\.\.[/\\])+/, ""));
  if (!file.startsWith(WEB) || !fs.existsSync(file) || !fs.statSync(file).isFile()) return fail(res, 404, "not_found", "no such file");
  res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream", "Cache-Control": "no-store" });
  fs.createReadStream(file).pipe(res);
}

async function handle(req, res) {
  const url = new URL(req.url, "http://x");
  const p = url.pathname;
  if (p === "/healthz") return send(res, 200, "ok");
  if (p === "/readyz") return send(res, 200, "ready");
  if (!p.startsWith("/api/v1/")) return serveStatic(req, res, p);
  const route = p.slice("/api/v1/".length);
  const raw = await readBody(req);
  const json = () => { try { return JSON.parse(raw.toString("utf8") || "{}"); } catch { return null; } };

  if (route === "login" && req.method === "POST") {
    const b = json();
    if (!b || !b.username) return fail(res, 400, "bad_request", "username and password required");
    const u = USERS[b.username];
    if (!u || u.password !== b.password) return fail(res, 401, "unauthorized", "wrong user name or password");
    const sid = crypto.randomBytes(16).toString("hex"), csrf = crypto.randomBytes(16).toString("hex");
    sessions.set(sid, { user: b.username, csrf });
    return send(res, 200, { user: b.username, is_admin: u.admin, csrf_token: csrf },
      { "Set-Cookie": `zk_session=${sid}; HttpOnly; SameSite=Strict; Path=/` });
  }

  const sid = cookieSid(req);
  if (!sid) return fail(res, 401, "unauthorized", "sign in first");
  const sess = sessions.get(sid);
  const admin = USERS[sess.user].admin;
  if (req.method !== "GET" && req.headers["x-csrf-token"] !== sess.csrf) return fail(res, 403, "forbidden", "missing or wrong CSRF token");

  let m;
  if (route === "logout" && req.method === "POST") {
    sessions.delete(sid);
    return send(res, 200, { ok: true }, { "Set-Cookie": "zk_session=; Max-Age=0; Path=/" });
  }
  if (route === "me") return send(res, 200, { user: sess.user, groups: [], is_admin: admin, scopes: ["search", "ask", "ingest"].concat(admin ? ["admin"] : []), csrf_token: sess.csrf });

  if (route === "conversations" && req.method === "GET") {
    const mine = conversations.filter((c) => c.owner === sess.user).sort((a, b) => b.updated - a.updated);
    return send(res, 200, { conversations: mine.map(({ id, title, updated }) => ({ id, title, updated })) });
  }
  if (route === "conversations" && req.method === "POST") {
    const b = json() || {};
    const c = { id: nextId++, owner: sess.user, title: b.title || "", updated: Math.floor(Date.now() / 1000), messages: [] };
    conversations.push(c);
    return send(res, 201, { id: c.id });
  }
  if ((m = /^conversations\/(\d+)$/.exec(route)) && req.method === "GET") {
    const c = conversations.find((x) => x.id === Number(m[1]) && x.owner === sess.user);
    if (!c) return fail(res, 404, "not_found", "no such conversation");
    return send(res, 200, { id: c.id, title: c.title, messages: c.messages });
  }

  if (route === "ask" && req.method === "POST") {
    const b = json();
    if (!b || !b.question) return fail(res, 400, "bad_request", "question required");
    let c = b.conversation_id !== undefined ? conversations.find((x) => x.id === Number(b.conversation_id) && x.owner === sess.user) : null;
    if (b.conversation_id !== undefined && !c) return fail(res, 404, "not_found", "no such conversation");
    if (!c) { c = { id: nextId++, owner: sess.user, title: b.question.slice(0, 40), updated: 0, messages: [] }; conversations.push(c); }
    const a = answerFor(b.question);
    const msg = { id: nextId++, question: b.question, answer: a.answer, citations: a.citations, not_found: !!a.not_found, created: Math.floor(Date.now() / 1000) };
    c.messages.push(msg);
    c.updated = msg.created;
    const done = Object.assign({}, a, { conversation_id: c.id, message_id: msg.id });
    const stream = b.stream || /text\/event-stream/.test(req.headers.accept || "");
    if (!stream) return send(res, 200, done);
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache" });
    res.write(": stream start\n\n");
    // tokens of a few code points; events may be split across writes on purpose
    const cps = Array.from(a.answer);
    for (let i = 0; i < cps.length; i += 3) {
      const ev = `event: token\ndata: ${JSON.stringify({ text: cps.slice(i, i + 3).join("") })}\n\n`;
      const cut = Math.floor(ev.length / 2);
      res.write(ev.slice(0, cut));
      await new Promise((r) => setTimeout(r, TOKEN_MS / 2));
      res.write(ev.slice(cut));
      await new Promise((r) => setTimeout(r, TOKEN_MS / 2));
      if (res.destroyed) return;
    }
    res.write(`event: done\ndata: ${JSON.stringify(done)}\n\n`);
    return res.end();
  }

  if (route === "feedback" && req.method === "POST") {
    const b = json();
    if (!b || !b.message_id || (b.rating !== 1 && b.rating !== -1)) return fail(res, 400, "bad_request", "message_id and rating 1|-1 required");
    const i = feedback.findIndex((f) => f.message_id === b.message_id && f.user === sess.user);
    const f = { message_id: b.message_id, rating: b.rating, comment: b.comment || "", user: sess.user, created: Math.floor(Date.now() / 1000) };
    if (i >= 0) feedback[i] = f; else feedback.push(f);
    return send(res, 200, { ok: true });
  }

  if (route === "documents" && req.method === "GET") {
    let list = DOCS.map((d) => ({ doc: d.doc, id: d.id, title: d.title, format: d.format, chunks: d.chunks.length,
      bytes: Buffer.byteLength(d.text), status: d.status || "indexed", updated: 1717000000 + d.doc * 3600, ...(d.error ? { error: d.error } : {}) }));
    if (url.searchParams.get("failed") === "1") list = list.filter((d) => d.status === "failed");
    const off = Number(url.searchParams.get("offset") || 0), lim = Number(url.searchParams.get("limit") || 100);
    return send(res, 200, { documents: list.slice(off, off + lim), total: list.length });
  }
  if (route === "documents" && req.method === "POST") {
    const ct = req.headers["content-type"] || "";
    if (!ct.startsWith("multipart/form-data")) return fail(res, 415, "unsupported_media_type", "multipart expected");
    const name = /filename="([^"]*)"/.exec(raw.toString("latin1"));
    const d = { doc: nextId++, id: "upload/" + (name ? Buffer.from(name[1], "latin1").toString("utf8") : "file"), title: name ? Buffer.from(name[1], "latin1").toString("utf8") : "file", format: "text", text: raw.toString("utf8").slice(0, 200), chunks: [{}] };
    DOCS.push(d);
    return send(res, 201, { doc: d.doc, id: d.id, status: "indexed", chunks: 1 });
  }
  if ((m = /^documents\/([^/]+)\/chunks\/(\d+)$/.exec(route))) {
    const ref = decodeURIComponent(m[1]);
    const d = DOCS.find((x) => String(x.doc) === ref || x.id === ref);
    const ch = d && d.chunks.find((c) => c.chunk === Number(m[2]));
    if (!ch) return fail(res, 404, "not_found", "no such chunk");
    return send(res, 200, Object.assign({ chunk: ch.chunk, doc: d.doc, id: d.id, title: d.title, heading: ch.heading, text: ch.text, start: ch.start, end: ch.end }, d.page ? { page: d.page } : {}));
  }
  if ((m = /^documents\/([^/]+)\/file$/.exec(route))) {
    const d = DOCS.find((x) => String(x.doc) === decodeURIComponent(m[1]));
    if (!d) return fail(res, 404, "not_found", "no such document");
    return send(res, 200, d.text);
  }

  if (route === "admin/review") {
    if (!admin) return fail(res, 403, "forbidden", "admin only");
    const items = [];
    for (const c of conversations) for (const msg of c.messages) {
      const f = feedback.find((x) => x.message_id === msg.id && x.rating === -1);
      if (msg.not_found || f) items.push({ message_id: msg.id, at: msg.created, user: c.owner, question: msg.question, answer: msg.answer, not_found: msg.not_found, rating: f ? -1 : null, comment: f ? f.comment : null });
    }
    if (url.searchParams.get("format") === "jsonl") {
      res.writeHead(200, { "Content-Type": "application/x-ndjson; charset=utf-8", "Content-Disposition": 'attachment; filename="review.jsonl"' });
      return res.end(items.map((x) => JSON.stringify(x)).join("\n") + (items.length ? "\n" : ""));
    }
    return send(res, 200, { items });
  }
  return fail(res, 404, "not_found", "no such route");
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => { console.error(e); if (!res.headersSent) fail(res, 500, "internal", String(e)); else res.end(); });
});
server.listen(PORT, "127.0.0.1", () => {
  console.log("listening http://127.0.0.1:" + server.address().port);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
