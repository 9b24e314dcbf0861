// The defibrillator siting page: builds the process inputs from the form, runs the
// defibrillator-siting process through the OGC API (with the staff session), and shows
// the result: coverage before and after (route and straight line), the ranked sites, a
// map, and downloads in each format (the same inputs, run again in that format).
import * as L from "/vendor/leaflet/leaflet-src.esm.js";

const config = JSON.parse(document.getElementById("siting-config").textContent);
const form = document.getElementById("siting-form");
const status = document.getElementById("siting-status");
const errors = document.getElementById("siting-errors");
const results = document.getElementById("siting-results");
const byId = Object.fromEntries(config.layers.map((layer) => [layer.id, layer]));
const COLOURS = { chosen: "#d4351c", fixed: "#505a5f", uncovered: "#1d70b8" };
const FORMAT_NAMES = { geojson: "GeoJSON", csv: "CSV", html: "HTML map", pdf: "PDF summary" };
const EXTENSIONS = { geojson: "geojson", csv: "csv", html: "html", pdf: "pdf" };

function option(select, value, text, selected = false) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  element.selected = selected;
  select.append(element);
}

function fillLayers(select, test, preferred, allowNone = false) {
  if (allowNone) option(select, "", "None");
  for (const layer of config.layers.filter(test)) option(select, layer.id, layer.title, layer.id === preferred);
}

function fillWeights() {
  const select = form.weight_field;
  select.replaceChildren();
  option(select, "", "One per feature");
  for (const field of byId[form.demand_layer.value]?.numbers ?? []) option(select, field.name, field.label);
}

fillLayers(form.demand_layer, (l) => l.demand, "lsoas");
fillLayers(form.candidate_layer, (l) => l.points, "pharmacies");
fillLayers(form.fixed_layer, (l) => l.points, "defibrillators", true);
fillWeights();
form.demand_layer.addEventListener("change", fillWeights);
const constraints = document.getElementById("constraints");
config.constraints.forEach((constraint, index) => {
  const item = document.createElement("div");
  item.className = "govuk-checkboxes__item";
  const input = document.createElement("input");
  Object.assign(input, { className: "govuk-checkboxes__input", id: `constraint-${index}`, type: "checkbox" });
  input.name = "constraint";
  input.value = String(index);
  const label = document.createElement("label");
  label.className = "govuk-label govuk-checkboxes__label";
  label.htmlFor = input.id;
  label.textContent = constraint.label;
  item.append(input, label);
  constraints.append(item);
});

const map = L.map("siting-map", { minZoom: 8, maxZoom: 19 });
map.setView([53.4, -2.15], 12);
L.control.scale({ imperial: false }).addTo(map);
const drawn = L.layerGroup().addTo(map);
fetch(config.boundary)
  .then((response) => (response.ok ? response.json() : Promise.reject(new Error(response.statusText))))
  .then((boundary) => {
    const outline = L.geoJSON(boundary, { style: () => ({ color: "#0b0c0c", weight: 2, fill: false }), interactive: false });
    outline.addTo(map);
    map.fitBounds(outline.getBounds(), { animate: false });
  })
  .catch(() => {})
  .finally(() => { document.getElementById("siting-map").dataset.ready = "true"; });

function inputs() {
  const value = (name) => form.elements[name].value.trim();
  const body = {
    demand_layer: value("demand_layer"),
    candidate_layer: value("candidate_layer"),
    distance: Number(value("distance")),
    distance_type: form.querySelector("input[name=distance_type]:checked").value,
  };
  for (const name of ["weight_field", "fixed_layer", "candidate_filter"]) if (value(name)) body[name] = value(name);
  const goal = form.querySelector("input[name=goal]:checked").value;
  body[goal] = Number(value("goal_value"));
  for (const box of form.querySelectorAll("input[name=constraint]:checked")) {
    const constraint = config.constraints[Number(box.value)];
    const area = { layer: constraint.layer, ...(constraint.filter ? { filter: constraint.filter } : {}) };
    (body[constraint.input] ??= []).push(area);
  }
  return body;
}

async function execute(body) {
  // A signed-in write carries the session's CSRF token (mapserver/csrf.py).
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  const response = await fetch(config.execute, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ inputs: body }),
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.description || `The analysis failed (${response.status}).`);
  }
  return response;
}

function showError(message) {
  document.getElementById("siting-error-text").textContent = message;
  errors.hidden = false;
  errors.focus?.();
}

function cell(row, text, numeric = false) {
  const td = document.createElement("td");
  td.className = `govuk-table__cell${numeric ? " govuk-table__cell--numeric" : ""}`;
  td.textContent = text;
  row.append(td);
}

function percent(figure) {
  return `${figure.pct.toFixed(1)}% (${figure.weight.toLocaleString("en-GB")})`;
}

function proof(solver) {
  if (solver.optimal) return "These sites are proven optimal.";
  const why = solver.status === "time limit" ? " (the solver stopped at its time limit)" : "";
  return `These sites are proven within ${(100 * solver.gap).toFixed(2)}% of the best possible${why}.`;
}

function show(result, body) {
  const headline = result.distance.type;
  document.getElementById("siting-distance").textContent =
    `${result.sites.length} new sites from ${result.candidates.count} candidates, ` +
    `${result.fixed.count} existing kept. Within ${result.distance.metres} m. ${result.distance.label}.` +
    (result.target_reached === false ? " The target coverage cannot be reached: these sites reach all they can." : "");
  const coverage = document.querySelector("#siting-coverage tbody");
  coverage.replaceChildren();
  for (const name of Object.keys(result.coverage).sort((a, b) => (a === headline ? -1 : b === headline ? 1 : 0))) {
    const row = document.createElement("tr");
    row.className = "govuk-table__row";
    cell(row, name === "route" ? "By route" : "Straight line");
    cell(row, percent(result.coverage[name].before));
    cell(row, percent(result.coverage[name].after));
    coverage.append(row);
  }
  document.getElementById("siting-uncovered").textContent =
    `Still uncovered: ${result.uncovered.points.toLocaleString("en-GB")} demand points ` +
    `(weight ${result.uncovered.weight.toLocaleString("en-GB")}); ` +
    `${result.unreachable.pct.toFixed(1)}% of the demand is out of reach of every site. ` +
    proof(result.solver);
  const sites = document.querySelector("#siting-sites tbody");
  sites.replaceChildren();
  for (const site of result.sites) {
    const row = document.createElement("tr");
    row.className = "govuk-table__row";
    cell(row, String(site.rank));
    cell(row, site.label ?? `Feature ${site.feature_id}`);
    cell(row, `+${site.gain_pct.toFixed(2)}%`, true);
    cell(row, `${site.cumulative_pct.toFixed(1)}%`, true);
    sites.append(row);
  }
  downloads(body);
  draw(result);
  results.hidden = false;
}

function downloads(body) {
  const box = document.getElementById("siting-downloads");
  box.replaceChildren();
  for (const format of config.formats) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "govuk-button govuk-button--secondary";
    button.textContent = `Download ${FORMAT_NAMES[format]}`;
    button.addEventListener("click", async () => {
      button.disabled = true;
      status.textContent = `Preparing the ${FORMAT_NAMES[format]}…`;
      try {
        const blob = await (await execute({ ...body, format })).blob();
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = `defibrillator-siting.${EXTENSIONS[format]}`;
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
        status.textContent = `${FORMAT_NAMES[format]} downloaded.`;
      } catch (error) {
        showError(error.message);
        status.textContent = "";
      } finally {
        button.disabled = false;
      }
    });
    box.append(button);
  }
}

function draw(result) {
  drawn.clearLayers();
  const order = { service_area: 0, uncovered: 1, fixed: 2, chosen: 3 };
  const features = [...result.geojson.features].sort((a, b) => order[a.properties.role] - order[b.properties.role]);
  // Leaflet applies `style` to circle markers too, so it styles every kind of feature.
  const style = (f) => {
    const role = f.properties.role;
    if (role === "service_area") {
      return f.properties.distance_type === "route"
        ? { color: "#00703c", weight: 3, fill: false }
        : { color: "#f47738", weight: 1, fillOpacity: 0.06 };
    }
    return {
      color: role === "chosen" ? "#0b0c0c" : COLOURS[role],
      fillColor: COLOURS[role],
      fillOpacity: 0.9,
      weight: role === "chosen" ? 2 : 1,
    };
  };
  const radius = { chosen: 8, fixed: 5, uncovered: 2 };
  const layer = L.geoJSON({ type: "FeatureCollection", features }, {
    style,
    pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: radius[f.properties.role] }),
    onEachFeature: (f, marker) => {
      const p = f.properties;
      const name = p.label ?? `Feature ${p.feature_id}`;
      const text = { chosen: `${p.rank}. ${name}: +${p.gain_pct?.toFixed(2)}%`, fixed: `Existing: ${name}`,
        uncovered: `Uncovered demand (weight ${p.weight})`, service_area: `Reach of ${name}` }[p.role];
      marker.bindTooltip(escapeText(text)); // Leaflet takes tooltip content as HTML
    },
  }).addTo(drawn);
  const chosen = features.filter((f) => f.properties.role === "chosen");
  if (chosen.length) map.fitBounds(L.geoJSON({ type: "FeatureCollection", features: chosen }).getBounds(), { maxZoom: 16, padding: [20, 20], animate: false });
  else if (layer.getLayers().length) map.fitBounds(layer.getBounds(), { animate: false });
  document.getElementById("siting-map").dataset.drawn = String(features.length);
}

function escapeText(text) {
  const div = document.createElement("div");
  div.textContent = text;
  return div.innerHTML;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errors.hidden = true;
  const body = inputs();
  const button = document.getElementById("siting-run");
  button.disabled = true;
  status.textContent = "Running the analysis…";
  try {
    const result = await (await execute(body)).json();
    show(result, body);
    status.textContent = `Done: ${result.sites.length} sites.`;
  } catch (error) {
    showError(error.message);
    status.textContent = "";
  } finally {
    button.disabled = false;
  }
});
