// The map page: the page's map (from the core, map.js) and a layer switcher built from the
// catalogue. Small layers read their features from the OGC API by bounding box as the map
// moves (points clustered where dense); the large ones (`large` in the catalogue) are drawn
// from the service's vector tiles. A filter set on a layer (setLayerFilter, e.g. planning.js)
// applies to both. The view and the visible layers live in the URL
// (?lat=&lng=&zoom=&layers=), so any view can be shared and back/forward work. The page's
// other modules (loaded by main.js) import what they need from here.
import { L, MAX_ZOOM, createMap, fetchFeatures, loadPlugin, pathStyle, polygonsOf, popupContent, readConfig, reducedMotion } from "./map.js";

export { L };

const VECTORGRID = "/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js";
const MARKERCLUSTER = "/vendor/leaflet.markercluster/leaflet.markercluster.js";
const TILE_MIN_ZOOM = 14; // large layers are too dense to read (and to draw) further out
export const CLUSTER_THRESHOLD = 150; // a point layer with more features in view is clustered
const CLUSTER_RADIUS_PX = 60;

export const config = readConfig();
const status = document.getElementById("map-status");
const urlState = readUrlState();
const view = urlState.lat !== null && urlState.lng !== null ? [urlState.lat, urlState.lng, urlState.zoom] : null;
const created = createMap(document.getElementById("map"), config, { view, onStatus: (text) => setStatus(text) });

export const map = created.map;
window.__map = map; // for the browser tests and for debugging in the console

export const active = new Map(); // layer id -> { group, controller, tiled, clustered, count }
// Layer id -> a CQL2 text filter that restricts what the map draws of it (e.g. planning.js).
const layerFilters = new Map();

function layerOf(id) {
  return config.layers.find((l) => l.id === id);
}

function openPopup(latlng, content) {
  L.popup().setLatLng(latlng).setContent(content).openOn(map);
}

// --- large layers: vector tiles ------------------------------------------------------------

function loadVectorGrid() {
  return loadPlugin(VECTORGRID).then((plugin) =>
    plugin.VectorGrid.Protobuf.extend({
      _createLayer(feature, ...rest) {
        const symbolizer = plugin.VectorGrid.prototype._createLayer.call(this, feature, ...rest);
        // Leaflet 1.9 places a small circle's mouse events at its latlng, which a tile's
        // point has not: without this, every click or hover on a point throws.
        symbolizer.getLatLng = null;
        symbolizer.featureId = feature.id;
        return symbolizer;
      },
    }),
  );
}

function tileUrl(layer) {
  const filter = layerFilters.get(layer.id);
  return filter ? `${layer.tiles}?filter=${encodeURIComponent(filter)}` : layer.tiles;
}

async function tileLayer(layer) {
  const TiledLayer = await loadVectorGrid();
  const style = { ...pathStyle(layer), fill: !layer.geometry.endsWith("LineString") };
  const grid = new TiledLayer(tileUrl(layer), {
    vectorTileLayerStyles: { [layer.id]: style },
    interactive: layer.fields.length > 0,
    minZoom: TILE_MIN_ZOOM,
    maxZoom: MAX_ZOOM,
    // New tiles are fetched and drawn when a pan ends, not during it: dragging stays smooth
    // over dense layers (see bench/map_bench.py).
    updateWhenIdle: true,
  });
  grid.on("click", (event) => {
    const feature = { id: event.layer.featureId, properties: event.layer.properties || {} };
    // Other modules (the report page) learn which feature was clicked.
    map.fire("featureclick", { layer, feature, latlng: event.latlng, originalEvent: event.originalEvent });
    openPopup(event.latlng, popupContent(layer, feature));
  });
  return grid;
}

// --- small layers: GeoJSON by bounding box, points clustered where dense ---------------------

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

function clusterIcon(layer) {
  // The cluster is a button named for what it holds and what it does (Enter zooms too).
  return (cluster) => {
    const count = cluster.getChildCount();
    const size = count < 10 ? "small" : count < 100 ? "medium" : "large";
    return L.divIcon({
      html: `<span aria-hidden="true">${count}</span><span class="govuk-visually-hidden">${count} ${layer.title.toLowerCase()}: zoom in to see them</span>`,
      className: `app-cluster app-cluster--${size} app-cluster-${layer.id}`,
      iconSize: L.point(40, 40),
    });
  };
}

async function clusterGroup(layer) {
  const plugin = await loadPlugin(MARKERCLUSTER);
  const group = plugin.markerClusterGroup({
    clusterPane: layerPane(layer),
    maxClusterRadius: CLUSTER_RADIUS_PX,
    showCoverageOnHover: false,
    animate: !reducedMotion,
    iconCreateFunction: clusterIcon(layer),
  });
  // Click or Enter zooms in (the plug-in's own); Space too, as on any button. Announced.
  group.on("clusterclick clusterkeypress", (event) => {
    const key = event.type === "clusterkeypress" ? event.originalEvent.key : "Enter";
    if (key === " ") {
      event.originalEvent.preventDefault();
      event.layer.zoomToBounds();
    }
    if (key === "Enter" || key === " ") {
      setStatus(`Zoomed in to ${event.layer.getChildCount()} ${layer.title.toLowerCase()}.`);
    }
  });
  return group;
}

async function drawFeatures(layer, entry, features, signal) {
  const dense = layer.geometry.endsWith("Point") && features.length > CLUSTER_THRESHOLD;
  if (dense !== Boolean(entry.clustered)) {
    const group = dense ? await clusterGroup(layer) : geojsonLayer(layer);
    // Switched off, or a newer view's features came, while the plug-in loaded.
    if (active.get(layer.id) !== entry || signal.aborted) return;
    map.removeLayer(entry.group);
    entry.group = group.addTo(map);
    entry.clustered = dense;
  }
  entry.group.clearLayers();
  if (dense) entry.group.addLayers(geojsonLayer(layer).addData(features).getLayers());
  else entry.group.addData({ type: "FeatureCollection", features });
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
    const layer = layerOf(id);
    entry.group.eachLayer((leafletLayer) => {
      // A point inside a cluster is not where it is drawn: the cluster is.
      if (entry.clustered && entry.group.getVisibleParent(leafletLayer) !== leafletLayer) return;
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
    button.addEventListener("click", () => openPopup(latlng, popupContent(layer, feature)));
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
  openPopup(event.latlng, found.length === 1 ? popupContent(found[0].layer, found[0].feature) : chooser(found, event.latlng));
});

// --- layers on and off, and what is shown ---------------------------------------------------

function viewBbox() {
  const b = map.getBounds();
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
}

/** Restrict a layer to the features matching `cql` (CQL2 text); null: all of them. */
export function setLayerFilter(id, cql) {
  if (cql) layerFilters.set(id, cql);
  else layerFilters.delete(id);
  const layer = layerOf(id);
  const entry = active.get(id);
  if (!layer || !entry) return;
  if (entry.tiled) entry.group?.setUrl(tileUrl(layer));
  else refresh(layer);
}

export async function refresh(layer) {
  const entry = active.get(layer.id);
  if (!entry || entry.tiled) return;
  entry.controller?.abort();
  entry.controller = new AbortController();
  const { signal } = entry.controller;
  try {
    const filter = layerFilters.get(layer.id);
    const { features, truncated } = await fetchFeatures(layer, {
      bbox: viewBbox(), signal, filter, ogcUrl: config.ogcUrl,
    });
    await drawFeatures(layer, entry, features, signal);
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
    const layer = layerOf(id);
    if (!entry.tiled) return `${layer.title}: ${entry.count ?? 0}`;
    return `${layer.title}: ${map.getZoom() < TILE_MIN_ZOOM ? "zoom in to see" : "shown"}`;
  });
  status.textContent = parts.length ? `Shown in this view — ${parts.join("; ")}.` : "";
}

export function setOpacity(layer, value) {
  const pane = map.getPane(`layer-${layer.id}`);
  if (pane) pane.style.opacity = String(value);
  const entry = active.get(layer.id);
  if (entry?.tiled && entry.group?.setOpacity) entry.group.setOpacity(value);
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

// --- the layer switcher ----------------------------------------------------------------------

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

// On a phone the switcher folds away under a button, so that the map has the screen.
function foldingSwitcher() {
  const button = document.getElementById("layers-toggle");
  const panel = document.getElementById("layers-panel");
  if (!button || !panel) return;
  button.hidden = false;
  const set = (open) => {
    button.setAttribute("aria-expanded", String(open));
    button.textContent = open ? "Hide map layers" : "Show map layers";
    panel.dataset.open = String(open);
  };
  set(false);
  button.addEventListener("click", () => set(button.getAttribute("aria-expanded") !== "true"));
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
foldingSwitcher();
document.getElementById("layer-switcher").addEventListener("change", () => writeUrlState(true));
map.on("moveend", () => {
  active.forEach((_entry, id) => refresh(layerOf(id)));
  if ([...active.values()].some((entry) => entry.tiled)) setStatus();
  if (!restoring) writeUrlState(false);
});

/** Resolves once the boundary is drawn, the view is final and the first layers are on. */
export const ready = created.ready.then(() => {
  applyLayers(urlState.layers ?? config.layers.filter((l) => l.visible).map((l) => l.id));
  writeUrlState(false);
  map.getContainer().dataset.ready = "true"; // tests and the benchmark wait for this
});
