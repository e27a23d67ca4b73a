// Completion for the search box: fills its <datalist> from /api/suggest as
// the user types. The page works without it.
(function () {
  "use strict";
  var input = document.querySelector("input[data-suggest-url]");
  if (!input || !window.fetch || !window.AbortController) return;
  var list = document.getElementById(input.getAttribute("list"));
  var timer = null, asked = null, pending = null;

  function show(words) {
    list.replaceChildren.apply(list, words.map(function (word) {
      var option = document.createElement("option");
      option.value = word;
      return option;
    }));
  }

  function update() {
    var q = input.value;
    if (q === asked) return;
    asked = q;
    if (pending) pending.abort();
    if (q.trim().length < 2) { show([]); return; }
    pending = new AbortController();
    fetch(input.dataset.suggestUrl + "?q=" + encodeURIComponent(q), { signal: pending.signal })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.query === input.value) show(data.suggestions);
      })
      .catch(function () { /* aborted or offline: keep the form as it is */ });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(update, 150);
  });
})();
