// What every dashboard script shares, loaded first: the stored API token, the API client, DOM
// helpers and formatters, published as window.ReminderDashboard. No framework and no build
// step; every value from the API goes into the page as text (textContent), never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "reminder.api_token";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const numberFormat = new Intl.NumberFormat(undefined);
  const decimalFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const percentFormat = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const dayFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
  const longDayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });

  // ---- the token -------------------------------------------------------------------------

  const storage = {
    get() {
      try { return localStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return memoryToken; }
    },
    set(value) {
      memoryToken = value;
      try { localStorage.setItem(TOKEN_KEY, value); } catch (_) { /* private mode: memory only */ }
    },
    clear() {
      memoryToken = "";
      try { localStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing stored */ }
    },
  };
  let memoryToken = "";

  // A link such as http://host:8000/#token=... (for a wall screen) stores the token once and
  // drops it from the address bar, so it is not left in the history.
  function takeTokenFromLocation() {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (!match) return;
    storage.set(decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  // ---- talking to the API ----------------------------------------------------------------

  class AuthError extends Error {}
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = storage.get();
    if (token) headers.Authorization = "Bearer " + token;
    let response;
    try {
      response = await fetch(path, { headers, cache: "no-store" });
    } catch (_) {
      throw new ApiError(0, "unreachable", "the server cannot be reached");
    }
    if (response.status === 401) throw new AuthError("token needed");
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON */ }
      const message = body && body.message ? body.message : response.statusText || "request failed";
      throw new ApiError(response.status, body && body.error, message);
    }
    const total = response.headers.get("X-Total-Count");
    return { data: await response.json(), total: total === null ? null : Number(total) };
  }

  function describeError(error) {
    if (error instanceof ApiError) {
      if (error.status === 503) return "The report is not available right now (" + error.message + "). It will load again once the database is back.";
      if (error.status === 0) return "The server cannot be reached. Check the connection; the page retries every minute.";
      return "Could not load this (" + error.status + ": " + error.message + ").";
    }
    return "Could not load this (" + (error && error.message ? error.message : String(error)) + ").";
  }

  // ---- small DOM helpers -----------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(container, ...nodes) {
    container.replaceChildren(...nodes.flat());
  }

  function placeholder(text, kind) {
    return el("p", { class: "placeholder" + (kind ? " " + kind : "") }, text);
  }

  function errorBox(error) {
    return el("p", { class: "error", role: "status" }, describeError(error));
  }

  function fmtNumber(n) {
    return n === null || n === undefined ? "–" : numberFormat.format(n);
  }

  function fmtTime(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : dateTimeFormat.format(d);
  }

  function fmtDay(isoDay, long) {
    if (!isoDay) return "–";
    const d = new Date(isoDay + "T00:00:00Z");
    if (Number.isNaN(d.getTime())) return isoDay;
    return (long ? longDayFormat : dayFormat).format(d);
  }

  function ago(iso) {
    const then = new Date(iso).getTime();
    if (Number.isNaN(then)) return "";
    const minutes = Math.round((Date.now() - then) / 60000);
    if (minutes < 1) return "just now";
    if (minutes < 60) return minutes + " min ago";
    const hours = Math.round(minutes / 60);
    if (hours < 48) return hours + " h ago";
    return Math.round(hours / 24) + " days ago";
  }

  function shortId(id) {
    return id ? String(id).slice(0, 8) : "–";
  }

  function vehicleText(row) {
    return [row.brand, row.model].filter(Boolean).join(" ");
  }

  function who(row) {
    const name = row.customer_name || "Unknown customer";
    return el("span", { class: "who" },
      el("span", { class: "name" }, name),
      row.customer_name ? null : el("span", { class: "muted mono", title: row.id_customer }, " " + shortId(row.id_customer)));
  }

  function plate(row) {
    if (row.plate_number) return el("span", { class: "plate" }, row.plate_number);
    return el("span", { class: "muted mono", title: row.id_vehicle }, shortId(row.id_vehicle));
  }

  function table(columns, rows, rowAttrs) {
    const head = el("tr", null, columns.map((c) => el("th", { scope: "col", class: c.class }, c.title)));
    const body = rows.map((row) =>
      el("tr", rowAttrs ? rowAttrs(row) : null, columns.map((c) => el("td", { class: c.class, "data-label": c.title }, c.cell(row)))));
    return el("div", { class: "table-wrap" }, el("table", null, el("thead", null, head), el("tbody", null, body)));
  }

  function customerCell(r) {
    return [who(r), r.customer_phone ? el("div", { class: "muted small" }, r.customer_phone) : null];
  }

  function vehicleCell(r) {
    const lines = [plate(r)];
    if (vehicleText(r)) lines.push(el("div", { class: "muted small" }, vehicleText(r)));
    if (r.next_maintenance_date) lines.push(el("div", { class: "muted small" }, "next service " + fmtDay(r.next_maintenance_date, true)));
    return lines;
  }

  function failureReason(r) {
    return el("span", { class: "reason" },
      r.error_code ? el("code", { class: "badge bad" }, r.error_code) : null,
      " ", r.error || "no reason given");
  }

  function setStat(name, text, value) {
    const out = document.querySelector('[data-stat="' + name + '"]');
    if (!out) return;
    out.textContent = text;
    if (value !== undefined) out.dataset.value = String(value);
  }

  function setHint(name, text) {
    const hint = document.querySelector('[data-stat-hint="' + name + '"]');
    if (hint) hint.textContent = text;
  }


  window.ReminderDashboard = {
    storage, takeTokenFromLocation, AuthError, ApiError, api, describeError,
    el, svg, fill, placeholder, errorBox, table, setStat, setHint,
    numberFormat, decimalFormat, percentFormat,
    fmtNumber, fmtTime, fmtDay, ago, shortId, vehicleText, who, plate,
    customerCell, vehicleCell, failureReason,
  };
})();
