// scimd admin console: small enhancements; every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons next to read-only fields (SCIM URL, a new token). Focus stays on the button,
  // so a screen reader does not read the secret aloud; the result is announced.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const status = document.getElementById(button.dataset.copy + "-copied");
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      if (!field) return;
      let copied = false;
      try {
        await navigator.clipboard.writeText(field.value);
        copied = true;
      } catch (_) {
        field.select();
        copied = document.execCommand && document.execCommand("copy");
        button.focus();
      }
      button.textContent = copied ? "Copied" : "Select and copy";
      if (status) status.textContent = copied ? "Copied to the clipboard" : "Could not copy: select the text and copy it";
      setTimeout(() => {
        button.textContent = "Copy";
        if (status) status.textContent = "";
      }, 2000);
    });
  }

  // A schema file chosen is read into the text area the form sends.
  for (const input of document.querySelectorAll("input[type=file][data-into]")) {
    input.addEventListener("change", async () => {
      const target = document.getElementById(input.dataset.into);
      const file = input.files && input.files[0];
      if (target && file) target.value = await file.text();
    });
  }

  // The validity date only matters when "until a date" is chosen.
  const validity = document.getElementById("validity");
  const until = document.getElementById("until");
  if (validity && until) {
    const sync = () => { until.required = validity.value === "date"; };
    validity.addEventListener("change", sync);
    sync();
  }

  // The activity page shows new records as they arrive.
  const table = document.getElementById("activity");
  if (table && table.dataset.follow) {
    const body = table.querySelector("tbody");
    let last = Number(table.dataset.last || 0);
    const poll = async () => {
      try {
        const res = await fetch(table.dataset.follow + "&after=" + last, { credentials: "same-origin" });
        if (res.ok) {
          const html = (await res.text()).trim();
          if (html) {
            body.insertAdjacentHTML("afterbegin", html);
            for (const row of body.querySelectorAll("tr[data-seq]")) {
              last = Math.max(last, Number(row.dataset.seq));
            }
          }
        }
      } catch (_) {
        // The server may be restarting; the next poll tries again.
      }
      setTimeout(poll, 3000);
    };
    setTimeout(poll, 3000);
  }
});
