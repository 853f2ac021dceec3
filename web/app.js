/* app.js — the zhiku portal's behaviour, plain browser JavaScript.
 * Signs in (session cookie + CSRF token), asks questions and renders the
 * answer as it streams (fetch + SSE parsing), opens cited passages with the
 * cited span highlighted, sends feedback, lists conversations, shows one
 * document's passages (#/doc/ID, the links chat-bot replies carry), and drives
 * the admin view (upload, document status, review queue). Everything the
 * user sees is built with textContent, never innerHTML from server data. */
(function () {
  "use strict";

  const API = new URL("api/v1/", document.baseURI).pathname; // "/api/v1/" when served at "/"
  const STRINGS = window.ZK_I18N;
  const LANG_KEY = "zhiku.lang";
  const CSRF_KEY = "zhiku.csrf";
  const DOC_PAGE = 50;
  const PASSAGE_PAGE = 10;   // document view: passage texts fetched per "show more"

  const state = {
    lang: pickLang(),
    me: null,
    csrf: sessionStorage.getItem(CSRF_KEY) || "",
    convId: null,
    thread: [],          // [{id, question, answer, citations, not_found, pending, error, feedback}]
    streaming: null,     // {msg, abort}
    conversations: [],
    docsOffset: 0,
    docsTotal: 0,
    docView: null,       // {ref, doc, chunks, shown, seq} for #/doc/ID
  };
  let docSeq = 0;        // bumps on every document-view load; stale loads stop

  const $ = (id) => document.getElementById(id);

  /* ---------- i18n ---------- */

  function pickLang() {
    const saved = localStorage.getItem(LANG_KEY);
    if (saved === "zh" || saved === "en") return saved;
    const nav = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
    return /^zh\b/i.test(nav) ? "zh" : "en";
  }

  function t(key, vars) {
    let s = (STRINGS[state.lang] && STRINGS[state.lang][key]) ?? STRINGS.en[key] ?? key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
    return s;
  }

  function applyLang() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("app_title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-attr]")) {
      for (const pair of el.dataset.i18nAttr.split(",")) {
        const [attr, key] = pair.split(":");
        el.setAttribute(attr.trim(), t(key.trim()));
      }
    }
    $("lang-btn").lang = state.lang === "zh" ? "en" : "zh";
    if (state.me) $("whoami").textContent = t("signed_in_as", { user: state.me.user });
    renderConversations();
    if (!state.streaming) renderThread();
    if (!$("admin-view").hidden) loadAdmin();
    if (docViewEl() && !docViewEl().hidden && state.docView) renderDocView();
  }

  function switchLang() {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, state.lang);
    applyLang();
  }

  /* ---------- HTTP ---------- */

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code || "HTTP " + status);
      this.status = status;
      this.code = code;
    }
  }

  function headersFor(method, extra) {
    const h = Object.assign({}, extra);
    if (method !== "GET" && method !== "HEAD" && state.csrf) h["X-CSRF-Token"] = state.csrf;
    return h;
  }

  async function errorFrom(res) {
    let code = "", message = "";
    try {
      const j = await res.json();
      if (j && j.error) { code = j.error.code || ""; message = j.error.message || ""; }
    } catch (_) { /* not JSON */ }
    if (res.status === 429) {
      const ra = res.headers.get("Retry-After");
      if (ra) message = (message || "rate limited") + " (retry after " + ra + " s)";
    }
    return new ApiError(res.status, code, message || res.status + " " + res.statusText);
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: headersFor(method) };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(API + path, init);
    if (!res.ok) {
      const err = await errorFrom(res);
      if (res.status === 401 && path !== "login") sessionLost();
      throw err;
    }
    const ct = res.headers.get("Content-Type") || "";
    return ct.includes("json") ? res.json() : res.text();
  }

  /* ---------- helpers ---------- */

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") e.className = v;
        else if (k === "text") e.textContent = v;
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? "" : v);
      }
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
    return e;
  }

  function fmtTime(v) {
    if (v === undefined || v === null || v === "") return "";
    let d;
    if (typeof v === "number" || /^\d+$/.test(String(v))) {
      const n = Number(v);
      d = new Date(n < 1e12 ? n * 1000 : n);
    } else d = new Date(v);
    if (isNaN(d)) return String(v);
    return d.toLocaleString(state.lang === "zh" ? "zh-CN" : "en", { dateStyle: "medium", timeStyle: "short" });
  }

  function fmtBytes(n) {
    if (typeof n !== "number") return "";
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  /* "Doc title > Section > Sub" → "Section › Sub" (the title is shown apart). */
  function headingPath(h, title) {
    if (!h) return "";
    const parts = String(h).split(/\s+>\s+/).filter(Boolean);
    if (title && parts.length > 1 && parts[0] === title) parts.shift();
    if (title && parts.length === 1 && parts[0] === title) return "";
    return parts.join(" › ");
  }

  function announce(msg) {
    const s = $("status");
    s.textContent = "";
    // a fresh text node makes screen readers announce even a repeated message
    setTimeout(() => { s.textContent = msg; }, 30);
  }

  /* ---------- views and routing ---------- */

  function show(view) {
    $("login-view").hidden = view !== "login";
    $("chat-view").hidden = view !== "chat";
    $("admin-view").hidden = view !== "admin";
    if (docViewEl()) docViewEl().hidden = view !== "doc";
    $("nav").hidden = view === "login";
    $("logout-btn").hidden = view === "login";
    $("nav-ask").toggleAttribute("aria-current", view === "chat");
    if (view === "chat") $("nav-ask").setAttribute("aria-current", "page");
    $("nav-admin").toggleAttribute("aria-current", view === "admin");
    if (view === "admin") $("nav-admin").setAttribute("aria-current", "page");
  }

  function route() {
    if (!state.me) { show("login"); return; }
    const h = location.hash;
    const dm = /^#\/doc\/([^/?#]+)$/.exec(h);
    if (dm) {
      let ref;
      try { ref = decodeURIComponent(dm[1]); } catch (_) { ref = dm[1]; }
      show("doc");
      openDocument(ref);
      return;
    }
    if (h === "#/admin" && state.me.is_admin) {
      show("admin");
      loadAdmin();
      return;
    }
    show("chat");
    const m = /^#\/c\/(.+)$/.exec(h);
    if (m && decodeURIComponent(m[1]) !== String(state.convId)) openConversation(decodeURIComponent(m[1]));
  }

  function sessionLost() {
    if (!state.me) return;
    state.me = null;
    state.csrf = "";
    sessionStorage.removeItem(CSRF_KEY);
    show("login");
    $("login-error").textContent = t("session_expired");
    $("whoami").textContent = "";
  }

  async function start() {
    applyLang();
    try {
      const me = await api("GET", "me");
      await signedIn(me);
    } catch (_) {
      show("login");
      $("login-user").focus();
    }
  }

  async function signedIn(me) {
    state.me = me;
    if (me.csrf_token) state.csrf = me.csrf_token;
    sessionStorage.setItem(CSRF_KEY, state.csrf);
    $("whoami").textContent = t("signed_in_as", { user: me.user });
    $("nav-admin").hidden = !me.is_admin;
    route();
    loadConversations();
  }

  /* ---------- sign-in ---------- */

  async function onLogin(ev) {
    ev.preventDefault();
    const user = $("login-user").value.trim(), password = $("login-password").value;
    const errEl = $("login-error");
    errEl.textContent = "";
    if (!user || !password) {
      errEl.textContent = t("login_failed");
      (user ? $("login-password") : $("login-user")).focus();
      return;
    }
    const btn = $("login-submit");
    btn.disabled = true;
    btn.textContent = t("login_busy");
    try {
      const r = await api("POST", "login", { username: user, password });
      state.csrf = r.csrf_token || "";
      let me;
      try { me = await api("GET", "me"); } catch (_) { me = { user: r.user, is_admin: r.is_admin }; }
      if (!me.csrf_token) me.csrf_token = state.csrf;
      $("login-password").value = "";
      await signedIn(me);
      if (!$("chat-view").hidden) $("question").focus();
    } catch (e) {
      errEl.textContent = e.status === 401 || e.status === 403 ? t("login_failed") : t("error_prefix", { msg: e.message });
      $("login-password").focus();
    } finally {
      btn.disabled = false;
      btn.textContent = t("login_submit");
    }
  }

  async function onLogout() {
    try { await api("POST", "logout"); } catch (_) { /* signed out either way */ }
    state.me = null;
    state.csrf = "";
    sessionStorage.removeItem(CSRF_KEY);
    state.thread = [];
    state.convId = null;
    state.conversations = [];
    renderThread();
    renderConversations();
    $("whoami").textContent = "";
    history.replaceState(null, "", "#/");
    show("login");
    $("login-user").focus();
  }

  /* ---------- conversations ---------- */

  async function loadConversations() {
    try {
      const r = await api("GET", "conversations");
      state.conversations = (r && r.conversations) || [];
    } catch (_) {
      state.conversations = [];
    }
    renderConversations();
  }

  function renderConversations() {
    const ul = $("conv-list");
    ul.replaceChildren();
    if (!state.conversations.length) {
      ul.append(el("li", { class: "muted", text: t("no_conversations") }));
      return;
    }
    for (const c of state.conversations) {
      const current = String(c.id) === String(state.convId);
      const a = el("a", {
        href: "#/c/" + encodeURIComponent(c.id),
        "aria-current": current ? "true" : null,
        class: "conv-link",
      }, el("span", { class: "conv-title", text: c.title || t("untitled") }),
         el("span", { class: "conv-time", text: fmtTime(c.updated) }));
      ul.append(el("li", null, a));
    }
  }

  async function openConversation(id) {
    if (state.streaming) return;
    try {
      const r = await api("GET", "conversations/" + encodeURIComponent(id));
      state.convId = r.id ?? id;
      state.thread = (r.messages || []).map((m) => ({
        id: m.id, question: m.question, answer: m.answer || "",
        citations: m.citations || [], not_found: !!m.not_found,
      }));
      renderThread();
      renderConversations();
      const last = $("thread").lastElementChild;
      if (last) last.scrollIntoView({ block: "end" });
    } catch (e) {
      announce(t("error_prefix", { msg: e.message }));
    }
  }

  function newConversation() {
    if (state.streaming) return;
    state.convId = null;
    state.thread = [];
    history.replaceState(null, "", "#/");
    renderThread();
    renderConversations();
    $("question").focus();
  }

  /* ---------- the thread ---------- */

  function renderThread() {
    const box = $("thread");
    box.replaceChildren(...state.thread.map(renderMessage));
  }

  function renderMessage(msg) {
    const art = el("article", { class: "msg", "data-message-id": msg.id ?? "" });
    art.append(el("div", { class: "q" },
      el("span", { class: "who", text: t("you") }),
      el("p", { class: "q-text", text: msg.question })));

    const a = el("div", { class: "a" + (msg.not_found ? " not-found" : "") + (msg.error ? " failed" : "") });
    const head = el("div", { class: "a-head" }, el("span", { class: "who", text: t("assistant") }));
    if (msg.not_found) head.append(el("span", { class: "badge badge-nf", text: t("not_found_badge") }));
    a.append(head);

    const text = el("div", { class: "answer-text", "aria-live": "polite", "aria-busy": msg.pending ? "true" : "false" });
    msg.textEl = text;
    if (msg.pending) {
      msg.textNode = document.createTextNode(msg.answer || "");
      text.append(msg.textNode);
      text.classList.add("streaming");
    } else {
      fillAnswer(text, msg);
    }
    a.append(text);
    if (msg.not_found) a.append(el("p", { class: "nf-note", text: t("not_found_note") }));
    if (msg.error) a.append(el("p", { class: "error", role: "alert", text: msg.error }));

    if (!msg.pending && msg.citations && msg.citations.length) a.append(renderSources(msg));
    if (!msg.pending && msg.id !== undefined && msg.id !== null && !msg.error) a.append(renderFeedback(msg));
    art.append(a);
    return art;
  }

  /* Answer text with each [n] (or [n, m]) that names a citation made a button. */
  function fillAnswer(box, msg) {
    const byN = new Map((msg.citations || []).map((c) => [String(c.n), c]));
    const text = msg.answer || "";
    const re = /\[(\d+(?:\s*[,，]\s*\d+)*)\]/g;
    let last = 0, m;
    while ((m = re.exec(text)) !== null) {
      const nums = m[1].split(/\s*[,，]\s*/);
      if (!nums.every((n) => byN.has(n))) continue;
      if (m.index > last) box.append(text.slice(last, m.index));
      for (const n of nums) box.append(citeButton(byN.get(n), "cite"));
      last = m.index + m[0].length;
    }
    if (last < text.length) box.append(text.slice(last));
  }

  function citeButton(c, cls) {
    const title = c.title || c.source || c.id || "";
    const b = el("button", {
      type: "button",
      class: cls + (c.weak ? " weak" : ""),
      "data-cite": c.n,
      "aria-label": t("cite_label", { n: c.n, title }) + (c.weak ? " (" + t("weak") + ")" : ""),
      title: c.weak ? t("weak_title") : title,
      text: "[" + c.n + "]",
    });
    b.addEventListener("click", () => openPassage(c));
    return b;
  }

  function renderSources(msg) {
    const box = el("div", { class: "sources" });
    box.append(el("h3", { text: t("sources") }));
    const ol = el("ol");
    for (const c of msg.citations) {
      const li = el("li", { class: c.weak ? "weak" : null });
      const link = el("button", { type: "button", class: "source-link", "data-cite": c.n },
        el("span", { class: "src-n", text: "[" + c.n + "]" }), " ",
        el("span", { class: "src-title", text: c.title || c.source || c.id || "" }));
      link.addEventListener("click", () => openPassage(c));
      li.append(link);
      const meta = [];
      const hp = headingPath(c.heading, c.title);
      if (hp) meta.push(el("span", { class: "src-heading", text: hp }));
      if (c.page !== undefined && c.page !== null) meta.push(el("span", { class: "src-page", text: t("page", { page: c.page }) }));
      if (c.weak) meta.push(el("span", { class: "badge badge-weak", title: t("weak_title"), text: t("weak") }));
      if (meta.length) li.append(el("span", { class: "src-meta" }, ...meta));
      ol.append(li);
    }
    box.append(ol);
    return box;
  }

  /* A thumb drawn inline (no emoji font needed); decorative, the label is text. */
  function thumbIcon(down) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "18");
    svg.setAttribute("height", "18");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    if (down) svg.setAttribute("transform", "rotate(180)");
    const p = document.createElementNS(NS, "path");
    p.setAttribute("fill", "currentColor");
    p.setAttribute("d", "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z");
    svg.append(p);
    return svg;
  }

  function renderFeedback(msg) {
    const box = el("div", { class: "feedback" });
    const group = el("div", { class: "fb-buttons", role: "group", "aria-label": t("feedback_up") + " / " + t("feedback_down") });
    const up = el("button", { type: "button", class: "fb fb-up", "aria-pressed": msg.feedback === 1 ? "true" : "false" },
      thumbIcon(false), el("span", { text: t("feedback_up") }));
    const down = el("button", { type: "button", class: "fb fb-down", "aria-pressed": msg.feedback === -1 ? "true" : "false" },
      thumbIcon(true), el("span", { text: t("feedback_down") }));
    group.append(up, down);
    box.append(group);
    const form = el("form", { class: "fb-form", hidden: true });
    const taId = "fb-c-" + msg.id;
    const ta = el("textarea", { id: taId, rows: "2", maxlength: "2000" });
    form.append(el("label", { for: taId, text: t("feedback_comment") }), ta,
      el("button", { type: "submit", class: "btn-secondary fb-send", text: t("feedback_send") }));
    const status = el("p", { class: "fb-status", role: "status" });
    if (msg.feedbackSent) status.textContent = t("feedback_thanks");
    box.append(form, status);

    let rating = msg.feedback || 0;
    const pick = (r) => {
      rating = r;
      up.setAttribute("aria-pressed", r === 1 ? "true" : "false");
      down.setAttribute("aria-pressed", r === -1 ? "true" : "false");
      form.hidden = false;
      status.textContent = "";
      ta.focus();
    };
    up.addEventListener("click", () => pick(1));
    down.addEventListener("click", () => pick(-1));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!rating) return;
      const body = { message_id: msg.id, rating };
      const comment = ta.value.trim();
      if (comment) body.comment = comment;
      try {
        await api("POST", "feedback", body);
        msg.feedback = rating;
        msg.feedbackSent = true;
        form.hidden = true;
        status.textContent = t("feedback_thanks");
      } catch (e) {
        status.textContent = t("feedback_failed", { msg: e.message });
      }
    });
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") { form.hidden = true; (rating === 1 ? up : down).focus(); }
    });
    return box;
  }

  /* ---------- asking, with the answer streamed ---------- */

  /* Parse one SSE block ("event: x\ndata: y") into {event, data}. */
  function parseEvent(block) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r\n|\r|\n/)) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    return { event, data: data.join("\n") };
  }

  async function* sseEvents(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let m;
      while ((m = /\r\n\r\n|\n\n|\r\r/.exec(buf)) !== null) {
        const block = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        if (block.trim()) yield parseEvent(block);
      }
    }
    if (buf.trim()) yield parseEvent(buf);
  }

  async function ensureConversation(question) {
    if (state.convId !== null) return;
    try {
      const r = await api("POST", "conversations", { title: Array.from(question).slice(0, 60).join("") });
      if (r && r.id !== undefined) state.convId = r.id;
    } catch (e) {
      if (e.status === 401) throw e;
      /* the server creates one with the first answer */
    }
  }

  function finishMessage(msg, done) {
    Object.assign(msg, {
      id: done.message_id,
      answer: done.answer ?? msg.answer,
      citations: done.citations || [],
      not_found: !!done.not_found,
      conversation_id: done.conversation_id,
    });
  }

  async function onAsk(ev) {
    ev.preventDefault();
    if (state.streaming) return;
    const q = $("question").value.trim();
    if (!q) { $("question").focus(); return; }

    const msg = { question: q, answer: "", citations: [], pending: true };
    const abort = new AbortController();
    state.streaming = { msg, abort };
    setBusy(true);
    announce(t("answering"));
    let gotDone = false;
    try {
      await ensureConversation(q);
      state.thread.push(msg);
      const node = renderMessage(msg);
      $("thread").append(node);
      node.scrollIntoView({ block: "end" });
      $("question").value = "";

      const body = { question: q, stream: true };
      if (state.convId !== null) body.conversation_id = state.convId;
      const res = await fetch(API + "ask", {
        method: "POST",
        credentials: "same-origin",
        headers: headersFor("POST", { "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
        signal: abort.signal,
      });
      if (!res.ok) {
        const err = await errorFrom(res);
        if (res.status === 401) sessionLost();
        throw err;
      }
      const ct = res.headers.get("Content-Type") || "";
      if (!ct.includes("event-stream")) {            // a server that answered in one piece
        finishMessage(msg, await res.json());
        gotDone = true;
      } else {
        for await (const e of sseEvents(res.body)) {
          if (e.event === "token") {
            const d = JSON.parse(e.data);
            if (d.text) {
              const follow = nearBottom();
              msg.answer += d.text;
              msg.textNode.appendData(d.text);
              if (follow) window.scrollTo(0, document.documentElement.scrollHeight);
            }
          } else if (e.event === "done") {
            finishMessage(msg, JSON.parse(e.data));
            gotDone = true;
          } else if (e.event === "error") {
            let m = e.data;
            try { const j = JSON.parse(e.data); m = (j.error && (j.error.message || j.error.code)) || m; } catch (_) { /* raw text */ }
            throw new ApiError(0, "stream", m);
          }
        }
      }
      if (!gotDone) msg.error = t("stream_broken");
    } catch (e) {
      if (e.name === "AbortError") msg.error = t("stopped");
      else msg.error = t("error_prefix", { msg: e.message });
    } finally {
      msg.pending = false;
      state.streaming = null;
      setBusy(false);
    }
    replaceMessage(msg);
    announce(msg.error ? msg.error : t("answer_done"));
    await afterAnswer(msg);
  }

  async function afterAnswer(msg) {
    if (msg.conversation_id !== undefined) state.convId = msg.conversation_id;
    if (state.convId !== null && location.hash !== "#/c/" + encodeURIComponent(state.convId))
      history.replaceState(null, "", "#/c/" + encodeURIComponent(state.convId));
    await loadConversations();
    if (state.me) $("question").focus();
  }

  function nearBottom() {
    const d = document.documentElement;
    return d.scrollHeight - (window.scrollY + window.innerHeight) < 160;
  }

  function replaceMessage(msg) {
    const box = $("thread");
    const i = state.thread.indexOf(msg);
    if (i < 0) return;
    const node = renderMessage(msg);
    const old = box.children[i];
    if (old) old.replaceWith(node); else box.append(node);
    node.scrollIntoView({ block: "nearest" });
  }

  function setBusy(busy) {
    $("ask-btn").disabled = busy;
    $("stop-btn").hidden = !busy;
    $("new-conv").disabled = busy;
    $("question").setAttribute("aria-busy", busy ? "true" : "false");
  }

  /* ---------- the cited passage ---------- */

  async function openPassage(c) {
    const dlg = $("passage-dialog");
    const textBox = $("passage-text");
    $("passage-doc").textContent = c.title || c.source || c.id || "";
    $("passage-heading").textContent = headingPath(c.heading, c.title);
    textBox.replaceChildren(el("span", { class: "muted", text: t("passage_loading") }));
    const docRef = encodeURIComponent(c.doc ?? c.id);
    $("passage-file").href = API + "documents/" + docRef + "/file";
    if (!dlg.open) dlg.showModal();
    try {
      const ch = await api("GET", "documents/" + docRef + "/chunks/" + encodeURIComponent(c.chunk));
      const parts = [ch.title || c.title || ""];
      const page = ch.page ?? c.page;
      if (page !== undefined && page !== null) parts.push(t("page", { page }));
      $("passage-doc").textContent = parts.filter(Boolean).join(" · ");
      $("passage-heading").textContent = headingPath(ch.heading ?? c.heading, ch.title || c.title);
      renderPassage(textBox, ch, c);
    } catch (e) {
      textBox.replaceChildren(el("span", { class: "error", text: t("passage_failed", { msg: e.message }) }));
    }
  }

  /* The chunk text with the citation's span [cit.start, cit.end) — document
   * offsets in code points — marked, after shifting by the chunk's start. */
  function renderPassage(box, ch, c) {
    const cps = Array.from(ch.text || "");
    box.replaceChildren();
    const base = typeof ch.start === "number" ? ch.start : 0;
    let s = typeof c.start === "number" ? c.start - base : -1;
    let e = typeof c.end === "number" ? c.end - base : -1;
    s = Math.max(0, Math.min(cps.length, s));
    e = Math.max(0, Math.min(cps.length, e));
    if (typeof c.start !== "number" || e <= s) {
      box.append(cps.join(""));
      return;
    }
    const mark = el("mark", { class: c.weak ? "weak" : null, text: cps.slice(s, e).join("") });
    box.append(cps.slice(0, s).join(""), mark, cps.slice(e).join(""));
    mark.scrollIntoView({ block: "center" });
  }

  /* ---------- one document (#/doc/ID) ---------- */

  /* The view is built here rather than in index.html: a <section> in <main>. */
  function docViewEl() {
    let v = $("doc-view");
    if (!v && $("main")) {
      v = el("section", { id: "doc-view", class: "doc-view", "aria-labelledby": "doc-h", hidden: true });
      $("main").append(v);
    }
    return v;
  }

  /* GET documents/{ref}. The server decodes the request path before routing,
   * so an external id holding "/" (a file path) or "%" only reaches the
   * route encoded twice; numeric ids and plain names need one encoding. Both tries
   * are ACL-checked by the server: a second try reveals nothing. */
  async function fetchDocument(ref) {
    const once = encodeURIComponent(ref);
    try {
      return await api("GET", "documents/" + once);
    } catch (e) {
      if (e.status !== 404 || !/[/%]/.test(ref)) throw e;
      return await api("GET", "documents/" + encodeURIComponent(once));
    }
  }

  async function openDocument(ref) {
    const seq = ++docSeq;
    state.docView = { ref, doc: null, chunks: [], shown: 0, loading: true, failed: "" };
    renderDocView();
    try {
      const d = await fetchDocument(ref);
      if (seq !== docSeq) return;
      state.docView.doc = d;
      state.docView.chunks = (d.chunks || []).map((c) => ({ meta: c, text: null, error: "" }));
    } catch (e) {
      if (seq !== docSeq) return;
      // 404 covers both "no such document" and "not yours to read": say no more
      state.docView.failed = e.status === 404 || e.status === 403 ? t("doc_not_found") : t("error_prefix", { msg: e.message });
    }
    state.docView.loading = false;
    renderDocView();
    if (state.docView.doc) {
      const h = $("doc-h");
      if (h) h.focus();
      await loadMorePassages(seq);
    } else {
      announce(state.docView.failed);
    }
  }

  /* Fetch the next PASSAGE_PAGE passage texts, one after another. */
  async function loadMorePassages(seq) {
    const v = state.docView;
    if (!v || !v.doc || seq !== docSeq) return;
    const from = v.shown, to = Math.min(v.chunks.length, from + PASSAGE_PAGE);
    v.shown = to;
    renderDocView();
    const docRef = encodeURIComponent(v.doc.doc ?? v.ref);
    for (let i = from; i < to; i++) {
      const c = v.chunks[i];
      try {
        const ch = await api("GET", "documents/" + docRef + "/chunks/" + encodeURIComponent(c.meta.chunk));
        c.text = ch.text || "";
      } catch (e) {
        c.error = t("passage_failed", { msg: e.message });
      }
      if (seq !== docSeq) return;
      renderPassageItem(i);
    }
    announce(t("doc_passages_loaded", { shown: v.shown, total: v.chunks.length }));
  }

  function passageItem(i) {
    const v = state.docView, c = v.chunks[i], title = (v.doc && v.doc.title) || "";
    const li = el("li", { class: "doc-passage", id: "doc-p-" + i, "aria-busy": c.text === null && !c.error ? "true" : "false" });
    const meta = [];
    const hp = headingPath(c.meta.heading, title);
    meta.push(el("span", { class: "src-heading", text: hp || t("doc_no_heading") }));
    if (c.meta.page !== undefined && c.meta.page !== null) meta.push(el("span", { class: "src-page", text: t("page", { page: c.meta.page }) }));
    li.append(el("h3", { class: "src-meta" }, ...meta));
    if (c.error) li.append(el("p", { class: "error", text: c.error }));
    else if (c.text === null) li.append(el("p", { class: "muted", text: t("passage_loading") }));
    else li.append(el("div", { class: "passage-text", text: c.text }));
    return li;
  }

  function renderPassageItem(i) {
    const old = $("doc-p-" + i);
    if (old) old.replaceWith(passageItem(i));
    const more = $("doc-more");
    if (more) more.hidden = state.docView.shown >= state.docView.chunks.length;
  }

  function renderDocView() {
    const box = docViewEl(), v = state.docView;
    if (!box || !v) return;
    const back = el("p", { class: "doc-back" }, el("a", { href: "#/", text: t("doc_back") }));
    if (v.loading) {
      box.replaceChildren(back, el("h1", { id: "doc-h", tabindex: "-1", text: t("doc_title") }),
        el("p", { class: "muted", role: "status", text: t("loading") }));
      return;
    }
    if (!v.doc) {
      box.replaceChildren(back, el("h1", { id: "doc-h", tabindex: "-1", text: t("doc_title") }),
        el("p", { class: "error", role: "alert", text: v.failed || t("doc_not_found") }));
      return;
    }
    const d = v.doc;
    const dl = el("dl", { class: "doc-meta" });
    const row = (k, val) => { if (val !== undefined && val !== null && val !== "") dl.append(el("dt", { text: t(k) }), el("dd", { text: String(val) })); };
    row("doc_source", d.source);
    if (d.id !== d.source) row("doc_id", d.id);
    row("col_format", d.format);
    row("col_size", fmtBytes(d.bytes));
    row("col_updated", fmtTime(d.updated));
    const pages = v.chunks.map((c) => c.meta.page).filter((p) => typeof p === "number");
    if (pages.length) row("doc_pages", Math.min(...pages) === Math.max(...pages) ? String(pages[0]) : Math.min(...pages) + "–" + Math.max(...pages));
    row("doc_passage_count", v.chunks.length);
    const file = el("p", null, el("a", { href: API + "documents/" + encodeURIComponent(d.doc ?? v.ref) + "/file",
      target: "_blank", rel: "noopener", text: t("open_file") }));
    const ol = el("ol", { class: "doc-passages", "aria-labelledby": "doc-passages-h" });
    for (let i = 0; i < v.shown; i++) ol.append(passageItem(i));
    const more = el("button", { type: "button", id: "doc-more", class: "btn-secondary", text: t("doc_more"),
      hidden: v.shown >= v.chunks.length });
    more.addEventListener("click", () => loadMorePassages(docSeq));
    box.replaceChildren(back,
      el("h1", { id: "doc-h", tabindex: "-1", text: d.title || d.id || t("untitled") }),
      dl, file,
      el("h2", { id: "doc-passages-h", text: t("doc_passages") }),
      v.chunks.length ? ol : el("p", { class: "muted", text: t("doc_no_passages") }),
      more);
  }

  /* ---------- admin ---------- */

  function loadAdmin() {
    loadDocs();
    loadReview();
  }

  async function loadDocs() {
    const tbody = $("docs-table").tBodies[0];
    const failed = $("docs-failed").checked;
    let q = "documents?limit=" + DOC_PAGE + "&offset=" + state.docsOffset;
    if (failed) q += "&failed=1";
    try {
      const r = await api("GET", q);
      const docs = r.documents || [];
      state.docsTotal = r.total ?? docs.length;
      tbody.replaceChildren();
      if (!docs.length) tbody.append(el("tr", null, el("td", { colspan: "6", class: "muted", text: t("docs_none") })));
      for (const d of docs) {
        const status = d.status || "";
        const st = el("td", { class: "status status-" + status.replace(/[^a-z_]/gi, "") }, el("span", { text: status }));
        if (d.error) st.append(el("div", { class: "doc-error", text: d.error }));
        tbody.append(el("tr", null,
          el("td", null, el("div", { class: "doc-title", text: d.title || d.id }),
            d.title && d.id !== d.title ? el("div", { class: "doc-id muted", text: d.id }) : null),
          el("td", { text: d.format || "" }),
          el("td", { class: "num", text: d.chunks ?? "" }),
          el("td", { class: "num", text: fmtBytes(d.bytes) }),
          st,
          el("td", { text: fmtTime(d.updated) })));
      }
      $("docs-total").textContent = t("docs_total", { total: state.docsTotal });
      $("docs-prev").disabled = state.docsOffset <= 0;
      $("docs-next").disabled = state.docsOffset + DOC_PAGE >= state.docsTotal;
    } catch (e) {
      tbody.replaceChildren(el("tr", null, el("td", { colspan: "6", class: "error", text: t("error_prefix", { msg: e.message }) })));
    }
  }

  function reviewItems(r) {
    if (Array.isArray(r)) return r;
    if (!r || typeof r !== "object") return [];
    for (const k of ["items", "review", "entries", "messages", "questions"]) if (Array.isArray(r[k])) return r[k];
    for (const v of Object.values(r)) if (Array.isArray(v)) return v;
    return [];
  }

  async function loadReview() {
    const tbody = $("review-table").tBodies[0];
    try {
      const items = reviewItems(await api("GET", "admin/review"));
      tbody.replaceChildren();
      if (!items.length) tbody.append(el("tr", null, el("td", { colspan: "6", class: "muted", text: t("review_none") })));
      for (const it of items) {
        const reasons = [];
        if (it.not_found) reasons.push(t("reason_not_found"));
        if (it.rating === -1 || it.rating === "-1") reasons.push(t("reason_down"));
        if (!reasons.length && it.reason) reasons.push(String(it.reason));
        tbody.append(el("tr", { class: it.not_found ? "row-nf" : null },
          el("td", { text: it.question || "" }),
          el("td", { class: "clip", text: it.answer || "" }),
          el("td", { text: reasons.join(", ") }),
          el("td", { text: it.comment || "" }),
          el("td", { text: it.user || it.user_name || "" }),
          el("td", { text: fmtTime(it.at ?? it.created ?? it.created_at) })));
      }
    } catch (e) {
      tbody.replaceChildren(el("tr", null, el("td", { colspan: "6", class: "error", text: t("error_prefix", { msg: e.message }) })));
    }
  }

  async function onUpload(ev) {
    ev.preventDefault();
    const files = Array.from($("up-file").files || []);
    const out = $("up-results");
    if (!files.length) { $("up-file").focus(); return; }
    $("up-submit").disabled = true;
    for (const f of files) {
      const li = el("li", { text: t("upload_busy", { name: f.name }) });
      out.prepend(li);
      const fd = new FormData();
      fd.append("file", f, f.name);
      for (const k of ["acl", "tags", "kb"]) {
        const v = $("up-" + k).value.trim();
        if (v) fd.append(k, v);
      }
      try {
        const r = await api("POST", "documents", fd);
        li.className = "ok";
        li.textContent = t("upload_ok", { name: f.name, status: r.status || "ok", chunks: r.chunks ?? 0 });
      } catch (e) {
        li.className = "error";
        li.textContent = t("upload_failed", { name: f.name, msg: e.message });
      }
    }
    $("up-submit").disabled = false;
    $("up-file").value = "";
    state.docsOffset = 0;
    loadDocs();
  }

  /* ---------- wiring ---------- */

  function wire() {
    $("login-form").addEventListener("submit", onLogin);
    $("logout-btn").addEventListener("click", onLogout);
    $("lang-btn").addEventListener("click", switchLang);
    $("ask-form").addEventListener("submit", onAsk);
    $("question").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        $("ask-form").requestSubmit();
      }
    });
    $("stop-btn").addEventListener("click", () => { if (state.streaming) state.streaming.abort.abort(); });
    $("new-conv").addEventListener("click", newConversation);
    $("passage-close").addEventListener("click", () => $("passage-dialog").close());
    $("passage-dialog").addEventListener("click", (ev) => {
      if (ev.target === ev.currentTarget) ev.currentTarget.close();  // click on the backdrop
    });
    $("upload-form").addEventListener("submit", onUpload);
    $("docs-failed").addEventListener("change", () => { state.docsOffset = 0; loadDocs(); });
    $("docs-refresh").addEventListener("click", loadAdmin);
    $("docs-prev").addEventListener("click", () => { state.docsOffset = Math.max(0, state.docsOffset - DOC_PAGE); loadDocs(); });
    $("docs-next").addEventListener("click", () => { state.docsOffset += DOC_PAGE; loadDocs(); });
    window.addEventListener("hashchange", route);
  }

  wire();
  start();
})();
