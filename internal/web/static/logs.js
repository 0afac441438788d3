// Extras of the console's log page; the search works without them.
// - The custom time fields show only when the range picker says custom.
// - "Load more" appends the next page in place instead of opening it.
// - The timeline opens scrolled to the instant; its hosts in the legend
//   become buttons that hide and show each host's lines.
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
  var hosts = document.querySelectorAll(".legend li[data-host]");
  Array.prototype.forEach.call(hosts, function (li) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "hosttoggle";
    b.title = "hide or show this host's lines";
    b.setAttribute("aria-pressed", "true");
    while (li.firstChild) { b.appendChild(li.firstChild); }
    li.appendChild(b);
    b.addEventListener("click", function () {
      var on = b.getAttribute("aria-pressed") !== "true";
      b.setAttribute("aria-pressed", on ? "true" : "false");
      var lines = document.querySelectorAll("#loglines li.logline");
      for (var i = 0; i < lines.length; i++) {
        if (lines[i].getAttribute("data-host") === li.getAttribute("data-host")) { lines[i].hidden = !on; }
      }
    });
  });
  var instant = document.getElementById("instant");
  if (instant && instant.previousElementSibling) { instant.scrollIntoView({ block: "center" }); }
})();
