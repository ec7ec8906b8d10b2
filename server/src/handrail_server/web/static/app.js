/* Handrail UI: a small script layer of our own (no framework, no inline script).
 * Behaviour hooks onto data-* attributes:
 *   data-countdown="<ISO time>"   an SLA countdown kept current every second
 *   data-live-queue               a queue whose rows refetch on server-sent events
 *   data-autosubmit               a filter form that submits when a select changes
 * Unsafe requests made with hr.fetch carry the session's CSRF token (X-CSRF-Token).
 */
(function () {
  "use strict";

  var hr = (window.hr = window.hr || {});

  hr.csrf = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };

  hr.fetch = function (url, options) {
    options = options || {};
    var headers = new Headers(options.headers || {});
    var method = (options.method || "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD") headers.set("X-CSRF-Token", hr.csrf());
    options.headers = headers;
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      if (response.redirected && new URL(response.url).pathname === "/signin") {
        window.location.assign(response.url); // the session ended
        throw new Error("signed out");
      }
      return response;
    });
  };

  /* ---------------------------------------------------------------- countdowns */

  function formatLeft(seconds) {
    var s = Math.abs(Math.round(seconds));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), sec = s % 60;
    var text = d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m ? m + "m " + sec + "s" : sec + "s";
    return seconds < 0 ? "overdue by " + text : text + " left";
  }

  hr.tickCountdowns = function () {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-countdown"));
      if (isNaN(due)) return;
      var left = (due - now) / 1000;
      var total = parseFloat(el.getAttribute("data-total") || "0");
      el.textContent = formatLeft(left);
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && total > 0 && left < total * 0.2);
    });
  };

  /* ---------------------------------------------------------------- live queue */

  function liveQueue(root) {
    var body = root.querySelector("[data-rows]");
    var status = document.getElementById(root.getAttribute("data-status") || "");
    var rowsUrl = root.getAttribute("data-rows-url");
    var eventsUrl = root.getAttribute("data-events-url");
    var pending = null, inFlight = false, again = false;

    function refresh() {
      if (inFlight) { again = true; return; }
      inFlight = true;
      hr.fetch(rowsUrl, { headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error(r.status)); })
        .then(function (html) {
          var had = body.querySelectorAll("tr[data-task]").length;
          var focusedId = document.activeElement && document.activeElement.closest
            ? (document.activeElement.closest("tr[data-task]") || {}).id : null;
          body.innerHTML = html;
          var count = body.querySelectorAll("tr[data-task]").length;
          if (focusedId && document.getElementById(focusedId)) {
            var link = document.getElementById(focusedId).querySelector("a");
            if (link) link.focus();
          }
          hr.tickCountdowns();
          if (status && count !== had) {
            status.textContent = count === 1 ? "1 task in the queue" : count + " tasks in the queue";
          }
        })
        .catch(function () { /* the next event or reconnect tries again */ })
        .then(function () {
          inFlight = false;
          if (again) { again = false; refresh(); }
        });
    }

    function soon() {
      if (pending) clearTimeout(pending);
      pending = setTimeout(refresh, 150);
    }

    if (window.EventSource && eventsUrl) {
      var source = new EventSource(eventsUrl);
      source.addEventListener("change", soon);
      source.addEventListener("open", soon); // reconnected: catch up
      source.addEventListener("signed-out", function () { window.location.assign("/signin"); });
      root.setAttribute("data-live", "connected");
    } else {
      setInterval(refresh, 10000);
    }
    hr.refreshQueue = refresh;
  }

  function autosubmit(form) {
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.requestSubmit ? form.requestSubmit() : form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    hr.tickCountdowns();
    setInterval(hr.tickCountdowns, 1000);
    document.querySelectorAll("[data-live-queue]").forEach(liveQueue);
    document.querySelectorAll("form[data-autosubmit]").forEach(autosubmit);
  });
})();
