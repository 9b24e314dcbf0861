// Measuring on the map: click (or, from the keyboard, move the map and press Space at the
// cross-hair) to add points; the distance along them is shown, and once the shape is closed
// its area. Enter finishes, Escape cancels. Distances are geodesic on the WGS84 ellipsoid
// (Vincenty), areas spherical with the ellipsoid's local radius: well within 0.1% at the
// scale of a borough.
import { L, map } from "./mappage.js";

const A = 6378137; // WGS84
const F = 1 / 298.257223563;
const B = A * (1 - F);
const E2 = F * (2 - F);
const RAD = Math.PI / 180;
const CLOSE_PX = 12; // a click this near the first point closes the shape

/** Geodesic distance in metres between two {lat, lng} (Vincenty's inverse formula). */
export function distance(p, q) {
  const L0 = (q.lng - p.lng) * RAD;
  const U1 = Math.atan((1 - F) * Math.tan(p.lat * RAD));
  const U2 = Math.atan((1 - F) * Math.tan(q.lat * RAD));
  const [sinU1, cosU1, sinU2, cosU2] = [Math.sin(U1), Math.cos(U1), Math.sin(U2), Math.cos(U2)];
  let lambda = L0;
  for (let i = 0; i < 200; i++) {
    const sinL = Math.sin(lambda);
    const cosL = Math.cos(lambda);
    const sinSigma = Math.hypot(cosU2 * sinL, cosU1 * sinU2 - sinU1 * cosU2 * cosL);
    if (sinSigma === 0) return 0;
    const cosSigma = sinU1 * sinU2 + cosU1 * cosU2 * cosL;
    const sigma = Math.atan2(sinSigma, cosSigma);
    const sinAlpha = (cosU1 * cosU2 * sinL) / sinSigma;
    const cos2Alpha = 1 - sinAlpha * sinAlpha;
    const cos2SigmaM = cos2Alpha ? cosSigma - (2 * sinU1 * sinU2) / cos2Alpha : 0;
    const C = (F / 16) * cos2Alpha * (4 + F * (4 - 3 * cos2Alpha));
    const previous = lambda;
    lambda = L0 + (1 - C) * F * sinAlpha *
      (sigma + C * sinSigma * (cos2SigmaM + C * cosSigma * (-1 + 2 * cos2SigmaM ** 2)));
    if (Math.abs(lambda - previous) < 1e-12) {
      const u2 = (cos2Alpha * (A * A - B * B)) / (B * B);
      const a = 1 + (u2 / 16384) * (4096 + u2 * (-768 + u2 * (320 - 175 * u2)));
      const b = (u2 / 1024) * (256 + u2 * (-128 + u2 * (74 - 47 * u2)));
      const deltaSigma = b * sinSigma * (cos2SigmaM + (b / 4) * (cosSigma * (-1 + 2 * cos2SigmaM ** 2) -
        (b / 6) * cos2SigmaM * (-3 + 4 * sinSigma ** 2) * (-3 + 4 * cos2SigmaM ** 2)));
      return B * a * (sigma - deltaSigma);
    }
  }
  return map.distance(p, q); // nearly antipodal points: the sphere will do
}

export function length(points, closed = false) {
  let total = 0;
  for (let i = 1; i < points.length; i++) total += distance(points[i - 1], points[i]);
  if (closed && points.length > 2) total += distance(points[points.length - 1], points[0]);
  return total;
}

/** Area in square metres of a simple polygon of {lat, lng}. */
export function area(points) {
  if (points.length < 3) return 0;
  // The sphere whose curvature matches the ellipsoid's at the polygon's latitude.
  const lat = (points.reduce((sum, p) => sum + p.lat, 0) / points.length) * RAD;
  const w = 1 - E2 * Math.sin(lat) ** 2;
  const radius = Math.sqrt(((A * (1 - E2)) / w ** 1.5) * (A / Math.sqrt(w)));
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    const p = points[i];
    const q = points[(i + 1) % points.length];
    sum += (q.lng - p.lng) * RAD * (2 + Math.sin(p.lat * RAD) + Math.sin(q.lat * RAD));
  }
  return Math.abs((sum * radius * radius) / 2);
}

const number = (value, digits) =>
  value.toLocaleString("en-GB", { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function formatDistance(metres) {
  return metres < 1000 ? `${number(metres, 0)} metres` : `${number(metres / 1000, 2)} km`;
}

export function formatArea(squareMetres) {
  if (squareMetres < 10_000) return `${number(squareMetres, 0)} square metres`;
  return `${number(squareMetres / 10_000, 2)} hectares (${number(squareMetres, 0)} square metres)`;
}

// --- the tool --------------------------------------------------------------------------------

map.createPane("measure").style.zIndex = 630; // above the markers, below tooltips and popups

export class Measure {
  constructor({ panel, announce, onEnd }) {
    this.panel = panel; // element showing the instructions and the buttons
    this.announce = announce; // (text) => void, a live region
    this.onEnd = onEnd;
    this.points = [];
    this.closed = false;
    this.active = false;
    this.drawing = L.layerGroup([], { pane: "measure" });
    this.wrapper = map.getContainer().parentElement;
    this.down = null;
    this.onPointerDown = (event) => {
      this.down = { x: event.clientX, y: event.clientY };
    };
    this.onClick = (event) => this.click(event);
    this.onKey = (event) => this.key(event);
  }

  start() {
    this.clear();
    this.active = true;
    this.drawing.addTo(map);
    map.getContainer().classList.add("app-map--measuring");
    this.wrapper.addEventListener("pointerdown", this.onPointerDown, true);
    this.wrapper.addEventListener("click", this.onClick, true);
    document.addEventListener("keydown", this.onKey);
    this.panel.hidden = false;
    this.announce(
      "Measuring: select points on the map (or, on the focused map, press Space at the " +
        "cross-hair). Enter finishes, Escape cancels.",
    );
  }

  stop() {
    this.active = false;
    map.getContainer().classList.remove("app-map--measuring");
    this.wrapper.removeEventListener("pointerdown", this.onPointerDown, true);
    this.wrapper.removeEventListener("click", this.onClick, true);
    document.removeEventListener("keydown", this.onKey);
    this.panel.hidden = true;
    this.onEnd?.();
  }

  clear() {
    this.points = [];
    this.closed = false;
    this.drawing.clearLayers();
    delete map.getContainer().dataset.measureDistance;
    delete map.getContainer().dataset.measureArea;
  }

  click(event) {
    // Clicks on the map itself add points (and open no popups); controls work as usual.
    if (event.target.closest(".leaflet-control")) return;
    event.stopPropagation();
    event.preventDefault();
    const moved = this.down && Math.hypot(event.clientX - this.down.x, event.clientY - this.down.y) > 5;
    if (moved) return; // the end of a drag
    const latlng = map.mouseEventToLatLng(event);
    const first = this.points[0];
    if (this.points.length > 2 && map.latLngToContainerPoint(first).distanceTo(map.mouseEventToContainerPoint(event)) < CLOSE_PX) {
      this.close();
      return;
    }
    this.add(latlng);
  }

  key(event) {
    const onMap = event.target === map.getContainer();
    if (event.key === "Escape") {
      event.preventDefault();
      this.cancel();
    } else if (event.key === "Enter" && !event.target.closest("button, a, input, select, textarea")) {
      event.preventDefault();
      this.finish();
    } else if (event.key === " " && onMap) {
      event.preventDefault();
      this.add(map.getCenter());
    }
  }

  add(latlng) {
    if (this.closed) this.clear();
    this.points.push(L.latLng(latlng.lat, latlng.lng));
    this.redraw();
    this.report();
  }

  close() {
    if (this.points.length < 3) {
      this.announce("Add at least 3 points to measure an area.");
      return;
    }
    this.closed = true;
    this.redraw();
    this.report({ final: true });
    this.stop();
  }

  finish() {
    if (this.points.length < 2) {
      this.announce("Add at least 2 points to measure a distance, or press Escape to cancel.");
      return;
    }
    this.report({ final: true });
    this.stop();
  }

  cancel() {
    this.clear();
    this.announce("Measuring cancelled.");
    this.stop();
  }

  redraw() {
    this.drawing.clearLayers();
    const style = { pane: "measure", color: "#d4351c", weight: 3, dashArray: this.closed ? null : "6 4", interactive: false };
    if (this.closed) L.polygon(this.points, { ...style, fillColor: "#d4351c", fillOpacity: 0.15 }).addTo(this.drawing);
    else L.polyline(this.points, style).addTo(this.drawing);
    this.points.forEach((point, i) =>
      L.circleMarker(point, {
        pane: "measure", radius: i === 0 ? 6 : 4, color: "#0b0c0c", weight: 2, fillColor: "#ffffff", fillOpacity: 1,
        interactive: false, className: "app-measure-vertex",
      }).addTo(this.drawing),
    );
  }

  report({ final = false } = {}) {
    const container = map.getContainer();
    const metres = length(this.points, this.closed);
    container.dataset.measureDistance = metres.toFixed(2);
    let text;
    if (this.closed) {
      const squareMetres = area(this.points);
      container.dataset.measureArea = squareMetres.toFixed(1);
      text = `Area: ${formatArea(squareMetres)}. Perimeter: ${formatDistance(metres)}.`;
    } else if (this.points.length < 2) {
      text = "1 point. Add another to measure a distance.";
    } else {
      text = `Distance: ${formatDistance(metres)} (${this.points.length} points).`;
    }
    this.announce(final ? `Measured. ${text}` : text);
  }
}
