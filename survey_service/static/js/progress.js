// Live progress: poll the JSON endpoint and update every figure in place (no page reload).
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-url");
  var curveUrl = root.getAttribute("data-curve");
  var poll = parseInt(root.getAttribute("data-poll"), 10) || 10000;
  var curve = document.getElementById("curve");
  var errorBox = document.getElementById("live-error");
  var FIGURES = ["target", "verified", "keyed", "started", "issued", "surplus", "shortfall"];
  var lastSignature = null;

  function formatInt(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString("vi-VN"); }
  // As the server writes them (survey_service/vietnamese.py): "16,2 %", one decimal, no-break space.
  function formatPercent(p) {
    return p === null || p === undefined ? "—" : Number(p).toLocaleString("vi-VN", {
      minimumFractionDigits: 1, maximumFractionDigits: 1}) + "\u00a0%";
  }

  function setText(selector, text) {
    var nodes = document.querySelectorAll(selector);
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].textContent !== text) { nodes[i].textContent = text; }
    }
  }

  function setBar(selector, figures) {
    var bars = document.querySelectorAll(selector);
    for (var i = 0; i < bars.length; i++) {
      bars[i].max = Math.max(figures.target, 1);
      bars[i].value = Math.min(figures.verified, figures.target);
    }
  }

  function applyFigures(prefix, figures) {
    FIGURES.forEach(function (name) {
      setText("[" + prefix + "][data-figure='" + name + "']", formatInt(figures[name]));
    });
    setText("[" + prefix + "][data-figure='percent']", formatPercent(figures.percent));
    setBar("[" + prefix + "][data-figure='bar']", figures);
  }

  function apply(data) {
    data.cells.forEach(function (cell) {
      applyFigures("data-cell='" + cell.cell_id + "'", cell);
      var row = document.querySelector("[data-row='" + cell.cell_id + "']");
      if (row) { row.classList.toggle("behind", cell.shortfall > 0); }
    });
    applyFigures("data-total='all'", data.total);
    [["form", data.by_form], ["kind", data.by_kind], ["channel", data.by_channel]].forEach(function (group) {
      Object.keys(group[1]).forEach(function (key) {
        applyFigures("data-total='" + group[0] + ":" + key + "'", group[1][key]);
      });
    });
    document.getElementById("updated").textContent = data.updated;
    if (data.last_response_on) {
      var d = data.last_response_on.split("-");
      document.getElementById("last-response").textContent = d[2] + "/" + d[1] + "/" + d[0];
    }
    var signature = JSON.stringify([data.total, data.last_response_on]);
    if (curve && signature !== lastSignature) {  // also on the first poll: the page may be older
      curve.src = curveUrl + (curveUrl.indexOf("?") < 0 ? "?" : "&") + "t=" + Date.now();
    }
    lastSignature = signature;
  }

  function tick() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (data) { apply(data); errorBox.hidden = true; })
      .catch(function () { errorBox.hidden = false; })
      .then(function () { window.setTimeout(tick, poll); });
  }

  window.setTimeout(tick, poll);

  // Filters apply as soon as a choice changes; empty choices stay out of the address.
  var filters = document.getElementById("filters");
  if (filters) {
    filters.addEventListener("change", function () { filters.requestSubmit(); });
    filters.addEventListener("submit", function () {
      var selects = filters.querySelectorAll("select");
      for (var i = 0; i < selects.length; i++) {
        if (!selects[i].value || (selects[i].name === "sort" && selects[i].value === "name")) {
          selects[i].disabled = true;
        }
      }
    });
  }
})();
