// The map core, for every page with a map (the map page, residents' reports…). It has no
// side effects of its own; a page calls:
//
//   import { createMap, readConfig, popupContent, addPopupSection } from "/static/js/map.js";
//   const config = readConfig();                       // the page's <script id="map-config">
//   const { map, ready } = createMap(element, config); // base map, borough, outside masked
//   await ready;                                       // the boundary is drawn, the view final
//   L.popup().setLatLng(p).setContent(popupContent(layer, feature)).openOn(map);
//
// `addPopupSection(fn)` lets another module add to every feature popup (e.g. a "Report this
// streetlight" link): `fn(layer, feature)` returns a node, or null for nothing.
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { addBasemap } from "./basemap.js";
import { fetchFeatures } from "./features.js";

export { L, fetchFeatures };

export const MAX_ZOOM = 20;
/** The user asked for less motion: no animated zoom, pan, fade or cluster. */
export const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

/** The configuration the page carries as JSON (mapserver/pages.py map_page_config). */
export function readConfig(id = "map-config") {
  return JSON.parse(document.getElementById(id).textContent);
}

export function escapeText(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}

/** Leaflet path options from a catalogue layer's style. */
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

// --- popups --------------------------------------------------------------------------------

const WEB_ADDRESS = /^(https?:\/\/|www\.)[^\s<>"]+$/i;
const popupSections = [];

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

/** Adds `fn(layer, feature) -> Node | null` to every feature popup, after the fields. */
export function addPopupSection(fn) {
  popupSections.push(fn);
}

/**
 * A feature's popup: the layer's title, its fields with the catalogue's labels (only those
 * the page's config lists, i.e. those this user may see), links where a value is a web
 * address, the sections others added, and the layer's attribution. `feature` is GeoJSON-like
 * ({id, properties}); its values are shown as text, never as HTML.
 */
export function popupContent(layer, feature) {
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
  for (const section of popupSections) {
    const node = section(layer, feature);
    if (node) wrapper.append(node);
  }
  const source = document.createElement("p");
  source.className = "govuk-body-s app-popup__source";
  source.textContent = layer.attribution;
  wrapper.append(source);
  return wrapper;
}

// --- plug-ins ------------------------------------------------------------------------------

const plugins = new Map();

/**
 * Loads a classic-script Leaflet plug-in (served under /vendor) once. Plug-ins extend a global
 * `L`; the ES module of Leaflet sets none, so they all extend one shared copy of its exports
 * (the classes are the module's own, so what they add to them applies everywhere).
 */
export function loadPlugin(src) {
  window.L ??= { ...L };
  if (!plugins.has(src)) {
    const loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = () => resolve(window.L);
      script.onerror = () => reject(new Error(`${src} could not be loaded`));
      document.head.append(script);
    });
    loading.catch(() => plugins.delete(src)); // try again next time
    plugins.set(src, loading);
  }
  return plugins.get(src);
}

// --- the map, its boundary and the outside ---------------------------------------------------

export function polygonsOf(latlngs) {
  // Leaflet nests polygons as [ring, …] or [[ring, …], …] for multipolygons.
  return Array.isArray(latlngs[0]?.[0]) ? latlngs : [latlngs];
}

function maskOutside(map, boundary, explain) {
  // Everything outside the borough is shaded and answers a click with whose it is, so that
  // nobody reads (or reports) a neighbour's area as ours.
  map.createPane("mask").style.zIndex = 440;
  const world = [[-89, -179], [-89, 179], [89, 179], [89, -179]];
  const outers = [];
  boundary.eachLayer((part) => polygonsOf(part.getLatLngs()).forEach((rings) => outers.push(rings[0])));
  L.polygon([world, ...outers], {
    pane: "mask", stroke: false, fillColor: "#0b0c0c", fillOpacity: 0.25, className: "app-mask",
  }).on("click", (event) => explain(event.latlng)).addTo(map);
}

async function explainOutside(map, config, latlng, onStatus) {
  let message = `This place is outside ${config.council.shortName}.`;
  try {
    const response = await fetch(`/api/locate?lon=${latlng.lng.toFixed(6)}&lat=${latlng.lat.toFixed(6)}`);
    if (response.ok) message = (await response.json()).message;
  } catch {
    // the generic message will do
  }
  onStatus(message);
  const content = document.createElement("p");
  content.className = "govuk-body app-outside";
  content.textContent = message;
  L.popup().setLatLng(latlng).setContent(content).openOn(map);
}

async function drawBoundary(map, config, onStatus) {
  const layer = config.layers.find((l) => l.id === config.council.boundaryLayer);
  if (!layer) return null;
  const { features } = await fetchFeatures(layer, { ogcUrl: config.ogcUrl });
  const style = { ...pathStyle(layer), interactive: false };
  const boundary = L.geoJSON({ type: "FeatureCollection", features }, { pane: "boundary", style: () => style });
  boundary.addTo(map);
  maskOutside(map, boundary, (latlng) => explainOutside(map, config, latlng, onStatus));
  map.getContainer().dataset.boundary = "drawn";
  return features.length ? boundary : null;
}

function stillMap(map) {
  // Leaflet animates small pans whatever its options say; with reduced motion, none is.
  const panBy = map.panBy;
  map.panBy = function (offset, options) {
    return panBy.call(this, offset, { ...options, animate: false });
  };
}

/**
 * Creates the map in `element`: the base map, the council's attribution, a scale bar, the
 * borough boundary with the outside shaded (a click there says whose it is), and Leaflet kept
 * in step with the element's size. Motion follows `prefers-reduced-motion`.
 *
 * options.view: [lat, lng, zoom] to show; without it the map frames the borough (unless the
 *   user has moved it meanwhile).
 * options.onStatus(text): where messages go (a failed base map, a click outside).
 * options.mapOptions: more Leaflet map options.
 *
 * Returns { map, ready }: `ready` resolves once the boundary is drawn and the view
 * is final (to the L.GeoJSON boundary, or null); it never rejects (failures go to onStatus).
 */
export function createMap(element, config, { view = null, onStatus = () => {}, mapOptions = {} } = {}) {
  const map = L.map(element, {
    minZoom: 0, // the map's own limits: else a tile layer's minimum zoom would be the map's
    maxZoom: MAX_ZOOM,
    zoomAnimation: !reducedMotion,
    fadeAnimation: !reducedMotion,
    markerZoomAnimation: !reducedMotion,
    inertia: !reducedMotion,
    ...mapOptions,
  });
  if (reducedMotion) stillMap(map);
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution(escapeText(config.council.attribution));
  // Bottom right, above the attribution: on a phone the attribution spans the whole width.
  L.control.scale({ imperial: false, position: "bottomright" }).addTo(map);
  const { lat, lon, zoom } = config.council.view;
  map.setView([lat, lon], zoom);
  map.createPane("boundary").style.zIndex = 450;
  addBasemap(map, config, onStatus);
  // The page's panels change the element's size: keep Leaflet's idea of it (and the centre of
  // the view) in step, so that clicks, tiles and prints match what is seen.
  new ResizeObserver(() => map.invalidateSize({ animate: false })).observe(element);

  const ready = drawBoundary(map, config, onStatus)
    .then((boundary) => {
      const untouched = map.getZoom() === zoom && map.getCenter().equals(L.latLng(lat, lon));
      if (view) map.setView([view[0], view[1]], view[2] ?? map.getZoom(), { animate: false });
      // Not animated: the view is final when `ready` resolves.
      else if (boundary && untouched) map.fitBounds(boundary.getBounds(), { padding: [8, 8], animate: false });
      return boundary;
    })
    .catch((error) => {
      onStatus(`The borough boundary could not be loaded: ${error.message}`);
      if (view) map.setView([view[0], view[1]], view[2] ?? map.getZoom(), { animate: false });
      return null;
    });
  return { map, ready };
}
