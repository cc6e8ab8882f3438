// Keeps the studies table current while sweeps run: re-fetches this page and swaps the rows.
"use strict";
(function () {
  const table = document.getElementById("studies");
  if (!table) return;
  const every = Number(table.dataset.refresh) || 5000;
  async function refresh() {
    if (document.hidden) return;
    try {
      const res = await fetch(location.pathname, { headers: { Accept: "text/html" } });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const rows = doc.querySelector("#studies tbody");
      if (rows) table.tBodies[0].replaceWith(rows);
    } catch (e) { /* offline for a moment: keep what is shown */ }
  }
  setInterval(refresh, every);
})();
