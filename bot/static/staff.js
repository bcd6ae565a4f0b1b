// Keyboard shortcuts for the review queue: j/k move between ideas, a approves the idea in
// focus, r goes to its rejection reason, u presses "undo". Keys typed into a field are left
// alone. Without JavaScript every action is an ordinary form.
"use strict";
(function () {
  function ideas() { return Array.prototype.slice.call(document.querySelectorAll("article.idea")); }
  function current() {
    var el = document.activeElement;
    return el && el.closest ? el.closest("article.idea") : null;
  }
  function go(step) {
    var all = ideas();
    if (!all.length) { return; }
    var at = all.indexOf(current());
    var next = all[Math.min(all.length - 1, Math.max(0, at + step))];
    next.focus();
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var target = event.target;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) { return; }
    var idea = current();
    var key = event.key;
    if (key === "j") { go(1); } else if (key === "k") { go(-1); }
    else if (key === "u") {
      var undo = document.getElementById("undo");
      if (!undo) { return; }
      undo.click();
    } else if ((key === "a" || key === "r") && idea) {
      var control = idea.querySelector('[data-key="' + key + '"]');
      if (!control) { return; }
      if (key === "a") { control.click(); } else { control.focus(); }
    } else { return; }
    event.preventDefault();
  });
}());
