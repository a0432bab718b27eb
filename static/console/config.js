/* The configuration pages: a route's targets reordered by dragging a row's handle, by the
   arrow keys on a focused handle or by the Move buttons, each move announced; rows added and
   removed in place; a row's model list narrowed to its provider's models; a provider form's
   base URL placeholder following the kind. Without this file every button still works: it
   posts the form and the server answers with the changed rows. No inline script (CSP). */
(function () {
  "use strict";

  function rowsOf(list) { return Array.prototype.slice.call(list.querySelectorAll("[data-target-row]")); }

  function describe(row) {
    var provider = row.querySelector("[data-provider-select]").value || "no provider";
    var model = row.querySelector("[data-model-select]").value;
    return model ? provider + "/" + model : provider;
  }

  function announce(text) {
    var status = document.getElementById("reorder-status");
    if (!status) { return; }
    status.textContent = "";
    // a fresh text node each time, so the same words twice are read twice
    window.setTimeout(function () { status.textContent = text; }, 30);
  }

  // Numbers, labels and ids follow the order; the posted values' order is the chain's.
  function renumber(list) {
    rowsOf(list).forEach(function (row, i) {
      var n = i + 1;
      row.querySelector("[data-pos]").textContent = String(n);
      row.querySelector("[data-handle]").setAttribute("aria-label", "Target " + n + ": " + describe(row) + ". Move with the arrow keys");
      ["provider", "model", "weight"].forEach(function (part) {
        var input = row.querySelector("[name='target_" + part + "']");
        var label = input && row.querySelector("label[for='" + input.id + "']");
        if (!input) { return; }
        input.id = "target-" + part + "-" + i;
        if (label) { label.htmlFor = input.id; }
      });
    });
  }

  function move(list, row, delta, focus) {
    var rows = rowsOf(list);
    var from = rows.indexOf(row);
    var to = from + delta;
    if (to < 0 || to >= rows.length) {
      announce(describe(row) + " is already " + (to < 0 ? "first" : "last") + ".");
      return;
    }
    if (delta < 0) { list.insertBefore(row, rows[to]); } else { list.insertBefore(row, rows[to].nextSibling); }
    renumber(list);
    if (focus) { focus.focus(); }
    announce(describe(row) + " moved to position " + (to + 1) + " of " + rows.length + ".");
  }

  // The model list of a row: its provider's models only (the page lists every provider's,
  // grouped, for a browser without this file).
  var knownModels = null;
  function narrowModels(row) {
    if (knownModels === null) {
      var data = document.getElementById("provider-models");
      knownModels = data ? JSON.parse(data.textContent) : {};
    }
    var provider = row.querySelector("[data-provider-select]").value;
    var select = row.querySelector("[data-model-select]");
    var current = select.selectedOptions.length ? select.selectedOptions[0] : null;
    var keep = current && current.parentNode.tagName === "OPTGROUP" &&
      current.parentNode.getAttribute("data-provider") === provider ? current.value : "";
    while (select.options.length > 1) { select.remove(1); }
    while (select.lastElementChild && select.lastElementChild !== select.options[0]) { select.lastElementChild.remove(); }
    (knownModels[provider] || []).forEach(function (name) {
      var option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      select.appendChild(option);
    });
    select.value = keep;
    if (select.value !== keep) { select.value = ""; }
  }

  function addRow(list) {
    var rows = rowsOf(list);
    var template = rows[rows.length - 1];
    if (!template) { return null; }
    var row = template.cloneNode(true);
    row.classList.remove("has-error");
    Array.prototype.forEach.call(row.querySelectorAll(".row-errors"), function (el) { el.remove(); });
    row.querySelector("[data-provider-select]").value = "";
    row.querySelector("[name='target_weight']").value = "";
    list.appendChild(row);
    narrowModels(row);
    renumber(list);
    return row;
  }

  function setUpTargets(list) {
    var dragged = null;
    rowsOf(list).forEach(narrowModels);
    renumber(list);

    list.addEventListener("change", function (event) {
      var row = event.target.closest("[data-target-row]");
      if (row && event.target.matches("[data-provider-select]")) { narrowModels(row); }
      if (row) { renumber(list); }
    });

    list.addEventListener("keydown", function (event) {
      var handle = event.target.closest("[data-handle]");
      if (!handle) { return; }
      var row = handle.closest("[data-target-row]");
      if (event.key === "ArrowUp" || event.key === "ArrowDown") {
        event.preventDefault();
        move(list, row, event.key === "ArrowUp" ? -1 : 1, handle);
      }
    });

    // Dragging: only from the handle, so selecting text in a field never drags its row.
    list.addEventListener("pointerdown", function (event) {
      var handle = event.target.closest("[data-handle]");
      if (handle) { handle.closest("[data-target-row]").draggable = true; }
    });
    list.addEventListener("dragstart", function (event) {
      dragged = event.target.closest("[data-target-row]");
      if (!dragged) { return; }
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", describe(dragged));
    });
    list.addEventListener("dragover", function (event) {
      var over = event.target.closest("[data-target-row]");
      if (!dragged || !over || over === dragged) { return; }
      event.preventDefault();
      var box = over.getBoundingClientRect();
      var after = event.clientY > box.top + box.height / 2;
      list.insertBefore(dragged, after ? over.nextSibling : over);
    });
    list.addEventListener("drop", function (event) { if (dragged) { event.preventDefault(); } });
    list.addEventListener("dragend", function () {
      if (!dragged) { return; }
      var row = dragged;
      dragged = null;
      row.classList.remove("dragging");
      row.draggable = false;
      renumber(list);
      announce(describe(row) + " moved to position " + (rowsOf(list).indexOf(row) + 1) + " of " + rowsOf(list).length + ".");
    });

    // The row buttons, done in place (the index in their value is the server's fallback).
    list.closest("form").addEventListener("click", function (event) {
      var button = event.target.closest("[data-row-op]");
      if (!button) { return; }
      var op = button.getAttribute("data-row-op");
      var row = button.closest("[data-target-row]");
      if (op === "add" && rowsOf(list).length === 0) { return; }  // nothing to copy: the server adds it
      event.preventDefault();
      if (op === "add") {
        var added = addRow(list);
        if (added) { added.querySelector("[data-provider-select]").focus(); announce("Target " + rowsOf(list).length + " added."); }
      } else if (op === "remove") {
        var rows = rowsOf(list);
        if (rows.length === 1) { announce("A route needs at least one target."); return; }
        var next = rows[rows.indexOf(row) + 1] || rows[rows.indexOf(row) - 1];
        var what = describe(row);
        row.remove();
        renumber(list);
        next.querySelector("[data-handle]").focus();
        announce(what + " removed.");
      } else {
        move(list, row, op === "up" ? -1 : 1, button);
      }
    });
  }

  function setUpKind(select) {
    var data = document.getElementById("default-urls");
    var input = document.getElementById("id_base_url");
    if (!data || !input) { return; }
    var urls = JSON.parse(data.textContent);
    select.addEventListener("change", function () { input.placeholder = urls[select.value] || ""; });
  }

  function init() {
    var list = document.querySelector("[data-reorder]");
    if (list) { setUpTargets(list); }
    var kind = document.querySelector("#provider-form select[name='kind']");
    if (kind) { setUpKind(kind); }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
