// An analysis page: the map core (map.js), a site drawn with draw.js or given as an address,
// the analysis run as an asynchronous OGC API job (progress shown while it runs), and its
// result listed and drawn on the map with its downloads. ?job=ID shows a saved job's result.
import { pathStyle } from "./map.js";
import { L, map, config, ready } from "./mappage.js";
import { Draw } from "./draw.js";
import { area as areaOf, formatArea, formatDistance } from "./measure.js";

const analysis = JSON.parse(document.getElementById("analysis-config").textContent);
const form = document.getElementById("analysis-form");
const drawStatus = document.getElementById("draw-status");
const runStatus = document.getElementById("analysis-status");
const results = document.getElementById("analysis-results");
const address = document.getElementById("analysis-address");
const POLL_MS = 400;

map.createPane("analysis").style.zIndex = 620;
const found = L.featureGroup([], { pane: "analysis" }).addTo(map);
let site = null; // a GeoJSON geometry in CRS84

// --- the site -------------------------------------------------------------------------------

const draw = new Draw({
  panel: document.getElementById("draw-panel"),
  announce: (text) => { drawStatus.textContent = text; },
  onEnd: () => document.querySelectorAll("[data-tool]").forEach((b) => b.setAttribute("aria-pressed", "false")),
  onShape: (geometry, kind) => {
    site = geometry;
    address.value = "";
    const describe = kind === "polygon" ? `An area of ${formatArea(polygonArea(geometry))}`
      : { point: "A point", parcel: "The land parcel at the point", line: "A line" }[kind];
    drawStatus.textContent = `${describe} is chosen. Run the analysis when ready.`;
    map.getContainer().dataset.site = kind;
  },
});

function polygonArea(geometry) {
  return areaOf(geometry.coordinates[0].slice(0, -1).map(([lng, lat]) => ({ lat, lng })));
}

document.querySelectorAll("[data-tool]").forEach((button) => {
  button.setAttribute("aria-pressed", "false");
  button.addEventListener("click", () => {
    site = null;
    button.setAttribute("aria-pressed", "true");
    draw.begin(button.dataset.tool);
  });
});
document.getElementById("draw-finish").addEventListener("click", () => draw.finish());
document.getElementById("draw-add").addEventListener("click", () => draw.add(map.getCenter()));
document.getElementById("draw-cancel").addEventListener("click", () => draw.cancel());
// Suggestions from the gazetteer (what the server will look the address up in).
const suggestions = document.getElementById("address-suggestions");
let suggesting = null;
address.addEventListener("input", () => {
  if (address.value.trim()) {
    site = null;
    draw.clear();
  }
  clearTimeout(suggesting);
  const query = address.value.trim();
  if (query.length < 2) return;
  suggesting = setTimeout(async () => {
    const response = await fetch(`/api/search?q=${encodeURIComponent(query)}&limit=8`);
    if (!response.ok) return;
    const places = (await response.json()).results.filter((r) => r.layer);
    suggestions.replaceChildren(...places.map((place) => {
      const option = document.createElement("option");
      option.value = place.label;
      option.label = place.kind;
      return option;
    }));
  }, 250);
});

// --- inputs and errors ----------------------------------------------------------------------

const errors = document.getElementById("analysis-errors");

function showErrors(messages) {
  const list = document.getElementById("analysis-error-list");
  list.replaceChildren(...messages.map(({ text, field }) => {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `#${field || "analysis-address"}`;
    link.textContent = text;
    item.append(link);
    return item;
  }));
  errors.hidden = !messages.length;
  if (messages.length) errors.focus();
}

function number(id) {
  const input = document.getElementById(id);
  return input && input.value.trim() !== "" ? Number(input.value) : undefined;
}

function inputs() {
  const values = {};
  const problems = [];
  if (site) values.geometry = site;
  else if (address.value.trim()) values.address = address.value.trim();
  else problems.push({ text: "Draw the site on the map, or enter an address", field: "analysis-address" });
  for (const [name, id] of [["buffer", "analysis-buffer"], ["nearby", "analysis-nearby"], ["distance", "analysis-distance"]]) {
    const value = number(id);
    if (!document.getElementById(id)) continue;
    if (value === undefined || !Number.isFinite(value)) problems.push({ text: `Enter the ${name} in metres`, field: id });
    else values[name] = value;
  }
  if (analysis.slug === "reach") {
    values.mode = form.querySelector("input[name=mode]:checked")?.value || "straight";
    values.layers = [...form.querySelectorAll("input[name=layers]:checked")].map((box) => box.value);
    if (!values.layers.length) problems.push({ text: "Select at least one layer to count", field: `count-${form.querySelector("input[name=layers]")?.value}` });
  }
  return { values, problems };
}

// --- running the job ------------------------------------------------------------------------

async function json(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

async function run(values) {
  const headers = { "Content-Type": "application/json", Prefer: "respond-async" };
  if (analysis.csrfToken) headers["X-CSRF-Token"] = analysis.csrfToken;
  const response = await fetch(analysis.executeUrl, { method: "POST", headers, body: JSON.stringify({ inputs: values }) });
  if (!response.ok) throw new Error((await json(response)).description || `The server answered ${response.status}.`);
  const jobId = response.headers.get("Location").replace(/\/$/, "").split("/").pop();
  for (;;) {
    const status = await json(await fetch(`${analysis.jobsUrl}/${jobId}?f=json`));
    runStatus.textContent = `${status.message || "Working"}… ${status.progress ?? 0}%`;
    if (status.status === "successful") break;
    if (status.status === "failed" || status.status === "dismissed") throw new Error(status.message || "The analysis failed.");
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return jobId;
}

async function show(jobId) {
  const response = await fetch(`${analysis.jobsUrl}/${jobId}/results?f=json`);
  if (!response.ok) throw new Error("That job's result is not available (it may have been deleted).");
  render(await response.json(), jobId);
  const params = new URLSearchParams(window.location.search);
  params.set("job", jobId);
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const { values, problems } = inputs();
  showErrors(problems);
  if (problems.length) return;
  const button = document.getElementById("analysis-run");
  button.disabled = true;
  runStatus.textContent = "Starting the analysis…";
  try {
    await show(await run(values));
    runStatus.textContent = "Done: the result is below the map.";
  } catch (error) {
    runStatus.textContent = "";
    showErrors([{ text: error.message, field: values.geometry ? "map" : "analysis-address" }]);
  } finally {
    button.disabled = false;
  }
});

// --- the result -----------------------------------------------------------------------------

const share = (value) => (value === undefined || value === null ? "" : `${(value * 100).toFixed(1)}%`);
const area = (m2) => (m2 === undefined || m2 === null ? "" : formatArea(m2));

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function table(caption, header, rows) {
  const node = element("table", "govuk-table app-result-table");
  node.append(element("caption", "govuk-table__caption govuk-table__caption--s", caption));
  const head = element("thead", "govuk-table__head");
  const headRow = element("tr", "govuk-table__row");
  header.forEach((h) => {
    const cell = element("th", "govuk-table__header", h);
    cell.scope = "col";
    headRow.append(cell);
  });
  head.append(headRow);
  const body = element("tbody", "govuk-table__body");
  rows.forEach((row) => {
    const tr = element("tr", "govuk-table__row");
    row.forEach((value) => tr.append(element("td", "govuk-table__cell", String(value ?? ""))));
    body.append(tr);
  });
  node.append(head, body);
  return node;
}

function note(section) {
  if (section.population) return `about ${section.population.estimate.toLocaleString("en-GB")} residents (${section.population.source})`;
  if (section.groups) return section.groups.map((g) => `${section.group_label} ${g.value}: ${share(g.share)}`).join("; ");
  return "";
}

function featureRows(section) {
  const fields = section.fields.slice(0, 5);
  const measures = [["distance_m", "Distance", (v) => formatDistance(v)], ["overlap_m2", "On site", area],
    ["share", "Share", share], ["population_estimate", "Residents (est.)", (v) => v.toLocaleString("en-GB")]]
    .filter(([name]) => section.features.some((f) => name in f.properties));
  const header = [...fields.map((f) => f.label), ...measures.map(([, label]) => label)];
  const rows = section.features.slice(0, 500).map((f) => [
    ...fields.map((field) => f.properties[field.name] ?? ""),
    ...measures.map(([name, , format]) => (f.properties[name] === undefined || f.properties[name] === null ? "" : format(f.properties[name]))),
  ]);
  return { header, rows };
}

function drawResult(result) {
  found.clearLayers();
  for (const section of result.sections) {
    const layer = config.layers.find((l) => l.id === section.layer);
    const style = layer ? { ...pathStyle(layer), pane: "analysis" } : { pane: "analysis" };
    L.geoJSON({ type: "FeatureCollection", features: section.features }, {
      style: () => style,
      pointToLayer: (_feature, latlng) => L.circleMarker(latlng, style),
    }).addTo(found);
  }
  const outline = L.geoJSON(result.site.geometry, {
    style: () => ({ pane: "analysis", color: "#d4351c", weight: 3, fill: false, className: "app-analysis-site" }),
    pointToLayer: (_feature, latlng) => L.circleMarker(latlng, { pane: "analysis", radius: 8, color: "#d4351c", weight: 3 }),
  }).addTo(found);
  map.fitBounds(outline.getBounds().pad(0.5), { animate: false, maxZoom: 18 });
}

function render(result, jobId) {
  drawResult(result);
  const parts = [element("h2", "govuk-heading-m", result.title)];
  const site = result.site;
  let about = `Site: ${site.label}`;
  if (site.area_m2) about += `, ${formatArea(site.area_m2)}`;
  if (result.parameters.method) about += `. Distances: ${result.parameters.method}, ${formatDistance(result.parameters.distance_m)}`;
  parts.push(element("p", "govuk-body", `${about}.`));
  const summary = result.sections.map((s) => [
    s.title, `${s.count}${s.truncated ? "+" : ""}`, s.on_site ?? "", area(s.overlap_m2), share(s.share), note(s),
  ]);
  // Columns that say nothing for this analysis (areas, for an incident's reach) are left out.
  const header = ["Layer", "Found", "On site", "Area on site", "Share of site", "Notes"];
  const keep = header.map((_h, i) => i).filter((i) => i < 2 || summary.some((row) => row[i] !== ""));
  parts.push(table("What was found", keep.map((i) => header[i]), summary.map((row) => keep.map((i) => row[i]))));
  for (const section of result.sections.filter((s) => s.summary)) {
    for (const [name, values] of Object.entries(section.summary)) {
      const label = section.fields.find((f) => f.name === name)?.label || name;
      parts.push(table(`${section.title} by ${label.toLowerCase()}`, [label, "Parcels", "Area on site"],
        values.map((v) => [v.value ?? "not recorded", v.parcels, area(v.overlap_m2)])));
    }
  }
  const downloads = element("ul", "govuk-list app-result-downloads");
  for (const [href, text] of [[`/jobs/${jobId}/report.pdf`, "PDF report with a map"], [`/jobs/${jobId}/result.geojson`, "GeoJSON"],
    [`/jobs/${jobId}/result.csv`, "CSV"], [`/jobs/${jobId}`, "This job's page (a link to share with staff)"]]) {
    const link = element("a", "govuk-link", text);
    link.href = href;
    const item = element("li");
    item.append(link);
    downloads.append(item);
  }
  parts.push(element("h3", "govuk-heading-s", "Download or share"), downloads);
  for (const section of result.sections.filter((s) => s.count)) {
    const details = element("details", "govuk-details");
    const summaryNode = element("summary", "govuk-details__summary");
    summaryNode.append(element("span", "govuk-details__summary-text", `${section.title}: ${section.count}${section.truncated ? "+" : ""}`));
    const body = element("div", "govuk-details__text app-table-container");
    const { header, rows } = featureRows(section);
    body.append(table(section.title, header, rows));
    if (section.synthetic) body.append(element("p", "govuk-body-s", "Synthetic data: generated, not council records."));
    details.append(summaryNode, body);
    parts.push(details);
  }
  results.replaceChildren(...parts);
  results.dataset.job = jobId;
  results.dataset.state = "done";
}

if (analysis.job) {
  // After the map's own first framing, so that the result's view is the one that stays.
  ready.then(() => show(analysis.job))
    .catch((error) => showErrors([{ text: error.message, field: "analysis-address" }]));
}
