// hotmod live reload: the long poll, one per browser.
//
// As a SharedWorker (live.js starts it with the name "hotmod-live") it holds the
// one poll a browser makes, however many tabs are open, so tabs never eat the
// browser's six connections per host; it posts each new state to every tab and
// the latest one to a tab that connects. Where SharedWorker is missing or refused,
// live.js loads this same file as a page script: the tab then polls by itself and
// the states arrive as "hotmod:state" events on document. One poll loop, two hosts.
"use strict";
(function () {
  const inPage = typeof document !== "undefined";
  // This file is served from BASE, so BASE is its own folder.
  const base = new URL(".", inPage ? document.currentScript.src : self.location.href);
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

  // Poll forever: the server holds each request until its state differs from the
  // (key, clock) we send, or for `hold` seconds. A refused or failed poll (a server
  // that restarts) is retried silently, 100 ms doubling to 2 s.
  async function poll(deliver) {
    let [key, clock] = ["", 0]; // the newest state delivered
    let [wait, backoff] = [0, 100]; // ms before the next poll, and after the next failure
    for (;;) {
      if (wait > 0) await sleep(wait);
      try {
        const url = new URL("live/poll", base);
        if (key) {
          url.searchParams.set("key", key);
          url.searchParams.set("clock", String(clock));
        }
        const res = await fetch(url, { cache: "no-store", credentials: "same-origin" });
        if (!res.ok) throw new Error("poll answered " + res.status);
        const state = await res.json();
        backoff = 100;
        // A closing process (stopping, or restarting with its socket kept) needs
        // nothing more: the next poll waits for whichever process answers.
        wait = state.next_ms || 0;
        if (state.key !== key) deliver(state);
        key = state.key;
        clock = state.clock;
      } catch (err) {
        wait = backoff;
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  if (inPage) return void poll((state) => document.dispatchEvent(new CustomEvent("hotmod:state", { detail: state })));

  // Tabs that said goodbye (pagehide) get nothing; a tab that crashed stays in the
  // set, and posting to its dead port is harmless.
  const ports = new Set();
  let latest = null;
  let started = false;
  self.onconnect = (event) => {
    const port = event.ports[0];
    port.onmessage = (msg) => {
      if (msg.data === "bye") ports.delete(port);
      // A page restored from the back/forward cache says hello again.
      else if (msg.data === "hello") {
        ports.add(port);
        if (latest) port.postMessage(latest);
      }
    };
    ports.add(port);
    if (latest) port.postMessage(latest);
    if (!started) {
      started = true;
      poll((state) => {
        latest = state;
        for (const p of ports) p.postMessage(state);
      });
    }
  };
})();
