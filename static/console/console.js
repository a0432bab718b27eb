/* The console's behaviour beyond htmx: the socket's state and resynchronisation, the theme
   toggle, confirmations and error messages. No inline script anywhere (CSP-ready). */
(function () {
  "use strict";

  // -- live updates ---------------------------------------------------------------------------
  // htmx's ws extension reconnects by itself only after an abnormal close; a server that
  // restarts (1001) or closes cleanly must be followed too. 4401: the session ended (signed
  // out, or no longer staff): reconnecting cannot help.
  var RETRIED_BY_EXTENSION = [1006, 1011, 1012, 1013];
  var SIGNED_OUT = 4401;
  var socket = null;

  // The banner says the page is no longer live, in words and out of the top bar (which a
  // phone scrolls away): shown after a second without the socket, so that leaving the page
  // (which closes it) or a quick reconnect does not flash it.
  var bannerTimer = null;
  var leaving = false;
  window.addEventListener("pagehide", function () { leaving = true; });
  window.addEventListener("beforeunload", function () { leaving = true; });

  function showBanner(text) {
    var banner = document.getElementById("reconnect-banner");
    if (!banner) { return; }
    if (text === null) {
      window.clearTimeout(bannerTimer);
      bannerTimer = null;
      banner.hidden = true;
      return;
    }
    if (bannerTimer !== null || !banner.hidden) {
      banner.querySelector("[data-banner-text]").textContent = text;
      return;
    }
    bannerTimer = window.setTimeout(function () {
      bannerTimer = null;
      if (leaving) { return; }
      banner.querySelector("[data-banner-text]").textContent = text;
      banner.hidden = false;
    }, 1000);
  }

  function liveStatus(state, text) {
    var el = document.getElementById("live-status");
    if (!el) { return; }
    el.setAttribute("data-state", state);
    el.textContent = text;
    if (state === "on") {
      showBanner(null);
    } else if (state === "off") {
      showBanner(text === "Reconnecting…"
        ? "Live updates lost: reconnecting… What you see may be out of date."
        : text);
    }
  }

  // Whatever changed while the socket was down (or before it first opened) is fetched
  // again: the page's "live" partial, swapped out of band.
  function resync() {
    if (!document.getElementById("resync")) { return; }
    htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#resync", swap: "none" });
  }

  document.addEventListener("htmx:wsConnecting", function () { liveStatus("connecting", "Connecting…"); });
  // The dashboard's socket pushes the board the page shows: it is told which view (filters,
  // sort) whenever the page's URL changes.
  function sendView() {
    if (socket && document.getElementById("board")) {
      socket.send(JSON.stringify({ view: window.location.search }));
    }
  }

  document.addEventListener("htmx:wsOpen", function (evt) {
    socket = evt.detail.socketWrapper;
    liveStatus("on", "Live");
    sendView();
    resync();
  });
  document.addEventListener("htmx:pushedIntoHistory", sendView);
  document.addEventListener("htmx:historyRestore", sendView);
  window.addEventListener("popstate", sendView);
  document.addEventListener("htmx:wsClose", function (evt) {
    socket = null;
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 1006;
    if (code === SIGNED_OUT) {
      liveStatus("off", "Signed out: reload to sign in");
      var element = document.getElementById("socket");
      if (element) { element.removeAttribute("ws-connect"); element.remove(); }
      return;
    }
    liveStatus("off", "Reconnecting…");
    if (RETRIED_BY_EXTENSION.indexOf(code) < 0 && document.getElementById("socket")) {
      var wrapper = evt.detail.socketWrapper;
      window.setTimeout(function () { wrapper.reconnect(); }, 1000 + Math.random() * 2000);
    }
  });

  // An element with data-version (a pull's progress, its message) is never replaced by an
  // older state: an action's answer can arrive after the socket brought what followed it.
  function versionOf(node) {
    if (!node) { return null; }
    if (node.nodeType === 1 && node.hasAttribute("data-version")) { return Number(node.getAttribute("data-version")); }
    var inner = node.firstElementChild;
    return inner && inner.hasAttribute("data-version") ? Number(inner.getAttribute("data-version")) : null;
  }

  // Nor is an element replaced while a request it sent waits for its answer (htmx marks the
  // sender with htmx-request): the answer's fragments would be looked for in the detached
  // copy and lost, and its errors would never reach the page. The answer brings the fresh
  // state of what it changed; the next push the rest.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var target = evt.detail.target;
    var have = versionOf(target);
    var incoming = versionOf(evt.detail.fragment);
    if (have !== null && incoming !== null && incoming < have) { evt.detail.shouldSwap = false; }
    if (target && target.querySelector && (target.classList.contains("htmx-request") || target.querySelector(".htmx-request"))) {
      evt.detail.shouldSwap = false;
    }
  });

  // A live swap never eats what someone is typing: a form field (with an id) that was
  // changed keeps its value in the element that replaces it, and the focus stays in it.
  var refocus = null;
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var target = evt.detail.target;
    var fragment = evt.detail.fragment;
    if (!target || !fragment || !fragment.querySelector || !evt.detail.shouldSwap) { return; }
    target.querySelectorAll("input[id], textarea[id], select[id]").forEach(function (field) {
      var twin = fragment.querySelector("#" + CSS.escape(field.id));
      if (!twin || twin.tagName !== field.tagName || field.type === "hidden") { return; }
      var changed = field.tagName === "SELECT"
        ? Array.prototype.some.call(field.options, function (o) { return o.selected !== o.defaultSelected; })
        : field.value !== field.defaultValue;
      if (changed) { twin.value = field.value; }
      if (field === document.activeElement) {
        refocus = { id: field.id, start: field.selectionStart, end: field.selectionEnd };
      }
    });
  });
  document.addEventListener("htmx:oobAfterSwap", function () {
    if (!refocus) { return; }
    var field = document.getElementById(refocus.id);
    var where = refocus;
    refocus = null;
    if (!field || field === document.activeElement) { return; }
    field.focus();
    try { if (where.start !== null) { field.setSelectionRange(where.start, where.end); } } catch (e) { /* not a text field */ }
  });

  // An expanded score stays expanded when its card is replaced.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var target = evt.detail.target;
    var fragment = evt.detail.fragment;
    if (!target || !fragment || !fragment.querySelector) { return; }
    target.querySelectorAll("details[data-keep][open]").forEach(function (details) {
      var twin = fragment.querySelector('details[data-keep="' + CSS.escape(details.getAttribute("data-keep")) + '"]');
      if (twin) { twin.open = true; }
    });
  });

  // -- forms ----------------------------------------------------------------------------------
  // A form with data-confirm asks first, with or without htmx (capture runs before htmx).
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
    }
  }, true);

  function flash(text) {
    var area = document.getElementById("flash");
    if (!area) { return; }
    var p = document.createElement("p");
    p.className = "flash flash-error";
    p.textContent = text;
    area.replaceChildren(p);
  }

  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr.status === 403) {
      flash("You are not allowed to do this.");
    } else {
      flash("That did not work (" + xhr.status + " " + xhr.statusText + "). Try again.");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The server did not answer. Check your connection and try again.");
  });

  // -- polling only where somebody looks -------------------------------------------------------
  // A part that refreshes itself (`data-poll`, e.g. the analytics figures every 15 s) asks
  // nothing while its tab is hidden, and catches up at once when the tab is shown again
  // (its hx-trigger listens for `console:visible`).
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-poll")) {
      return;
    }
    // Nor while the operator is using a control inside it (a select open, a field half typed):
    // a refresh would replace it under their hands. The next tick catches up.
    var active = document.activeElement;
    var busy = active && active !== document.body && elt.contains(active) &&
      /^(SELECT|INPUT|TEXTAREA)$/.test(active.tagName);
    if (document.hidden || busy) {
      evt.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      document.body.dispatchEvent(new CustomEvent("console:visible"));
    }
  });

  // -- relative times -------------------------------------------------------------------------
  // "8 s ago" keeps counting: every <time data-ago> (and <span data-until>) carries its
  // instant in ISO 8601 with its timezone, and is rewritten each second in the wording of
  // the server's `ago` / `until` filters. The server's clock is the reference (the page
  // says what time it was when rendered), so a wrong clock here changes nothing.
  var serverOffset = 0;
  (function () {
    var meta = document.querySelector('meta[name="server-time"]');
    var then = meta ? Date.parse(meta.getAttribute("content")) : NaN;
    if (!isNaN(then)) { serverOffset = then - Date.now(); }
  })();

  function span(seconds) {
    if (seconds < 90) { return Math.round(seconds) + " s"; }
    if (seconds < 90 * 60) { return Math.round(seconds / 60) + " min"; }
    if (seconds < 36 * 3600) { return Math.round(seconds / 3600) + " h"; }
    return Math.round(seconds / 86400) + " d";
  }

  // Timestamps: the server writes them in the console's zone (CONSOLE_TIME_ZONE), or in UTC
  // marked data-stamp="browser", which is rewritten here in the browser's own zone, in the
  // same format: 2026-03-05 14:03:07 CET. A relative time keeps its words and gets the
  // timestamp as its title.
  var stampFormat = null;
  try {
    stampFormat = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23", timeZoneName: "short"
    });
  } catch (e) { stampFormat = null; /* an old browser: the server's UTC stays */ }

  function localStamp(date) {
    var parts = {};
    stampFormat.formatToParts(date).forEach(function (part) { parts[part.type] = part.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" +
      parts.second + " " + parts.timeZoneName;
  }

  function localise() {
    if (!stampFormat) { return; }
    document.querySelectorAll('time[data-stamp="browser"]').forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) { return; }
      var text = localStamp(at);
      if (el.hasAttribute("data-ago") || el.hasAttribute("data-until")) {
        el.setAttribute("title", text);
      } else {
        el.textContent = text;
      }
      el.setAttribute("data-stamp", "local");
    });
  }
  document.addEventListener("htmx:load", localise);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", localise);
  } else {
    localise();
  }

  function tick() {
    localise();  // what a live swap brought in
    var now = Date.now() + serverOffset;
    document.querySelectorAll("time[data-ago]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) { return; }
      var text = span(Math.max(0, (now - at) / 1000)) + " ago";
      if (el.textContent !== text) { el.textContent = text; }
    });
    document.querySelectorAll("[data-until]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("data-until"));
      if (isNaN(at)) { return; }
      var text = "in " + span(Math.max(0, (at - now) / 1000));
      if (el.textContent !== text) { el.textContent = text; }
    });
  }
  window.setInterval(tick, 1000);

  // -- theme ----------------------------------------------------------------------------------
  var THEMES = ["auto", "light", "dark"];
  var NAMES = { auto: "automatic", light: "light", dark: "dark" };
  var ICONS = { auto: "◐", light: "☀", dark: "☾" };

  function currentTheme() {
    return document.documentElement.getAttribute("data-theme") || "auto";
  }

  function showTheme(button) {
    var theme = currentTheme();
    button.setAttribute("aria-label", "Colour theme: " + NAMES[theme] + " (change)");
    button.setAttribute("title", "Colour theme: " + NAMES[theme]);
    button.firstElementChild.textContent = ICONS[theme];
  }

  function setUpTheme() {
    var button = document.getElementById("theme-toggle");
    if (!button) { return; }
    button.hidden = false;
    showTheme(button);
    button.addEventListener("click", function () {
      var next = THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length];
      if (next === "auto") {
        document.documentElement.removeAttribute("data-theme");
      } else {
        document.documentElement.setAttribute("data-theme", next);
      }
      try { window.localStorage.setItem("console-theme", next); } catch (e) { /* not kept */ }
      showTheme(button);
    });
  }

  // On a phone the links are one row that scrolls sideways: the current page's is in sight.
  function showCurrentLink() {
    var list = document.querySelector(".nav-links");
    var link = list && list.querySelector('[aria-current="page"]');
    if (!link || list.scrollWidth <= list.clientWidth) { return; }
    var box = list.getBoundingClientRect();
    var at = link.getBoundingClientRect();
    list.scrollLeft += at.left - box.left - (box.width - at.width) / 2;
  }

  function setUp() {
    setUpTheme();
    showCurrentLink();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
