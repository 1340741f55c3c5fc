// The dashboard: reads only the public JSON routes under /whatsapp-report and renders them.
// The shared helpers are common.js, the charts charts.js, the customer search search.js; this
// script renders the headline, the tables and the replies, and keeps the page refreshed.
"use strict";

(function () {
  const RD = window.ReminderDashboard;
  const {
    storage, takeTokenFromLocation, AuthError, ApiError, api, describeError, el, fill, placeholder,
    errorBox, table, setStat, setHint, decimalFormat, percentFormat, fmtNumber, fmtTime, ago, who,
    plate, customerCell, vehicleCell, failureReason, renderFunnel, renderDaily, runSearch, resetSearch,
  } = RD;
  const REFRESH_MS = 60000;
  const TOP_LIMIT = 10;
  const FAILURE_LIMIT = 15;
  const REPLY_LIMIT = 15;

  // ---- sections --------------------------------------------------------------------------

  function renderStatistics(stats) {
    setStat("total_messages", fmtNumber(stats.total_messages), stats.total_messages);
    setStat("total_failed", fmtNumber(stats.total_failed), stats.total_failed);
    const attempted = stats.total_messages + stats.total_failed;
    setHint("success_rate", attempted > 0
      ? percentFormat.format(stats.total_messages / attempted) + " of attempts accepted by WhatsApp"
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
    renderFunnel(stats);
  }

  function statisticsFailed(error) {
    for (const out of document.querySelectorAll("[data-stat]")) out.textContent = "–";
    fill(document.getElementById("funnel"), errorBox(error));
    showBanner(describeError(error));
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

  function replyText(r) {
    if (r.text) return el("span", { class: "reply-text" }, r.text);
    const what = r.button_payload ? r.type + ": " + r.button_payload : r.type;
    return el("span", { class: "muted" }, "(" + what + ")");
  }

  // Who answered, what, and to which vehicle's reminder; a reply that answers no reminder
  // (a phone reminder never wrote to) is listed all the same.
  function renderReplies(rows, total) {
    const container = document.getElementById("replies");
    if (!rows.length) return fill(container, placeholder("No customer has replied yet."));
    const nodes = [table([
      { title: "When", cell: (r) => el("span", { title: fmtTime(r.at) }, fmtTime(r.at)) },
      { title: "From", cell: (r) => [r.customer_name ? el("span", { class: "name" }, r.customer_name) : el("span", { class: "muted" }, "Unknown"),
        el("div", { class: "muted small" }, r.phone)] },
      { title: "Vehicle", cell: (r) => r.plate_number || r.id_vehicle ? plate(r) : el("span", { class: "muted small" }, "no reminder") },
      { title: "Reply", class: "wide", cell: replyText },
    ], rows, (r) => ({ class: "reply-row", "data-reminder": r.reminder_id || "", "data-phone": r.phone }))];
    if (total !== null && total > rows.length) {
      nodes.push(el("p", { class: "note" }, "Showing the latest " + rows.length + " of " + fmtNumber(total) + " replies."));
    }
    fill(container, nodes);
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


  RD.needToken = needToken;

  let loading = false;

  async function refresh() {
    if (loading) return;
    loading = true;
    resetSearch();
    const sections = [
      { name: "statistics", load: () => api("/whatsapp-report/statistics"), render: (r) => renderStatistics(r.data), fail: statisticsFailed },
      { name: "daily", load: () => api("/whatsapp-report/daily"), render: (r) => renderDaily(r.data), fail: (e) => fill(document.getElementById("daily"), errorBox(e)) },
      { name: "top", load: () => api("/whatsapp-report/detail?sort=frequency&limit=" + TOP_LIMIT), render: (r) => renderTop(r.data), fail: (e) => fill(document.getElementById("top"), errorBox(e)) },
      { name: "over", load: () => api("/whatsapp-report/over-reminded?limit=20"), render: (r) => renderOver(r.data), fail: (e) => fill(document.getElementById("over"), errorBox(e)) },
      { name: "failures", load: () => api("/whatsapp-report/messages?status=failed&limit=" + FAILURE_LIMIT), render: (r) => renderFailures(r.data, r.total), fail: (e) => fill(document.getElementById("failures"), errorBox(e)) },
      { name: "replies", load: () => api("/whatsapp-report/replies?limit=" + REPLY_LIMIT), render: (r) => renderReplies(r.data, r.total), fail: (e) => fill(document.getElementById("replies"), errorBox(e)) },
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
