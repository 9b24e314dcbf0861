"""pandas only when a load needs it (a batch whose values need parsing one by one).

pyarrow and pyogrio import pandas (pyogrio geopandas too) the first time they are used,
only to learn whether it is there: a fifth of a second, a sixth of a small load. In a
process that only loads (``mapserver load``), :func:`pandas_deferred` makes those imports
fail; pyarrow then imports pandas itself when it really needs it, and the loader asks for
it with :func:`pandas`. In such a process pyogrio's GeoDataFrame functions are off.
"""

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.abc import MetaPathFinder
from types import ModuleType

DEFERRED = {"pandas", "geopandas"}
_lock = threading.Lock()
_allowed = threading.Event()


class _Refuse(MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        top = name.partition(".")[0]
        if top in DEFERRED and not (top == "pandas" and _allowed.is_set()):
            raise ModuleNotFoundError(f"{top} is imported only when needed", name=name)
        return None


@contextmanager
def pandas_deferred() -> Iterator[None]:
    finder = _Refuse()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def pandas() -> ModuleType:
    """pandas, imported now if it was deferred."""
    with _lock:
        _allowed.set()
        try:
            import pandas
        finally:
            _allowed.clear()
    return pandas
