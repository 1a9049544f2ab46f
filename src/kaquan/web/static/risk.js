// Risk control on the shop's buy form (docs/risk.md): sends the time from page load to submit and, when
// the server answers 403 challenge_required, solves its proof-of-work here and submits again, once.
// Same-origin and self-contained: no third-party script, and SHA-256 in plain JavaScript, so it also
// works on plain http where the browser offers no crypto.subtle.
"use strict";

(() => {
  const K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ];
  const W = new Int32Array(64);

  // The first 32 bits of SHA-256 of an ASCII string (all a difficulty of up to 32 bits needs).
  function sha256Head(text) {
    const length = text.length;
    const blocks = ((length + 8) >> 6) + 1;
    const words = new Int32Array(blocks * 16);
    for (let i = 0; i < length; i++) words[i >> 2] |= text.charCodeAt(i) << (24 - (i % 4) * 8);
    words[length >> 2] |= 0x80 << (24 - (length % 4) * 8);
    words[blocks * 16 - 1] = length * 8;
    let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
    let h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
    for (let block = 0; block < blocks; block++) {
      for (let t = 0; t < 64; t++) {
        if (t < 16) {
          W[t] = words[block * 16 + t];
        } else {
          const a = W[t - 15], b = W[t - 2];
          const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
          const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
          W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
        }
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (let t = 0; t < 64; t++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[t] + W[t]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    return h0;
  }

  // Find n with `bits` leading zero bits in sha256(token + ":" + n), a slice at a time so the page stays alive.
  function solve(token, bits) {
    return new Promise((resolve) => {
      let n = 0;
      const step = () => {
        for (const end = n + 20000; n < end; n++) {
          if (Math.clz32(sha256Head(token + ":" + n)) >= bits) return resolve(token + ":" + n);
        }
        setTimeout(step, 0);
      };
      step();
    });
  }

  function field(form, name) {
    let input = form.elements.namedItem(name);
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    return input;
  }

  function say(form, key) {
    let note = form.querySelector(".risk-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "risk-note";
      note.setAttribute("role", "status");
      form.appendChild(note);
    }
    note.textContent = form.dataset[key] || "";
  }

  // A page the server answered with a challenge (the buyer sign-in form): solve it and send the form again.
  for (const challenged of document.querySelectorAll("form[data-challenge-token]")) {
    say(challenged, "checking");
    solve(challenged.dataset.challengeToken, Number(challenged.dataset.challengeBits)).then((solution) => {
      field(challenged, "risk_solution").value = solution;
      challenged.submit();
    });
  }

  const form = document.getElementById("buy");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    if (form.dataset.solved === "1") return; // the second, solved submission goes as a plain form post
    event.preventDefault();
    field(form, "page_ms").value = String(Math.round(performance.now()));
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (response.ok) {
      window.location.assign(response.url);
      return;
    }
    let error = null;
    try {
      error = (await response.json()).error;
    } catch (_) {
      error = null;
    }
    form.dataset.solved = "1";
    if (error && error.code === "challenge_required") {
      const challenge = error.details.challenge;
      say(form, "checking");
      field(form, "risk_solution").value = await solve(challenge.token, challenge.bits);
    }
    form.submit(); // a refusal is shown by the server's own error page
  });
})();
