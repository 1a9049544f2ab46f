// Admin console: upload forms marked data-progress send by XHR to show a progress bar,
// then show the server's answer page in place. Without JavaScript they post normally.
(function () {
  "use strict";

  function bind(root) {
    root.querySelectorAll("form[data-progress]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var box = form.querySelector(".progress");
        var bar = form.querySelector("progress");
        var label = form.querySelector(".progress-label");
        var button = form.querySelector("button[type=submit]");
        if (box) { box.hidden = false; }
        if (button) { button.disabled = true; }
        var xhr = new XMLHttpRequest();
        xhr.open("POST", form.action);
        xhr.setRequestHeader("Accept", "text/html");
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable && bar) {
            var percent = Math.round((e.loaded / e.total) * 100);
            bar.value = percent;
            if (label) { label.textContent = percent + "%"; }
          }
        });
        xhr.addEventListener("load", function () {
          var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
          var fresh = doc.querySelector("main");
          var current = document.querySelector("main");
          if (fresh && current) {
            current.replaceWith(fresh);
            bind(fresh);
          } else {
            window.location.reload();
          }
        });
        xhr.addEventListener("error", function () {
          if (label) { label.textContent = "upload failed / 上传失败"; }
          if (button) { button.disabled = false; }
        });
        xhr.send(new FormData(form));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { bind(document); });
})();
