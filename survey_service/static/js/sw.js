// The offline form's service worker: network first for the form page (/phieu, an address without the code)
// and the static files, the last copy when the network fails. It never touches a POST or any other page.
"use strict";
var CACHE = "phieu-v1";

self.addEventListener("install", function () { self.skipWaiting(); });

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") { return; }
  var url = new URL(request.url);
  var page = url.pathname === "/phieu";
  if (url.origin !== self.location.origin || (!page && url.pathname.indexOf("/static/") !== 0)) { return; }
  var key = page ? "/phieu" : url.pathname;
  event.respondWith(fetch(request).then(function (response) {
    if (response.redirected) {  // no session: the form of no code
      return response;
    }
    if (response.status === 200) {
      var copy = response.clone();
      caches.open(CACHE).then(function (c) { return c.put(key, copy); });
    } else if (page) {  // a refusal (spent, closed, another code): no stale form of this code kept
      caches.open(CACHE).then(function (c) { return c.delete(key); });
    }
    return response;
  }, function () {
    return caches.match(key).then(function (cached) { return cached || Response.error(); });
  }));
});
