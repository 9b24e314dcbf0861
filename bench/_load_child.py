"""One load through our loader, in a process of its own so that load_bench.py can time it
and read its peak RSS. Reads DATABASE_URL from the environment; prints one JSON line."""

import argparse
import cProfile
import inspect
import json
import os
import time
from dataclasses import asdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalogue", type=Path, required=True)
    parser.add_argument("--layer", required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--reports", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the load here")
    args = parser.parse_args()

    # Imported here so that their cost shows up as start-up, apart from the load itself.
    from layers.catalogue import load_catalogue
    from loaders.pipeline import load_layer
    from mapserver.database import make_engine
    from mapserver.settings import Settings

    url = os.environ["DATABASE_URL"]
    catalogue = load_catalogue(args.catalogue)
    engine = make_engine(url, Settings(database_url=url))
    # With the catalogue (when the loader takes it) features are checked against the boundary.
    takes_catalogue = "catalogue" in inspect.signature(load_layer).parameters
    extra = {"catalogue": catalogue} if takes_catalogue else {}
    profiler = cProfile.Profile() if args.profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    result = load_layer(
        engine,
        catalogue.layer(args.layer),
        args.file,
        reports_dir=args.reports,
        run_by="load_bench",
        **extra,
    )
    seconds = time.perf_counter() - start
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    engine.dispose()
    counts = {k: v for k, v in asdict(result).items() if k.startswith("rows_")}
    print(json.dumps({"load_s": round(seconds, 3), "boundary": bool(extra), **counts}))


if __name__ == "__main__":
    main()
