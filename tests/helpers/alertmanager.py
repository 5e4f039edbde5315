"""A real Alertmanager for the tests: Debian's prometheus-alertmanager on a loopback port,
with a temporary config and storage path, clustering off (``make system-deps`` installs it)."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import pytest

from driftline.broker import free_port

BINARIES = ("prometheus-alertmanager", "alertmanager")


def binary() -> str | None:
    for name in BINARIES:
        found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
        if found:
            return found
    return None


class Alertmanager:
    def __init__(self, workdir: Path, config: str) -> None:
        self.workdir = workdir
        self.config = config
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Alertmanager:
        path = binary()
        if path is None:
            pytest.fail("prometheus-alertmanager is not installed: make system-deps")
        config = self.workdir / "alertmanager.yml"
        config.write_text(self.config)
        (self.workdir / "data").mkdir(exist_ok=True)
        self._log = (self.workdir / "alertmanager.log").open("wb")
        self._process = subprocess.Popen(
            [
                path,
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # one instance: no gossip port, no peers
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                log = (self.workdir / "alertmanager.log").read_text()
                raise RuntimeError(f"alertmanager exited: {log[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("alertmanager did not become ready")
            time.sleep(0.2)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as reply:
            return orjson.loads(reply.read())

    def post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=orjson.dumps(body),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            return orjson.loads(reply.read() or b"null")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
            self._process = None
            self._log.close()

    def __enter__(self) -> Alertmanager:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
