// carelens workspace: small progressive enhancements (the pages work without JavaScript).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Decision forms: show the corrected-text field only for "edit"; a reason is required for edit/reject.
  for (const form of document.querySelectorAll("form.decide")) {
    const action = form.querySelector("select[name=action]");
    const edited = form.querySelector("input[name=edited_text]");
    const reason = form.querySelector("input[name=reason]");
    const update = () => {
      edited.classList.toggle("hidden", action.value !== "edit");
      reason.classList.toggle("hidden", action.value === "accept");
      reason.required = action.value !== "accept";
      edited.required = action.value === "edit";
    };
    action.addEventListener("change", update);
    update();
  }
  // Sign-off asks for confirmation.
  const sign = document.querySelector("form.sign");
  if (sign) {
    sign.addEventListener("submit", (event) => {
      if (!window.confirm("Sign this summary with your name? Rejected and unreviewed items are left out.")) {
        event.preventDefault();
      }
    });
  }
  // Evidence: bring the cited span into view.
  const cited = document.getElementById("cited");
  if (cited) cited.scrollIntoView({ block: "center" });
});
