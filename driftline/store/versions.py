"""Write versions for the ReplacingMergeTree tables that rows are updated in (alarm state,
retraining jobs, tags): the row with the largest version wins at merge and under FINAL."""

from __future__ import annotations

import threading
import time


class WriteVersions:
    """Strictly increasing versions, nanoseconds since the epoch where the clock allows:
    two writes in one nanosecond, a delete and a re-add, stay ordered (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last
