// The progress page, live: polls its JSON while the issue is sending and fills in each
// [data-figure]. No inline script (Content-Security-Policy); the page works without it.
(function () {
  "use strict";
  var page = document.querySelector(".issue-progress[data-url]");
  if (!page || page.dataset.live !== "true") return;
  var url = page.dataset.url;
  var every = (parseFloat(page.dataset.poll) || 2) * 1000;
  var warning = page.querySelector(".progress-unavailable");
  var bar = page.querySelector("progress.delivery-progress");

  function set(name, value) {
    var node = page.querySelector('[data-figure="' + name + '"]');
    if (!node) return;
    if (node.tagName === "METER") node.value = value;
    else node.textContent = value;
  }

  function show(figures) {
    warning.hidden = true;
    ["status_label", "done", "total", "time_left"].forEach(function (name) {
      set(name, figures[name]);
    });
    set("rate", Number(figures.rate).toFixed(1));
    figures.deliveries.forEach(function (row) { set("delivery-" + row.key, row.readers); });
    figures.outcomes.forEach(function (row) {
      set("outcome-" + row.key, row.readers);
      set("percent-" + row.key, Number(row.percent).toFixed(2));
      set("meter-" + row.key, row.percent);
    });
    if (bar) { bar.max = figures.total || 1; bar.value = figures.done; }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (!result.ok) throw new Error(result.body.message || "unavailable");
        show(result.body);
        // The send ended (sent, paused, cancelled): reload once for the final page.
        if (!result.body.live) { window.location.reload(); return; }
        window.setTimeout(poll, every);
      })
      .catch(function () {
        warning.hidden = false;
        window.setTimeout(poll, every * 2);
      });
  }

  window.setTimeout(poll, every);
})();
