// DriftBalloon dashboard: the little JavaScript the pages use. Everything works without it;
// it only adds live updates and saves a click on filter selects.
"use strict";

// A live region ([data-live-url]) is re-fetched every [data-live-every] seconds (default 5)
// and its content replaced, so numbers update without a reload. It is skipped while the tab
// is hidden and while keyboard focus is inside the region (replacing it would lose the focus).
function refreshLive(region) {
  if (document.hidden || region.contains(document.activeElement)) return;
  fetch(region.dataset.liveUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((r) => (r.ok && !r.redirected ? r.text() : null))
    .then((html) => {
      if (html === null) return;
      region.innerHTML = html;
      region.dataset.liveUpdated = String(Date.now());
    })
    .catch(() => {});
}

document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-live-url]")) {
    const seconds = Number(region.dataset.liveEvery) || 5;
    setInterval(() => refreshLive(region), seconds * 1000);
  }
  for (const select of document.querySelectorAll("form[data-auto-submit] select")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
});
