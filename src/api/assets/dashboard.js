"use strict";
// Reads /whatsapp-report/statistics and shows the headline figures.
(async function () {
  const res = await fetch("/whatsapp-report/statistics");
  const stats = await res.json();
  const el = document.getElementById("headline");
  for (const [key, value] of Object.entries(stats)) {
    const div = document.createElement("div");
    div.dataset.stat = key;
    div.textContent = key + ": " + (value === null ? "–" : value);
    el.appendChild(div);
  }
})();
