// Moves keyboard focus to the first answer with an error (the page also sets autofocus on it, for
// browsers that ignore autofocus after a POST). Everything works without this file.
document.addEventListener("DOMContentLoaded", function () {
  var first = document.querySelector(".has-error input, .has-error textarea");
  if (first && document.activeElement !== first) {
    first.focus();
  }
});
