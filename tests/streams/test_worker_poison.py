"""A window the store rejects for its content is set aside; every other window goes on
(issue 13: one window with a far timestamp stopped storage for every model)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from helpers import in_process_worker

from alarms.rules import DEFAULT_RULES, RuleIndex
from alarms.state import AlertState, evaluate
from driftline import topics
from driftline.store import MetricPoint, Store
from streams.pipeline import SET_ASIDE_METRIC
from streams.windowing import Message

TP = (topics.PREDICTIONS, 0)
BASE = 1_700_000_000


def event(model: str, ts: float | str) -> dict[str, object]:
    return {"model": model, "features": {"x": 1.0}, "prediction": 0.5, "ts": ts}


def test_a_window_the_store_rejects_is_set_aside_and_the_others_are_stored(
    server_store: Store,
) -> None:
    store = server_store
    worker = in_process_worker(store, log_ids={topics.PREDICTIONS: "poison-test"})
    set_aside: list[MetricPoint] = []
    worker.on_set_aside.append(set_aside.append)
    # past the decoder's bounds (a bug, or an older worker's data): a window start that a
    # ClickHouse DateTime cannot hold, between two healthy models' windows
    messages = [
        Message(TP, 0, float(BASE), [event("healthy", BASE + 1)]),
        Message(TP, 1, float(BASE), [event("poison", 1e11)] * 3),
        Message(TP, 2, float(BASE), [event("also-healthy", BASE + 2)]),
    ]
    assert worker.manager.add(messages, now=time.time()) == []

    async def scenario() -> None:
        worker.manager.close_due(time.time() + 7200)  # idle: every window closes
        await worker.pipeline.store_closed()

    asyncio.run(scenario())
    worker.close()
    for model in ("healthy", "also-healthy"):
        assert [p.value for p in store.metrics(model, name="traffic.count")] == [1.0]
    [record] = store.windows_set_aside()
    assert (record.model, record.window_start, record.events) == ("poison", 10**11, 3)
    assert "TypeMismatchError" in record.reason
    assert worker.stats.windows_set_aside == 1
    assert worker.manager.unstored == []
    assert worker.manager.committable() == {TP: 3}  # nothing is held back any more
    [counted] = store.metrics("poison", name=SET_ASIDE_METRIC)
    assert counted.value == 1.0 and counted.window_start <= time.time()
    assert [p.metric for p in set_aside] == [SET_ASIDE_METRIC]


def test_a_store_that_fails_is_retried_not_set_aside(server_store: Store) -> None:
    """A failure that is not the rows' fault (here the table is gone) holds every window back,
    to be retried: nothing is set aside."""
    store = server_store
    worker = in_process_worker(store)
    worker.manager.add([Message(TP, 0, float(BASE), [event("m", BASE + 1)])], now=time.time())
    store.backend.execute("RENAME TABLE metrics TO metrics_away")
    try:
        worker.manager.close_due(time.time() + 7200)
        asyncio.run(worker.pipeline.store_closed())
        assert worker.stats.store_errors == 1 and worker.stats.windows_set_aside == 0
        assert len(worker.manager.unstored) == 1
    finally:
        store.backend.execute("RENAME TABLE metrics_away TO metrics")
    asyncio.run(worker.pipeline.store_closed())
    worker.close()
    assert worker.manager.unstored == [] and store.windows_set_aside() == []
    assert [p.value for p in store.metrics("m", name="traffic.count")] == [1.0]


@pytest.mark.parametrize("clean_windows", [0, 6])
def test_the_default_rule_alerts_on_a_window_set_aside(clean_windows: int) -> None:
    index = RuleIndex(DEFAULT_RULES)
    start = BASE
    point = MetricPoint("poison", start, 60, SET_ASIDE_METRIC, 1.0)
    [change] = evaluate(index, {}, "poison", start, [point], now=0.0, only_metric=SET_ASIDE_METRIC)
    alert = change.alert
    assert (alert.rule_name, alert.state) == ("WindowSetAside", AlertState.FIRING)
    book = {(alert.rule_id, alert.model, alert.feature, alert.segment): alert}
    for i in range(clean_windows):  # windows stored normally afterwards clear it, in time
        [change] = evaluate(index, book, "poison", start + 60 * (i + 1), [], now=0.0)
        book = {next(iter(book)): change.alert}
    expected = AlertState.RESOLVED if clean_windows > 5 else AlertState.FIRING
    assert next(iter(book.values())).state == expected


def test_a_new_broker_does_not_rebuild_a_stored_window_from_its_new_events(
    server_store: Store,
) -> None:
    """The embedded broker keeps events in memory: after it restarts, its topics have new ids,
    so no offset mark matches. An event of an already stored window must then be late, not
    the start of a new copy of that window that replaces the stored one (5 events became 2)."""
    store = server_store
    before = in_process_worker(store, log_ids={topics.PREDICTIONS: "old-broker"})
    before.manager.add(
        [Message(TP, i, float(BASE), [event("m", BASE + 1)]) for i in range(5)], now=time.time()
    )
    before.manager.close_due(time.time() + 7200)
    asyncio.run(before.pipeline.store_closed())
    before.close()
    after = in_process_worker(store, log_ids={topics.PREDICTIONS: "new-broker"}, restored=False)
    asyncio.run(after.restore([TP]))
    after.manager.add(
        [Message(TP, i, float(BASE), [event("m", BASE + 2)]) for i in range(2)], now=time.time()
    )
    after.manager.close_due(time.time() + 7200)
    asyncio.run(after.pipeline.store_closed())
    after.close()
    assert [p.value for p in store.metrics("m", name="traffic.count")] == [5.0, 0.0]
    assert [p.value for p in store.metrics("m", name="traffic.late")] == [0.0, 2.0]


def test_the_api_lists_the_windows_set_aside(server_store: Store, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from driftline.settings import Settings
    from driftline.store import SetAsideWindow, Stores

    server_store.set_aside(SetAsideWindow("poison", "", 10**11, 60, 3, "TypeMismatchError", 5.0))
    app = create_app(Settings(data_dir=tmp_path), Stores(server_store))
    with TestClient(app) as client:
        [row] = client.get("/v1/windows-set-aside", params={"model": "poison"}).json()
        assert client.get("/v1/windows-set-aside", params={"model": "other"}).json() == []
    assert row == {"model": "poison", "stage": "", "window_start": 10**11, "window_seconds": 60,
                   "events": 3, "reason": "TypeMismatchError", "set_aside_at": 5.0}  # fmt: skip


def test_a_far_timestamp_is_dead_lettered_and_every_model_keeps_storing(
    server_store: Store,
) -> None:
    """Issue 13, point 1, end to end in the worker: an event with "ts": "9999-12-31T23:59:59Z"
    (or 1e300) was accepted, its window could not be written, and storage stopped for every
    model. Now it is a dead letter, and every window is stored."""
    import orjson

    letters: list[dict[str, object]] = []

    async def send(key: bytes | None, value: bytes) -> None:
        letters.append(orjson.loads(value))

    worker = in_process_worker(server_store, send=send)
    now = time.time()
    start = now // 10 * 10 - 30  # one 10 s window, half a minute ago
    raw = [
        (TP, 0, now, orjson.dumps([event("a", start + 1), event("b", start + 1)])),
        (TP, 1, now, orjson.dumps(event("a", "9999-12-31T23:59:59Z"))),
        (TP, 2, now, orjson.dumps([event("b", 1e300), event("b", start + 2)])),
    ]

    async def scenario() -> None:
        await worker.process(raw)
        worker.manager.close_due(now + 7200)
        await worker.pipeline.store_closed()

    asyncio.run(scenario())
    worker.close()
    assert sorted((x["offset"], x["index"]) for x in letters) == [(1, None), (2, 0)]
    assert all("outside what the store holds" in str(x["reason"]) for x in letters)
    assert [p.value for p in server_store.metrics("a", name="traffic.count")] == [1.0]
    assert [p.value for p in server_store.metrics("b", name="traffic.count")] == [2.0]
    assert worker.manager.unstored == [] and worker.stats.windows_set_aside == 0
