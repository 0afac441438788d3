// Extras of the console's log page; the search works without them.
// - The custom time fields show only when the range picker says custom.
// - "Load more" appends the next page in place instead of opening it.
// - The timeline opens scrolled to the instant.
(function () {
  var range = document.getElementById("range");
  if (range) {
    var custom = document.querySelectorAll(".logsearch .custom");
    var show = function () {
      for (var i = 0; i < custom.length; i++) { custom[i].hidden = range.value !== "custom"; }
    };
    range.addEventListener("change", show);
    show();
  }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("#more");
    if (!a) { return; }
    ev.preventDefault();
    a.textContent = "Loading…";
    fetch(a.href, { cache: "no-store", credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var list = document.getElementById("loglines"), fresh = doc.getElementById("loglines");
      if (fresh && list) {
        while (fresh.firstElementChild) { list.appendChild(fresh.firstElementChild); }
      }
      var next = doc.getElementById("more");
      if (next) { a.href = next.getAttribute("href"); a.textContent = "Load more"; } else { a.parentNode.remove(); }
    }).catch(function () { location.href = a.href; });
  });
  var instant = document.getElementById("instant");
  if (instant && instant.previousElementSibling) { instant.scrollIntoView({ block: "center" }); }
})();
