"""The import pipeline: source files (GeoJSON, GeoPackage, Shapefile, CSV, GML) into
PostGIS, atomically, with provenance in ``app.layer_versions``."""
