// Links in map popups to the fault reports: a published report's page, and "Report a
// fault with this street light" on the assets residents report (see reports.yml).
import { addPopupSection } from "./map.js";
import { config, map } from "./mappage.js";

const assets = config.reportAssets || {};

function link(href, text) {
  const a = document.createElement("a");
  a.className = "govuk-link app-popup__action";
  a.href = href;
  a.textContent = text;
  return a;
}

addPopupSection((layer, feature) => {
  const props = feature.properties || {};
  if (layer.id.startsWith("reports_") && props.reference) {
    return link(`/reports/${encodeURIComponent(props.reference)}`, "View this report");
  }
  const asset = assets[layer.id];
  const id = asset && props[asset.idField];
  if (!id || window.location.pathname === "/report") return null;
  const centre = map.getCenter();
  const params = new URLSearchParams({
    category: asset.category, asset_id: String(id),
    lat: centre.lat.toFixed(6), lng: centre.lng.toFixed(6), zoom: String(Math.max(map.getZoom(), 18)),
  });
  return link(`/report?${params}`, `Report a fault with this ${asset.name}`);
});
