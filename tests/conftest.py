"""Real components for the tests: a Tansu broker, a ClickHouse server, the chDB engine.

Nothing here stands in for Kafka or ClickHouse: the code under test talks to the real thing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client

from driftline.broker import EmbeddedBroker, free_port, wait_for_port
from driftline.store import Store
from driftline.store.embedded import EmbeddedBackend
from driftline.store.server import ServerBackend

CLICKHOUSE_CONFIG = Path("/etc/clickhouse-server/config.xml")


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A fresh, empty broker per test (Tansu starts in ~50 ms)."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's clickhouse-server (18.16) on a loopback port; yields host:port."""
    binary = shutil.which("clickhouse-server")
    if binary is None or not CLICKHOUSE_CONFIG.exists():
        pytest.fail(
            "clickhouse-server is not installed: `make test` installs it "
            "(apt-get install clickhouse-server)"
        )
    root = tmp_path_factory.mktemp("clickhouse")
    port = free_port()
    overrides = {
        "path": f"{root}/data/",
        "tmp_path": f"{root}/tmp/",
        "user_files_path": f"{root}/user_files/",
        "format_schema_path": f"{root}/format_schemas/",
        "tcp_port": str(port),
        "http_port": str(free_port()),
        "interserver_http_port": str(free_port()),
        "listen_host": "127.0.0.1",
        "logger.log": f"{root}/server.log",
        "logger.errorlog": f"{root}/server.err.log",
        "logger.level": "warning",
    }
    args = [binary, f"--config-file={CLICKHOUSE_CONFIG}", "--"]
    args += [f"--{key}={value}" for key, value in overrides.items()]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                Client("127.0.0.1", port=port).execute("SELECT 1")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def clickhouse_url(clickhouse_server: str) -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    host, port = clickhouse_server.split(":")
    admin = Client(host, port=int(port))
    admin.execute(f"CREATE DATABASE {database}")
    try:
        yield f"clickhouse://default:@{clickhouse_server}/{database}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.disconnect()


@pytest.fixture(params=["embedded", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store on each backend: chDB in a temp directory, and a real ClickHouse server."""
    if request.param == "embedded":
        backend: EmbeddedBackend | ServerBackend = EmbeddedBackend(tmp_path / "chdb")
    else:
        backend = ServerBackend(request.getfixturevalue("clickhouse_url"))
    s = Store(backend)
    s.init_schema()
    try:
        yield s
    finally:
        s.close()
