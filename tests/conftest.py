"""Real components for the tests: a Tansu broker, a ClickHouse server, the chDB engine.

Nothing here stands in for Kafka or ClickHouse: the code under test talks to the real thing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client

from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.store import Store, Stores
from driftline.store.embedded import EmbeddedBackend
from driftline.store.local_server import LocalClickHouseServer
from driftline.store.server import ServerBackend
from driftline.topics import topic_partitions


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A fresh, empty broker per test (Tansu starts in ~50 ms)."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's clickhouse-server (18.16) on a loopback port; yields host:port."""
    try:
        server = LocalClickHouseServer(tmp_path_factory.mktemp("clickhouse")).start()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    try:
        yield server.address
    finally:
        server.stop()


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


@pytest.fixture
def server_store(clickhouse_url: str) -> Iterator[Store]:
    """The store on a fresh database of the real ClickHouse server, schema created."""
    s = Store(ServerBackend(clickhouse_url))
    s.init_schema()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    """The process's stores over a fresh embedded engine (chDB in a temp directory)."""
    stores = Stores(Store(EmbeddedBackend(tmp_path / "chdb")))
    stores.store.init_schema()
    yield stores
    stores.close()


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


@pytest.fixture
def worker_env(broker: EmbeddedBroker, clickhouse_url: str) -> dict[str, str]:
    """Environment for a `driftline worker` on the test broker and ClickHouse server.

    The topics are created first, as `driftline up` does: a producer connecting earlier would
    have the broker auto-create them with its default partition count.
    """
    ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
    return {
        **os.environ,
        "DRIFTLINE_KAFKA_BOOTSTRAP": broker.bootstrap,
        "DRIFTLINE_STORE": "server",
        "DRIFTLINE_CLICKHOUSE_URL": clickhouse_url,
        "DRIFTLINE_CONSUMER_SESSION_TIMEOUT_S": "6",
        "DRIFTLINE_WINDOW_SECONDS": "10",
        "DRIFTLINE_ALLOWED_LATENESS_S": "2",
        "DRIFTLINE_IDLE_CLOSE_S": "300",
        "DRIFTLINE_PREDICTIONS_PARTITIONS": "1",
    }


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], subprocess.Popen[bytes]]]:
    """Start `driftline worker` processes; all are killed at the end of the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"worker-{len(processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "launch.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    # shown with a failed test's report (captured output): what each worker logged last
    for path in sorted(tmp_path.glob("worker-*.log")):
        lines = path.read_text(errors="replace").splitlines()
        print(f"--- {path.name}, last {min(len(lines), 80)} of {len(lines)} lines ---")
        print("\n".join(lines[-80:]))
