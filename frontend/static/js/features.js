// Reading a layer's features from the OGC API (/ogc), page by page.

const PAGE_SIZE = 1000;
const MAX_FEATURES = 5000; // per layer and view; beyond this the map asks to zoom in

/**
 * The features of `layer` in `bbox` (CRS84 [west, south, east, north], or null: all),
 * matching `filter` (CQL2 text) when given. Follows the API's "next" links until the view is
 * complete or MAX_FEATURES is reached; `truncated` says whether it was.
 */
export async function fetchFeatures(layer, { bbox = null, signal, filter = null, ogcUrl = "/ogc" } = {}) {
  let url = `${ogcUrl}/collections/${encodeURIComponent(layer.id)}/items?f=json&limit=${PAGE_SIZE}`;
  if (bbox) url += `&bbox=${bbox.map((n) => n.toFixed(6)).join(",")}`;
  if (filter) url += `&filter=${encodeURIComponent(filter)}`;
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
