// Live refresh of the element #live: fetch the same page's "live" block every
// data-refresh seconds and swap it in. Paused while the tab is hidden or while
// the user has focus inside the block (so a keyboard user is not moved).
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const seconds = Number(live.dataset.refresh || "0");
  if (!seconds) return;
  async function refresh() {
    if (document.hidden || live.contains(document.activeElement)) return;
    try {
      const response = await fetch(window.location.href, {
        headers: { "X-Console-Live": "1" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.redirected || !response.ok) return;
      live.innerHTML = await response.text();
      live.dataset.updated = String(Date.now());
    } catch (error) {
      // The daemon is restarting or the network is down: try again next time.
    }
  }
  window.setInterval(refresh, seconds * 1000);
})();
