// The shop's only script (a static file: the CSP allows no inline script): copy buttons on the order page.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // Plain http on a LAN address has no Clipboard API: copy through a selected, off-screen text area.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  const done = document.execCommand("copy");
  area.remove();
  return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  copyText(button.dataset.copy).then(() => {
    button.textContent = button.dataset.done;
    button.classList.add("done");
    setTimeout(() => { button.textContent = label; button.classList.remove("done"); }, 2000);
  });
});
