/* The console's behaviour beyond htmx: the socket's state and resynchronisation, the theme
   toggle, confirmations and error messages. No inline script anywhere (CSP-ready). */
(function () {
  "use strict";

  // -- live updates ---------------------------------------------------------------------------
  // htmx's ws extension reconnects by itself only after an abnormal close; a server that
  // restarts (1001) or closes cleanly must be followed too.
  var RETRIED_BY_EXTENSION = [1006, 1011, 1012, 1013];

  function liveStatus(state, text) {
    var el = document.getElementById("live-status");
    if (!el) { return; }
    el.setAttribute("data-state", state);
    el.textContent = text;
  }

  // Whatever changed while the socket was down (or before it first opened) is fetched
  // again: the page's "live" partial, swapped out of band.
  function resync() {
    if (!document.getElementById("resync")) { return; }
    htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#resync", swap: "none" });
  }

  document.addEventListener("htmx:wsConnecting", function () { liveStatus("connecting", "Connecting…"); });
  document.addEventListener("htmx:wsOpen", function () {
    liveStatus("on", "Live");
    resync();
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    liveStatus("off", "Reconnecting…");
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 1006;
    if (RETRIED_BY_EXTENSION.indexOf(code) < 0 && document.getElementById("socket")) {
      var wrapper = evt.detail.socketWrapper;
      window.setTimeout(function () { wrapper.reconnect(); }, 1000 + Math.random() * 2000);
    }
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

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpTheme);
  } else {
    setUpTheme();
  }
})();
