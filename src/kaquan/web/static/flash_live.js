// The flash-sale live page: every few seconds, read the event's counters from the same origin
// (the session cookie goes along) and write them into the page. Without JavaScript the page
// shows the counters as they were when it loaded; once the session is gone it reloads into the
// sign-in page. A form marked data-confirm asks first.
(function () {
  "use strict";
  var EVERY_MS = 3000;
  var FIELDS = {
    sold: "live-sold", purchases: "live-purchases", held: "live-held",
    gate_tokens: "live-gate-tokens", queued: "live-queued", gate: "live-gate",
    status_word: "live-status", refreshed: "live-refreshed"
  };

  function show(counters) {
    Object.keys(FIELDS).forEach(function (key) {
      var element = document.getElementById(FIELDS[key]);
      if (element && counters[key] !== undefined) {
        element.textContent = counters[key] === null ? "—" : String(counters[key]);
      }
    });
    var status = document.getElementById("live-status");
    if (status) { status.className = "state state-" + counters.status; }
  }

  function poll(panel) {
    var offline = document.getElementById("live-offline");
    fetch(panel.getAttribute("data-live-url"), {
      credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store"
    }).then(function (response) {
      if (response.status === 401) { window.location.reload(); }  // signed out: the page goes to sign-in
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.json();
    }).then(function (counters) {
      show(counters);
      if (offline) { offline.hidden = true; }
      if (counters.status !== "ended") { window.setTimeout(function () { poll(panel); }, EVERY_MS); }
    }).catch(function () {
      if (offline) { offline.hidden = false; }
      window.setTimeout(function () { poll(panel); }, EVERY_MS * 3);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("live");
    if (panel) { window.setTimeout(function () { poll(panel); }, EVERY_MS); }
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  });
})();
