/* Keyboard-first keying of a paper sheet, on top of a plain HTML form that works without it.
   One key per answer (the option code; 0 or K = "không biết"; - or space = left blank), automatic advance,
   Backspace goes back one answer and clears it, Enter saves once every rated item is keyed. In the HĐ-CT
   grid, * leaves the rest of the row blank (an agency the delegate did not rate) and moves to the next row. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-keying]");
  if (!form) { return; }
  var slots = Array.prototype.slice.call(form.querySelectorAll("[data-slot]"));
  var message = document.querySelector("[data-keying-message]");
  // The one-key keying exists only with this script: its help replaces the plain-form help.
  Array.prototype.forEach.call(document.querySelectorAll("[data-keys-help]"), function (el) { el.hidden = false; });
  Array.prototype.forEach.call(document.querySelectorAll("[data-nojs-help]"), function (el) { el.hidden = true; });

  function isChoice(slot) { return slot.tagName === "FIELDSET"; }
  function isText(slot) { return slot.hasAttribute("data-text"); }
  function radios(slot) { return Array.prototype.slice.call(slot.querySelectorAll("input[type=radio]")); }

  function valueOf(slot) {
    if (isChoice(slot)) {
      var checked = slot.querySelector("input:checked");
      return checked ? checked.value : "";
    }
    return slot.value;
  }

  function setValue(slot, value) {
    if (isChoice(slot)) {
      radios(slot).forEach(function (r) { r.checked = r.value === value; });
    } else {
      slot.value = value;
    }
  }

  function accepts(slot, key) {
    if (isChoice(slot)) {
      return radios(slot).some(function (r) { return r.value === key; });
    }
    return key === "-" || (slot.getAttribute("data-codes") || "").split(" ").indexOf(key) >= 0;
  }

  function normalise(key) {
    var k = key.toUpperCase();
    if (k === "0") { return "K"; }
    if (k === " ") { return "-"; }
    return k;
  }

  function focusSlot(i) {
    var slot = slots[Math.max(0, Math.min(i, slots.length - 1))];
    if (isChoice(slot)) {
      (slot.querySelector("input:checked") || radios(slot)[0]).focus();
    } else {
      slot.focus();
      if (!isText(slot)) { slot.select(); }
    }
    if (slot.scrollIntoView) { slot.scrollIntoView({block: "nearest"}); }
  }

  function indexOf(el) {
    for (var i = 0; i < slots.length; i++) {
      if (slots[i] === el || slots[i].contains(el)) { return i; }
    }
    return -1;
  }

  function say(text) {
    if (!message) { return; }
    message.textContent = text;
    message.hidden = !text;
  }

  function firstEmpty() {
    for (var i = 0; i < slots.length; i++) {
      if (!isText(slots[i]) && valueOf(slots[i]) === "") { return i; }
    }
    return -1;
  }

  function save() {
    var empty = firstEmpty();
    if (empty >= 0) {
      var left = slots.filter(function (s) { return !isText(s) && valueOf(s) === ""; }).length;
      say("Còn " + left + " ô chưa nhập. Gõ “-” nếu trên phiếu để trống.");
      focusSlot(empty);
      return;
    }
    say("");
    form.submit();
  }

  function blankRow(i) {
    var row = slots[i].closest("tr");
    var j = i;
    while (j < slots.length && slots[j].closest("tr") === row) {
      setValue(slots[j], "-");
      j++;
    }
    say("");
    focusSlot(j);
  }

  function type(i, key) {
    var slot = slots[i];
    var k = normalise(key);
    if (k === "*" && slot.hasAttribute("data-codes")) {
      blankRow(i);
      return;
    }
    if (accepts(slot, k)) {
      setValue(slot, k);
      say("");
      focusSlot(i + 1);
    } else {
      say("Phím “" + key + "” không thuộc thang trả lời của ô này.");
    }
  }

  form.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.altKey || e.metaKey) { return; }
    var i = indexOf(e.target);
    if (i < 0) { return; }
    var slot = slots[i];
    if (e.key === "Enter") {
      e.preventDefault();
      save();
      return;
    }
    if (isText(slot)) {
      if (e.key === "Backspace" && slot.value === "" && i > 0) {
        e.preventDefault();
        setValue(slots[i - 1], "");
        focusSlot(i - 1);
      }
      return;
    }
    if (e.key === "Backspace") {
      e.preventDefault();
      var back = valueOf(slot) === "" ? i - 1 : i;
      if (back >= 0) {
        setValue(slots[back], "");
        focusSlot(back);
      }
      return;
    }
    if (e.key.length === 1) {
      e.preventDefault();
      type(i, e.key);
    }
  });

  // Phones' on-screen keyboards may not report keys on keydown: read the typed character instead.
  form.addEventListener("input", function (e) {
    var i = indexOf(e.target);
    if (i < 0 || isChoice(slots[i]) || isText(slots[i])) { return; }
    var typed = slots[i].value.slice(-1);
    slots[i].value = "";
    if (typed) { type(i, typed); }
  });

  var problem = form.querySelector(".has-error [data-slot], .has-error[data-slot]");
  if (slots.length) {
    focusSlot(problem ? indexOf(problem) : Math.max(0, firstEmpty()));
  } else {
    form.querySelector("button[type=submit]").focus();
  }
})();
