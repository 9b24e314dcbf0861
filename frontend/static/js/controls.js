// The map's tools, as keyboard-operable buttons under the zoom buttons: locate me (the
// browser's geolocation), full screen (the Fullscreen API on the map and its tools, or a
// full-window fallback) and measure (measure.js). Their messages go to a live region on the
// map, so that they are read out and visible in full screen too.
import { L, map } from "./map.js";
import { Measure } from "./measure.js";

const LOCATE_URL = "/api/locate";
const LOCATE_ZOOM = 17;
const wrapper = map.getContainer().parentElement;
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

const ICONS = {
  locate:
    '<circle cx="12" cy="12" r="7" fill="none" stroke="currentColor" stroke-width="2"/><circle cx="12" cy="12" r="3"/><path d="M12 1v4M12 19v4M1 12h4M19 12h4" stroke="currentColor" stroke-width="2"/>',
  fullscreen:
    '<path d="M3 9V3h6M15 3h6v6M21 15v6h-6M9 21H3v-6" fill="none" stroke="currentColor" stroke-width="2.5"/>',
  measure:
    '<path d="M2 16 16 2l6 6L8 22z" fill="none" stroke="currentColor" stroke-width="2"/><path d="M6 12l2 2M9 9l3 3M12 6l2 2" stroke="currentColor" stroke-width="2"/>',
};

function iconButton(name, label, onClick) {
  const button = L.DomUtil.create("button", `app-tool app-tool--${name}`);
  button.type = "button";
  button.setAttribute("aria-label", label);
  button.title = label;
  button.innerHTML = `<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">${ICONS[name]}</svg>`;
  button.addEventListener("click", onClick);
  return button;
}

// --- the live region and the measuring panel (top right, clear of the attribution) --------

const panel = L.control({ position: "topright" });
let message;
let measurePanel;
panel.onAdd = () => {
  const box = L.DomUtil.create("div", "app-tool-panel");
  L.DomEvent.disableClickPropagation(box);
  L.DomEvent.disableScrollPropagation(box);
  message = L.DomUtil.create("p", "govuk-body-s app-tool-panel__message", box);
  message.id = "map-tools-status";
  message.setAttribute("role", "status");
  measurePanel = L.DomUtil.create("div", "app-tool-panel__measure", box);
  measurePanel.hidden = true;
  return box;
};
panel.addTo(map);

export function announce(text) {
  message.textContent = text;
  message.parentElement.classList.toggle("app-tool-panel--empty", !text);
}
announce("");

function panelButton(text, onClick, secondary = true) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `govuk-button app-tool-panel__button${secondary ? " govuk-button--secondary" : ""}`;
  button.textContent = text;
  button.addEventListener("click", onClick);
  return button;
}

// --- the buttons ----------------------------------------------------------------------------

let measureButton;
const measure = new Measure({
  panel: measurePanel,
  announce,
  onEnd: () => measureButton.setAttribute("aria-pressed", "false"),
});
measurePanel.append(
  panelButton("Add point at cross-hair", () => measure.add(map.getCenter())),
  panelButton("Finish", () => measure.finish(), false),
  panelButton("Close shape (area)", () => measure.close()),
  panelButton("Cancel", () => measure.cancel()),
);

const tools = L.control({ position: "topleft" });
tools.onAdd = () => {
  const bar = L.DomUtil.create("div", "leaflet-bar app-tools");
  L.DomEvent.disableClickPropagation(bar);
  bar.append(
    iconButton("locate", "Show my location", locate),
    fullscreenButton,
    (measureButton = iconButton("measure", "Measure distance or area", toggleMeasure)),
  );
  measureButton.setAttribute("aria-pressed", "false");
  return bar;
};

function toggleMeasure() {
  if (measure.active) {
    measure.cancel();
    return;
  }
  measureButton.setAttribute("aria-pressed", "true");
  measure.start();
}

// --- locate me -----------------------------------------------------------------------------

let here = null;

const GEOLOCATION_ERRORS = {
  1: "Your location could not be shown because this site is not allowed to use it. Allow location access in your browser's settings, or search for a place instead.",
  2: "Your location is not available at the moment (no signal or location service). Try again, or search for a place instead.",
  3: "Finding your location took too long. Try again, or search for a place instead.",
};

function locate() {
  if (!("geolocation" in navigator)) {
    announce("This browser cannot share your location. Search for a place instead.");
    return;
  }
  announce("Finding your location…");
  navigator.geolocation.getCurrentPosition(
    (position) => showLocation(position.coords),
    (error) => announce(GEOLOCATION_ERRORS[error.code] || `Your location could not be found: ${error.message}`),
    { enableHighAccuracy: true, timeout: 15_000, maximumAge: 60_000 },
  );
}

async function showLocation({ latitude, longitude, accuracy }) {
  const latlng = L.latLng(latitude, longitude);
  here?.remove();
  here = L.layerGroup([
    L.circle(latlng, { radius: accuracy || 0, color: "#1d70b8", weight: 1, fillOpacity: 0.1, interactive: false }),
    L.circleMarker(latlng, { radius: 7, color: "#ffffff", weight: 2, fillColor: "#1d70b8", fillOpacity: 1, interactive: false, className: "app-here" }),
  ]).addTo(map);
  map.setView(latlng, LOCATE_ZOOM, { animate: !reducedMotion.matches });
  map.fire("located", { latlng, accuracy });
  let text = `Your location is shown on the map${accuracy ? `, accurate to about ${Math.round(accuracy)} metres` : ""}.`;
  try {
    const response = await fetch(`${LOCATE_URL}?lon=${longitude.toFixed(6)}&lat=${latitude.toFixed(6)}`);
    if (response.ok) text += ` ${(await response.json()).message}`;
  } catch {
    // the location alone will do
  }
  announce(text);
}

// --- full screen ---------------------------------------------------------------------------

const fullscreenButton = iconButton("fullscreen", "Full screen map", toggleFullscreen);
fullscreenButton.setAttribute("aria-pressed", "false");

function isFullscreen() {
  return document.fullscreenElement === wrapper || wrapper.classList.contains("app-map-wrapper--fullscreen");
}

function fullscreenChanged() {
  const on = isFullscreen();
  fullscreenButton.setAttribute("aria-pressed", String(on));
  fullscreenButton.setAttribute("aria-label", on ? "Exit full screen" : "Full screen map");
  fullscreenButton.title = fullscreenButton.getAttribute("aria-label");
  map.invalidateSize();
}

async function toggleFullscreen() {
  if (isFullscreen()) {
    if (document.fullscreenElement) await document.exitFullscreen().catch(() => {});
    wrapper.classList.remove("app-map-wrapper--fullscreen");
    fullscreenChanged();
    return;
  }
  try {
    await wrapper.requestFullscreen({ navigationUI: "hide" });
  } catch {
    // no Fullscreen API (iPhone) or refused: fill the window instead
    wrapper.classList.add("app-map-wrapper--fullscreen");
  }
  fullscreenChanged();
}

document.addEventListener("fullscreenchange", fullscreenChanged);
document.addEventListener("keydown", (event) => {
  // The browser leaves real full screen on Escape itself; the fallback needs this.
  if (event.key === "Escape" && !measure.active && wrapper.classList.contains("app-map-wrapper--fullscreen")) {
    wrapper.classList.remove("app-map-wrapper--fullscreen");
    fullscreenChanged();
  }
});

tools.addTo(map);
