// Keyboard shortcuts and selection for the review console. No build step, no dependencies.
(function () {
  "use strict";

  function typing(el) {
    return !!el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function click(id) {
    var el = byId(id);
    if (el) el.click();
    return !!el;
  }

  function focusField(id) {
    var el = byId(id);
    if (!el) return false;
    el.focus();
    if (el.select) el.select();
    return true;
  }

  function follow(id) {
    var el = byId(id);
    if (el && el.href) window.location.href = el.href;
  }

  // A form posts once: a second press of a key or a button while it submits does nothing.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.dataset.sent === "yes" && form.method.toLowerCase() === "post") {
      ev.preventDefault();
      return;
    }
    form.dataset.sent = "yes";
  });

  function queue() {
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr.row"));
    var counter = byId("selected-count");
    var all = byId("select-all");
    var at = -1;

    function box(row) {
      return row ? row.querySelector("input[type=checkbox]") : null;
    }
    function count() {
      if (!counter) return 0;
      var n = rows.filter(function (row) { var b = box(row); return b && b.checked; }).length;
      counter.textContent = String(n);
      return n;
    }
    function focusRow(i) {
      if (!rows.length) return;
      at = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach(function (row, j) { row.classList.toggle("is-current", j === at); });
      rows[at].scrollIntoView({ block: "nearest" });
    }

    rows.forEach(function (row, i) {
      row.addEventListener("click", function (ev) {
        if (!ev.target.closest("a, button, input")) focusRow(i);
      });
    });
    if (all) {
      all.addEventListener("change", function () {
        rows.forEach(function (row) { var b = box(row); if (b && !b.disabled) b.checked = all.checked; });
        count();
      });
    }
    document.addEventListener("change", count);
    var firstOpen = rows.findIndex(function (row) { return !row.classList.contains("is-pending"); });
    focusRow(firstOpen < 0 ? 0 : firstOpen);
    count();

    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
      if (ev.key === "Enter" && ev.target.closest && ev.target.closest("a, button")) return;
      var row = rows[at];
      switch (ev.key) {
        case "j": focusRow(at + 1); break;
        case "k": focusRow(at - 1); break;
        case "o":
        case "Enter": if (row) window.location.href = row.dataset.href; break;
        case "x": {
          var b = box(row);
          if (b && !b.disabled) { b.checked = !b.checked; count(); }
          break;
        }
        case "a": {
          var approve = row ? row.querySelector("button.approve") : null;
          if (approve) approve.click();
          break;
        }
        case "r": if (row) window.location.href = row.dataset.href + "#reject"; break;
        case "A": {
          var n = count();
          if (n > 0 && window.confirm("Approve the " + n + " selected memories?")) click("bulk-approve");
          break;
        }
        case "/": {
          var first = byId("search") || document.querySelector("#filters select");
          if (first) first.focus();
          break;
        }
        default: return;
      }
      ev.preventDefault();
    });
  }

  function item() {
    if (window.location.hash === "#reject") focusField("reject-reason");
    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey && ev.key === "Enter" && ev.target.id === "edit-text") {
        click("edit");
        ev.preventDefault();
        return;
      }
      if (ev.key === "Escape" && typing(ev.target)) {
        ev.target.blur();
        ev.preventDefault();
        return;
      }
      if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
      switch (ev.key) {
        case "a":
          // When the slot already has an approved memory, approving is a choice: go to it.
          if (!click("approve") && !click("recertify") && focusField("supersede")) {
            byId("slot-choice").scrollIntoView({ block: "nearest" });
          }
          break;
        case "r": focusField("reject-reason"); break;
        case "e": focusField("edit-text"); break;
        case "m": focusField("merge-into"); break;
        case "s": click("supersede"); break;
        case "b": click("keep-both"); break;
        case "j": follow("next"); break;
        case "k": follow("previous"); break;
        case "u":
        case "Escape": follow("back"); break;
        default: return;
      }
      ev.preventDefault();
    });
  }

  var page = document.body.dataset.page;
  if (page === "queue") queue();
  if (page === "item") item();
})();
