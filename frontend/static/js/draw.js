// Drawing a site for an analysis: the measuring tool (measure.js) with a kind of shape — a
// point (one click), a line (Finish or Enter), a polygon (click the first point, Finish or
// Enter) or a land parcel (a point on it) — handing the shape over as GeoJSON (CRS84).
import { Measure } from "./measure.js";

const POINTS = { point: 1, parcel: 1, line: 2, polygon: 3 };

export class Draw extends Measure {
  constructor({ panel, announce, onEnd, onShape }) {
    super({ panel, announce, onEnd });
    this.onShape = onShape;
    this.kind = null;
  }

  begin(kind) {
    this.kind = kind;
    this.start();
    const what = { point: "the incident's location", parcel: "a point on the land parcel", line: "points along the line", polygon: "the corners of the area" }[kind];
    this.announce(`Select ${what} on the map (or, on the focused map, press Space at the cross-hair). ` +
      (POINTS[kind] > 1 ? "Enter or Finish ends the shape, Escape cancels." : "Escape cancels."));
  }

  add(latlng) {
    super.add(latlng);
    if (POINTS[this.kind] === 1) this.done();
  }

  finish() {
    if (this.kind === "polygon") {
      this.close();
      return;
    }
    if (this.points.length < POINTS[this.kind]) {
      this.announce(`Add at least ${POINTS[this.kind]} points, or press Escape to cancel.`);
      return;
    }
    this.done();
  }

  close() {
    if (this.kind !== "polygon") {
      this.finish();
      return;
    }
    super.close(); // stops once the shape has 3 points or more
    if (this.closed) this.emit();
  }

  done() {
    this.report({ final: true });
    this.stop();
    this.emit();
  }

  emit() {
    const coords = this.points.map((p) => [Number(p.lng.toFixed(7)), Number(p.lat.toFixed(7))]);
    let geometry;
    if (POINTS[this.kind] === 1) geometry = { type: "Point", coordinates: coords[0] };
    else if (this.kind === "line") geometry = { type: "LineString", coordinates: coords };
    else geometry = { type: "Polygon", coordinates: [[...coords, coords[0]]] };
    this.onShape(geometry, this.kind);
  }
}
