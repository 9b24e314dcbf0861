// The report page: choose the place (pin, asset, search or "use my location") on the map
// core (map.js), see open reports of the same category nearby ("Is this it?", with "me
// too"), then send the report with an idempotency key, retried on a network failure.
// Every piece of user text is put in the page with textContent, never as HTML.
import { L, config, map, ready } from "./mappage.js";
import "./search.js";
import "./controls.js";
import "./report-links.js";

const settings = config.report;
const categories = new Map(settings.categories.map((c) => [c.id, c]));
const form = document.getElementById("report-form");
const field = (id) => document.getElementById(id);
const categorySelect = field("category");
const locationStatus = field("location-status");
const assetStatus = field("asset-status");
const nearbyPanel = field("nearby");
const nearbyList = field("nearby-list");
const submitButton = field("submit-report");
const submitStatus = field("submit-status");

// The personal details a description should not publish (as reports/domain.py warns).
const EMAIL_LIKE = /[\w.+-]+@[\w-]+\.[\w.-]+/;
const PHONE_LIKE = /(?<!\d)(?:\+44\s?|0)(?:\d[\s-]?){9,10}(?!\d)/;
const RETRIES = 3;

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function deviceId() {
  try {
    let id = localStorage.getItem("report-device");
    if (!id) {
      id = randomId();
      localStorage.setItem("report-device", id);
    }
    return id;
  } catch {
    return ""; // storage blocked: the address limit still applies
  }
}

// One key per report being written: a retry or a double click sends the same one.
field("idempotency_key").value = randomId();
field("device_id").value = deviceId();

// --- the place ---------------------------------------------------------------------------

let pin = null;
let checking = null;
let lastFeatureEvent = null;
const pinIcon = L.divIcon({ className: "app-pin", html: "", iconSize: [22, 22], iconAnchor: [11, 22] });

function setLocationMessage(text, problem = false) {
  locationStatus.textContent = text;
  locationStatus.classList.toggle("app-location--problem", problem);
}

function placePin(latlng) {
  if (!pin) {
    pin = L.marker(latlng, { draggable: true, icon: pinIcon, title: "The problem is here", alt: "Pin", keyboard: true })
      .addTo(map)
      .on("dragend", () => choosePlace(pin.getLatLng(), null));
  } else {
    pin.setLatLng(latlng);
  }
}

/** A place was chosen: put the pin there and ask the service about it. */
async function choosePlace(latlng, assetId) {
  placePin(latlng);
  field("asset_id").value = assetId || "";
  field("lon").value = "";
  field("lat").value = "";
  await check(latlng, assetId);
}

async function check(latlng, assetId) {
  checking?.abort();
  checking = new AbortController();
  const params = new URLSearchParams({ lon: latlng.lng.toFixed(7), lat: latlng.lat.toFixed(7) });
  if (categorySelect.value) params.set("category", categorySelect.value);
  if (assetId) params.set("asset_id", assetId);
  let answer;
  try {
    const response = await fetch(`/api/reports/check?${params}`, { signal: checking.signal });
    answer = await response.json();
    if (!response.ok) {
      setLocationMessage(answer.detail || "That place could not be checked.", true);
      return;
    }
  } catch (error) {
    if (error.name !== "AbortError") setLocationMessage("That place could not be checked. Try again.", true);
    return;
  }
  if (!answer.inside) {
    setLocationMessage(answer.message, true);
    form.dataset.located = "outside";
    renderNearby([]);
    return;
  }
  const where = L.latLng(answer.lat, answer.lon);
  placePin(where);
  if (!map.getBounds().contains(where)) map.panTo(where);
  field("lon").value = String(answer.lon);
  field("lat").value = String(answer.lat);
  field("asset_id").value = answer.asset_id || "";
  form.dataset.located = "inside";
  setLocationMessage(`Place chosen: ${where.lat.toFixed(5)}, ${where.lng.toFixed(5)}. Drag the pin to move it.`);
  const category = categories.get(categorySelect.value);
  if (answer.asset_id && category) {
    const how = answer.snapped ? ` (the nearest, within ${settings.snapMetres} m of your pin)` : "";
    assetStatus.textContent = `${capitalise(category.assetName)} ${answer.asset_id} chosen${how}.`;
  } else {
    assetStatus.textContent = "";
  }
  renderNearby(answer.nearby);
}

function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function renderNearby(reports) {
  nearbyList.replaceChildren();
  nearbyPanel.hidden = reports.length === 0;
  for (const report of reports) {
    const item = document.createElement("li");
    item.className = "app-nearby__item";
    const link = document.createElement("a");
    link.className = "govuk-link";
    link.href = report.url;
    link.textContent = report.title;
    const meta = document.createElement("span");
    meta.className = "govuk-body-s app-nearby__meta";
    const asset = report.asset_id ? `, ${report.asset_id}` : "";
    meta.textContent = ` ${report.reference}: ${report.state_label}, ${report.distance_m} m away${asset}; ${report.interest_count} others reporting it.`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "govuk-button govuk-button--secondary app-metoo";
    button.textContent = "Me too";
    button.setAttribute("aria-label", `Me too: ${report.title}`);
    button.addEventListener("click", () => meToo(report, button));
    item.append(link, meta, document.createElement("br"), button);
    nearbyList.append(item);
  }
}

// Staff signed in and reporting too: their session's writes carry its CSRF token.
function csrfHeader() {
  const token = document.querySelector('meta[name="csrf-token"]')?.content;
  return token ? { "X-CSRF-Token": token } : {};
}

async function meToo(report, button) {
  button.disabled = true;
  const body = new FormData();
  body.set("email", field("metoo-email").value);
  body.set("device_id", field("device_id").value);
  const status = field("metoo-status");
  try {
    const response = await fetch(`/api/reports/${encodeURIComponent(report.reference)}/me-too`, { method: "POST", body, headers: csrfHeader() });
    const answer = await response.json();
    if (!response.ok) {
      status.textContent = answer.detail;
      button.disabled = false;
      return;
    }
    status.replaceChildren(
      document.createTextNode(`Thank you: you are now counted on ${report.reference}${answer.subscribed ? " and we will email you when it changes" : ""}. `),
      Object.assign(document.createElement("a"), { className: "govuk-link", href: report.url, textContent: "Follow the report" }),
    );
    button.textContent = "Counted";
  } catch {
    status.textContent = "That did not work. Try again.";
    button.disabled = false;
  }
}

// --- the category and its questions ------------------------------------------------------

function showQuestions() {
  for (const block of document.querySelectorAll(".app-questions")) {
    const on = block.dataset.category === categorySelect.value;
    block.hidden = !on;
    block.querySelectorAll("input").forEach((input) => { input.disabled = !on; });
  }
}

categorySelect.addEventListener("change", () => {
  showQuestions();
  const category = categories.get(categorySelect.value);
  if (!category?.assetLayer) assetStatus.textContent = "";
  if (pin) choosePlace(pin.getLatLng(), null);
});

// --- the map: pins, assets, search, location ---------------------------------------------

map.on("featureclick", (event) => {
  if (event.layer.id === "reports_public") {
    lastFeatureEvent = event.originalEvent; // a published report: its popup says what it is
    return;
  }
  // An asset picks itself (and its category) unless another kind of problem is chosen:
  // then the click is just a pin for that problem.
  const current = categories.get(categorySelect.value);
  const assetOf = current?.assetLayer === event.layer.id ? current
    : !current ? [...categories.values()].find((c) => c.assetLayer === event.layer.id) : null;
  if (!assetOf) return;
  lastFeatureEvent = event.originalEvent;
  if (current !== assetOf) {
    categorySelect.value = assetOf.id;
    showQuestions();
  }
  choosePlace(event.latlng, String(event.feature.properties[assetOf.assetIdField] ?? "") || null);
});

map.on("click", (event) => {
  if (event.originalEvent && event.originalEvent === lastFeatureEvent) return;
  choosePlace(event.latlng, null);
});
map.on("placefound", (event) => choosePlace(event.latlng, null));
map.on("located", (event) => choosePlace(event.latlng, null));

field("use-location").addEventListener("click", () => {
  if (!("geolocation" in navigator)) {
    setLocationMessage("This browser cannot share your location. Search for the place instead.", true);
    return;
  }
  setLocationMessage("Finding your location…");
  navigator.geolocation.getCurrentPosition(
    (position) => {
      const latlng = L.latLng(position.coords.latitude, position.coords.longitude);
      map.setView(latlng, 18);
      choosePlace(latlng, null);
    },
    () => setLocationMessage("Your location is not available. Search for the place, or click the map.", true),
    { enableHighAccuracy: true, timeout: 15_000, maximumAge: 60_000 },
  );
});

// --- details and submit ------------------------------------------------------------------

const description = field("description");
let warnedFor = null;

function personalDetails(text) {
  const found = [];
  if (EMAIL_LIKE.test(text)) found.push("an email address");
  if (PHONE_LIKE.test(text)) found.push("a phone number");
  return found;
}

function updateWarning() {
  const found = personalDetails(description.value);
  field("personal-warning").hidden = found.length === 0;
  field("personal-warning-text").textContent = found.length
    ? `Your details look like they include ${found.join(" and ")}. They will be published: remove them unless you want everyone to see them.`
    : "";
  return found;
}
description.addEventListener("input", () => { if (warnedFor !== null) updateWarning(); });
description.addEventListener("blur", updateWarning);

function showErrors(errors) {
  const list = field("error-list");
  list.replaceChildren();
  document.querySelectorAll(".govuk-form-group--error").forEach((g) => g.classList.remove("govuk-form-group--error"));
  document.querySelectorAll(".govuk-error-message[id$='-error']").forEach((m) => { m.hidden = true; });
  const entries = Object.entries(errors);
  field("error-summary").hidden = entries.length === 0;
  for (const [name, message] of entries) {
    const target = { location: "search-input", answers: "category", limit: "submit-report", form: "submit-report" }[name] || name;
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `#${target}`;
    link.textContent = message;
    item.append(link);
    list.append(item);
    const group = field(`${name}-group`);
    const inline = field(`${name}-error`);
    if (group) group.classList.add("govuk-form-group--error");
    if (inline) {
      inline.hidden = false;
      inline.textContent = message;
    }
  }
  if (entries.length) field("error-summary").focus();
}

function checkForm() {
  const errors = {};
  if (form.dataset.located !== "inside") {
    errors.location = form.dataset.located === "outside" ? locationStatus.textContent : "Choose the place of the problem on the map, or search for it.";
  }
  if (!categorySelect.value) errors.category = "Choose what the problem is.";
  if (!field("title").value.trim()) errors.title = "Enter a summary of the problem.";
  const files = [...field("photos").files];
  if (files.length > settings.maxPhotos) errors.photos = `Add up to ${settings.maxPhotos} photos.`;
  else if (files.some((f) => f.size > settings.maxPhotoBytes)) errors.photos = "Each photo must be 10 MB or smaller.";
  if (field("show_name").checked && !field("name").value.trim()) errors.name = "Enter your name, or choose not to show it.";
  return errors;
}

async function send(body) {
  const headers = { "Idempotency-Key": field("idempotency_key").value, Accept: "application/json", ...csrfHeader() };
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(form.action, { method: "POST", body, headers });
    } catch (error) {
      // No answer (the network, or the server restarting): the same key makes it safe.
      if (attempt + 1 >= RETRIES) throw error;
      submitStatus.textContent = "Still sending…";
      await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
    }
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (submitButton.disabled) return; // a double click sends once
  const errors = checkForm();
  showErrors(errors);
  if (Object.keys(errors).length) return;
  if (updateWarning().length && warnedFor !== description.value) {
    warnedFor = description.value; // warned once for this text; sending again goes ahead
    field("personal-warning").scrollIntoView({ block: "center" });
    submitStatus.textContent = "Check the warning above, then send the report again.";
    return;
  }
  submitButton.disabled = true;
  submitStatus.textContent = "Sending your report…";
  try {
    const response = await send(new FormData(form));
    const answer = await response.json();
    if (response.ok) {
      submitStatus.textContent = `Report ${answer.reference} sent.`;
      window.location.assign(answer.confirmation_url || answer.url);
      return;
    }
    showErrors(answer.errors || { form: answer.detail || "The report could not be sent." });
    submitStatus.textContent = "";
  } catch {
    submitStatus.textContent = "Your report could not be sent: check your connection and send it again.";
  }
  submitButton.disabled = false;
});

// --- start -------------------------------------------------------------------------------

ready.then(() => {
  const preset = form.dataset.presetCategory;
  if (preset && categories.has(preset)) categorySelect.value = preset;
  showQuestions();
  const params = new URLSearchParams(window.location.search);
  if (form.dataset.presetAsset && params.has("lat") && params.has("lng")) {
    choosePlace(map.getCenter(), form.dataset.presetAsset);
  }
  form.dataset.ready = "true";
});
