"""A child process the project starts for itself (embedded broker, throwaway ClickHouse)."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self


class ManagedProcess:
    """Start/stop plus context management; subclasses start ``self._process`` in ``start``."""

    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate, then kill if it has not exited within ``timeout_s``."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
