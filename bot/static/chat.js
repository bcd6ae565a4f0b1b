// The web chat without page reloads. Optional: every form works without this script. It
// posts a form as the browser would, takes the page the server answers with, adds its new
// lines to the conversation (a live region, so screen readers announce them), swaps the
// forms, and puts the focus on the first answer button or the text box.
"use strict";
(() => {
  const replaced = ["composer", "menu", "problem"];

  function setBusy(busy, text) {
    for (const button of document.querySelectorAll("#composer button, #menu button")) {
      button.disabled = busy;
    }
    document.getElementById("status").textContent = text;
  }

  function update(page) {
    const log = document.getElementById("log");
    const next = page.getElementById("log");
    const wanted = new Set([...next.children].map((line) => line.id));
    for (const line of [...log.children]) {
      if (!wanted.has(line.id)) line.remove();
    }
    const present = new Set([...log.children].map((line) => line.id));
    for (const line of next.children) {
      if (!present.has(line.id)) log.append(document.importNode(line, true));
    }
    for (const id of replaced) {
      const fresh = page.getElementById(id);
      if (fresh) document.getElementById(id).replaceWith(document.importNode(fresh, true));
    }
    document.documentElement.lang = page.documentElement.lang;
    document.documentElement.dir = page.documentElement.dir;
    document.title = page.title;
    const target = document.querySelector("#composer .choices button") ||
      document.getElementById("message");
    if (target) target.focus();
  }

  async function send(form, submitter) {
    const data = new URLSearchParams(new FormData(form));
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    setBusy(true, document.body.dataset.waiting);
    let page;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
      page = new DOMParser().parseFromString(await response.text(), "text/html");
    } catch (error) {
      setBusy(false, document.body.dataset.offline);
      return;
    }
    if (!page.getElementById("log")) {
      // Another page (the message was too long, say): show it whole.
      document.documentElement.replaceWith(document.importNode(page.documentElement, true));
      return;
    }
    setBusy(false, "");
    update(page);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.hasAttribute("data-enhance") || !document.getElementById("log")) return;
    event.preventDefault();
    send(form, event.submitter);
  });
})();
