// The core of the map page: the map, the borough boundary, and a layer switcher built from
// the catalogue whose layers read their features from the OGC API by bounding box as the
// map moves; the large ones (`large` in the catalogue) are drawn from the service's vector
// tiles instead. The view and the visible layers live in the URL (?lat=&lng=&zoom=&layers=),
// so any view can be shared and back/forward work. Other modules (loaded by main.js)
// import what they need from here.
import * as L from "/vendor/leaflet/leaflet-src.esm.js";

export { L };

const VECTORGRID = "/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js";
const TILE_MIN_ZOOM = 14; // large layers are too dense to read (and to draw) further out

export const config = JSON.parse(document.getElementById("map-config").textContent);
const status = document.getElementById("map-status");
const MAX_FEATURES = 5000; // per layer and view; beyond this the map asks to zoom in
const PAGE_SIZE = 1000;

const MAX_ZOOM = 20;
// The map's own zoom limits: otherwise Leaflet takes them from its tile layers, and a
// large layer's minimum zoom would stop the map zooming out.
export const map = L.map("map", {
  zoomControl: true,
  attributionControl: true,
  preferCanvas: false,
  minZoom: 0,
  maxZoom: MAX_ZOOM,
});
window.__map = map; // for the browser tests and for debugging in the console
map.attributionControl.setPrefix(false);
map.attributionControl.addAttribution(escapeText(config.council.attribution));
L.control.scale({ imperial: false }).addTo(map);
const urlState = readUrlState();
const { lat, lon, zoom } = config.council.view;
map.setView([lat, lon], zoom);
map.createPane("boundary").style.zIndex = 450;

export const active = new Map(); // layer id -> { group, controller }

export function escapeText(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}

export function pathStyle(layer) {
  const s = layer.style;
  return {
    color: s.colour,
    weight: s.weight,
    fillColor: s.fill_colour || s.colour,
    fillOpacity: s.fill_opacity,
    dashArray: s.dash || null,
    radius: s.radius,
    className: `layer-${layer.id}`,
  };
}

const WEB_ADDRESS = /^(https?:\/\/|www\.)[^\s<>"]+$/i;

function valueNode(value) {
  // Web addresses become links (http and https only); everything else stays text.
  const text = String(value);
  if (!WEB_ADDRESS.test(text)) return document.createTextNode(text);
  const link = document.createElement("a");
  link.className = "govuk-link";
  link.href = text.toLowerCase().startsWith("www.") ? `https://${text}` : text;
  link.rel = "noopener noreferrer";
  link.textContent = text;
  return link;
}

/** Functions (layer, feature) -> a DOM node or null, appended to every feature's popup. */
export const popupExtras = [];

function popupContent(layer, feature) {
  const wrapper = document.createElement("div");
  wrapper.className = "app-popup";
  const heading = document.createElement("h2");
  heading.className = "govuk-heading-s";
  heading.textContent = layer.title;
  wrapper.append(heading);
  const list = document.createElement("dl");
  list.className = "govuk-summary-list govuk-summary-list--no-border app-popup__list";
  for (const field of layer.fields) {
    const value = feature.properties[field.name];
    if (value === null || value === undefined || value === "") continue;
    const row = document.createElement("div");
    row.className = "govuk-summary-list__row";
    const key = document.createElement("dt");
    key.className = "govuk-summary-list__key";
    key.textContent = field.label;
    const val = document.createElement("dd");
    val.className = "govuk-summary-list__value";
    val.append(valueNode(value));
    row.append(key, val);
    list.append(row);
  }
  wrapper.append(list);
  for (const extra of popupExtras) {
    const node = extra(layer, feature);
    if (node) wrapper.append(node);
  }
  const source = document.createElement("p");
  source.className = "govuk-body-s app-popup__source";
  source.textContent = layer.attribution;
  wrapper.append(source);
  return wrapper;
}

let vectorGrid = null;

// Leaflet.VectorGrid (1.3) is a classic script that extends a global `L`; the ES module of
// Leaflet sets none, so it gets a copy of the module's exports to extend.
function loadVectorGrid() {
  if (!vectorGrid) {
    window.L = { ...L };
    vectorGrid = import(VECTORGRID)
      .then(() =>
        window.L.VectorGrid.Protobuf.extend({
          _createLayer(...args) {
            const symbolizer = window.L.VectorGrid.prototype._createLayer.apply(this, args);
            // Leaflet 1.9 places a small circle's mouse events at its latlng, which a tile's
            // point has not: without this, every click or hover on a point throws.
            symbolizer.getLatLng = null;
            return symbolizer;
          },
        }),
      )
      .catch((error) => {
        vectorGrid = null; // try again next time
        throw error;
      });
  }
  return vectorGrid;
}

async function tileLayer(layer) {
  const TiledLayer = await loadVectorGrid();
  const style = { ...pathStyle(layer), fill: !layer.geometry.endsWith("LineString") };
  const grid = new TiledLayer(layer.tiles, {
    vectorTileLayerStyles: { [layer.id]: style },
    interactive: layer.fields.length > 0,
    minZoom: TILE_MIN_ZOOM,
    maxZoom: MAX_ZOOM,
  });
  grid.on("click", (event) => {
    const feature = { properties: event.layer.properties || {} };
    // Other modules (the report page) learn which feature was clicked.
    map.fire("featureclick", { layer, feature, latlng: event.latlng, originalEvent: event.originalEvent });
    L.popup().setLatLng(event.latlng).setContent(popupContent(layer, feature)).openOn(map);
  });
  return grid;
}

function layerPane(layer) {
  // A pane per layer, so that its opacity can be set as a whole.
  const name = `layer-${layer.id}`;
  if (!map.getPane(name)) map.createPane(name).style.zIndex = 400;
  return name;
}

function geojsonLayer(layer) {
  const style = { ...pathStyle(layer), pane: layerPane(layer) };
  return L.geoJSON(null, {
    pane: style.pane,
    style: () => style,
    pointToLayer: (_feature, latlng) => L.circleMarker(latlng, style),
  });
}

export function setOpacity(layer, value) {
  const pane = map.getPane(`layer-${layer.id}`);
  if (pane) pane.style.opacity = String(value);
  const entry = active.get(layer.id);
  if (entry?.tiled && entry.group?.setOpacity) entry.group.setOpacity(value);
}

// --- click: the features under the pointer, a list to choose from when several overlap ------

function pointInRing(latlng, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [a, b] = [ring[i], ring[j]];
    if ((a.lat > latlng.lat) !== (b.lat > latlng.lat) &&
        latlng.lng < ((b.lng - a.lng) * (latlng.lat - a.lat)) / (b.lat - a.lat) + a.lng) inside = !inside;
  }
  return inside;
}

function polygonsOf(latlngs) {
  // Leaflet nests polygons as [ring, …] or [[ring, …], …] for multipolygons.
  return Array.isArray(latlngs[0]?.[0]) ? latlngs : [latlngs];
}

function hits(leafletLayer, latlng) {
  const point = map.latLngToLayerPoint(latlng);
  if (leafletLayer instanceof L.CircleMarker) {
    return point.distanceTo(map.latLngToLayerPoint(leafletLayer.getLatLng())) <= leafletLayer.getRadius() + 4;
  }
  if (leafletLayer instanceof L.Polygon) {
    if (!leafletLayer.getBounds().contains(latlng)) return false;
    return polygonsOf(leafletLayer.getLatLngs()).some((rings) =>
      rings.filter((ring) => pointInRing(latlng, ring)).length % 2 === 1);
  }
  if (leafletLayer instanceof L.Polyline) {
    const lines = Array.isArray(leafletLayer.getLatLngs()[0]) ? leafletLayer.getLatLngs() : [leafletLayer.getLatLngs()];
    return lines.some((line) => line.some((vertex, i) => i > 0 &&
      L.LineUtil.pointToSegmentDistance(point, map.latLngToLayerPoint(line[i - 1]), map.latLngToLayerPoint(vertex)) <= 6));
  }
  return false;
}

function featuresAt(latlng) {
  const found = [];
  for (const [id, entry] of active) {
    if (!entry.group || entry.tiled) continue;
    const layer = config.layers.find((l) => l.id === id);
    entry.group.eachLayer((leafletLayer) => {
      if (hits(leafletLayer, latlng)) found.push({ layer, feature: leafletLayer.feature });
    });
  }
  return found;
}

function featureName(layer, feature) {
  const named = layer.fields.find((f) => feature.properties[f.name]);
  return named ? String(feature.properties[named.name]) : `#${feature.id}`;
}

function chooser(found, latlng) {
  const wrapper = document.createElement("div");
  wrapper.className = "app-popup";
  const heading = document.createElement("h2");
  heading.className = "govuk-heading-s";
  heading.textContent = `${found.length} features here`;
  const list = document.createElement("ul");
  list.className = "govuk-list app-popup__choices";
  for (const { layer, feature } of found) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "app-link-button";
    button.textContent = `${layer.title}: ${featureName(layer, feature)}`;
    button.addEventListener("click", () => L.popup().setLatLng(latlng).setContent(popupContent(layer, feature)).openOn(map));
    const item = document.createElement("li");
    item.append(button);
    list.append(item);
  }
  wrapper.append(heading, list);
  return wrapper;
}

map.on("click", (event) => {
  const found = featuresAt(event.latlng);
  if (!found.length) return;
  for (const { layer, feature } of found) {
    map.fire("featureclick", { layer, feature, latlng: event.latlng, originalEvent: event.originalEvent });
  }
  const content = found.length === 1 ? popupContent(found[0].layer, found[0].feature) : chooser(found, event.latlng);
  L.popup().setLatLng(event.latlng).setContent(content).openOn(map);
});

export async function fetchFeatures(layer, bbox, signal, filter = null) {
  // Follow the API's "next" links until the view is complete or the cap is reached.
  let url = `${config.ogcUrl}/collections/${encodeURIComponent(layer.id)}/items?f=json&limit=${PAGE_SIZE}`;
  if (bbox) url += `&bbox=${bbox.map((n) => n.toFixed(6)).join(",")}`;
  if (filter) url += `&filter=${encodeURIComponent(filter)}`; // CQL2 text
  const features = [];
  while (url && features.length < MAX_FEATURES) {
    const response = await fetch(url, { signal, headers: { Accept: "application/geo+json" } });
    if (!response.ok) throw new Error(`${layer.title}: the server answered ${response.status}`);
    const page = await response.json();
    features.push(...page.features);
    const next = (page.links || []).find((link) => link.rel === "next");
    url = page.features.length === PAGE_SIZE && next ? next.href : null;
  }
  return { features, truncated: Boolean(url) };
}

function viewBbox() {
  const b = map.getBounds();
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
}

// Layer id -> a CQL2 text filter that restricts what the map draws of it (e.g. planning.js).
const layerFilters = new Map();

/** Restrict a (non-tiled) layer to the features matching `cql` (CQL2 text); null: all. */
export function setLayerFilter(id, cql) {
  if (cql) layerFilters.set(id, cql);
  else layerFilters.delete(id);
  const layer = config.layers.find((l) => l.id === id);
  if (layer && active.has(id)) refresh(layer);
}

export async function refresh(layer) {
  const entry = active.get(layer.id);
  if (!entry || entry.tiled) return;
  entry.controller?.abort();
  entry.controller = new AbortController();
  try {
    const filter = layerFilters.get(layer.id);
    const { features, truncated } = await fetchFeatures(layer, viewBbox(), entry.controller.signal, filter);
    entry.group.clearLayers();
    entry.group.addData({ type: "FeatureCollection", features });
    entry.count = features.length;
    const item = document.querySelector(`[data-layer-id="${layer.id}"]`);
    if (item) item.dataset.count = String(features.length);
    setStatus(truncated ? `${layer.title}: showing the first ${features.length} features; zoom in to see all.` : null);
  } catch (error) {
    if (error.name !== "AbortError") setStatus(error.message);
  }
}

export function setStatus(message) {
  if (message) {
    status.textContent = message;
    return;
  }
  const parts = [...active.entries()].map(([id, entry]) => {
    const layer = config.layers.find((l) => l.id === id);
    if (!entry.tiled) return `${layer.title}: ${entry.count ?? 0}`;
    return `${layer.title}: ${map.getZoom() < TILE_MIN_ZOOM ? "zoom in to see" : "shown"}`;
  });
  status.textContent = parts.length ? `Shown in this view — ${parts.join("; ")}.` : "";
}

async function addTiled(layer, entry) {
  try {
    const grid = await tileLayer(layer);
    if (active.get(layer.id) !== entry) return; // switched off while loading
    entry.group = grid.addTo(map);
    setStatus();
  } catch (error) {
    setStatus(`${layer.title} could not be drawn: ${error.message}`);
  }
}

export function toggle(layer, on) {
  if (on && !active.has(layer.id)) {
    if (layer.large) {
      const entry = { group: null, controller: null, tiled: true };
      active.set(layer.id, entry);
      addTiled(layer, entry);
      return;
    }
    const group = geojsonLayer(layer).addTo(map);
    active.set(layer.id, { group, controller: null, count: 0 });
    refresh(layer);
  } else if (!on && active.has(layer.id)) {
    const entry = active.get(layer.id);
    entry.controller?.abort();
    if (entry.group) map.removeLayer(entry.group);
    active.delete(layer.id);
    setStatus();
  }
}

function legendSwatch(layer) {
  const s = layer.style;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", "20");
  svg.setAttribute("height", "20");
  svg.setAttribute("viewBox", "0 0 20 20");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("app-legend-swatch");
  let shape;
  if (layer.geometry.endsWith("Point")) {
    shape = document.createElementNS(ns, "circle");
    shape.setAttribute("cx", "10");
    shape.setAttribute("cy", "10");
    shape.setAttribute("r", String(Math.min(s.radius + 1, 8)));
  } else if (layer.geometry.endsWith("LineString")) {
    shape = document.createElementNS(ns, "path");
    shape.setAttribute("d", "M2 14 C7 4, 13 16, 18 6");
    shape.setAttribute("fill", "none");
  } else {
    shape = document.createElementNS(ns, "rect");
    shape.setAttribute("x", "2");
    shape.setAttribute("y", "3");
    shape.setAttribute("width", "16");
    shape.setAttribute("height", "14");
  }
  shape.setAttribute("stroke", s.colour);
  shape.setAttribute("stroke-width", String(Math.min(s.weight, 3)));
  if (s.dash) shape.setAttribute("stroke-dasharray", s.dash);
  if (!layer.geometry.endsWith("LineString")) {
    shape.setAttribute("fill", s.fill_colour || s.colour);
    shape.setAttribute("fill-opacity", String(Math.max(s.fill_opacity, 0.05)));
  }
  svg.append(shape);
  return svg;
}

function buildSwitcher() {
  const form = document.getElementById("layer-switcher");
  form.replaceChildren();
  const themes = new Map();
  for (const layer of config.layers) {
    if (layer.id === config.council.boundaryLayer) continue;
    if (!themes.has(layer.theme)) themes.set(layer.theme, []);
    themes.get(layer.theme).push(layer);
  }
  for (const [theme, layers] of themes) {
    const fieldset = document.createElement("fieldset");
    fieldset.className = "govuk-fieldset app-layer-group";
    const legend = document.createElement("legend");
    legend.className = "govuk-fieldset__legend govuk-fieldset__legend--s";
    legend.textContent = theme;
    const boxes = document.createElement("div");
    boxes.className = "govuk-checkboxes govuk-checkboxes--small";
    for (const layer of layers) {
      const item = document.createElement("div");
      item.className = "govuk-checkboxes__item";
      item.dataset.layerId = layer.id;
      const input = document.createElement("input");
      input.className = "govuk-checkboxes__input";
      input.type = "checkbox";
      input.id = `layer-${layer.id}`;
      input.name = "layers";
      input.value = layer.id;
      input.checked = layer.visible;
      const label = document.createElement("label");
      label.className = "govuk-label govuk-checkboxes__label app-layer-label";
      label.htmlFor = input.id;
      label.append(legendSwatch(layer), document.createTextNode(layer.title));
      if (layer.synthetic) {
        const tag = document.createElement("strong");
        tag.className = "govuk-tag govuk-tag--grey app-tag";
        tag.textContent = "Synthetic";
        label.append(" ", tag); // the space keeps "Synthetic" a separate word when read out
      }
      const opacity = document.createElement("input");
      opacity.type = "range";
      opacity.min = "0.1";
      opacity.max = "1";
      opacity.step = "0.1";
      opacity.value = "1";
      opacity.className = "app-opacity";
      opacity.setAttribute("aria-label", `Opacity of ${layer.title}`);
      opacity.hidden = !layer.visible;
      opacity.addEventListener("input", () => setOpacity(layer, Number(opacity.value)));
      input.addEventListener("change", () => {
        toggle(layer, input.checked);
        opacity.hidden = !input.checked;
      });
      item.append(input, label);
      if (layer.updated) {
        const updated = document.createElement("span");
        updated.className = "govuk-hint app-updated";
        const when = new Date(`${layer.updated}T00:00:00`);
        updated.textContent = `Updated ${when.toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" })}`;
        item.append(updated);
      }
      item.append(opacity);
      boxes.append(item);
    }
    fieldset.append(legend, boxes);
    form.append(fieldset);
  }
}

function maskOutside(boundary) {
  // Everything outside the borough is shaded and answers a click with whose it is, so that
  // nobody reads (or reports) a neighbour's area as ours.
  map.createPane("mask").style.zIndex = 440;
  const world = [[-89, -179], [-89, 179], [89, 179], [89, -179]];
  const outers = [];
  boundary.eachLayer((part) => polygonsOf(part.getLatLngs()).forEach((rings) => outers.push(rings[0])));
  L.polygon([world, ...outers], {
    pane: "mask", stroke: false, fillColor: "#0b0c0c", fillOpacity: 0.25, className: "app-mask",
  }).on("click", (event) => explainOutside(event.latlng)).addTo(map);
}

async function explainOutside(latlng) {
  let message = `This place is outside ${config.council.shortName}.`;
  try {
    const response = await fetch(`/api/locate?lon=${latlng.lng.toFixed(6)}&lat=${latlng.lat.toFixed(6)}`);
    if (response.ok) message = (await response.json()).message;
  } catch {
    // the generic message will do
  }
  setStatus(message);
  const content = document.createElement("p");
  content.className = "govuk-body app-outside";
  content.textContent = message;
  L.popup().setLatLng(latlng).setContent(content).openOn(map);
}

async function drawBoundary({ fit }) {
  const layer = config.layers.find((l) => l.id === config.council.boundaryLayer);
  if (!layer) return;
  const { features } = await fetchFeatures(layer, null, undefined);
  const style = { ...pathStyle(layer), interactive: false };
  const boundary = L.geoJSON({ type: "FeatureCollection", features }, { pane: "boundary", style: () => style });
  boundary.addTo(map);
  maskOutside(boundary);
  // Framed on the borough, unless someone has moved the map while the boundary loaded.
  const untouched = map.getZoom() === zoom && map.getCenter().equals(L.latLng(lat, lon));
  if (features.length && fit && untouched) {
    // Not animated: the page is ready (data-boundary) only once the view is final.
    map.fitBounds(boundary.getBounds(), { padding: [8, 8], animate: false });
  }
  document.getElementById("map").dataset.boundary = "drawn";
}

// --- the view and the visible layers in the URL --------------------------------------------

function readUrlState() {
  const params = new URLSearchParams(window.location.search);
  const number = (name) => (params.has(name) && Number.isFinite(Number(params.get(name))) ? Number(params.get(name)) : null);
  const known = new Set(config.layers.map((l) => l.id));
  return {
    lat: number("lat"),
    lng: number("lng"),
    zoom: number("zoom"),
    layers: params.has("layers") ? params.get("layers").split(",").filter((id) => known.has(id)) : null,
  };
}

function writeUrlState(push) {
  const centre = map.getCenter();
  const params = new URLSearchParams(window.location.search);
  params.set("lat", centre.lat.toFixed(5));
  params.set("lng", centre.lng.toFixed(5));
  params.set("zoom", String(map.getZoom()));
  params.set("layers", [...active.keys()].join(","));
  const url = `${window.location.pathname}?${params}`;
  if (url === window.location.pathname + window.location.search) return;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}

function applyLayers(ids) {
  const wanted = new Set(ids);
  for (const layer of config.layers) {
    if (layer.id === config.council.boundaryLayer) continue;
    const box = document.getElementById(`layer-${layer.id}`);
    const on = wanted.has(layer.id);
    if (box) box.checked = on;
    const opacity = document.querySelector(`[data-layer-id="${layer.id}"] .app-opacity`);
    if (opacity) opacity.hidden = !on;
    toggle(layer, on);
  }
}

let restoring = false;
window.addEventListener("popstate", () => {
  const state = readUrlState();
  restoring = true;
  if (state.lat !== null && state.lng !== null) map.setView([state.lat, state.lng], state.zoom ?? map.getZoom());
  if (state.layers) applyLayers(state.layers);
  restoring = false;
});

// --- start ---------------------------------------------------------------------------------

buildSwitcher();
document.getElementById("layer-switcher").addEventListener("change", () => writeUrlState(true));
map.on("moveend", () => {
  active.forEach((_entry, id) => refresh(config.layers.find((l) => l.id === id)));
  if ([...active.values()].some((entry) => entry.tiled)) setStatus();
  if (!restoring) writeUrlState(false);
});

/** Resolves once the boundary is drawn and the first layers are on. */
export const ready = drawBoundary({ fit: urlState.lat === null || urlState.lng === null })
  .catch((error) => setStatus(`The borough boundary could not be loaded: ${error.message}`))
  .finally(() => {
    if (urlState.lat !== null && urlState.lng !== null) {
      map.setView([urlState.lat, urlState.lng], urlState.zoom ?? map.getZoom());
    }
    const visible = urlState.layers ?? config.layers.filter((l) => l.visible).map((l) => l.id);
    applyLayers(visible);
    writeUrlState(false);
    map.getContainer().dataset.ready = "true"; // the view is final: tests wait for this
  });
