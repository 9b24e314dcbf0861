// The map page's modules. map.js is the core (the map, layers, URL state); each other
// module adds one capability and imports what it needs from the core.
import "./map.js";
import "./basemap.js";
import "./search.js";
import "./controls.js";
import "./table.js";
import "./print.js";
import "./planning.js";
import "./report-links.js";
