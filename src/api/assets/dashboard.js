// The dashboard: reads only the public JSON routes under /whatsapp-report and renders them.
// No framework and no build step; every value from the API goes into the page as text
// (textContent), never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "reminder.api_token";
  const REFRESH_MS = 60000;
  const TOP_LIMIT = 10;
  const FAILURE_LIMIT = 15;
  // Name search runs over the detail pages loaded here (the API has no name search).
  const SEARCH_PAGE = 1000;
  const SEARCH_MAX_PAGES = 10;
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

  // ---- sections --------------------------------------------------------------------------

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

  function renderStatistics(stats) {
    setStat("total_messages", fmtNumber(stats.total_messages), stats.total_messages);
    setStat("total_failed", fmtNumber(stats.total_failed), stats.total_failed);
    const attempted = stats.total_messages + stats.total_failed;
    setHint("success_rate", attempted > 0
      ? percentFormat.format(stats.total_messages / attempted) + " of reminders delivered"
      : "could not be delivered");
    setStat("unique_customers", fmtNumber(stats.unique_customers), stats.unique_customers);
    setHint("unique_vehicles", "vehicles: " + fmtNumber(stats.unique_vehicles));
    setStat("average_frequency", decimalFormat.format(stats.average_frequency), stats.average_frequency);
    setHint("max_frequency", "most for one vehicle: " + fmtNumber(stats.max_frequency));
    if (stats.last_message_date) {
      setStat("last_message_date", ago(stats.last_message_date), stats.last_message_date);
      setHint("last_message_time", fmtTime(stats.last_message_date));
    } else {
      setStat("last_message_date", "none yet", "");
      setHint("last_message_time", "no reminder has been sent");
    }
    document.querySelector('[data-card="total_failed"]').classList.toggle("alert", stats.total_failed > 0);
  }

  function statisticsFailed(error) {
    for (const out of document.querySelectorAll("[data-stat]")) out.textContent = "–";
    showBanner(describeError(error));
  }

  // Axis ticks in whole, round steps (1, 2 or 5 times a power of ten): counts are integers.
  function axis(peak) {
    if (peak <= 4) return { step: 1, max: 4 };
    const raw = peak / 4;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    return { step, max: step * Math.ceil(peak / step) };
  }

  function renderDaily(days) {
    const container = document.getElementById("daily");
    const sent = days.reduce((n, d) => n + d.sent, 0);
    const failed = days.reduce((n, d) => n + d.failed, 0);
    setStat("last_30_days", fmtNumber(sent), sent);
    setHint("last_30_days_failed", "sent, " + fmtNumber(failed) + " failed");
    document.getElementById("daily-summary").textContent = days.length
      ? fmtDay(days[0].date, true) + " to " + fmtDay(days[days.length - 1].date, true) +
        " (workshop time zone): " + fmtNumber(sent) + " sent, " + fmtNumber(failed) + " failed."
      : "The last 30 days.";

    const width = 920, height = 260;
    const left = 44, right = 8, top = 12, bottom = 30;
    const plotW = width - left - right, plotH = height - top - bottom;
    const peak = Math.max(0, ...days.map((d) => d.sent + d.failed));
    const { step, max } = axis(peak);
    const y = (v) => top + plotH - (v / max) * plotH;
    const slot = plotW / Math.max(days.length, 1);
    const barW = Math.max(2, Math.min(22, slot * 0.68));

    const chart = svg("svg", {
      viewBox: "0 0 " + width + " " + height, class: "bars", role: "img",
      "aria-label": "Messages per day: " + sent + " sent and " + failed + " failed over " + days.length + " days",
    });
    for (let v = 0; v <= max; v += step) {
      chart.append(
        svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "grid" }),
        svg("text", { x: left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, numberFormat.format(v)));
    }
    const labelEvery = Math.ceil(days.length / 10);
    days.forEach((d, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const group = svg("g", { class: "day", dataset: { date: d.date, sent: d.sent, failed: d.failed } },
        svg("title", null, fmtDay(d.date, true) + ": " + d.sent + " sent, " + d.failed + " failed"),
        // An invisible full-height target so the tooltip works on empty days too.
        svg("rect", { x: left + i * slot, y: top, width: slot, height: plotH, class: "hover" }));
      if (d.sent > 0) {
        group.append(svg("rect", { x, y: y(d.sent), width: barW, height: y(0) - y(d.sent), class: "bar sent", rx: 2 }));
      }
      if (d.failed > 0) {
        group.append(svg("rect", { x, y: y(d.sent + d.failed), width: barW, height: y(d.sent) - y(d.sent + d.failed), class: "bar failed", rx: 2 }));
      }
      chart.append(group);
      const last = i === days.length - 1;
      if (last || (i % labelEvery === 0 && days.length - 1 - i >= labelEvery / 2)) {
        chart.append(svg("text", { x: left + i * slot + slot / 2, y: height - 10, class: "tick", "text-anchor": "middle" },
          last ? "Today" : fmtDay(d.date)));
      }
    });
    fill(container, chart);
    if (sent + failed === 0) container.append(placeholder("No reminders in the last 30 days.", "overlay"));
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

  function renderTop(rows) {
    const container = document.getElementById("top");
    if (!rows.length) return fill(container, placeholder("No reminder has been sent yet."));
    fill(container, table([
      { title: "Customer", cell: customerCell },
      { title: "Vehicle", cell: vehicleCell },
      { title: "Sent", class: "num", cell: (r) => el("strong", null, fmtNumber(r.frequency)) },
      { title: "Failed", class: "num", cell: (r) => r.failed_count ? el("span", { class: "bad" }, fmtNumber(r.failed_count)) : "0" },
      { title: "Last", cell: (r) => el("span", { title: fmtTime(r.last_message_date) }, ago(r.last_message_date)) },
    ], rows, (r) => ({ class: "top-row", "data-customer": r.id_customer, "data-vehicle": r.id_vehicle, "data-frequency": r.frequency })));
  }

  function renderOver(rows) {
    const container = document.getElementById("over");
    if (!rows.length) return fill(container, placeholder("Nobody is over the threshold. Good.", "good"));
    fill(container, table([
      { title: "Customer", cell: who },
      { title: "Vehicle", cell: plate },
      { title: "Sent", class: "num", cell: (r) => el("strong", { class: "bad", title: "reminders sent within the alert window" }, fmtNumber(r.messages_in_window)) },
      { title: "Last", cell: (r) => r.last_message_date ? el("span", { title: fmtTime(r.last_message_date) }, ago(r.last_message_date)) : "–" },
    ], rows, (r) => ({ class: "over-row", "data-customer": r.id_customer, "data-vehicle": r.id_vehicle, "data-count": r.messages_in_window })));
  }

  function failureReason(r) {
    return el("span", { class: "reason" },
      r.error_code ? el("code", { class: "badge bad" }, r.error_code) : null,
      " ", r.error || "no reason given");
  }

  function renderFailures(rows, total) {
    const container = document.getElementById("failures");
    if (!rows.length) return fill(container, placeholder("No failed reminders. Every message went out.", "good"));
    const nodes = [table([
      { title: "When", cell: (r) => el("span", { title: fmtTime(r.at) }, fmtTime(r.at)) },
      { title: "Customer", cell: who },
      { title: "Vehicle", cell: plate },
      { title: "Reason", class: "wide", cell: failureReason },
      { title: "Attempts", class: "num", cell: (r) => fmtNumber(r.attempts) },
    ], rows, (r) => ({ class: "failure-row", "data-reminder": r.reminder_id, "data-code": r.error_code || "" }))];
    if (total !== null && total > rows.length) {
      nodes.push(el("p", { class: "note" }, "Showing the latest " + rows.length + " of " + fmtNumber(total) + " failures."));
    }
    fill(container, nodes);
  }

  // ---- search ----------------------------------------------------------------------------

  const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
  let searchIndex = null; // { rows, total } once loaded; reset on refresh

  async function loadSearchIndex() {
    if (searchIndex) return searchIndex;
    const rows = [];
    let total = 0;
    for (let page = 0; page < SEARCH_MAX_PAGES; page++) {
      const { data, total: t } = await api("/whatsapp-report/detail?sort=recent&limit=" + SEARCH_PAGE + "&offset=" + page * SEARCH_PAGE);
      rows.push(...data);
      total = t === null ? rows.length : t;
      if (data.length < SEARCH_PAGE || rows.length >= total) break;
    }
    searchIndex = { rows, total };
    return searchIndex;
  }

  function matches(row, text, digits) {
    const hay = [row.customer_name, row.plate_number, row.brand, row.model].filter(Boolean).join(" ").toLowerCase();
    if (text.split(/\s+/).every((word) => hay.includes(word))) return true;
    // Plates are often typed without spaces: "B1234XYZ".
    const compact = text.replace(/\s+/g, "");
    if (row.plate_number && compact.length >= 3 && row.plate_number.replace(/\s+/g, "").toLowerCase().includes(compact)) return true;
    if (digits.length >= 4 && row.customer_phone) {
      // 0812... and 62812... are the same number.
      const phone = row.customer_phone.replace(/\D/g, "");
      const local = digits.replace(/^0/, "");
      return phone.includes(digits) || (local.length >= 4 && phone.includes(local));
    }
    return false;
  }

  function detailTable(rows) {
    return table([
      { title: "Customer", cell: customerCell },
      { title: "Vehicle", cell: vehicleCell },
      { title: "Sent", class: "num", cell: (r) => el("strong", null, fmtNumber(r.frequency)) },
      { title: "Failed", class: "num", cell: (r) => r.failed_count ? el("span", { class: "bad" }, fmtNumber(r.failed_count)) : "0" },
      { title: "Last reminder", cell: (r) => fmtTime(r.last_message_date) },
      { title: "Customer id", cell: (r) => el("span", { class: "mono small" }, r.id_customer) },
    ], rows, (r) => ({ class: "search-row", "data-customer": r.id_customer, "data-vehicle": r.id_vehicle }));
  }

  function historyTable(rows) {
    return table([
      { title: "When", cell: (r) => fmtTime(r.at) },
      { title: "Vehicle", cell: plate },
      { title: "Result", cell: (r) => el("span", { class: "badge " + (r.status === "sent" ? "good" : "bad") }, r.status) },
      { title: "Details", class: "wide", cell: (r) => r.status === "sent" ? el("span", { class: "muted small mono" }, r.provider + " " + (r.provider_message_id || "")) : failureReason(r) },
      { title: "Attempts", class: "num", cell: (r) => fmtNumber(r.attempts) },
    ], rows, (r) => ({ class: "history-row", "data-status": r.status }));
  }

  async function searchById(id) {
    const q = encodeURIComponent(id);
    let filter = "customer";
    let [details, history] = await Promise.all([
      api("/whatsapp-report/detail?limit=1000&customer=" + q),
      api("/whatsapp-report/messages?limit=20&customer=" + q),
    ]);
    if (!details.data.length && !history.data.length) {
      filter = "vehicle";
      [details, history] = await Promise.all([
        api("/whatsapp-report/detail?limit=1000&vehicle=" + q),
        api("/whatsapp-report/messages?limit=20&vehicle=" + q),
      ]);
    }
    if (!details.data.length && !history.data.length) {
      return [placeholder("No reminder was ever sent to a customer or vehicle with id " + id + ".")];
    }
    const out = [el("p", { class: "note" }, "Reports of " + filter + " " + id + ":")];
    out.push(details.data.length ? detailTable(details.data) : placeholder("No reminder reached this " + filter + " yet."));
    out.push(el("h3", null, "Latest messages"));
    out.push(history.data.length ? historyTable(history.data) : placeholder("No messages."));
    if (history.total !== null && history.total > history.data.length) {
      out.push(el("p", { class: "note" }, "The latest " + history.data.length + " of " + fmtNumber(history.total) + " messages."));
    }
    return out;
  }

  async function searchByText(text) {
    const index = await loadSearchIndex();
    const needle = text.toLowerCase();
    const digits = text.replace(/\D/g, "");
    const found = index.rows.filter((r) => matches(r, needle, digits));
    const out = [];
    const scope = index.total > index.rows.length
      ? " among the " + fmtNumber(index.rows.length) + " most recently reminded of " + fmtNumber(index.total) + " vehicles; search by customer id to look further back"
      : "";
    if (!found.length) {
      out.push(placeholder("Nobody matches “" + text + "”" + scope + "."));
      return out;
    }
    out.push(el("p", { class: "note" }, found.length + (found.length === 1 ? " match" : " matches") + scope + "."));
    out.push(detailTable(found.slice(0, 200)));
    if (found.length > 200) out.push(el("p", { class: "note" }, "Showing the first 200; narrow the search."));
    return out;
  }

  async function runSearch(event) {
    if (event) event.preventDefault();
    const input = document.getElementById("search-input");
    const results = document.getElementById("search-results");
    const text = input.value.trim();
    if (!text) return fill(results);
    fill(results, placeholder("Searching…"));
    results.dataset.state = "loading";
    try {
      fill(results, UUID.test(text) ? await searchById(text) : await searchByText(text));
      results.dataset.state = "ready";
    } catch (error) {
      if (error instanceof AuthError) return needToken(true);
      fill(results, errorBox(error));
      results.dataset.state = "error";
    }
  }

  // ---- page state ------------------------------------------------------------------------

  function showBanner(text) {
    const banner = document.getElementById("banner");
    banner.textContent = text;
    banner.hidden = !text;
  }

  function needToken(rejected) {
    document.body.dataset.state = "auth";
    document.getElementById("auth").hidden = false;
    document.getElementById("content").hidden = true;
    document.getElementById("auth-message").textContent = rejected
      ? "The server did not accept the token. Check it and enter it again."
      : "This server asks for an API token (http.api_token) before it shows the report. Ask your administrator for it; this browser remembers it.";
    document.getElementById("updated").textContent = "Token needed";
    document.getElementById("forget-token").hidden = !storage.get();
    document.getElementById("token-input").focus();
  }

  function authenticated() {
    document.getElementById("auth").hidden = true;
    document.getElementById("content").hidden = false;
    document.getElementById("forget-token").hidden = !storage.get();
  }

  let loading = false;

  async function refresh() {
    if (loading) return;
    loading = true;
    searchIndex = null;
    const sections = [
      { name: "statistics", load: () => api("/whatsapp-report/statistics"), render: (r) => renderStatistics(r.data), fail: statisticsFailed },
      { name: "daily", load: () => api("/whatsapp-report/daily"), render: (r) => renderDaily(r.data), fail: (e) => fill(document.getElementById("daily"), errorBox(e)) },
      { name: "top", load: () => api("/whatsapp-report/detail?sort=frequency&limit=" + TOP_LIMIT), render: (r) => renderTop(r.data), fail: (e) => fill(document.getElementById("top"), errorBox(e)) },
      { name: "over", load: () => api("/whatsapp-report/over-reminded?limit=20"), render: (r) => renderOver(r.data), fail: (e) => fill(document.getElementById("over"), errorBox(e)) },
      { name: "failures", load: () => api("/whatsapp-report/messages?status=failed&limit=" + FAILURE_LIMIT), render: (r) => renderFailures(r.data, r.total), fail: (e) => fill(document.getElementById("failures"), errorBox(e)) },
    ];
    try {
      const results = await Promise.allSettled(sections.map((s) => s.load()));
      if (results.some((r) => r.status === "rejected" && r.reason instanceof AuthError)) {
        needToken(Boolean(storage.get()));
        return;
      }
      authenticated();
      showBanner("");
      let failed = 0;
      results.forEach((result, i) => {
        const section = sections[i];
        if (result.status === "fulfilled") {
          try {
            section.render(result.value);
          } catch (error) {
            failed++;
            section.fail(error);
          }
        } else {
          failed++;
          section.fail(result.reason);
        }
      });
      document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      document.body.dataset.state = failed ? "error" : "ready";
      if (document.getElementById("search-input").value.trim()) runSearch();
    } finally {
      loading = false;
    }
  }

  function exportWithToken(event) {
    // A plain link cannot carry the Authorization header: fetch the file instead.
    const token = storage.get();
    if (!token) return;
    event.preventDefault();
    const link = event.currentTarget;
    link.textContent = "Preparing the CSV…";
    fetch(link.href, { headers: { Authorization: "Bearer " + token } })
      .then((response) => {
        if (response.status === 401) throw new AuthError("token needed");
        if (!response.ok) throw new ApiError(response.status, null, response.statusText);
        return response.blob();
      })
      .then((blob) => {
        const url = URL.createObjectURL(blob);
        const a = el("a", { href: url, download: "whatsapp-report.csv" });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      })
      .catch((error) => (error instanceof AuthError ? needToken(true) : showBanner(describeError(error))))
      .finally(() => { link.textContent = "Download the report (CSV)"; });
  }

  function start() {
    takeTokenFromLocation();
    document.getElementById("refresh").addEventListener("click", refresh);
    document.getElementById("forget-token").addEventListener("click", () => {
      storage.clear();
      window.location.reload();
    });
    document.getElementById("auth-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("token-input");
      const token = input.value.trim();
      if (!token) return;
      storage.set(token);
      input.value = "";
      refresh();
    });
    document.getElementById("search-form").addEventListener("submit", runSearch);
    document.getElementById("export-link").addEventListener("click", exportWithToken);
    // /?search=Budi opens the page with that search (a link staff can share or bookmark).
    const initial = new URLSearchParams(window.location.search).get("search");
    if (initial) document.getElementById("search-input").value = initial;
    setInterval(() => {
      if (document.visibilityState === "visible" && document.body.dataset.state !== "auth") refresh();
    }, REFRESH_MS);
    refresh();
  }

  start();
})();
