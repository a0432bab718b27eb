/* The providers table (templates/health/_provider_table.html): search, filters and sort on
   the rows in the page, live.

   The page's URL holds the state (q, status, capability, kind, sort, dir): a change here
   rewrites it (replaceState: the same page, so no history entry and no new request), and a
   reload or a resync of the live parts asks the server for the same arrangement. Every row is
   on the page; a push from the socket replaces one row in place (or the whole board), and the
   rows are arranged again from the URL before the browser paints, so a push never loses the
   search, the filters or the sort. The order and the values are the server's
   (health/cards.py Filters.ordered, data-k-<column>): no value last, ties by name. */
(function () {
  "use strict";

  var TOOLS = ["q", "status", "capability", "kind"];
  var arranging = false;
  var shownText = "";

  function state() {
    var params = new URLSearchParams(window.location.search);
    var out = {};
    TOOLS.concat(["sort", "dir"]).forEach(function (name) { out[name] = (params.get(name) || "").trim(); });
    out.q = out.q.slice(0, 64);
    return out;
  }

  function column(s) {
    if (s.sort === "worst") { return "status"; }
    return s.sort && s.sort !== "" ? s.sort : "priority";
  }

  function firstDirection(name) {
    var link = document.querySelector('#ptable [data-sort="' + name + '"]');
    return link ? link.getAttribute("data-first") : "asc";
  }

  function descending(s) {
    return (s.dir || firstDirection(column(s))) === "desc";
  }

  function matches(row, s) {
    if (s.q && row.getAttribute("data-name").toLowerCase().indexOf(s.q.toLowerCase()) < 0) { return false; }
    if (s.status && row.getAttribute("data-status") !== s.status) { return false; }
    if (s.kind && row.getAttribute("data-kind") !== s.kind) { return false; }
    if (s.capability && (" " + row.getAttribute("data-caps") + " ").indexOf(" " + s.capability + " ") < 0) { return false; }
    return true;
  }

  function value(row, name) {
    if (name === "name") { return row.getAttribute("data-name"); }
    var raw = row.getAttribute("data-k-" + name);
    return raw === null || raw === "" ? null : Number(raw);
  }

  function compare(a, b) { return a < b ? -1 : (a > b ? 1 : 0); }

  function ordered(rows, s) {
    var name = column(s);
    var down = descending(s);
    var byName = rows.slice().sort(function (a, b) {
      return compare(a.getAttribute("data-name"), b.getAttribute("data-name"));
    });
    var known = byName.filter(function (r) { return value(r, name) !== null; });
    var unknown = byName.filter(function (r) { return value(r, name) === null; });
    // Array.prototype.sort is stable: equal values keep the names' order, as in Python.
    known.sort(function (a, b) {
      var c = compare(value(a, name), value(b, name));
      return down ? -c : c;
    });
    return known.concat(unknown);
  }

  function href(s, changes) {
    var params = new URLSearchParams(window.location.search);
    var next = Object.assign({}, s, changes || {});
    Object.keys(next).forEach(function (k) {
      if (next[k]) { params.set(k, next[k]); } else { params.delete(k); }
    });
    if (params.get("sort") === "priority" && !params.get("dir")) { params.delete("sort"); }
    var query = params.toString();
    return window.location.pathname + (query ? "?" + query : "");
  }

  function syncTools(s) {
    var form = document.getElementById("ptable-tools");
    if (!form) { return; }
    TOOLS.concat(["sort", "dir"]).forEach(function (name) {
      var field = form.querySelector('[data-tool="' + name + '"]');
      if (field && field.value !== s[name] && !(name === "q" && field === document.activeElement && field.value.trim() === s.q)) {
        field.value = s[name];
      }
    });
    var apply = form.querySelector('[data-tool="apply"]');
    if (apply) { apply.hidden = true; }
  }

  function syncHeaders(s) {
    var current = column(s);
    var down = descending(s);
    document.querySelectorAll("#ptable [data-sort]").forEach(function (link) {
      var name = link.getAttribute("data-sort");
      var header = link.closest("[role=columnheader]");
      var on = name === current;
      header.setAttribute("aria-sort", on ? (down ? "descending" : "ascending") : "none");
      var direction = on ? (down ? "asc" : "desc") : link.getAttribute("data-first");
      link.setAttribute("href", href(s, { view: "table", sort: name, dir: direction }));
    });
    document.querySelectorAll("[data-view-link]").forEach(function (link) {
      link.setAttribute("href", href(s, { view: link.getAttribute("data-view-link") }));
    });
  }

  function arrange() {
    var body = document.getElementById("ptable-rows");
    if (!body) { return; }
    arranging = true;
    try {
      var s = state();
      var rows = Array.prototype.slice.call(body.children).filter(function (r) { return r.hasAttribute("data-name"); });
      var visible = 0;
      rows.forEach(function (row) {
        var show = matches(row, s);
        if (row.hidden === show) { row.hidden = !show; }
        if (show) { visible += 1; }
      });
      var order = ordered(rows, s);
      var moved = order.some(function (row, i) { return rows[i] !== row; });
      if (moved) {
        var fragment = document.createDocumentFragment();
        order.forEach(function (row) { fragment.appendChild(row); });
        body.appendChild(fragment);
      }
      syncTools(s);
      syncHeaders(s);
      var empty = document.getElementById("ptable-empty");
      if (empty && rows.length) { empty.hidden = visible > 0; }
      var shown = document.getElementById("ptable-shown");
      var text = visible === rows.length ? rows.length + " providers" : visible + " of " + rows.length + " providers";
      if (shown && (shown.textContent !== text || shownText !== text)) { shown.textContent = text; shownText = text; }
    } finally {
      if (observer) { observer.takeRecords(); }
      arranging = false;
    }
  }

  function update(changes) {
    window.history.replaceState(window.history.state, "", href(state(), changes));
    arrange();
  }

  // -- the page's controls --------------------------------------------------------------------
  document.addEventListener("input", function (evt) {
    var field = evt.target;
    if (field && field.id === "ptable-q") { update({ q: field.value.trim().slice(0, 64) }); }
  });
  document.addEventListener("change", function (evt) {
    var field = evt.target;
    var name = field && field.closest && field.closest("#ptable-tools") ? field.getAttribute("data-tool") : null;
    if (name && name !== "q") { var c = {}; c[name] = field.value; update(c); }
  });
  document.addEventListener("submit", function (evt) {
    if (evt.target && evt.target.id === "ptable-tools") { evt.preventDefault(); arrange(); }
  });
  document.addEventListener("click", function (evt) {
    var link = evt.target && evt.target.closest ? evt.target.closest("#ptable [data-sort], #ptable-empty [data-tool=clear]") : null;
    if (!link || evt.button !== 0 || evt.metaKey || evt.ctrlKey || evt.shiftKey || evt.altKey) { return; }
    evt.preventDefault();
    if (link.hasAttribute("data-sort")) {
      var s = state();
      var name = link.getAttribute("data-sort");
      var dir = column(s) === name ? (descending(s) ? "asc" : "desc") : link.getAttribute("data-first");
      update({ sort: name, dir: dir });
    } else {
      update({ q: "", status: "", capability: "", kind: "" });
    }
  });

  // -- pushes ---------------------------------------------------------------------------------
  // A row replaced (its parent is the rows' group) or a board swapped in: arrange again. The
  // observer's callback runs before the next paint, so a pushed row is never seen unarranged.
  function concerns(mutation) {
    if (mutation.target.id === "ptable-rows") { return true; }
    return Array.prototype.some.call(mutation.addedNodes, function (node) {
      return node.nodeType === 1 && (node.id === "board" || node.id === "ptable" || (node.querySelector && node.querySelector("#ptable")));
    });
  }

  var observer = null;
  function start() {
    var root = document.getElementById("main") || document.body;
    observer = new MutationObserver(function (mutations) {
      if (!arranging && mutations.some(concerns)) { arrange(); }
    });
    observer.observe(root, { childList: true, subtree: true });
    arrange();
  }
  window.addEventListener("popstate", arrange);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
