// The dashboard's figures drawn: what became of the reminders sent (sent, delivered, read,
// replied: a funnel, each step a share of the one before it) and the messages per day with
// how many of each day's were delivered and read and the replies that came in.
"use strict";

(function () {
  const { el, svg, fill, placeholder, setStat, setHint, numberFormat, percentFormat, fmtNumber, fmtDay } =
    window.ReminderDashboard;

  // Axis ticks in whole, round steps (1, 2 or 5 times a power of ten): counts are integers.
  function axis(peak) {
    if (peak <= 4) return { step: 1, max: 4 };
    const raw = peak / 4;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    return { step, max: step * Math.ceil(peak / step) };
  }

  const FUNNEL = [
    { key: "sent", title: "Sent", stat: "total_messages", hint: "reminders the provider accepted" },
    { key: "delivered", title: "Delivered", stat: "total_delivered", hint: "reached the phone" },
    { key: "read", title: "Read", stat: "total_read", hint: "opened by the customer" },
    { key: "replied", title: "Replied", stat: "total_replies", hint: "replies from customers" },
  ];

  // One bar per step, as long as its share of the reminders sent; the percentage beside each
  // is of the step before it, which is where a drop shows.
  function renderFunnel(stats) {
    const container = document.getElementById("funnel");
    const sent = stats.total_messages || 0;
    const steps = FUNNEL.map((s) => ({ ...s, value: stats[s.stat] || 0 }));
    const rows = steps.map((s, i) => {
      const previous = i === 0 ? null : steps[i - 1].value;
      const share = sent > 0 ? Math.min(1, s.value / sent) : 0;
      const ofPrevious = previous ? percentFormat.format(s.value / previous) + " of " + steps[i - 1].title.toLowerCase() : "";
      const bar = el("div", { class: "funnel-bar " + s.key });
      bar.style.width = (share * 100).toFixed(1) + "%";
      return el("div", { class: "funnel-step", dataset: { funnel: s.key, value: s.value } },
        el("span", { class: "funnel-label" }, s.title),
        el("div", { class: "funnel-track", title: s.hint }, bar),
        el("output", { class: "funnel-value" }, fmtNumber(s.value)),
        el("span", { class: "funnel-share muted small" }, ofPrevious));
    });
    fill(container, rows);
    if (sent === 0) container.append(placeholder("No reminder has been sent yet.", "overlay"));
  }

  const LINES = [
    { key: "delivered", label: "delivered" },
    { key: "read", label: "read" },
    { key: "replies", label: "replies" },
  ];

  function renderDaily(days) {
    const container = document.getElementById("daily");
    const total = (key) => days.reduce((n, d) => n + (d[key] || 0), 0);
    const sent = total("sent");
    const failed = total("failed");
    setStat("last_30_days", fmtNumber(sent), sent);
    setHint("last_30_days_failed", "sent, " + fmtNumber(failed) + " failed");
    document.getElementById("daily-summary").textContent = days.length
      ? fmtDay(days[0].date, true) + " to " + fmtDay(days[days.length - 1].date, true) +
        " (workshop time zone): " + fmtNumber(sent) + " sent, " + fmtNumber(total("delivered")) + " delivered, " +
        fmtNumber(total("read")) + " read, " + fmtNumber(total("replies")) + " replies, " + fmtNumber(failed) + " failed."
      : "The last 30 days.";

    const width = 920, height = 260;
    const left = 44, right = 8, top = 12, bottom = 30;
    const plotW = width - left - right, plotH = height - top - bottom;
    const peak = Math.max(0, ...days.map((d) => Math.max(d.sent + d.failed, d.replies || 0)));
    const { step, max } = axis(peak);
    const y = (v) => top + plotH - (v / max) * plotH;
    const slot = plotW / Math.max(days.length, 1);
    const barW = Math.max(2, Math.min(22, slot * 0.68));
    const middle = (i) => left + i * slot + slot / 2;

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
      const group = svg("g", { class: "day", dataset: { date: d.date, sent: d.sent, failed: d.failed, delivered: d.delivered || 0, read: d.read || 0, replies: d.replies || 0 } },
        svg("title", null, fmtDay(d.date, true) + ": " + d.sent + " sent (" + (d.delivered || 0) + " delivered, " +
          (d.read || 0) + " read), " + d.failed + " failed, " + (d.replies || 0) + " replies"),
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
        chart.append(svg("text", { x: middle(i), y: height - 10, class: "tick", "text-anchor": "middle" },
          last ? "Today" : fmtDay(d.date)));
      }
    });
    // Delivered, read and replies as lines over the bars, drawn only when there is one to draw.
    for (const line of LINES) {
      if (!days.some((d) => d[line.key] > 0)) continue;
      const points = days.map((d, i) => middle(i).toFixed(1) + "," + y(d[line.key] || 0).toFixed(1)).join(" ");
      chart.append(svg("polyline", { points, class: "line " + line.key, fill: "none" }));
    }
    fill(container, chart);
    if (sent + failed === 0) container.append(placeholder("No reminders in the last 30 days.", "overlay"));
  }

  Object.assign(window.ReminderDashboard, { renderFunnel, renderDaily });
})();
