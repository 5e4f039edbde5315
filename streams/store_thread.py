"""The worker process's one thread for blocking store calls.

chDB and clickhouse-driver calls block, so they run off the event loop; on one thread, so the
windows, raw predictions, labels and quality passes reach the store in the order they were
handed over. Built once per worker process (``streams/app.py``) and handed to every part that
writes or reads the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class StoreThread:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="driftline-store")

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the store thread, after everything handed over before it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
