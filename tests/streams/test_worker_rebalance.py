"""Two workers in one consumer group on a real broker: a rebalance mid-window loses and
double-counts nothing."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable

import orjson
from helpers import in_process_worker, wait_until
from kafka import KafkaProducer

from driftline import topics
from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.store import Store
from driftline.store.server import ServerBackend
from driftline.topics import topic_partitions

BASE = 1_700_000_000
MODELS = [f"m{i}" for i in range(8)]
StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]


def test_a_worker_joining_mid_window_rebalances_without_loss_or_double_counting(
    broker: EmbeddedBroker,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    clickhouse_url: str,
) -> None:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=4, labels=1))
    env = {**worker_env, "DRIFTLINE_PREDICTIONS_PARTITIONS": "4"}
    store = Store(ServerBackend(clickhouse_url))
    store.init_schema()
    raw = KafkaProducer(bootstrap_servers=broker.bootstrap)

    def send(ts: int, n: int) -> None:
        for model in MODELS:
            events = [{"model": model, "features": {"x": 1.0}, "prediction": 1.0, "ts": ts}] * n
            raw.send(topics.PREDICTIONS, key=model.encode(), value=orjson.dumps(events))
        raw.flush()

    def count(model: str) -> float | None:
        points = store.metrics(model, name="traffic.count", start=BASE, end=BASE + 1)
        return points[0].value if points else None

    start_worker(env)
    send(BASE + 1, 30)
    send(BASE + 11, 1)  # watermark BASE+9 (lateness 2 s): every window stays open
    time.sleep(8)  # the first worker joins (~3 s) and folds these events into open windows
    for _ in range(40):  # a backlog, so that worker 1 is mid-batch when the rebalance hits
        send(BASE + 2, 250)
    second = start_worker(env)  # joins the group: every partition is revoked and reassigned
    send(BASE + 25, 1)  # closes the first window of every model
    wait_until(
        lambda: all(count(m) is not None for m in MODELS),
        timeout=90,
        what="the first window of every model",
    )
    assert {m: count(m) for m in MODELS} == {m: 10_030.0 for m in MODELS}
    late = store.metrics("m0", name="traffic.late")
    assert sum(p.value for p in late) == 0
    assert second.poll() is None  # both workers still running
    raw.close()


def test_events_fetched_before_a_rebalance_are_left_to_the_replay() -> None:
    from types import SimpleNamespace

    from streams.app import is_current

    app = SimpleNamespace(consumer_generation_id=7)
    assert is_current(SimpleNamespace(generation_id=7), app)  # type: ignore[arg-type]
    assert not is_current(SimpleNamespace(generation_id=6), app)  # type: ignore[arg-type]
    assert is_current(SimpleNamespace(generation_id=None), app)  # type: ignore[arg-type]


def test_a_batch_taken_before_a_revocation_is_not_folded_in_after_it(server_store: Store) -> None:
    """The worker yields to the consumer between chunks of a batch; a revocation landing there
    leaves the rest of the batch to the replay from the committed offset."""
    worker = in_process_worker(server_store, max_events=100)
    tp = (topics.PREDICTIONS, 0)
    events = [{"model": "m", "features": {"x": 1.0}, "prediction": 1.0, "ts": BASE}] * 100
    batch = [(tp, offset, float(BASE), orjson.dumps(events)) for offset in range(5)]

    async def scenario() -> None:
        asyncio.get_running_loop().call_soon(worker.forget, [tp])  # at the first yield
        await worker.process(batch)

    asyncio.run(scenario())
    assert worker.stats.events == 100  # the first chunk, then the revocation
    assert worker.stats.stale_dropped == 4
    assert "m" not in worker.manager.models  # forgotten, and nothing folded in since
    worker.close()
