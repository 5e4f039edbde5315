"""The worker's raw-prediction buffer against a real ClickHouse server that fails: writes go on
in the background, stop taking events while the store refuses them, and lose nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from helpers import in_process_worker

from driftline.settings import KeepEvents
from driftline.store import Store
from streams.raw_predictions import EVENT_FLUSH_ROWS

BASE = 1_700_000_000


def message(offset: int, n: int) -> tuple[tuple[str, int], int, float, bytes]:
    events = [
        {"model": "m", "id": f"{offset}-{i}", "ts": BASE + i % 10, "features": {"x": i},
         "prediction": 1}
        for i in range(n)
    ]  # fmt: skip
    return ("driftline.predictions", 0), offset, float(BASE), orjson.dumps(events)


def stored(store: Store) -> int:
    return int(store.backend.execute("SELECT count() FROM predictions FINAL")[0][0])


def test_a_failing_store_holds_the_batch_back_and_loses_nothing(server_store: Store) -> None:
    store = server_store
    dead: list[Any] = []

    async def send(key: bytes | None, value: bytes) -> None:
        dead.append(value)

    worker = in_process_worker(store, send=send, max_events=1_000, keep_events="all")
    half = EVENT_FLUSH_ROWS // 2

    async def scenario() -> None:
        # a full buffer is written in the background while the next events are decoded
        await worker.process([message(i, 500) for i in range(0, 2 * half // 500 + 1)])
        assert worker.raw.writing
        assert await worker.raw.flush()
        assert stored(store) == 2 * half + 500

        # the store loses the table: the next full buffer cannot be written ...
        store.backend.execute("RENAME TABLE predictions TO predictions_away")
        taking = asyncio.ensure_future(
            worker.process([message(1000 + i, 500) for i in range(0, 4 * half // 500)])
        )
        await asyncio.sleep(3)
        assert not taking.done()  # ... so the worker stops taking events (back-pressure)
        assert worker.raw.store_errors >= 2
        store.backend.execute("RENAME TABLE predictions_away TO predictions")  # it is back
        await asyncio.wait_for(taking, timeout=30)
        assert await worker.raw.flush()

    asyncio.run(scenario())
    assert stored(store) == 2 * half + 500 + 4 * half  # every event once, none lost
    assert not dead
    worker.close()


@pytest.mark.parametrize("mode", ["none", "labelled"])
def test_only_what_the_mode_asks_for_is_kept(server_store: Store, mode: KeepEvents) -> None:
    store = server_store
    worker = in_process_worker(store, keep_events=mode)
    worker.raw.note_labelled({"other"})

    async def scenario() -> None:
        await worker.process([message(0, 100)])
        worker.raw.note_labelled({"m"})
        await worker.process([message(1, 100)])
        assert await worker.raw.flush()

    asyncio.run(scenario())
    assert stored(store) == (0 if mode == "none" else 100)
    worker.close()


def test_the_keep_events_setting_takes_its_modes_and_the_old_switch() -> None:
    from driftline.settings import Settings

    assert Settings().keep_events == "labelled"
    assert Settings(keep_events="true").keep_events == "all"
    assert Settings(keep_events=False).keep_events == "none"
    with pytest.raises(ValueError, match="keep_events"):
        Settings(keep_events="some")
