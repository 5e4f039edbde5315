"""A real Prometheus (Debian's ``prometheus`` package, ``make system-deps``) for the tests.

It scrapes the given targets every second, keeps its data in a temp directory and listens on a
free loopback port; :meth:`LocalPrometheus.query` asks its HTTP API for an instant value.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from driftline.broker import free_port
from helpers import wait_until


class LocalPrometheus:
    def __init__(self, directory: Path, targets: list[str]) -> None:
        self.directory = directory
        self.targets = targets
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalPrometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError(
                "no prometheus binary: install Debian's package (make system-deps)"
            )
        config = self.directory / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "driftline", "static_configs": [{"targets": self.targets}]}
                    ],
                }
            )
        )
        log = (self.directory / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=60, what="Prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            log = (self.directory / "prometheus.log").read_text()[-2000:]
            raise RuntimeError(f"prometheus exited with {self._process.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def query(self, expression: str) -> float | None:
        """The value of an instant query that yields one series; None while it yields none
        (or several)."""
        try:
            result = self.series(expression)
        except OSError:
            return None
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def series(self, expression: str) -> list[dict[str, Any]]:
        """Every series of an instant query; an expression Prometheus refuses is an error
        (``urllib.error.HTTPError``, 400, with Prometheus's reason)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = json.loads(reply.read())
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
