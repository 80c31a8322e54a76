/* Advances signup embed: submits each form.advances-signup in place and shows
   Advances' answer in its status line. No framework, no cookies, no inline styles:
   the host page's CSS styles everything through the classes the markup carries and
   the state classes set here (advances-signup--sending, --done, --error). Without
   this script the same form is a plain POST to Advances. */
(function () {
  "use strict";

  function pageLanguage(form) {
    var lang = (form.getAttribute("data-language") ||
      document.documentElement.getAttribute("lang") || "en").toLowerCase();
    return lang.indexOf("es") === 0 ? "es" : "en";
  }

  function setState(form, state) {
    ["sending", "done", "error"].forEach(function (name) {
      form.classList.toggle("advances-signup--" + name, name === state);
    });
  }

  function markFields(form, errors) {
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (field) {
      field.removeAttribute("aria-invalid");
    });
    Object.keys(errors || {}).forEach(function (name) {
      var field = form.elements[name];
      if (field && field.setAttribute) {  // not a group of checkboxes
        field.setAttribute("aria-invalid", "true");
      }
    });
  }

  function setUp(form) {
    var message = form.querySelector(".advances-signup__message");
    var button = form.querySelector("[type=submit]");
    var language = pageLanguage(form);
    if (form.elements.language) {
      form.elements.language.value = language;
    }
    if (!form.hasAttribute("data-language")) {  // the code follows the page's language
      Array.prototype.forEach.call(
        form.querySelectorAll("[data-advances-" + language + "]"),
        function (element) {
          element.textContent = element.getAttribute("data-advances-" + language);
        }
      );
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      setState(form, "sending");
      button.disabled = true;
      message.textContent = "";
      fetch(form.getAttribute("data-endpoint"), {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: { Accept: "application/json" },
        body: new URLSearchParams(new FormData(form))
      }).then(function (response) {
        return response.json();
      }).then(function (answer) {
        markFields(form, answer.errors);
        message.setAttribute("lang", answer.language || language);
        message.textContent = answer.message;
        setState(form, answer.ok ? "done" : "error");
        if (answer.ok) {
          form.elements.email.value = "";
        } else {
          var first = form.elements[Object.keys(answer.errors || {})[0]];
          if (first && first.focus) {
            first.focus();
          }
        }
      }).catch(function () {
        // Advances unreachable, or its answer withheld by the browser (this page's
        // origin is not on Advances' allow-list, or this page's CSP forbids it).
        message.setAttribute("lang", language);
        message.textContent = form.getAttribute("data-offline-" + language);
        setState(form, "error");
      }).then(function () {
        button.disabled = false;
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("form.advances-signup"), setUp);
})();
