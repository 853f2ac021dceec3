// portal.test.mjs — drives the zhiku portal in headless Chromium
// (playwright-core + Debian's /usr/bin/chromium) against a running server:
// sign in, streamed answer, citation passage with highlighted span, thumbs
// down with a comment, history, follow-up, "not found", language switch,
// a document deep link (#/doc/ID), admin page. Started by run.sh, which provides the server and these env:
//   ZK_URL, ZK_USER, ZK_PASS, [ZK_ADMIN_USER, ZK_ADMIN_PASS], [ZK_ARTIFACTS]
// Prints "N passed, N failed"; exits 1 on any failure.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const BASE = process.env.ZK_URL || "http://127.0.0.1:8080";
const USER = process.env.ZK_USER || "alice";
const PASS = process.env.ZK_PASS || "alice-pass-123";
const ADMIN_USER = process.env.ZK_ADMIN_USER || "";
const ADMIN_PASS = process.env.ZK_ADMIN_PASS || "";
const ARTIFACTS = process.env.ZK_ARTIFACTS || path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../build/test-artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const Q_FOUND = process.env.ZK_Q_FOUND || "年假有多少天？";
const Q_FOLLOWUP = process.env.ZK_Q_FOLLOWUP || "How long is probation?";
const Q_NOT_FOUND = process.env.ZK_Q_NOT_FOUND || "What is the quantum flux capacitor warranty?";

let passed = 0, failed = 0;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${(e && e.message ? e.message : String(e)).split("\n")[0]}`);
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }

fs.mkdirSync(ARTIFACTS, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "zk-chromium-"));
// launchPersistentContext is how playwright takes a fresh --user-data-dir
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  locale: "en-US",
  viewport: { width: 1200, height: 860 },
  acceptDownloads: true,
});
ctx.setDefaultTimeout(15000);
const page = ctx.pages()[0] || await ctx.newPage();
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error" && !/status of (401|404)/.test(m.text())) pageErrors.push("console: " + m.text()); });

async function login(user, pass) {
  await page.fill("#login-user", user);
  await page.fill("#login-password", pass);
  await page.click("#login-submit");
  await page.waitForSelector("#chat-view:not([hidden]), #admin-view:not([hidden])");
}

/* Ask via the form and record the answer element's text while it streams. */
async function ask(question, { viaEnter = false } = {}) {
  const before = await page.locator("#thread article.msg").count();
  await page.evaluate(() => {
    window.__zkLens = [];
    const thread = document.getElementById("thread");
    window.__zkObs && window.__zkObs.disconnect();
    window.__zkObs = new MutationObserver(() => {
      const arts = thread.querySelectorAll("article.msg");
      const a = arts[arts.length - 1] && arts[arts.length - 1].querySelector(".answer-text");
      if (a) window.__zkLens.push({ len: a.textContent.length, busy: a.getAttribute("aria-busy") === "true" });
    });
    window.__zkObs.observe(thread, { childList: true, subtree: true, characterData: true });
  });
  await page.fill("#question", question);
  if (viaEnter) await page.press("#question", "Enter");
  else await page.click("#ask-btn");
  const msg = page.locator("#thread article.msg").nth(before);
  await msg.locator('.answer-text[aria-busy="false"]').waitFor();
  const lens = await page.evaluate(() => { window.__zkObs.disconnect(); return window.__zkLens; });
  return { msg, lens };
}

try {
  await step("page loads and shows sign-in", async () => {
    const res = await page.goto(BASE + "/");
    assert(res && res.ok(), "GET / failed: " + (res && res.status()));
    await page.waitForSelector("#login-view:not([hidden])");
    assert(await page.locator("label[for=login-user]").isVisible(), "user name label missing");
  });

  await step("every UI string exists in English and Chinese", async () => {
    const missing = await page.evaluate(() => {
      const { en, zh } = window.ZK_I18N;
      return Object.keys(en).filter((k) => !(k in zh)).concat(Object.keys(zh).filter((k) => !(k in en)));
    });
    assert(missing.length === 0, "missing keys: " + missing.join(", "));
  });

  await step("wrong password is refused with a message", async () => {
    await page.fill("#login-user", USER);
    await page.fill("#login-password", "definitely-wrong");
    await page.click("#login-submit");
    await page.locator("#login-error").filter({ hasText: /\S/ }).waitFor();
    assert(await page.locator("#login-view").isVisible(), "should still be on sign-in");
  });

  await step("sign in", async () => {
    await page.fill("#login-password", "");
    await login(USER, PASS);
    assert(await page.locator("#chat-view").isVisible(), "chat view not shown");
    const who = await page.textContent("#whoami");
    assert(who.includes(USER), "whoami shows " + who);
    const cookies = await ctx.cookies();
    const c = cookies.find((x) => x.name === "zk_session");
    assert(c && c.httpOnly, "zk_session cookie missing or not HttpOnly");
  });

  let first;
  await step("ask: answer streams in before the done event", async () => {
    first = await ask(Q_FOUND);
    const finalLen = await first.msg.locator(".answer-text").evaluate((e) => e.textContent.length);
    const partial = first.lens.filter((r) => r.busy && r.len > 0 && r.len < finalLen);
    assert(finalLen > 0, "empty answer");
    assert(partial.length > 0, `no partial text seen while streaming (samples: ${JSON.stringify(first.lens.slice(0, 8))}, final ${finalLen})`);
    assert(!(await first.msg.locator(".a.not-found").count()), "answer unexpectedly 'not found'");
  });

  await step("citations: markers and a sources list", async () => {
    const n = await first.msg.locator(".answer-text button.cite").count();
    assert(n > 0, "no citation markers in the answer");
    const src = await first.msg.locator(".sources li").count();
    assert(src > 0, "no sources list");
    const title = await first.msg.locator(".sources li .src-title").first().textContent();
    assert(title.trim().length > 0, "source without title");
  });

  await step("citation marker opens the passage with the cited span highlighted", async () => {
    const marker = first.msg.locator(".answer-text button.cite").first();
    await marker.click();
    const dlg = page.locator("#passage-dialog");
    await dlg.waitFor({ state: "visible" });
    const mark = dlg.locator("#passage-text mark");
    await mark.waitFor();
    try {
      const marked = (await mark.textContent()).trim();
      assert(marked.length > 0, "empty highlight");
      const answer = await first.msg.locator(".answer-text").textContent();
      // the highlighted span supports the answer: they share a run of 6 code points
      const squash = (x) => Array.from(x.replace(/\[\d+\]|\s+/g, ""));
      const a = squash(answer), m = squash(marked).join("");
      let shared = false;
      for (let i = 0; i + 6 <= a.length && !shared; i++) shared = m.includes(a.slice(i, i + 6).join(""));
      assert(shared, `highlight ${JSON.stringify(marked)} shares nothing with the answer ${JSON.stringify(answer)}`);
      assert((await dlg.locator("#passage-doc").textContent()).trim().length > 0, "passage without title");
    } finally {
      await page.keyboard.press("Escape");
    }
    await dlg.waitFor({ state: "hidden" });
    assert(await marker.evaluate((e) => e === document.activeElement), "focus did not return to the marker");
  });

  await step("thumbs down with a comment is sent", async () => {
    await first.msg.locator("button.fb-down").click();
    assert((await first.msg.locator("button.fb-down").getAttribute("aria-pressed")) === "true", "not pressed");
    await first.msg.locator(".fb-form textarea").fill("The answer missed the sick-leave rule.");
    const [req] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith("/api/v1/feedback") && r.method() === "POST"),
      first.msg.locator(".fb-form button[type=submit]").click(),
    ]);
    const body = JSON.parse(req.postData());
    assert(body.rating === -1 && body.comment && body.message_id !== undefined, "bad body " + req.postData());
    assert(req.headers()["x-csrf-token"], "no X-CSRF-Token header");
    const res = await req.response();
    assert(res && res.ok(), "feedback answered " + (res && res.status()));
    await first.msg.locator(".fb-status").filter({ hasText: /\S/ }).waitFor();
  });

  await step("follow-up question (Enter key) continues the conversation", async () => {
    const [req] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith("/api/v1/ask")),
      ask(Q_FOLLOWUP, { viaEnter: true }),
    ]);
    const body = JSON.parse(req.postData());
    assert(body.stream === true, "stream not requested");
    assert(body.conversation_id !== undefined && body.conversation_id !== null, "follow-up without conversation_id");
    assert((await page.locator("#thread article.msg").count()) === 2, "thread should hold 2 messages");
  });

  await step("history lists the conversation and reopens it", async () => {
    await page.locator("#conv-list a.conv-link").first().waitFor();
    const n = await page.locator("#conv-list a.conv-link").count();
    assert(n >= 1, "no conversations listed");
    await page.click("#new-conv");
    assert((await page.locator("#thread article.msg").count()) === 0, "new conversation not empty");
    await page.locator("#conv-list a.conv-link").first().click();
    await page.locator("#thread article.msg").nth(1).waitFor();
    const q = await page.locator("#thread article.msg .q-text").first().textContent();
    assert(q === Q_FOUND, "reopened conversation starts with " + q);
    assert(await page.locator("#thread article.msg").first().locator("button.cite").count() > 0, "history lost citations");
  });

  await step("'not found' answer is displayed distinctly", async () => {
    await page.click("#new-conv");
    const r = await ask(Q_NOT_FOUND);
    await r.msg.locator(".a.not-found .badge-nf").waitFor();
    const bg = await r.msg.locator(".a").evaluate((e) => getComputedStyle(e).backgroundColor);
    const bgFound = await page.evaluate(() => {
      const d = document.createElement("div"); d.className = "a"; document.body.append(d);
      const c = getComputedStyle(d).backgroundColor; d.remove(); return c;
    });
    assert(bg !== bgFound, "not-found answer looks like a normal one");
  });

  await step("switch language to Chinese and back; choice persists", async () => {
    const enLabel = await page.textContent("#ask-btn");
    await page.click("#lang-btn");
    assert((await page.getAttribute("html", "lang")) === "zh-CN", "html lang not zh-CN");
    const zhLabel = await page.textContent("#ask-btn");
    assert(zhLabel !== enLabel && /[\u4e00-\u9fff]/.test(zhLabel), "button not translated: " + zhLabel);
    await page.reload();
    await page.waitForSelector("#chat-view:not([hidden])");
    assert((await page.getAttribute("html", "lang")) === "zh-CN", "language not persisted across reload");
    // one more answer in Chinese for the screenshot
    await page.locator("#conv-list a.conv-link").last().click();
    await page.locator("#thread article.msg").first().waitFor();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, "portal.png"), fullPage: true });
    await page.click("#lang-btn");
    assert((await page.getAttribute("html", "lang")) === "en", "html lang not en");
  });

  await step("keyboard: the citation marker is reachable and opens with Enter", async () => {
    const marker = page.locator("#thread button.cite").first();
    await marker.focus();
    await page.keyboard.press("Enter");
    await page.locator("#passage-dialog mark").waitFor();
    await page.keyboard.press("Escape");
    await page.locator("#passage-dialog").waitFor({ state: "hidden" });
    const focus = await page.evaluate(() => ({
      cite: document.activeElement.classList.contains("cite"),
      outline: getComputedStyle(document.activeElement).outlineStyle,
    }));
    assert(focus.cite, "focus not back on the marker");
    assert(focus.outline !== "none", "no visible focus ring on the marker");
  });

  await step("document deep link #/doc/ID shows the title and passages", async () => {
    const list = await page.evaluate(async () => (await fetch("api/v1/documents?limit=50", { credentials: "same-origin" })).json());
    const d = (list.documents || []).find((x) => x.title && x.chunks > 0);
    assert(d, "no sample document in " + JSON.stringify(list).slice(0, 200));
    await page.evaluate((h) => { location.hash = h; }, "#/doc/" + d.doc);   // the numeric id chat replies link to
    await page.locator("#doc-view:not([hidden]) h1#doc-h").filter({ hasText: d.title }).waitFor();
    await page.locator("#doc-view .doc-passage .passage-text").first().waitFor();
    const text = await page.locator("#doc-view .doc-passage .passage-text").first().textContent();
    assert(text.trim().length > 0, "empty passage");
    // the external id works too (percent-encoded, as hook_render writes it)
    await page.evaluate((h) => { location.hash = h; }, "#/doc/" + encodeURIComponent(d.id));
    await page.locator("#doc-view h1#doc-h").filter({ hasText: d.title }).waitFor();
    // unknown id: a neutral "not found or not allowed", nothing else
    await page.evaluate(() => { location.hash = "#/doc/987654321"; });
    await page.locator("#doc-view .error").filter({ hasText: /\S/ }).waitFor();
    assert(!(await page.locator("#doc-view .doc-passage").count()), "passages shown for an unknown document");
    await page.click("#doc-view .doc-back a");
    await page.waitForSelector("#chat-view:not([hidden])");
  });

  if (ADMIN_USER) {
    await step("admin page: documents, failed filter, review queue, upload", async () => {
      await page.click("#logout-btn");
      await page.waitForSelector("#login-view:not([hidden])");
      await login(ADMIN_USER, ADMIN_PASS);
      assert(await page.locator("#nav-admin").isVisible(), "admin link hidden for an admin");
      await page.click("#nav-admin");
      await page.waitForSelector("#admin-view:not([hidden])");
      await page.locator("#docs-table tbody tr td .doc-title").first().waitFor();
      const docs = await page.locator("#docs-table tbody tr").count();
      assert(docs >= 2, "documents table has " + docs + " rows");
      await Promise.all([
        page.waitForResponse((r) => r.url().includes("/api/v1/documents?") && r.url().includes("failed=1")),
        page.check("#docs-failed"),
      ]);
      await page.screenshot({ path: path.join(ARTIFACTS, "portal-admin-failed.png"), fullPage: true });
      await page.uncheck("#docs-failed");
      await page.locator("#review-table tbody tr").first().waitFor();
      const review = await page.locator("#review-table tbody").textContent();
      assert(review.includes(Q_NOT_FOUND) || review.includes(Q_FOUND), "review queue lacks our questions: " + review.slice(0, 200));
      assert((await page.getAttribute("#review-export", "href")).includes("format=jsonl"), "no export link");
      await page.setInputFiles("#up-file", { name: "portal-upload.txt", mimeType: "text/plain", buffer: Buffer.from("Portal upload test.\n门户上传测试。\n") });
      await page.fill("#up-acl", "everyone");
      await page.fill("#up-tags", "source=portal-test");
      await page.click("#up-submit");
      await page.locator("#up-results li.ok, #up-results li.error").first().waitFor();
      const up = await page.locator("#up-results li").first().textContent();
      assert(await page.locator("#up-results li.ok").count() === 1, "upload failed: " + up);
      await page.screenshot({ path: path.join(ARTIFACTS, "portal-admin.png"), fullPage: true });
    });
  } else {
    await step("admin link hidden for a non-admin", async () => {
      assert(!(await page.locator("#nav-admin").isVisible()), "admin link visible");
    });
  }

  await step("no script errors", async () => {
    assert(pageErrors.length === 0, pageErrors.join(" | "));
  });
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
