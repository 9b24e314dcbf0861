// The search box: places and addresses from the gazetteer, British National Grid references
// and latitude/longitude (all answered by /api/search). Suggestions follow the ARIA 1.2
// combobox pattern (a listbox, up/down/enter/escape); the results are also listed as text
// in a live region, a text alternative to the map. Choosing one shows it on the map.
import { L, map } from "./map.js";

const SEARCH_URL = "/api/search";
const DEBOUNCE_MS = 250;
const PLACE_ZOOM = 17;

const form = document.getElementById("search-form");
const input = document.getElementById("search-input");
const listbox = document.getElementById("search-listbox");
const summary = document.getElementById("search-summary");
const resultList = document.getElementById("search-results");

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

let results = [];
let activeIndex = -1;
let timer = null;
let controller = null;
let marker = null;

function resultText(result) {
  return result.kind ? `${result.label} (${result.kind})` : result.label;
}

async function search(query) {
  controller?.abort(); // a newer query makes the older answer stale
  controller = new AbortController();
  const response = await fetch(`${SEARCH_URL}?q=${encodeURIComponent(query)}&limit=8`, {
    signal: controller.signal,
    headers: { Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  return (await response.json()).results;
}

function setExpanded(open) {
  listbox.hidden = !open;
  input.setAttribute("aria-expanded", String(open));
  if (!open) setActive(-1);
}

function setActive(index) {
  activeIndex = index;
  const options = listbox.querySelectorAll("[role=option]");
  options.forEach((option, i) => option.setAttribute("aria-selected", String(i === index)));
  if (index >= 0 && options[index]) {
    input.setAttribute("aria-activedescendant", options[index].id);
    options[index].scrollIntoView({ block: "nearest" });
  } else {
    input.removeAttribute("aria-activedescendant");
  }
}

function renderSuggestions() {
  listbox.replaceChildren(
    ...results.map((result, i) => {
      const option = document.createElement("li");
      option.id = `search-option-${i}`;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      option.className = "app-search__option";
      option.textContent = result.label;
      if (result.kind) {
        const kind = document.createElement("span");
        kind.className = "app-search__kind";
        kind.textContent = ` ${result.kind}`;
        option.append(kind);
      }
      // mousedown, not click: the input keeps focus and the list stays until chosen
      option.addEventListener("mousedown", (event) => {
        event.preventDefault();
        choose(i);
      });
      return option;
    }),
  );
  setExpanded(results.length > 0);
}

function renderText(query) {
  // The text alternative: every result as a button that shows it on the map.
  summary.textContent = results.length
    ? `${results.length} ${results.length === 1 ? "result" : "results"} for “${query}”.`
    : `No places found for “${query}”.`;
  resultList.replaceChildren(
    ...results.map((result, i) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "app-link-button";
      button.textContent = resultText(result);
      button.addEventListener("click", () => choose(i, { keepText: true }));
      item.append(button);
      return item;
    }),
  );
}

async function update(query, { submitted = false } = {}) {
  if (!query.trim()) {
    controller?.abort();
    results = [];
    renderSuggestions();
    summary.textContent = "";
    resultList.replaceChildren();
    return;
  }
  try {
    results = await search(query.trim());
  } catch (error) {
    if (error.name === "AbortError") return;
    results = [];
    summary.textContent = `The search did not work: ${error.message}.`;
    setExpanded(false);
    return;
  }
  renderText(query.trim());
  if (submitted && results.length === 1) choose(0);
  else renderSuggestions();
}

/** Shows a result on the map: its extent when it has one, else the place at street level. */
export function showPlace(result) {
  const animate = !reducedMotion.matches;
  if (result.bbox) {
    const [west, south, east, north] = result.bbox;
    map.fitBounds([[south, west], [north, east]], { maxZoom: PLACE_ZOOM, animate });
  } else {
    map.setView([result.lat, result.lon], PLACE_ZOOM, { animate });
  }
  marker?.remove();
  marker = L.marker([result.lat, result.lon], {
    title: result.label,
    alt: `Search result: ${result.label}`,
    keyboard: false, // the result is reachable as text in the sidebar
  })
    .bindTooltip(result.label, { permanent: true, direction: "top", offset: [-15, -28], className: "app-search-label" })
    .addTo(map);
  map.getContainer().dataset.searchResult = result.label;
  map.fire("placefound", { latlng: L.latLng(result.lat, result.lon), label: result.label });
}

function choose(index, { keepText = false } = {}) {
  const result = results[index];
  if (!result) return;
  setExpanded(false);
  if (!keepText) input.value = result.label;
  summary.textContent = `Showing ${resultText(result)} on the map.`;
  showPlace(result);
}

input.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(() => update(input.value), DEBOUNCE_MS);
});

input.addEventListener("keydown", (event) => {
  const open = !listbox.hidden && results.length > 0;
  switch (event.key) {
    case "ArrowDown":
      event.preventDefault();
      if (!open && results.length) setExpanded(true);
      setActive(results.length ? (activeIndex + 1) % results.length : -1);
      break;
    case "ArrowUp":
      event.preventDefault();
      if (!open && results.length) setExpanded(true);
      setActive(results.length ? (activeIndex <= 0 ? results.length - 1 : activeIndex - 1) : -1);
      break;
    case "Enter":
      if (open && activeIndex >= 0) {
        event.preventDefault();
        choose(activeIndex);
      }
      break; // otherwise the form is submitted
    case "Escape":
      if (open) {
        event.preventDefault();
        setExpanded(false);
      } else if (input.value) {
        event.preventDefault();
        input.value = "";
        update("");
      }
      break;
    default:
  }
});

input.addEventListener("blur", () => setExpanded(false));

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(timer);
  update(input.value, { submitted: true });
});
