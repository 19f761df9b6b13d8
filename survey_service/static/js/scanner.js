/* QR scanning with the device camera: BarcodeDetector where the browser has it, else the vendored jsQR.
   "submit" mode opens the scanned sheet; "append" mode adds each new code as a line (bulk returns).
   The camera needs a secure context (HTTPS or localhost); a USB scanner works everywhere. */
(function () {
  "use strict";
  var box = document.querySelector("[data-scanner]");
  if (!box) { return; }
  var target = document.getElementById(box.getAttribute("data-target"));
  var mode = box.getAttribute("data-mode");
  var startButton = box.querySelector("[data-scanner-start]");
  var stopButton = box.querySelector("[data-scanner-stop]");
  var status = box.querySelector("[data-scanner-status]");
  var video = box.querySelector("[data-scanner-video]");
  var canvas = box.querySelector("[data-scanner-canvas]");
  var stream = null;
  box.hidden = false;
  var detector = null;
  var last = "";
  var lastAt = 0;

  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    startButton.disabled = true;
    status.textContent = "Không dùng được camera trên trang này (cần HTTPS). Hãy dùng máy quét hoặc gõ số phiếu.";
    return;
  }

  function halt() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    stream = null;
    video.hidden = true;
    startButton.hidden = false;
    stopButton.hidden = true;
  }

  function found(text) {
    var now = Date.now();
    if (text === last && now - lastAt < 3000) { return; }
    last = text;
    lastAt = now;
    if (mode === "submit") {
      halt();
      target.value = text;
      status.textContent = "Đã đọc mã, đang mở phiếu…";
      target.form.submit();
      return;
    }
    var lines = target.value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
    if (lines.indexOf(text) < 0) {
      lines.push(text);
      target.value = lines.join("\n") + "\n";
    }
    status.textContent = "Đã quét " + lines.length + " phiếu.";
  }

  function tick() {
    if (!stream) { return; }
    if (video.readyState < 2 || !video.videoWidth) {
      setTimeout(tick, 100);
      return;
    }
    if (detector) {
      detector.detect(video).then(function (codes) {
        if (codes.length) { found(codes[0].rawValue); }
        setTimeout(tick, 150);
      }).catch(function () {
        detector = null;
        setTimeout(tick, 150);
      });
      return;
    }
    var w = video.videoWidth;
    var h = video.videoHeight;
    canvas.width = w;
    canvas.height = h;
    var ctx = canvas.getContext("2d", {willReadFrequently: true});
    ctx.drawImage(video, 0, 0, w, h);
    var code = window.jsQR(ctx.getImageData(0, 0, w, h).data, w, h, {inversionAttempts: "attemptBoth"});
    if (code && code.data) { found(code.data); }
    setTimeout(tick, 150);
  }

  startButton.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false}).then(function (s) {
      stream = s;
      video.srcObject = s;
      video.hidden = false;
      startButton.hidden = true;
      stopButton.hidden = false;
      status.textContent = "Đưa mã QR của phiếu vào khung hình…";
      if ("BarcodeDetector" in window) {
        try { detector = new window.BarcodeDetector({formats: ["qr_code"]}); } catch (err) { detector = null; }
      }
      return video.play();
    }).then(tick).catch(function (err) {
      halt();
      status.textContent = "Không mở được camera (" + err.name + "). Hãy dùng máy quét hoặc gõ số phiếu.";
    });
  });
  stopButton.addEventListener("click", halt);
})();
