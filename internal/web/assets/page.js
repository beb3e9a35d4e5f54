// lvsd status page: refresh the tables every second without reloading the
// page, mark the rows whose state changed, and send actions with the token.
// The page works without this script (plain tables, a 5 s reload, form
// posts); the script only makes it live.
"use strict";
(function () {
  const period = 1000;          // ms between refreshes
  const keepMarked = 30000;     // ms a changed row stays marked
  const marked = new Map();     // data-key -> when its state changed
  let states = snapshot(document);
  const tokenInput = document.getElementById("token");

  function snapshot(root) {
    const m = new Map();
    root.querySelectorAll("[data-key]").forEach(function (el) { m.set(el.dataset.key, el.dataset.state); });
    return m;
  }

  function mark(row) {
    row.classList.add("changed");
    if (row.querySelector(".changed-mark")) return;
    const cell = row.querySelector("td") || row;
    const s = document.createElement("span");
    s.className = "changed-mark";
    s.textContent = " changed";
    cell.appendChild(s);
  }

  function notice(text, bad) {
    const n = document.getElementById("notice");
    n.textContent = text;
    n.classList.toggle("bad", !!bad);
    n.hidden = !text;
  }

  async function refresh() {
    try {
      const resp = await fetch("/", { cache: "no-store", headers: { Accept: "text/html" } });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const next = doc.getElementById("status");
      if (!next) throw new Error("no status in the answer");
      const now = Date.now();
      snapshot(next).forEach(function (state, key) {
        if (states.has(key) && states.get(key) !== state) marked.set(key, now);
      });
      states = snapshot(next);
      next.querySelectorAll("[data-key]").forEach(function (el) {
        const at = marked.get(el.dataset.key);
        if (at !== undefined && now - at < keepMarked) mark(el);
      });
      document.getElementById("status").replaceWith(next);
      const asOf = doc.getElementById("as-of");
      if (asOf) document.getElementById("as-of").textContent = asOf.textContent;
      document.body.classList.remove("stale");
      if (document.getElementById("notice").dataset.lost) { notice(""); delete document.getElementById("notice").dataset.lost; }
    } catch (e) {
      document.body.classList.add("stale");
      notice("Lost contact with lvsd (" + e.message + "); retrying.", true);
      document.getElementById("notice").dataset.lost = "1";
    } finally {
      setTimeout(refresh, period);
    }
  }

  // Token actions go through fetch, with the token from the field at the
  // top. Basic-auth actions stay plain form posts: the browser asks for
  // the password itself.
  if (tokenInput) {
    document.getElementById("credential").hidden = false;
    tokenInput.value = sessionStorage.getItem("lvsd-token") || "";
    tokenInput.addEventListener("change", function () { sessionStorage.setItem("lvsd-token", tokenInput.value); });
    document.getElementById("credential").addEventListener("submit", function (e) { e.preventDefault(); });
    document.addEventListener("submit", async function (e) {
      const form = e.target;
      if (!form.classList.contains("action")) return;
      e.preventDefault();
      const body = new URLSearchParams(new FormData(form));
      const headers = { Accept: "application/json" };
      if (tokenInput.value) headers.Authorization = "Bearer " + tokenInput.value.trim();
      const what = form.action.split("/").pop() + " " + (body.get("instance") || body.get("service") + " " + body.get("realserver"));
      try {
        const resp = await fetch(form.action, { method: "POST", body: body, headers: headers, credentials: "same-origin" });
        const answer = await resp.json().catch(function () { return {}; });
        if (resp.ok) notice("Done: " + what + ".");
        else if (resp.status === 401) notice("Refused: " + what + ": " + (answer.error || "unauthorized") + ". Give the action token above.", true);
        else notice("Refused: " + what + ": " + (answer.error || "HTTP " + resp.status), true);
      } catch (err) {
        notice("Failed: " + what + ": " + err.message, true);
      }
    });
  }

  document.getElementById("live").hidden = false;
  setTimeout(refresh, period);
})();
