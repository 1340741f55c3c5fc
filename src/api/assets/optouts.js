// The dashboard's opt-out panel: phones opted out of reminders now, newest first
// (GET /whatsapp-report/opt-outs). Kept apart from dashboard.js; it reads the same stored token.
"use strict";
(function () {
  const TOKEN_KEY = "reminder.api_token";

  function token() {
    try { return localStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return ""; }
  }

  function masked(phone) {
    return phone.length > 4 ? "•••• " + phone.slice(-4) : phone;
  }

  function cell(tag, text, cls) {
    const node = document.createElement(tag);
    node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  async function load() {
    const container = document.getElementById("optouts");
    if (!container) return;
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    let rows, total;
    try {
      const response = await fetch("/whatsapp-report/opt-outs?limit=20", { headers });
      if (!response.ok) throw new Error("HTTP " + response.status);
      rows = await response.json();
      total = Number(response.headers.get("X-Total-Count") || rows.length);
    } catch (e) {
      container.replaceChildren(cell("p", "Could not load the opt-outs (" + e.message + ").", "placeholder bad"));
      return;
    }
    if (!rows.length) {
      container.replaceChildren(cell("p", "Nobody has opted out.", "placeholder good"));
      return;
    }
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const title of ["Phone", "Customer", "Source", "Since"]) head.appendChild(cell("th", title));
    const body = table.createTBody();
    for (const r of rows) {
      const row = body.insertRow();
      row.className = "optout-row";
      row.appendChild(cell("td", masked(r.phone)));
      row.appendChild(cell("td", r.customer_name || "–"));
      row.appendChild(cell("td", r.source.replace("_", " ")));
      row.appendChild(cell("td", new Date(r.at).toLocaleString()));
    }
    const note = cell("p", total + " phone(s) opted out", "muted small");
    container.replaceChildren(table, note);
  }

  document.addEventListener("DOMContentLoaded", load);
})();
