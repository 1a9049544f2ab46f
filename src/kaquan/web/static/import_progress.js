// Code import with progress: the upload's bar from the browser, the server-side import's bar from the
// server's answer, read line by line as it streams (one JSON object a line; see web/console/stock_import.py).
// The last line carries the batches page with the result, shown in place. Without JavaScript the form
// posts normally to its action and the page answers when the import is done.
(function () {
  "use strict";

  function bind(root) {
    root.querySelectorAll("form[data-import-stream]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var box = form.querySelector(".import-progress");
        var uploadBar = form.querySelector("#upload-progress");
        var uploadLabel = form.querySelector("#upload-label");
        var serverBar = form.querySelector("#server-progress");
        var serverLabel = form.querySelector("#server-label");
        var button = form.querySelector("button[type=submit]");
        var words = box ? box.dataset : {};
        var seen = 0;
        var finished = false;
        if (box) { box.hidden = false; }
        if (button) { button.disabled = true; }

        function show(html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.querySelector("main");
          var current = document.querySelector("main");
          if (fresh && current) {
            current.replaceWith(fresh);
            bind(fresh);
          } else {
            window.location.reload();
          }
        }

        function failed() {
          if (serverLabel) { serverLabel.textContent = words.failed || "failed"; }
          if (button) { button.disabled = false; }
        }

        function handle(message) {
          if (message.phase === "done") {
            finished = true;
            show(message.html);
            return;
          }
          if (message.phase === "received") {
            if (uploadBar) { uploadBar.value = 100; }
            if (uploadLabel) { uploadLabel.textContent = words.received || "100%"; }
            return;
          }
          if (serverBar) { serverBar.value = message.percent; }
          if (serverLabel) {
            var text = (message.phase === "checking" ? words.checking : words.storing) || message.phase;
            serverLabel.textContent = text.replace("{percent}", message.percent).replace("{codes}", message.codes.toLocaleString());
          }
        }

        function readLines(text) {
          var end;
          while ((end = text.indexOf("\n", seen)) !== -1) {
            var line = text.slice(seen, end);
            seen = end + 1;
            if (line) { handle(JSON.parse(line)); }
          }
        }

        var xhr = new XMLHttpRequest();
        xhr.open("POST", form.dataset.importStream);
        xhr.setRequestHeader("Accept", "text/html, application/x-ndjson");
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable && uploadBar) {
            var percent = Math.round((e.loaded / e.total) * 100);
            uploadBar.value = percent;
            if (uploadLabel) { uploadLabel.textContent = percent + "%"; }
          }
        });
        function streaming() {
          return (xhr.getResponseHeader("Content-Type") || "").indexOf("application/x-ndjson") === 0;
        }
        xhr.addEventListener("progress", function () {
          if (streaming()) { readLines(xhr.responseText); }
        });
        xhr.addEventListener("load", function () {
          if (!streaming()) {  // refused before the import began: the error page
            show(xhr.responseText);
            return;
          }
          readLines(xhr.responseText);
          if (!finished) { failed(); }
        });
        xhr.addEventListener("error", failed);
        xhr.send(new FormData(form));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { bind(document); });
})();
