// hotmod live reload: the page side (see docs and the contract in issue 22).
//
// The server injects this file as <script src=BASE/live.js data-hotmod-*>. It
// listens to the server's state (through the SharedWorker that holds the browser's
// one long poll) and brings the page to the code that serves: it patches the DOM
// in place (morph) so scroll, typed values and the page's own script state stay,
// swaps a changed stylesheet without a reload, and shows a failed edit in an
// overlay. No build step, no dependency, nothing from the server ever goes through
// innerHTML, and every style comes from live.css (the page's CSP may be
// "script-src 'self'; style-src 'self'").
"use strict";
(function () {
  const tag = document.currentScript || document.querySelector("script[data-hotmod-base]");
  if (!tag || window.__hotmod_live) return; // one copy per page, however often injected
  const root = document.documentElement;
  const base = tag.dataset.hotmodBase || "/__hotmod__/";
  const mode = tag.dataset.hotmodMode === "reload" ? "reload" : "morph";
  // hotmod's own error or restart page: it is the report, and it has its own strict
  // CSP, so it is never morphed into an app page (nor one into it): it reloads.
  const own = tag.dataset.hotmodPage === "hotmod";
  const live = (window.__hotmod_live = { updates: 0, reloads: 0, swaps: 0, mode: "tab" });

  // What this page shows: the key and clock of the code that rendered it (from its
  // tag at first), and the status on screen. States only ever move these forward.
  let key = tag.dataset.hotmodKey || "";
  let clock = Number(tag.dataset.hotmodClock) || 0;
  let status = "ok";
  let pending = null; // the newest state not applied yet (tab hidden, or busy)
  let busy = false;
  root.dataset.hotmodClock = String(clock);
  root.dataset.hotmodState = status;

  function receive(state) {
    // A lower clock is a process that is behind, unless this page waits for a
    // restart: a fresh process may count from less.
    if (!state || (state.clock < clock && status !== "restart")) return;
    pending = state;
    drain();
  }

  // One update at a time, always to the newest state, and only in a visible tab of a
  // parsed page: a hidden one applies its newest state when it is shown.
  async function drain() {
    while (pending && !busy && !document.hidden && document.readyState !== "loading") {
      const state = pending;
      [pending, busy] = [null, true];
      await apply(state).finally(() => (busy = false));
    }
  }

  async function apply(s) {
    // The same key and status on screen: this page already shows that state. (A
    // page rendered while a plan failed carries the failed key: show the overlay.)
    if (s.key === key && (own || s.status === status)) return;
    const afterRestart = status === "restart";
    key = s.key;
    status = s.status;
    if (own && status !== "restart") {
      await reload();
    } else if (status === "ok") {
      hideStatus();
      // A higher clock is new code; a restarted process may have the same clock
      // (same files, same mtimes) and still serves what this page never saw.
      if (s.clock > clock || afterRestart) await update(s);
    } else {
      showStatus(s);
    }
    root.dataset.hotmodState = status;
  }

  async function update(s) {
    const changes = s.changes || {};
    const files = changes.static || [];
    const styles = files.filter((f) => /\.css$/i.test(f));
    const code = (changes.modules || []).length + (changes.templates || []).length;
    // A changed script can only be run afresh by a new page.
    if (mode === "reload" || styles.length < files.length) return reload();
    try {
      if (code || !files.length) await morph(s.clock);
      // After a morph too: the morphed <link> kept its URL, so its sheet is the old one.
      if (styles.length) swapStyles(styles, s.clock);
    } catch (err) {
      console.warn("hotmod: the page could not be patched, reloading:", err);
      return reload();
    }
    clock = s.clock;
    root.dataset.hotmodClock = String(clock);
  }

  function reload() {
    live.reloads += 1;
    location.reload();
    return new Promise(() => {}); // stay busy: nothing more to do on this page
  }

  // ---- morph: fetch this URL again and patch the live DOM to match it ----

  async function morph(target) {
    const url = location.href.split("#")[0];
    let res;
    // The server catches up to `target` before answering; one that still answers
    // with an older clock (a worker behind) is asked again, 50 ms apart.
    for (let tries = 0; ; tries++) {
      const headers = { "X-Hotmod-Live": String(target) };
      res = await fetch(url, { headers, cache: "no-store", credentials: "same-origin" });
      const served = res.headers.get("X-Hotmod-Live-Clock"); // absent: nothing to compare
      if (served === null || !(Number(served) < target) || tries >= 20) break;
      await new Promise((done) => setTimeout(done, 50));
    }
    if (res.url.split("#")[0] !== url) throw new Error("redirected to " + res.url);
    const type = res.headers.get("Content-Type") || "";
    if (!/^text\/html/i.test(type)) throw new Error("not HTML: " + type);
    // DOMParser marks its scripts as already started: moved into the page, they never run.
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    if (doc.querySelector("script[data-hotmod-page]")) throw new Error("hotmod's own page");
    const [x, y] = [scrollX, scrollY];
    syncAttributes(root, doc.documentElement);
    morphChildren(document.head, doc.head);
    morphNode(document.body, doc.body);
    scrollTo(x, y);
    live.updates += 1;
  }

  // Which old node may become which new one. In <head> only identical markup
  // matches (a changed <link> is replaced, not re-pointed), but <style>s pair in
  // order, so an edited one is updated in place; in <body> elements with
  // the same tag and id (and a form field's name and type) keep their identity, so a
  // typed value stays with its field.
  function keyOf(node, inHead) {
    if (node.nodeType !== 1) return "#" + node.nodeType;
    if (inHead) return node.localName === "style" ? "style#" + node.id : swapped.get(node) || node.outerHTML;
    let k = node.localName + "#" + node.id;
    if (/^(input|select|textarea|button)$/.test(node.localName)) {
      k += "|" + node.getAttribute("name") + "|" + node.getAttribute("type");
    }
    return k;
  }

  // For each new child, the index of the old child it matches, or -1: the common
  // head and tail first (the usual case: a small edit), then a longest common
  // subsequence of the keys on what is left, so an inserted or removed element
  // does not shift every following one onto the wrong node.
  function pairUp(a, b) {
    const match = new Array(b.length).fill(-1);
    let s = 0;
    while (s < a.length && s < b.length && a[s] === b[s]) match[s] = s++;
    let [ea, eb] = [a.length, b.length];
    while (ea > s && eb > s && a[ea - 1] === b[eb - 1]) match[--eb] = --ea;
    const [n, m] = [ea - s, eb - s];
    if (!n || !m || n * m > 1e6) return match; // too big to compare: insert and remove
    const w = m + 1;
    const t = new Uint16Array((n + 1) * w); // t[i*w+j]: LCS length of a[s+i..] and b[s+j..]
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        const same = a[s + i] === b[s + j];
        t[i * w + j] = same ? t[(i + 1) * w + j + 1] + 1 : Math.max(t[(i + 1) * w + j], t[i * w + j + 1]);
      }
    }
    for (let i = 0, j = 0; i < n && j < m; ) {
      if (a[s + i] === b[s + j]) match[s + j++] = s + i++;
      else if (t[(i + 1) * w + j] >= t[i * w + j + 1]) i++;
      else j++;
    }
    return match;
  }

  function morphChildren(old, fresh) {
    const inHead = old === document.head;
    // A text-only element, the common leaf: no lists to compare.
    const [only, next] = [old.firstChild, fresh.firstChild];
    const leaf = (p, c) => c && c === p.lastChild && c.nodeType === 3;
    if (leaf(old, only) && leaf(fresh, next)) return morphNode(only, next);
    // Our own tag stays where it is, and the fresh page's copy of it is not added.
    const a = Array.from(old.childNodes).filter((n) => n !== tag);
    const ours = (n) => n.nodeType === 1 && n.matches("script[data-hotmod-base]");
    const b = Array.from(fresh.childNodes).filter((n) => !ours(n));
    const match = pairUp(a.map((n) => keyOf(n, inHead)), b.map((n) => keyOf(n, inHead)));
    const kept = new Set(match);
    // A <script> or <style> in <head> that the page lacks now stays: removing a script
    // undoes nothing, and page scripts add styles there (htmx, Tailwind's CDN, CSS-in-JS).
    const stays = (n) => inHead && (n.localName === "script" || n.localName === "style");
    a.forEach((n, i) => kept.has(i) || stays(n) || n.remove());
    // Matched nodes are in order and never moved (moving would blur a focused field);
    // new ones go in before the next kept node.
    let ref = old.firstChild;
    b.forEach((n, j) => {
      if (match[j] < 0) return void old.insertBefore(n, ref);
      const o = a[match[j]];
      morphNode(o, n);
      ref = o.nextSibling;
    });
  }

  function morphNode(old, fresh) {
    if (old.nodeType !== 1) {
      if (old.nodeValue !== fresh.nodeValue) old.nodeValue = fresh.nodeValue;
      return;
    }
    if (swapped.has(old)) return; // its URL carries our cache-busting query: keep it
    // The usual case, most of a page unchanged, compared natively. (It does not look
    // into a <template>'s content: a change there alone is left for a reload.)
    if (old.isEqualNode(fresh)) return;
    // Attributes only, never .value or .checked: a field the user typed in is
    // "dirty" and keeps its value when its value attribute changes.
    syncAttributes(old, fresh);
    if (old.localName === "template") old.content.replaceChildren(fresh.content);
    else morphChildren(old, fresh);
  }

  function syncAttributes(old, fresh) {
    const [was, now] = [old.attributes, fresh.attributes];
    let same = was.length === now.length; // the usual case, checked first: no change
    for (let i = 0; same && i < now.length; i++) {
      same = was[i].name === now[i].name && was[i].value === now[i].value;
    }
    if (same) return;
    // Ours on <html>, and the user's: a <details> or <dialog> opened or closed stays so.
    const keep = (at) =>
      (old === root && at.name.startsWith("data-hotmod-")) ||
      (at.name === "open" && /^(details|dialog)$/.test(old.localName));
    for (const at of Array.from(old.attributes)) {
      if (!keep(at) && !fresh.hasAttributeNS(at.namespaceURI, at.localName)) old.removeAttributeNode(at);
    }
    for (const at of Array.from(fresh.attributes)) {
      if (!keep(at) && old.getAttributeNS(at.namespaceURI, at.localName) !== at.value) {
        old.setAttributeNS(at.namespaceURI, at.name, at.value);
      }
    }
  }

  // ---- stylesheets: swap a changed <link> in place, no reload, no morph ----

  // A swapped-in <link> and the markup of the one it replaced, so that a later
  // morph sees it as the page's own link and leaves its fresh sheet alone.
  const swapped = new WeakMap();

  function swapStyles(files, stamp) {
    const links = Array.from(document.querySelectorAll('link[rel~="stylesheet"][href]')).filter(
      (l) => new URL(l.href).origin === location.origin,
    );
    // The URL /static/css/site.css serves the file /srv/app/static/css/site.css: the
    // link whose path shares the longest tail with a changed file is its link.
    const tail = (l, f) => {
      const p = new URL(l.href).pathname.split("/").reverse();
      const q = f.split(/[\\/]/).reverse();
      let k = 0;
      while (k < p.length && k < q.length && p[k] && p[k] === q[k]) k++;
      return k;
    };
    let hits = new Set();
    for (const f of files) {
      const best = Math.max(0, ...links.map((l) => tail(l, f)));
      if (best) links.filter((l) => tail(l, f) === best).forEach((l) => hits.add(l));
    }
    if (!hits.size) hits = new Set(links); // a sheet reached by @import, or unknown: all
    for (const old of hits) {
      const url = new URL(old.href);
      url.searchParams.set("hotmod", String(stamp));
      const clone = old.cloneNode();
      clone.href = url.href;
      swapped.set(clone, swapped.get(old) || old.outerHTML);
      // The old sheet stays until the new one is in: no flash of unstyled page.
      clone.onload = clone.onerror = () => old.remove();
      old.after(clone);
    }
    live.swaps += 1;
  }

  // ---- overlay and badge: a shadow root outside <body>, never morphed ----

  let host = null;
  let backdrop = null;
  let badge = null;

  function el(name, cls, text) {
    const e = document.createElement(name);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function ensureHost() {
    if (host) return;
    host = document.createElement("hotmod-live");
    const shadow = host.attachShadow({ mode: "open" });
    const sheet = Object.assign(el("link"), { rel: "stylesheet", href: base + "live.css" });
    // Hidden until its sheet is in, so an unstyled overlay never flashes by.
    host.style.display = "none";
    sheet.onload = sheet.onerror = () => host.style.removeProperty("display");
    backdrop = el("div", "backdrop");
    badge = el("button", "badge");
    backdrop.hidden = badge.hidden = true;
    backdrop.onclick = (e) => e.target === backdrop && (backdrop.hidden = true);
    badge.onclick = () => backdrop.firstChild && (backdrop.hidden = !backdrop.hidden);
    shadow.append(sheet, backdrop, badge);
    root.append(host);
  }

  function showStatus(s) {
    ensureHost();
    const f = s.status === "failed" ? s.failure : null;
    backdrop.replaceChildren();
    backdrop.hidden = !f;
    if (f) backdrop.append(failurePanel(f));
    const r = s.restart || {};
    badge.className = "badge " + s.status;
    if (s.status === "failed") badge.textContent = "serving generation " + s.generation + ", edit failed";
    else badge.textContent = r.restarting ? "restarting\u2026" : "restart needed";
    badge.title = f ? f.file + ":" + f.line : r.reason || "";
    badge.hidden = false;
  }

  function failurePanel(f) {
    const panel = el("div", "panel");
    panel.setAttribute("role", "alertdialog");
    const close = Object.assign(el("button", "close", "\u00d7"), { title: "Hide (the badge shows it again)" });
    close.onclick = () => (backdrop.hidden = true);
    const title = el("div", "title");
    title.append(el("span", "type", f.type || "Error"), close);
    const where = f.file ? f.file + (f.line ? ":" + f.line : "") : "unknown file";
    const pre = el("pre", "excerpt");
    for (const line of f.excerpt || []) {
      const row = el("span", line.current ? "line current" : "line");
      row.append(el("span", "no", line.line), el("span", "text", line.text));
      pre.append(row);
    }
    panel.append(
      title,
      el("div", "message", f.message),
      el("div", "where", where + (f.module ? " (module " + f.module + ")" : "")),
      pre,
      el("div", "hint", "Fix the file and save: this page follows by itself."),
    );
    if (!pre.firstChild) pre.remove();
    return panel;
  }

  function hideStatus() {
    if (host) backdrop.hidden = badge.hidden = true;
    if (host) backdrop.replaceChildren();
  }

  // ---- the connection: the browser's one SharedWorker, else this tab polls ----

  function connect() {
    let fellBack = false;
    const pollHere = () => {
      if (fellBack) return;
      fellBack = true;
      live.mode = "tab";
      document.addEventListener("hotmod:state", (e) => receive(e.detail));
      const s = el("script");
      s.src = base + "live-worker.js";
      s.nonce = tag.nonce; // a CSP with a nonce and no 'self' still runs it
      document.head.append(s);
    };
    if (typeof SharedWorker !== "function") return pollHere();
    try {
      const worker = new SharedWorker(base + "live-worker.js", { name: "hotmod-live" });
      worker.onerror = pollHere; // refused (worker-src) or failed to load
      worker.port.onmessage = (e) => receive(e.data);
      addEventListener("pagehide", () => worker.port.postMessage("bye"));
      addEventListener("pageshow", (e) => e.persisted && worker.port.postMessage("hello"));
      live.mode = "sharedworker";
    } catch (err) {
      pollHere();
    }
  }

  document.addEventListener("visibilitychange", drain);
  document.addEventListener("DOMContentLoaded", drain);
  connect();
})();
