// Numberplane console: a little progressive enhancement; every page works without it.
"use strict";

// A form marked "once" submits once: a double click does not send it twice (the server's
// idempotency key covers the case where it is sent twice anyway).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.classList || !form.classList.contains("once")) return;
  if (form.dataset.sent) { event.preventDefault(); return; }
  form.dataset.sent = "1";
  setTimeout(function () {
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  }, 0);
});

// An import in progress: poll its JSON and move the bar, then show the summary without a reload.
(function () {
  var box = document.querySelector("[data-import-status]");
  if (!box) return;
  var url = box.getAttribute("data-import-status");
  var bar = box.querySelector("progress");
  var label = box.querySelector("[data-progress-label]");
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        bar.max = s.total || 1;
        bar.value = s.done;
        label.textContent = s.done.toLocaleString() + " of " + s.total.toLocaleString() + " rows";
        if (s.finished) { window.location.reload(); } else { setTimeout(tick, 500); }
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  // Without JS, the page's <noscript> refresh reloads it instead.
  setTimeout(tick, 300);
})();
