// The base map. A configured XYZ tile service (OS Maps API, OpenStreetMap…) when there is
// one and it answers; otherwise, or when its tiles fail before any has loaded, a plain map
// drawn from our own layers (those the council profile names in basemap_layers), so that
// the map still reads as a map with no internet at all. Used by the core (map.js createMap).
import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { fetchFeatures } from "./features.js";

const MAX_ERRORS_BEFORE_LOAD = 4; // tile errors tolerated before any tile has loaded
// How the built-in base map draws the layers the council profile names (basemap_layers),
// by geometry: light areas, blue lines, small green dots.
const BUILTIN_STYLE = {
  Polygon: { style: { color: "#8e8c86", weight: 1, fill: true, fillColor: "#ffffff", fillOpacity: 0.35 } },
  LineString: { style: { color: "#9ec3e6", weight: 2, fill: false } },
  Point: { point: { radius: 3, stroke: false, fillColor: "#a9c98a", fillOpacity: 0.9 } },
};

function builtinPane(map) {
  if (!map.getPane("basemap")) {
    const pane = map.createPane("basemap");
    pane.style.zIndex = 150; // below the tiles (200) and every overlay (400 and up)
    pane.style.pointerEvents = "none";
  }
  return "basemap";
}

/** Draws the base map from our own layers (the council profile's basemap_layers). */
async function useBuiltin(map, config) {
  const container = map.getContainer();
  container.dataset.basemap = "builtin";
  container.classList.add("app-map--builtin");
  const pane = builtinPane(map);
  const builtin = L.layerGroup().addTo(map);
  const drawn = config.council.basemapLayers.map(
    async (id) => {
      const layer = config.layers.find((l) => l.id === id);
      const { style, point } = BUILTIN_STYLE[layer.geometry.replace("Multi", "")];
      const { features } = await fetchFeatures(layer, { ogcUrl: config.ogcUrl });
      L.geoJSON(
        { type: "FeatureCollection", features },
        {
          pane,
          interactive: false,
          style: () => ({ ...style, pane, interactive: false, className: `app-basemap-${id}` }),
          pointToLayer: (_feature, latlng) =>
            L.circleMarker(latlng, { ...point, pane, interactive: false, className: `app-basemap-${id}` }),
        },
      ).addTo(builtin);
    },
  );
  const results = await Promise.allSettled(drawn);
  container.dataset.basemapDrawn = String(results.filter((r) => r.status === "fulfilled").length);
  return builtin;
}

function useTiles(map, config, onStatus) {
  const { url, attribution, maxZoom } = config.basemap;
  map.getContainer().dataset.basemap = "tiles";
  let loaded = 0;
  let errors = 0;
  const tiles = L.tileLayer(url, {
    attribution: attribution || "",
    maxNativeZoom: maxZoom,
    maxZoom: Math.max(maxZoom, map.getMaxZoom()),
    crossOrigin: true,
  });
  tiles.on("tileload", () => {
    loaded += 1;
  });
  tiles.on("tileerror", () => {
    errors += 1;
    if (!loaded && errors > MAX_ERRORS_BEFORE_LOAD && map.hasLayer(tiles)) {
      map.removeLayer(tiles);
      onStatus("The base map could not be loaded, so a simple map drawn from our own layers is shown.");
      useBuiltin(map, config);
    }
  });
  tiles.addTo(map);
}

/** Adds the base map to `map`: the configured tiles, else (or when they fail) our own. */
export function addBasemap(map, config, onStatus = () => {}) {
  if (config.basemap?.url) useTiles(map, config, onStatus);
  else useBuiltin(map, config);
}
