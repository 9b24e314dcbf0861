// Planning applications: a small form (status, received from/to) whose filter restricts
// what the map draws of the planning applications layer, through the core's setLayerFilter.
import { config, active, setLayerFilter } from "./mappage.js";
import { and, dateLiteral, inList, property } from "./cql.js";

const LAYER = "planning_applications";
const STATUS_FIELD = "status";
const DATE_FIELD = "received_date";

const form = document.getElementById("planning-filter");
const panel = document.getElementById("planning-panel");
const message = document.getElementById("planning-filter-status");
const errorBox = document.getElementById("planning-dates-error");
const datesGroup = document.getElementById("planning-dates-group");
const layer = config.layers.find((l) => l.id === LAYER);

function longDate(iso) {
  return new Date(`${iso}T00:00:00`).toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" });
}

function showError(text) {
  errorBox.hidden = !text;
  errorBox.querySelector("[data-message]").textContent = text || "";
  datesGroup.classList.toggle("govuk-form-group--error", Boolean(text));
  for (const input of datesGroup.querySelectorAll("input")) {
    input.classList.toggle("govuk-input--error", Boolean(text));
    if (text) input.setAttribute("aria-describedby", "planning-dates-hint planning-dates-error");
    else input.setAttribute("aria-describedby", "planning-dates-hint");
  }
}

/** The form's filter as CQL2 text (null: no restriction) and a sentence describing it. */
export function planningFilter() {
  const data = new FormData(form);
  const statuses = data.getAll("status");
  const from = data.get("received-from") || "";
  const to = data.get("received-to") || "";
  if (from && to && from > to) throw new Error("The ‘received from’ date must be on or before the ‘received to’ date");
  const all = form.querySelectorAll("input[name=status]").length;
  const parts = [];
  const words = [];
  if (statuses.length && statuses.length < all) {
    parts.push(inList(STATUS_FIELD, statuses));
    words.push(statuses.join(" or "));
  }
  if (from) {
    parts.push(`${property(DATE_FIELD)} >= ${dateLiteral(from)}`);
    words.push(`received from ${longDate(from)}`);
  }
  if (to) {
    parts.push(`${property(DATE_FIELD)} <= ${dateLiteral(to)}`);
    words.push(`received to ${longDate(to)}`);
  }
  return { cql: and(parts), description: words.join(", ") };
}

function apply() {
  let filter;
  try {
    filter = planningFilter();
  } catch (error) {
    showError(error.message);
    form.querySelector("#planning-from").focus();
    return;
  }
  showError(null);
  setLayerFilter(LAYER, filter.cql);
  const shown = active.has(LAYER) ? "" : ` Switch on ${layer.title} to see them on the map.`;
  message.textContent = filter.cql
    ? `${layer.title}: showing ${filter.description}.${shown}`
    : `${layer.title}: showing all applications.${shown}`;
}

if (layer && form) {
  panel.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  form.addEventListener("reset", () => setTimeout(apply)); // after the form has cleared
}
