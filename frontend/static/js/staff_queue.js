// The queue's map: the filtered reports (GeoJSON of /staff/reports.geojson) over the
// borough boundary, each a link to its report. Text goes in through textContent only.
const element = document.getElementById("queue-map");
const STATE_COLOURS = { open: "#d4351c", investigating: "#f47738", action_scheduled: "#ffdd00",
  in_progress: "#1d70b8", fixed: "#00703c" };

function popup(properties) {
  const box = document.createElement("div");
  const link = document.createElement("a");
  link.className = "govuk-link";
  link.href = `/staff/reports/${encodeURIComponent(properties.reference)}`;
  link.textContent = properties.reference;
  const title = document.createElement("p");
  title.className = "govuk-body-s";
  title.textContent = properties.title;
  box.append(link, title);
  return box;
}

async function draw() {
  const map = L.map(element, { zoomSnap: 0.5 });
  const boundary = element.dataset.boundary;
  let bounds = null;
  if (boundary) {
    const answer = await fetch(`/ogc/collections/${encodeURIComponent(boundary)}/items?limit=10`);
    if (answer.ok) {
      const outline = L.geoJSON(await answer.json(), {
        style: { color: "#0b0c0c", weight: 2, fill: false },
        interactive: false,
      }).addTo(map);
      bounds = outline.getBounds();
    }
  }
  const reports = await (await fetch(element.dataset.geojson)).json();
  const markers = L.geoJSON(reports, {
    pointToLayer: (feature, latlng) => L.circleMarker(latlng, {
      radius: 6, weight: 1, color: "#0b0c0c", fillOpacity: 0.9,
      fillColor: STATE_COLOURS[feature.properties.state] ?? "#505a5f",
    }),
    onEachFeature: (feature, layer) => layer.bindPopup(() => popup(feature.properties)),
  }).addTo(map);
  if (reports.features.length) bounds = markers.getBounds();
  if (bounds?.isValid()) map.fitBounds(bounds, { maxZoom: 16, animate: false });
  else map.setView([0, 0], 2);
  element.dataset.ready = "true";
}

if (element && window.L) draw();
