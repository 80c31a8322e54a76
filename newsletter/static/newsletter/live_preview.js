// Live preview beside the issue and education-piece change forms: posts the form as the
// editor types (debounced) and shows the server-rendered partial. No inline script or
// style (Content-Security-Policy); without JavaScript the form works as before.
(function () {
  "use strict";
  var panel = document.querySelector(".live-preview-panel[data-url]");
  if (!panel) return;
  var form = panel.closest("form");
  var body = panel.querySelector(".live-preview-body");
  var status = panel.querySelector(".live-preview-status");
  var buttons = panel.querySelectorAll(".live-preview-tabs button");
  var timer = null;
  var pending = null;
  var sent = 0;

  function choose(view) {
    body.dataset.view = view;
    buttons.forEach(function (button) {
      button.setAttribute("aria-pressed", button.dataset.view === view ? "true" : "false");
    });
  }
  buttons.forEach(function (button) {
    button.addEventListener("click", function () { choose(button.dataset.view); });
  });

  function render() {
    var mine = ++sent;
    if (pending) pending.abort();
    pending = new AbortController();
    status.textContent = status.dataset.updating || "Updating…";
    fetch(panel.dataset.url, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
      signal: pending.signal
    })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        if (mine !== sent) return;
        body.innerHTML = html;
        status.textContent = "";
      })
      .catch(function (error) {
        if (error.name === "AbortError") return;
        status.textContent = "The preview could not be updated (" + error.message + "); keep typing to retry.";
      });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(render, 500);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  // The admin's autocomplete (select2) signals changes through jQuery only.
  if (window.django && window.django.jQuery) window.django.jQuery(form).on("change", schedule);
  render();
})();
