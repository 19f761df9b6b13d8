// Answering with a poor connection, for a round that turns it on (the form carries data-offline).
// Everything works without this file: the form is a plain POST form.
//
// - The answers are kept as a local draft in IndexedDB at every change, restored when the page opens again
//   (also from the service worker's copy of the page, offline), and saved to the server's draft whenever online:
//   a change made offline, or restored from this browser, is saved there when the connection returns.
// - "Gửi phiếu" puts the answers in an outbox under the submission's id, then sends them; what could not be
//   sent is sent again when the connection returns, when the page opens, with a growing wait (up to 5 minutes)
//   and by the "Gửi lại" button. Each send first opens the code's session again (a browser restart ends it)
//   and takes a fresh CSRF token. One tab sends at a time (Web Locks); the server stores one submission id
//   once, so two tabs give one response.
// - The thank-you page deletes what this browser kept of the code: its draft, its outbox records and the
//   cached form page.
(function () {
  "use strict";
  var DB_NAME = "phieu-offline";
  var CACHE = "phieu-v1";
  var PAGE = "/phieu";
  var MAX_WAIT = 5 * 60 * 1000;
  // the server's refusals (X-Portal-State) that no later send can change
  var REFUSED = ["unknown", "revoked", "full"];

  function openDb() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        request.result.createObjectStore("drafts", {keyPath: "tag"});
        request.result.createObjectStore("outbox", {keyPath: "sid"});
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  // run fn(store) in one transaction; resolves with the request's result once the transaction is done
  function withStore(name, mode, fn) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(name, mode);
        var request = fn(tx.objectStore(name));
        tx.oncomplete = function () { db.close(); resolve(request ? request.result : undefined); };
        tx.onerror = tx.onabort = function () { db.close(); reject(tx.error); };
      });
    });
  }

  function records(tag) {
    return withStore("outbox", "readonly", function (s) { return s.getAll(); }).then(function (all) {
      return all.filter(function (r) { return tag === null || r.tag === tag; });
    });
  }

  function forget(tag) {
    var gone = [withStore("drafts", "readwrite", function (s) { return s.delete(tag); }),
                records(tag).then(function (rs) {
                  return withStore("outbox", "readwrite", function (s) {
                    rs.forEach(function (r) { s.delete(r.sid); });
                  });
                })];
    if (window.caches) {
      gone.push(caches.open(CACHE).then(function (c) { return c.delete(PAGE); }));
    }
    // nothing of any code left: no database either
    return Promise.all(gone).then(function () {
      return Promise.all([withStore("drafts", "readonly", function (s) { return s.count(); }),
                          withStore("outbox", "readonly", function (s) { return s.count(); })]);
    }).then(function (counts) {
      if (!counts[0] && !counts[1]) { indexedDB.deleteDatabase(DB_NAME); }
    });
  }

  // whether this browser keeps anything for the offline form, without creating the database to find out
  function kept() {
    if (!indexedDB.databases) { return Promise.resolve(true); }
    return indexedDB.databases().then(function (list) {
      return list.some(function (d) { return d.name === DB_NAME; });
    });
  }

  if (!window.indexedDB) {
    return;
  }
  var done = document.getElementById("offline-done");
  if (done) {
    forget(done.getAttribute("data-tag"));
    return;
  }
  var form = document.querySelector("form.questionnaire[data-offline]");
  var field = function (name) { return form.querySelector("input[name='" + name + "']"); };
  // the code's tag (never the code) names its draft; without the form (a portal page opened after a browser
  // restart), every waiting record is sent
  var tag = form ? field("form_tag").value : null;
  var status = document.getElementById("offline-status");
  var resend = document.getElementById("offline-resend");
  var CONTROL = ["csrf_token", "submission_id", "action", "form_tag", "answers_key", "autosave"];

  function say(text, waiting) {
    if (status) {
      status.textContent = text;
      resend.hidden = !waiting;
    }
  }

  if (form && "serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", {scope: "/"}).catch(function () {});
  }
  // keep this page and its static files for an offline reload (the service worker refreshes them)
  if (form && window.caches && navigator.onLine) {
    var statics = Array.prototype.map.call(document.querySelectorAll("link[rel=stylesheet], script[src]"),
      function (el) { return new URL(el.href || el.src, location.href).pathname; })
      .filter(function (p) { return p.indexOf("/static/") === 0; });
    caches.open(CACHE).then(function (c) { return c.addAll([PAGE].concat(statics)); }).catch(function () {});
  }

  function answers() {
    var out = [];
    new FormData(form).forEach(function (value, name) {
      if (CONTROL.indexOf(name) < 0) { out.push([name, value]); }
    });
    return out;
  }

  function restore(values) {
    values.forEach(function (pair) {
      var inputs = form.querySelectorAll("[name='" + pair[0].replace(/'/g, "") + "']");
      Array.prototype.forEach.call(inputs, function (el) {
        if (el.type === "radio" || el.type === "checkbox") {
          el.checked = el.value === pair[1];
        } else {
          el.value = pair[1];
        }
      });
    });
  }

  var serverSave = null;
  var unsaved = false;  // answers the server's draft does not have yet: saved when the connection returns
  var ACTION = "/phieu";
  // the server's draft, whenever online, so nothing depends on this browser alone (Safari deletes what a
  // site stored after 7 days without a visit)
  function saveServer() {
    clearTimeout(serverSave);
    unsaved = !navigator.onLine;
    if (unsaved) { return; }
    var body = new URLSearchParams(new FormData(form));
    body.set("action", "save");
    body.set("autosave", "1");
    fetch(ACTION, {method: "POST", body: body, credentials: "same-origin"})
      .then(function (r) { unsaved = unsaved || !r.ok; }, function () { unsaved = true; });
  }

  function saveDraft() {
    withStore("drafts", "readwrite", function (s) { return s.put({tag: tag, values: answers()}); });
    clearTimeout(serverSave);
    unsaved = true;
    serverSave = setTimeout(saveServer, 3000);
  }

  var attempt = 0;
  var timer = null;
  function later() {
    clearTimeout(timer);
    var wait = Math.min(MAX_WAIT, 5000 * Math.pow(2, attempt));
    attempt += 1;
    timer = setTimeout(flush, wait);
  }

  function show(html) {
    document.open();
    document.write(html);
    document.close();
  }

  function answerOf(response) {
    return response.text().then(function (html) {
      return {status: response.status, state: response.headers.get("X-Portal-State"), html: html};
    });
  }

  // one record: re-open the code's session, take a fresh token, post; what the answer means for the record
  function send(record) {
    return fetch("/c/" + encodeURIComponent(record.code), {credentials: "same-origin", cache: "no-store"})
      .then(function (opened) {
        if (REFUSED.indexOf(opened.headers.get("X-Portal-State")) >= 0) { return opened; }  // e.g. revoked
        return fetch("/phieu/token", {credentials: "same-origin", cache: "no-store"});
      })
      .then(function (r) {
        if (!r.ok) { return answerOf(r); }  // the code refused, or the service down or overloaded
        return r.json().then(function (t) {
          var body = new URLSearchParams(record.fields);
          body.set("csrf_token", t.csrf_token);
          return fetch(ACTION, {method: "POST", body: body, credentials: "same-origin"}).then(answerOf);
        });
      });
  }

  function remove(sid) {
    return withStore("outbox", "readwrite", function (s) { return s.delete(sid); });
  }

  function sendAll() {
    return records(tag).then(function (waiting) {
      if (!waiting.length) { return; }
      var record = waiting[0];
      say("Đang gửi phiếu…", false);
      return send(record).then(function (answer) {
        if (answer.status === 200 || answer.state === "submitted") {
          return remove(record.sid).then(function () { show(answer.html); });
        }
        if (answer.status === 400) {  // answers the server does not accept: shown at their questions
          return remove(record.sid).then(function () { show(answer.html); });
        }
        if (answer.state === "closed" || answer.state === "not_open") {
          say("Đợt khảo sát đã kết thúc nên phiếu chưa gửi được không còn được nhận. Các câu trả lời vẫn được " +
              "giữ trên trình duyệt của máy này; Anh/Chị có thể liên hệ cơ quan tổ chức khảo sát.", false);
          return;
        }
        if (REFUSED.indexOf(answer.state) >= 0) {  // the code cannot be used: sending again would not help
          var title = new DOMParser().parseFromString(answer.html, "text/html").querySelector("h1");
          say((title ? title.textContent.trim() + ". " : "") + "Phiếu chưa gửi được và sẽ không tự gửi lại; " +
              "các câu trả lời vẫn được giữ trên trình duyệt của máy này.", false);
          return;
        }
        if (answer.state === "different") {
          say("Phiếu của mã này đã được gửi với các câu trả lời khác nên lần gửi này không được ghi nhận. " +
              "Bản câu trả lời này vẫn được giữ trên máy này.", false);
          return;
        }
        say("Máy chủ chưa nhận phiếu (mã " + answer.status + "). Phiếu được giữ trên máy này và sẽ được gửi " +
            "lại tự động; Anh/Chị cũng có thể bấm “Gửi lại”.", true);
        later();
      }, function () {
        say("Chưa có kết nối mạng. Phiếu đã được giữ trên trình duyệt của máy này và sẽ tự động gửi khi có " +
            "kết nối (hoặc bấm “Gửi lại”). Hãy gửi trong vòng 7 ngày.", true);
        later();
      });
    });
  }

  function flush() {
    if (navigator.locks) {  // one tab at a time; the next finds the record gone
      return navigator.locks.request("phieu-outbox", sendAll);
    }
    return sendAll();
  }

  window.addEventListener("online", function () {
    attempt = 0;
    flush();
    if (unsaved) { saveServer(); }
  });
  if (!form) {
    kept().then(function (found) { return found ? records(null) : []; })
      .then(function (waiting) { if (waiting.length) { flush(); } });
    return;
  }
  form.addEventListener("change", saveDraft);
  form.addEventListener("input", saveDraft);
  form.addEventListener("submit", function (event) {
    var action = event.submitter ? event.submitter.value : "submit";
    if (action === "save" && !navigator.onLine) {
      event.preventDefault();
      saveDraft();
      say("Chưa có kết nối mạng: các câu trả lời được lưu trên máy này và sẽ lưu lên máy chủ khi có kết nối.", false);
      return;
    }
    if (action !== "submit") { return; }
    event.preventDefault();
    clearTimeout(serverSave);
    unsaved = false;
    var fields = new FormData(form);
    fields.set("action", "submit");
    var record = {sid: field("submission_id").value, tag: tag, code: form.getAttribute("data-code"),
                  fields: Array.from(fields.entries())};
    withStore("outbox", "readwrite", function (s) { return s.put(record); }).then(function () {
      attempt = 0;
      return flush();
    });
  });
  resend.addEventListener("click", function () { attempt = 0; flush(); });

  withStore("drafts", "readonly", function (s) { return s.get(tag); }).then(function (draft) {
    if (draft && draft.values.length && !document.querySelector(".errorsummary")) {
      restore(draft.values);
      say("Đã khôi phục các câu trả lời lưu trên máy này.", false);
      unsaved = true;  // kept here while offline: the server's draft may be older
    }
    return records(tag);
  }).then(function (waiting) {
    if (waiting.length) {
      restore(waiting[0].fields.filter(function (p) { return CONTROL.indexOf(p[0]) < 0; }));
      unsaved = false;
      flush();
    } else if (unsaved) {
      saveServer();
    }
  });
})();
