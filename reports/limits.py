"""Per-address and per-device limits on what residents send (reports, updates, me-too):
a sliding hour each, on top of the service-wide request limit (mapserver/ratelimit.py).

Counted in this process, like the service-wide limit; a device is the random id the
report page keeps in the browser's storage, so one household behind one address and
one script rotating addresses are both held back.
"""

import math
import threading
import time
from collections import defaultdict, deque

WINDOW_S = 3600.0


class HourlyLimit:
    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def spend(self, *callers: str | None) -> int | None:
        """Count one submission for each caller (an address, a device); None when allowed,
        else the seconds until one more would be (nothing is counted then)."""
        now = time.monotonic()
        keys = [c for c in callers if c]
        with self._lock:
            waits = []
            for key in keys:
                seen = self._seen[key]
                while seen and now - seen[0] >= WINDOW_S:
                    seen.popleft()
                if len(seen) >= self.per_hour:
                    waits.append(WINDOW_S - (now - seen[0]))
            if waits:
                return max(1, math.ceil(max(waits)))
            for key in keys:
                self._seen[key].append(now)
        return None
