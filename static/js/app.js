/* The portal's few behaviours, without inline script or eval: the Content-Security-Policy forbids
   both (portal/security.py), so htmx runs with allowEval off (base.html's htmx-config).

   - data-swap-statuses="409 422" on a container: htmx swaps those answers (a form with its
     messages) for requests made inside it, instead of treating them as errors.
   - data-remove-closest=".selector" on a button: clicking it removes that ancestor (a "Close").
   - data-submit-on-change on a select: choosing an option submits its form (a filter).
   - a 503 carrying HX-Retarget (Redis is down: portal/views/errors.py) is swapped where it says. */
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    // "Background processing is unavailable": a 503 that names where it goes is shown there.
    if (event.detail.xhr.status === 503 && event.detail.xhr.getResponseHeader("HX-Retarget")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      return;
    }
    // The event bubbles from the element that made the request, as hx-on's did on the container.
    var area = event.target.closest ? event.target.closest("[data-swap-statuses]") : null;
    if (!area) { return; }
    var statuses = area.getAttribute("data-swap-statuses").split(/\s+/);
    if (statuses.indexOf(String(event.detail.xhr.status)) !== -1) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-remove-closest]") : null;
    if (!button) { return; }
    var gone = button.closest(button.getAttribute("data-remove-closest"));
    if (gone) { gone.remove(); }
  });
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.hasAttribute && field.hasAttribute("data-submit-on-change") && field.form) { field.form.submit(); }
  });
})();
