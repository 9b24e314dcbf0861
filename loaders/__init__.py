"""The import pipeline: source files (GeoJSON, GeoPackage, Shapefile, CSV, GML, KML) into
PostGIS, atomically, with provenance in ``app.layer_versions``."""

from pyproj import datadir

from mapserver.settings import PROJECT_DIR

# Transformation grids a council adds (e.g. OSTN15's uk_os_OSTN15_NTv2_OSGBtoETRS.tif, which
# no package here ships) go in data/proj/, which PROJ searches after its own data.
datadir.append_data_dir(str(PROJECT_DIR / "data" / "proj"))
