"""Helpers the tests import (``from helpers import wait_until``); fixtures stay in conftest.py.

``helpers.webhook_receiver`` is a real HTTP receiver for webhook deliveries,
``helpers.retrainer_synthetic`` the retrainer tests' seeded tables. Found the way conftest.py
is: pytest puts tests/, conftest.py's folder, on ``sys.path``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from driftline.events import EventLimits
from driftline.store import Store, Stores
from streams.windowing import WindowConfig, WindowManager
from streams.worker import PredictionWorker, SendDeadLetter


async def refuse_dead_letters(key: bytes | None, value: bytes) -> None:
    # pytest.fail raises past the worker's own error handling (a BaseException): a test that
    # expects no dead letter fails, instead of the letter being retried
    pytest.fail(f"no dead letter expected here, got {value[:200]!r}")


def in_process_worker(
    store: Store,
    *,
    send: SendDeadLetter = refuse_dead_letters,
    log_ids: dict[str, str] | None = None,
    restored: bool = True,
    **options: Any,
) -> PredictionWorker:
    """The stream worker driven directly by a test (no Faust, no broker) on a real store:
    10 s windows that only close when asked to. ``restored``: ready to process at once, as
    after its partitions' offsets were loaded."""
    worker = PredictionWorker(
        Stores(store),
        WindowManager(WindowConfig(window_seconds=10, idle_close_s=3600)),
        EventLimits(),
        log_ids or {},
        send,
        **options,
    )
    if restored:
        worker.partitions.ready.set()
    return worker


def get_json(url: str) -> Any:
    """GET ``url``'s JSON body; None while the server is not answering (or answers an error)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())
    except OSError:
        return None


def wait_until(
    condition: Callable[[], object], timeout: float = 60.0, what: str = "condition"
) -> object:
    """Poll until ``condition()`` is truthy; fail the test with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def consume(
    bootstrap: str, topic: str, expected_events: int
) -> list[tuple[bytes, list[dict[str, Any]]]]:
    """(key, events) of each message on ``topic``, read from the start until at least
    ``expected_events`` events arrived (or 30 s passed)."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=500
    )
    messages: list[tuple[bytes, list[dict[str, Any]]]] = []
    deadline = time.monotonic() + 30
    while sum(len(v) for _, v in messages) < expected_events and time.monotonic() < deadline:
        messages.extend((m.key, orjson.loads(m.value)) for m in consumer)
    consumer.close()
    return messages


def worker_task_dump(process: Any, log: Any, wait_s: float = 3.0, most: int = 150) -> str:
    """What a stuck ``driftline worker``'s asyncio tasks wait on: mode's task dump (SIGUSR1),
    written to the worker's ``log`` (a Path), cut to its task headers and the frames in this
    project's code with their lines, for a failure message (the full dump is ~1,000 lines)."""
    import signal

    before = log.stat().st_size
    process.send_signal(signal.SIGUSR1)
    time.sleep(wait_s)
    lines = log.read_bytes()[before:].decode(errors="replace").splitlines()
    ours = ("/streams/", "/driftline/", "/launch/")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line.lstrip().startswith("TASK ") or (
            line.lstrip().startswith("File ") and any(part in line for part in ours)
        ):
            kept += lines[i : i + 2]
    return "\n".join(kept[:most]) or "(no task dump in the worker's log)"


def store_and_broker_state(
    store: Store, table: str, where: str, bootstrap: str, group: str, topics: list[str]
) -> str:
    """For a failure message: the matching rows of ``table`` (with and without FINAL, and their
    parts), the consumer group's committed offsets, and the offset and head of every message on
    ``topics``: where events went that a worker took but a test does not find."""
    from kafka import TopicPartition

    run = store.backend.execute
    lines = [
        f"{table} FINAL rows where {where}: "
        + repr(run(f"SELECT count() FROM {table} FINAL WHERE {where}")),
        f"{table} rows (no FINAL): "
        + repr(run(f"SELECT id, ts, window_start, stored_ms, _part FROM {table} WHERE {where}")),
        f"{table} parts: "
        + repr(
            run(
                "SELECT partition, name, rows, active FROM system.parts "
                f"WHERE database = currentDatabase() AND table = '{table}'"
            )
        ),
    ]
    group_reader = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=2000
    )
    try:
        for topic in topics:
            tps = [
                TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())
            ]
            committed = {tp.partition: group_reader.committed(tp) for tp in tps}
            lines.append(f"{topic}: committed by {group}: {committed}")
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            lines += [f"  [{m.partition}] {m.offset}: {m.value[:80]!r}" for m in reader]
    finally:
        group_reader.close()
        reader.close()
    return "\n".join(lines)
