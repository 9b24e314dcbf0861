// Print or save the current view as a PNG or a PDF: a title (council, "map", and the user's
// own words), the map as drawn (SVG overlays, vector tiles and image tiles, captured with
// html-to-image), a key of the visible layers (the switcher's own swatches), a scale bar, a
// north arrow, the attribution and the date. All in the browser, with npm packages served
// by the app (/vendor/html-to-image, /vendor/jspdf).
import { map, config, active } from "./mappage.js";

const HTML_TO_IMAGE = "/vendor/html-to-image/html-to-image.js";
const JSPDF = "/vendor/jspdf/jspdf.umd.min.js";
const SCALE = 2; // output pixels per CSS pixel: sharp enough to print
const FONT = "Arial, 'Liberation Sans', Helvetica, sans-serif";
const INK = "#0b0c0c";
const MARGIN = 16;
const TITLE_BAND = 56;
const LEGEND_COLUMN = 240;
const LEGEND_ROW = 28;
const TRANSPARENT = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

const form = document.getElementById("print-form");
const titleInput = document.getElementById("print-title");
const status = document.getElementById("print-status");

let libraries = null;

function classicScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${src} could not be loaded`));
    document.head.append(script);
  });
}

function loadLibraries() {
  libraries ??= Promise.all([classicScript(HTML_TO_IMAGE), classicScript(JSPDF)])
    .then(() => ({ htmlToImage: window.htmlToImage, jsPDF: window.jspdf.jsPDF }))
    .catch((error) => {
      libraries = null; // try again next time
      throw error;
    });
  return libraries;
}

export function mapTitle() {
  const own = titleInput.value.trim();
  return own ? `${config.council.shortName} map: ${own}` : `${config.council.shortName} map`;
}

function today() {
  return new Date().toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" });
}

function attribution() {
  // The map's attribution control and the visible layers' own, each sentence once.
  const control = document.querySelector(".leaflet-control-attribution");
  const texts = [control?.textContent || "", ...legendLayers().map((l) => l.attribution || "")];
  const sentences = new Set();
  for (const text of texts) {
    for (const part of text.split(/\s*\|\s*|(?<=\.)\s+/)) if (part.trim()) sentences.add(part.trim());
  }
  return [...sentences].join(" ");
}

function legendLayers() {
  return config.layers.filter((l) => l.id === config.council.boundaryLayer || active.has(l.id));
}

/** A "nice" length (1, 2 or 5 × 10ⁿ metres) for a bar of at most `maxPixels`. */
function scaleBar(maxPixels) {
  const y = map.getSize().y / 2;
  const metresPerPixel = map.distance(map.containerPointToLatLng([0, y]), map.containerPointToLatLng([100, y])) / 100;
  const most = metresPerPixel * maxPixels;
  const power = 10 ** Math.floor(Math.log10(most));
  const metres = [5, 2, 1].map((n) => n * power).find((n) => n <= most);
  return { pixels: metres / metresPerPixel, label: metres >= 1000 ? `${metres / 1000} km` : `${metres} m` };
}

function image(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("an image of the key could not be drawn"));
    img.src = url;
  });
}

/** The switcher's swatch of a layer as an image; the boundary (not in the switcher) drawn. */
async function swatch(layer) {
  const svg = document.querySelector(`#layer-switcher [data-layer-id="${layer.id}"] svg.app-legend-swatch`);
  if (!svg) return null;
  const copy = svg.cloneNode(true);
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  const text = new XMLSerializer().serializeToString(copy);
  return image(`data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`);
}

function wrap(ctx, text, width) {
  const lines = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    const next = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(next).width > width) {
      lines.push(line);
      line = word;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}

function drawNorthArrow(ctx, x, y) {
  ctx.fillStyle = "rgba(255,255,255,0.9)";
  ctx.fillRect(x, y, 40, 56);
  ctx.strokeStyle = INK;
  ctx.lineWidth = 1;
  ctx.strokeRect(x, y, 40, 56);
  ctx.fillStyle = INK;
  ctx.beginPath();
  ctx.moveTo(x + 20, y + 6);
  ctx.lineTo(x + 31, y + 36);
  ctx.lineTo(x + 20, y + 29);
  ctx.lineTo(x + 9, y + 36);
  ctx.closePath();
  ctx.fill();
  ctx.font = `bold 14px ${FONT}`;
  ctx.textAlign = "center";
  ctx.textBaseline = "alphabetic";
  ctx.fillText("N", x + 20, y + 51);
  ctx.textAlign = "left";
}

function drawScaleBar(ctx, x, y) {
  const bar = scaleBar(160);
  ctx.font = `13px ${FONT}`;
  const width = Math.max(bar.pixels, ctx.measureText(bar.label).width) + 20;
  ctx.fillStyle = "rgba(255,255,255,0.9)";
  ctx.fillRect(x, y - 36, width, 36);
  ctx.fillStyle = INK;
  ctx.fillRect(x + 10, y - 12, bar.pixels, 4);
  ctx.fillRect(x + 10, y - 18, 2, 10);
  ctx.fillRect(x + 8 + bar.pixels, y - 18, 2, 10);
  ctx.fillText(bar.label, x + 10, y - 22);
}

async function drawLegend(ctx, x, y, width) {
  const layers = legendLayers();
  ctx.fillStyle = INK;
  ctx.font = `bold 16px ${FONT}`;
  ctx.textBaseline = "alphabetic";
  ctx.fillText("Key", x, y + 16);
  const columns = Math.max(1, Math.floor(width / LEGEND_COLUMN));
  ctx.font = `14px ${FONT}`;
  for (const [index, layer] of layers.entries()) {
    const left = x + (index % columns) * LEGEND_COLUMN;
    const top = y + 26 + Math.floor(index / columns) * LEGEND_ROW;
    const img = await swatch(layer);
    if (img) ctx.drawImage(img, left, top, 20, 20);
    else {
      const s = layer.style;
      ctx.strokeStyle = s.colour;
      ctx.lineWidth = Math.min(s.weight || 2, 3);
      ctx.strokeRect(left + 2, top + 3, 16, 14);
    }
    ctx.fillStyle = INK;
    const label = wrap(ctx, layer.title, LEGEND_COLUMN - 36)[0];
    ctx.fillText(label, left + 28, top + 15);
  }
  return 26 + Math.ceil(layers.length / columns) * LEGEND_ROW;
}

function legendHeight(width) {
  const columns = Math.max(1, Math.floor(width / LEGEND_COLUMN));
  return 26 + Math.ceil(legendLayers().length / columns) * LEGEND_ROW;
}

/** The sheet as a canvas: with its text (PNG), or without title and footer (PDF's body). */
async function compose({ withText }) {
  const { htmlToImage } = await loadLibraries();
  const mapElement = document.getElementById("map");
  const { width, height } = mapElement.getBoundingClientRect();
  const snapshot = await htmlToImage.toCanvas(mapElement, {
    pixelRatio: SCALE,
    skipFonts: true,
    backgroundColor: "#f3f2f1",
    imagePlaceholder: TRANSPARENT,
    // Leaflet's own controls and popups are left out: the sheet draws its own.
    filter: (node) =>
      !node.classList ||
      !["leaflet-control-container", "leaflet-popup-pane", "leaflet-tooltip-pane"].some((c) => node.classList.contains(c)),
  });
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = `12px ${FONT}`;
  const footerLines = withText ? wrap(measure, `${attribution()} Map made on ${today()}.`, width - 2 * MARGIN) : [];
  const top = withText ? TITLE_BAND : 0;
  const legendTop = top + height + MARGIN;
  const footerTop = legendTop + legendHeight(width - 2 * MARGIN) + MARGIN / 2;
  const total = footerTop + (withText ? footerLines.length * 16 + MARGIN : 0);

  const canvas = document.createElement("canvas");
  canvas.width = Math.round(width * SCALE);
  canvas.height = Math.round(total * SCALE);
  const ctx = canvas.getContext("2d");
  ctx.scale(SCALE, SCALE);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, total);
  if (withText) {
    ctx.fillStyle = INK;
    ctx.font = `bold 24px ${FONT}`;
    ctx.textBaseline = "alphabetic";
    ctx.fillText(wrap(ctx, mapTitle(), width - 2 * MARGIN)[0], MARGIN, 36);
  }
  ctx.drawImage(snapshot, 0, top, width, height);
  ctx.strokeStyle = INK;
  ctx.lineWidth = 1;
  ctx.strokeRect(0.5, top + 0.5, width - 1, height - 1);
  drawNorthArrow(ctx, width - MARGIN - 40, top + MARGIN);
  drawScaleBar(ctx, MARGIN, top + height - MARGIN);
  await drawLegend(ctx, MARGIN, legendTop, width - 2 * MARGIN);
  if (withText) {
    ctx.fillStyle = INK;
    ctx.font = `12px ${FONT}`;
    footerLines.forEach((line, i) => ctx.fillText(line, MARGIN, footerTop + 12 + i * 16));
  }
  return canvas;
}

function fileName(extension) {
  const slug = mapTitle().toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  return `${slug}-${new Date().toISOString().slice(0, 10)}.${extension}`;
}

function save(blob, extension) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName(extension);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function downloadPng() {
  const canvas = await compose({ withText: true });
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  save(blob, "png");
}

async function downloadPdf() {
  const { jsPDF } = await loadLibraries();
  const body = await compose({ withText: false });
  const landscape = body.width >= body.height * 0.9;
  const doc = new jsPDF({ orientation: landscape ? "landscape" : "portrait", unit: "mm", format: "a4" });
  const pageWidth = doc.internal.pageSize.getWidth();
  const pageHeight = doc.internal.pageSize.getHeight();
  const margin = 10;
  const title = mapTitle();
  doc.setProperties({ title, subject: `${title}, made on ${today()}`, creator: `${config.council.name}` });
  doc.setFont("helvetica", "bold");
  doc.setFontSize(16);
  doc.text(title, margin, margin + 6);
  doc.setFont("helvetica", "normal");
  doc.setFontSize(8);
  const footer = doc.splitTextToSize(`${attribution()} Map made on ${today()}.`, pageWidth - 2 * margin);
  const footerHeight = footer.length * 3.5;
  const top = margin + 11;
  const room = { width: pageWidth - 2 * margin, height: pageHeight - top - margin - footerHeight - 2 };
  const ratio = Math.min(room.width / body.width, room.height / body.height);
  const [w, h] = [body.width * ratio, body.height * ratio];
  doc.addImage(body.toDataURL("image/png"), "PNG", margin + (room.width - w) / 2, top, w, h);
  doc.text(footer, margin, top + h + 5);
  save(doc.output("blob"), "pdf");
}

async function run(kind, task) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => b.setAttribute("aria-disabled", "true"));
  status.textContent = `Preparing the ${kind}…`;
  form.dataset.busy = "true";
  try {
    await task();
    status.textContent = `The ${kind} of this view has been downloaded.`;
  } catch (error) {
    status.textContent = `The ${kind} could not be made: ${error.message || error}`;
  } finally {
    buttons.forEach((b) => b.removeAttribute("aria-disabled"));
    delete form.dataset.busy;
  }
}

if (form) {
  form.addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("print-png").addEventListener("click", () => {
    if (!form.dataset.busy) run("PNG", downloadPng);
  });
  document.getElementById("print-pdf").addEventListener("click", () => {
    if (!form.dataset.busy) run("PDF", downloadPdf);
  });
}
