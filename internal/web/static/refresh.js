// Refresh the status page without a full reload flash: fetch the page and
// swap the main content. Without JavaScript the page still works; it just
// does not refresh by itself.
(function () {
  var secs = parseInt(document.body.getAttribute("data-refresh"), 10);
  if (!secs) { return; }
  setInterval(function () {
    fetch(location.href, { cache: "no-store" }).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.querySelector("main"), top = doc.querySelector("header.top");
      if (fresh) { document.querySelector("main").replaceWith(fresh); }
      if (top) { document.querySelector("header.top").replaceWith(top); }
    }).catch(function () {});
  }, secs * 1000);
})();
