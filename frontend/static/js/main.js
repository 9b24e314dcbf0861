// The map page's modules. mappage.js is the page's map (made by the core, map.js), its
// layers and the URL state; each other module adds one capability and imports what it needs
// from it.
import "./mappage.js";
import "./search.js";
import "./controls.js";
import "./table.js";
import "./print.js";
import "./planning.js";
import "./report-links.js";
