"""The import pipeline: source files (GeoJSON, GeoPackage, Shapefile, CSV, GML, KML) into
PostGIS, atomically, with provenance in ``app.layer_versions``."""

import os
from contextlib import suppress

import pyarrow as pa
from pyproj import datadir

from mapserver.settings import PROJECT_DIR

# Transformation grids a council adds (e.g. OSTN15's uk_os_OSTN15_NTv2_OSGBtoETRS.tif, which
# no package here ships) go in data/proj/, which PROJ searches after its own data.
datadir.append_data_dir(str(PROJECT_DIR / "data" / "proj"))

# Arrow's default allocator (mimalloc) maps its memory as transparent huge pages, each
# zeroed whole when first touched: with jemalloc a 150,000-polygon load spends 0.25 s less
# CPU there and takes 0.05 s less (the system allocator does as well). Arrow's own
# ARROW_DEFAULT_MEMORY_POOL, when set, still chooses.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    with suppress(NotImplementedError):  # a pyarrow built without jemalloc keeps its default
        pa.set_memory_pool(pa.jemalloc_memory_pool())
