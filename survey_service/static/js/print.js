/* After new sheets are issued the page shows the new counts; start the download of their PDF once.
   Without JavaScript the link is there to click. */
(function () {
  "use strict";
  var link = document.querySelector("a[data-autodownload]");
  var key = link && "downloaded:" + link.getAttribute("href");
  if (!link || window.sessionStorage.getItem(key)) { return; }
  window.sessionStorage.setItem(key, "1");
  link.click();
}());
