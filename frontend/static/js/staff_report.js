// Staff report page: a chosen reply fills in its text (which can still be edited), and a
// reply made for a status picks that status. Without JavaScript the server uses the
// reply's text when the box is left empty.
for (const select of document.querySelectorAll("select.app-template")) {
  const target = document.getElementById(select.dataset.target);
  let filled = "";
  select.addEventListener("change", () => {
    const option = select.selectedOptions[0];
    const text = option?.dataset.text ?? "";
    if (target && (target.value === "" || target.value === filled)) {
      target.value = text;
      filled = text;
    }
    const state = option?.dataset.state;
    const states = select.form.querySelector("select[name=state]");
    if (state && states && [...states.options].some((o) => o.value === state)) {
      states.value = state;
    }
  });
}
