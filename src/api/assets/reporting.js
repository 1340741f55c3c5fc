// The dashboard's reporting panel: vehicles due and never reminded (so the front desk can phone
// them) and the monthly management report (PDF). Reads only the public routes, with the token
// the main dashboard script keeps; every value goes into the page as text, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "reminder.api_token";
  const LIMIT = 50;
  const REFRESH_MS = 60000;
  const REASONS = { opted_out: "opted out", failed: "failed", not_attempted: "not attempted" };

  function token() {
    try { return localStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return ""; }
  }

  async function get(path) {
    const headers = {};
    if (token()) headers.Authorization = "Bearer " + token();
    const response = await fetch(path, { headers, cache: "no-store" });
    if (!response.ok) {
      let message = response.statusText || "request failed";
      try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
      throw new Error(response.status + ": " + message);
    }
    return response;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function reason(row) {
    const text = REASONS[row.reason] || row.reason;
    return row.error_code ? text + " (" + row.error_code + ")" : text;
  }

  async function loadNeverReminded() {
    const box = document.getElementById("never-reminded");
    const count = document.getElementById("never-reminded-count");
    if (!box || !count) return;
    try {
      const response = await get("/whatsapp-report/never-reminded?limit=" + LIMIT);
      const rows = await response.json();
      const total = Number(response.headers.get("X-Total-Count") || rows.length);
      count.textContent = String(total);
      if (rows.length === 0) {
        box.replaceChildren(el("p", { class: "placeholder good" }, "Every vehicle due in the last 30 days was reminded."));
        return;
      }
      const columns = [
        ["Due", (r) => r.next_maintenance_date, ""],
        ["Customer", (r) => r.customer_name, ""],
        ["Plate", (r) => el("span", { class: "plate" }, r.plate_number), ""],
        ["Why", reason, ""],
      ];
      const head = el("tr", null, ...columns.map(([title]) => el("th", { scope: "col" }, title)));
      const body = rows.map((r) => el("tr", { "data-reason": r.reason },
        ...columns.map(([title, cell]) => el("td", { "data-label": title }, cell(r)))));
      const parts = [el("div", { class: "table-wrap" },
        el("table", null, el("thead", null, head), el("tbody", null, ...body)))];
      if (total > rows.length) parts.push(el("p", { class: "note" }, "Showing the first " + rows.length + " of " + total + "."));
      box.replaceChildren(...parts);
    } catch (error) {
      box.replaceChildren(el("p", { class: "error", role: "status" }, "Could not load this (" + error.message + ")."));
    }
  }

  // A link cannot carry the bearer token, so the PDF is fetched and opened from memory.
  async function openMonthly(event) {
    event.preventDefault();
    const link = event.currentTarget;
    try {
      const response = await get(link.getAttribute("href"));
      const url = URL.createObjectURL(await response.blob());
      window.open(url, "_blank", "noopener");
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      link.after(el("span", { class: "error" }, " Could not make the report (" + error.message + ")."));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const link = document.getElementById("monthly-link");
    if (link) link.addEventListener("click", openMonthly);
    loadNeverReminded();
    setInterval(loadNeverReminded, REFRESH_MS);
  });
})();
