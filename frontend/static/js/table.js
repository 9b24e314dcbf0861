// The attribute table: the features of one visible layer in the current view, as a GOV.UK
// table read from /ogc (bbox, CQL2 `filter`, `sortby`) a page of ROW_LIMIT rows at a time
// (`offset`; previous/next, with the total where the API counts it), with sortable headers,
// filter conditions, rows to select (highlighted on the map) and downloads of the whole
// selection through /api/export. Which fields appear is the API's decision (restricted fields only
// for staff): the table shows whatever the queryables and items give it.
import { L, map, config, active, ready } from "./mappage.js";
import { OPERATORS, and, condition } from "./cql.js";

const ROW_LIMIT = 200;
const FORMATS = [
  { format: "geojson", label: "GeoJSON" },
  { format: "csv", label: "CSV" },
  { format: "gpkg", label: "GeoPackage" },
];
const HIGHLIGHT = {
  color: "#0b0c0c",
  weight: 4,
  fillColor: "#ffdd00",
  fillOpacity: 0.6,
  interactive: false,
  className: "app-highlight",
};

const panel = document.getElementById("table-panel");
const form = document.getElementById("table-filter");
const layerSelect = document.getElementById("table-layer");
const fieldSelect = document.getElementById("table-field");
const operatorSelect = document.getElementById("table-operator");
const valueInput = document.getElementById("table-value");
const valueGroup = document.getElementById("table-value-group");
const valueError = document.getElementById("table-value-error");
const conditionList = document.getElementById("table-conditions");
const status = document.getElementById("table-status");
const downloads = document.getElementById("table-downloads");
const container = document.getElementById("table-container");
const pager = document.getElementById("table-pages");

const state = {
  layer: null, // a config.layers entry
  schema: {}, // field name -> JSON Schema, from the queryables
  conditions: [], // {text, cql}
  sort: null, // {field, descending}
  bbox: null,
  offset: 0, // of the page shown
  hasNext: false,
  features: [],
  selected: new Map(), // feature id -> feature
  controller: null,
};

map.createPane("highlight").style.zIndex = 460;
const highlight = L.geoJSON(null, {
  pane: "highlight",
  style: () => HIGHLIGHT,
  pointToLayer: (_feature, latlng) => L.circleMarker(latlng, { ...HIGHLIGHT, pane: "highlight", radius: 10 }),
}).addTo(map);

function drawHighlight() {
  highlight.clearLayers();
  highlight.addData({ type: "FeatureCollection", features: [...state.selected.values()] });
}

function visibleLayers() {
  return config.layers.filter((l) => active.has(l.id) && l.fields.length);
}

function fillLayerSelect() {
  const layers = visibleLayers();
  const current = state.layer && layers.some((l) => l.id === state.layer.id) ? state.layer.id : layers[0]?.id;
  layerSelect.replaceChildren(...layers.map((l) => new Option(l.title, l.id, false, l.id === current)));
  layerSelect.disabled = !layers.length;
  form.hidden = !layers.length;
  if (!layers.length) {
    state.layer = null;
    state.selected.clear();
    drawHighlight();
    status.textContent = "Switch on a layer to see its features in a table.";
    container.replaceChildren();
    pager.hidden = true;
    downloads.hidden = true;
    return;
  }
  if (state.layer?.id !== current) chooseLayer(current);
}

async function chooseLayer(id) {
  state.layer = config.layers.find((l) => l.id === id);
  state.conditions = [];
  state.sort = null;
  state.selected.clear();
  drawHighlight();
  renderConditions();
  fieldSelect.replaceChildren(...state.layer.fields.map((f) => new Option(f.label, f.name)));
  state.schema = {};
  try {
    const response = await fetch(`${config.ogcUrl}/collections/${encodeURIComponent(id)}/queryables?f=json`);
    if (response.ok) state.schema = (await response.json()).properties || {};
  } catch {
    // without types every value is compared as text
  }
  // Only the fields the API lets this user filter on (restricted fields are for staff).
  const known = state.layer.fields.filter((f) => !Object.keys(state.schema).length || f.name in state.schema);
  fieldSelect.replaceChildren(...known.map((f) => new Option(f.label, f.name)));
  load();
}

function viewBbox() {
  const b = map.getBounds();
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((n) => n.toFixed(6));
}

/** The query the table shows, also used for its downloads: bbox, filter and sortby. */
function queryParams() {
  const params = new URLSearchParams();
  params.set("bbox", state.bbox.join(","));
  const filter = and(state.conditions.map((c) => c.cql));
  if (filter) params.set("filter", filter);
  if (state.sort) params.set("sortby", `${state.sort.descending ? "-" : ""}${state.sort.field}`);
  return params;
}

/** Loads the first page of the current query (or, with `offset`, that page of it). */
async function load(offset = 0) {
  if (!panel.open || !state.layer) return;
  if (!offset) state.bbox = viewBbox(); // a page of the query shown, not of a newer view
  state.offset = offset;
  state.controller?.abort();
  state.controller = new AbortController();
  const layer = state.layer;
  const params = queryParams();
  const url = `${config.ogcUrl}/collections/${encodeURIComponent(layer.id)}/items?f=json&limit=${ROW_LIMIT}&offset=${offset}&${params}`;
  status.textContent = `Loading ${layer.title}…`;
  container.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(url, { signal: state.controller.signal, headers: { Accept: "application/geo+json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.description || `the server answered ${response.status}`);
    state.features = body.features;
    state.hasNext = (body.links || []).some((link) => link.rel === "next");
    render(body.numberMatched);
    renderDownloads(params);
  } catch (error) {
    if (error.name === "AbortError") return;
    status.textContent = `${layer.title} could not be listed: ${error.message}`;
  } finally {
    container.removeAttribute("aria-busy");
  }
}

function renderDownloads(params) {
  const links = FORMATS.map(({ format, label }) => {
    const link = document.createElement("a");
    link.className = "govuk-link";
    link.href = `/api/export/${encodeURIComponent(state.layer.id)}?format=${format}&${params}`;
    link.download = "";
    link.dataset.format = format;
    link.textContent = `Download ${label}`;
    const item = document.createElement("li");
    item.append(link);
    return item;
  });
  downloads.querySelector("ul").replaceChildren(...links);
  downloads.hidden = false;
}

function sortState(field) {
  if (state.sort?.field !== field) return "none";
  return state.sort.descending ? "descending" : "ascending";
}

function headerCell(field) {
  const th = document.createElement("th");
  th.scope = "col";
  th.className = "govuk-table__header";
  th.setAttribute("aria-sort", sortState(field.name));
  const button = document.createElement("button");
  button.type = "button";
  button.className = "app-sort-button";
  button.dataset.field = field.name;
  button.textContent = field.label;
  button.addEventListener("click", () => {
    const descending = state.sort?.field === field.name && !state.sort.descending;
    state.sort = { field: field.name, descending };
    load().then(() => container.querySelector(`button[data-field="${field.name}"]`)?.focus());
  });
  th.append(button);
  return th;
}

function rowName(feature) {
  const named = state.layer.fields.find((f) => feature.properties[f.name] !== null && feature.properties[f.name] !== undefined);
  return named ? String(feature.properties[named.name]) : `feature ${feature.id}`;
}

function selectCell(feature) {
  const td = document.createElement("td");
  td.className = "govuk-table__cell app-table__select";
  const boxes = document.createElement("div");
  boxes.className = "govuk-checkboxes govuk-checkboxes--small";
  const item = document.createElement("div");
  item.className = "govuk-checkboxes__item";
  const input = document.createElement("input");
  input.className = "govuk-checkboxes__input";
  input.type = "checkbox";
  input.id = `table-row-${String(feature.id).replace(/[^A-Za-z0-9_-]/g, "_")}`;
  input.value = String(feature.id);
  input.checked = state.selected.has(String(feature.id));
  input.addEventListener("change", () => {
    if (input.checked) state.selected.set(String(feature.id), feature);
    else state.selected.delete(String(feature.id));
    drawHighlight();
    input.closest("tr").classList.toggle("app-table__row--selected", input.checked);
  });
  const label = document.createElement("label");
  label.className = "govuk-label govuk-checkboxes__label";
  label.htmlFor = input.id;
  const hidden = document.createElement("span");
  hidden.className = "govuk-visually-hidden";
  hidden.textContent = `Select ${rowName(feature)}`;
  label.append(hidden);
  item.append(input, label);
  boxes.append(item);
  td.append(boxes);
  return td;
}

function render(matched) {
  const layer = state.layer;
  const fields = layer.fields.filter((f) => state.features.some((ft) => f.name in ft.properties) || !state.features.length);
  const table = document.createElement("table");
  table.className = "govuk-table app-table";
  table.id = "attribute-table";
  const caption = document.createElement("caption");
  caption.className = "govuk-table__caption govuk-table__caption--s";
  caption.textContent = `${layer.title} in this view`;
  const head = document.createElement("thead");
  head.className = "govuk-table__head";
  const headRow = document.createElement("tr");
  headRow.className = "govuk-table__row";
  const selectHeader = document.createElement("th");
  selectHeader.scope = "col";
  selectHeader.className = "govuk-table__header app-table__select";
  selectHeader.innerHTML = '<span class="govuk-visually-hidden">Highlight on the map</span>';
  headRow.append(selectHeader, ...fields.map(headerCell));
  head.append(headRow);
  const body = document.createElement("tbody");
  body.className = "govuk-table__body";
  for (const feature of state.features) {
    const row = document.createElement("tr");
    row.className = "govuk-table__row";
    row.dataset.featureId = String(feature.id);
    if (state.selected.has(String(feature.id))) row.classList.add("app-table__row--selected");
    row.append(selectCell(feature));
    for (const field of fields) {
      const td = document.createElement("td");
      td.className = "govuk-table__cell";
      const value = feature.properties[field.name];
      td.textContent = value === null || value === undefined ? "" : String(value);
      row.append(td);
    }
    body.append(row);
  }
  table.append(caption, head, body);
  container.replaceChildren(table);
  container.dataset.rows = String(state.features.length);
  container.dataset.offset = String(state.offset);
  const count = state.features.length;
  const total = Number.isInteger(matched) ? matched : null;
  const [first, last] = [state.offset + 1, state.offset + count].map((n) => n.toLocaleString("en-GB"));
  const of = total !== null ? ` of ${total.toLocaleString("en-GB")}` : "";
  if (!count && !state.offset) status.textContent = `No ${layer.title.toLowerCase()} in this view match.`;
  else if (!count) status.textContent = "There are no more features.";
  else if (state.offset || state.hasNext) status.textContent = `Features ${first} to ${last}${of} in this view.`;
  else status.textContent = `${count} ${count === 1 ? "feature" : "features"} in this view.`;
  renderPager();
}

function pageLink(direction, offset) {
  // GOV.UK pagination, with buttons: the pages are of this table, not of the site.
  const box = document.createElement("div");
  box.className = `govuk-pagination__${direction}`;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "govuk-link govuk-pagination__link app-link-button";
  button.dataset.direction = direction;
  const title = direction === "prev" ? "Previous" : "Next";
  button.innerHTML = `<span class="govuk-pagination__link-title">${title}<span class="govuk-visually-hidden"> page of features</span></span>`;
  button.addEventListener("click", () => load(offset).then(() => pager.querySelector(`[data-direction=${direction}]`)?.focus()));
  box.append(button);
  return box;
}

function renderPager() {
  const parts = [];
  if (state.offset > 0) parts.push(pageLink("prev", Math.max(0, state.offset - ROW_LIMIT)));
  if (state.hasNext) parts.push(pageLink("next", state.offset + ROW_LIMIT));
  pager.replaceChildren(...parts);
  pager.hidden = !parts.length;
}

function renderConditions() {
  conditionList.replaceChildren(
    ...state.conditions.map((c, index) => {
      const item = document.createElement("li");
      item.className = "app-condition";
      const text = document.createElement("span");
      text.textContent = c.text;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "govuk-button govuk-button--secondary govuk-!-margin-bottom-0 app-condition__remove";
      remove.innerHTML = 'Remove<span class="govuk-visually-hidden"> filter</span>';
      remove.querySelector("span").textContent = ` filter ${c.text}`;
      remove.addEventListener("click", () => {
        state.conditions.splice(index, 1);
        renderConditions();
        valueInput.focus();
        load();
      });
      item.append(text, " ", remove);
      return item;
    }),
  );
}

function showValueError(text) {
  valueError.hidden = !text;
  valueError.querySelector("[data-message]").textContent = text || "";
  valueGroup.classList.toggle("govuk-form-group--error", Boolean(text));
  valueInput.classList.toggle("govuk-input--error", Boolean(text));
  valueInput.setAttribute("aria-describedby", text ? "table-value-hint table-value-error" : "table-value-hint");
}

function addCondition() {
  const field = state.layer.fields.find((f) => f.name === fieldSelect.value);
  const operator = OPERATORS.find((op) => op.value === operatorSelect.value);
  const value = valueInput.value;
  if (!field || !operator) return;
  if (!value.trim()) {
    showValueError("Enter a value to filter by");
    valueInput.focus();
    return;
  }
  let cql;
  try {
    cql = condition(field.name, operator.value, value, state.schema[field.name]);
  } catch (error) {
    showValueError(error.message);
    valueInput.focus();
    return;
  }
  showValueError(null);
  state.conditions.push({ text: `${field.label} ${operator.label} “${value}”`, cql });
  valueInput.value = "";
  renderConditions();
  load();
}

operatorSelect.replaceChildren(...OPERATORS.map((op) => new Option(op.label, op.value)));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  addCondition();
});
layerSelect.addEventListener("change", () => chooseLayer(layerSelect.value));
panel.addEventListener("toggle", () => {
  if (panel.open) {
    fillLayerSelect();
    load();
  }
});
document.getElementById("layer-switcher").addEventListener("change", () => {
  fillLayerSelect();
});
window.addEventListener("popstate", () => setTimeout(fillLayerSelect));
let moved = null;
map.on("moveend", () => {
  clearTimeout(moved);
  moved = setTimeout(load, 250);
});
ready.then(fillLayerSelect);
