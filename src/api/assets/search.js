// The dashboard's customer search: a customer or vehicle id is looked up exactly; other text
// (a name, a plate, a phone) is matched against the detail pages of the most recently reminded
// vehicles, as the API has no name search.
"use strict";

(function () {
  const RD = window.ReminderDashboard;
  const { AuthError, api, el, fill, placeholder, errorBox, table, fmtNumber, fmtTime, plate, customerCell, vehicleCell, failureReason } = RD;
  const SEARCH_PAGE = 1000;
  const SEARCH_MAX_PAGES = 10;

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
      if (error instanceof AuthError) return RD.needToken(true);
      fill(results, errorBox(error));
      results.dataset.state = "error";
    }
  }

  // A refresh may have brought new reminders: the next text search loads the pages again.
  function resetSearch() {
    searchIndex = null;
  }

  Object.assign(RD, { runSearch, resetSearch });
})();
