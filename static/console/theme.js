/* Apply the chosen colour theme before the page paints (console.js has the toggle). */
(function () {
  "use strict";
  try {
    var theme = window.localStorage.getItem("console-theme");
    if (theme === "light" || theme === "dark") {
      document.documentElement.setAttribute("data-theme", theme);
    }
  } catch (e) { /* storage blocked: follow the system */ }
})();
