"""One cap rule for segment values: the window pipeline admits, the quality pass looks up, and
a restart restores the stored slices (issue 13, point 9)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from helpers import in_process_worker

from driftline import topics
from driftline.settings import Settings
from driftline.store import Store, Stores
from driftline.store.embedded import EmbeddedBackend
from streams.app import create_app
from streams.labels import label_rows
from streams.quality import QualityConfig, QualityTracker
from streams.segments import OTHER_SEGMENT, SegmentValues

WINDOW = 10  # in_process_worker's windows


def test_the_first_values_of_a_key_get_a_slice_and_later_ones_share_other() -> None:
    segments = SegmentValues(max_values=2)
    names = [segments.admit("m", "shop", v) for v in ("a", "b", "c", "a", "d")]
    assert names == ["shop=a", "shop=b", f"shop={OTHER_SEGMENT}", "shop=a", f"shop={OTHER_SEGMENT}"]
    assert segments.admit("other-model", "shop", "c") == "shop=c"  # the cap is per unit and key
    looked_up = [segments.lookup("m", "shop", v) for v in "abc"]
    assert looked_up == ["shop=a", "shop=b", f"shop={OTHER_SEGMENT}"]
    assert segments.lookup("m", "shop", "d") == f"shop={OTHER_SEGMENT}"  # looking up admits nothing
    assert segments.admit("m", "region", OTHER_SEGMENT) == f"region={OTHER_SEGMENT}"


def test_stored_slices_are_restored_and_forgotten_per_unit() -> None:
    segments = SegmentValues(max_values=2)
    segments.restore("m", ["shop=x", "shop=__other__", "shop=y"])
    assert segments.admit("m", "shop", "z") == f"shop={OTHER_SEGMENT}"  # x and y fill the cap
    assert segments.lookup("m", "shop", "y") == "shop=y"
    segments.forget(["m"])
    assert segments.admit("m", "shop", "z") == "shop=z"


def test_segment_settings_reach_the_worker(tmp_path: Path) -> None:
    """DRIFTLINE_MAX_SEGMENT_VALUES and DRIFTLINE_SEGMENT_SAMPLE_SIZE were documented but the
    worker was built with the defaults."""
    settings = Settings(max_segment_values=3, segment_sample_size=64)
    store = Store(EmbeddedBackend(tmp_path / "chdb"))
    store.init_schema()
    _, worker = create_app(settings, Stores(store), {})
    config = worker.manager.config
    assert (config.max_segment_values, config.slice_profile.sample_size) == (3, 64)
    assert worker.manager.segments.max_values == 3
    worker.close()
    store.close()


def test_quality_slices_have_the_names_of_traffic_slices_past_the_cap(server_store: Store) -> None:
    """Past the cap, traffic kept the first values seen and quality the most frequent ones in
    a window, so one slice had two names. Now both follow the window pipeline, and a worker
    that restarts keeps the same names (restored from the stored slices)."""
    store = server_store
    start = int(time.time() // WINDOW) * WINDOW - 3 * WINDOW
    tp = (topics.PREDICTIONS, 0)
    # "a" and "b" come first, "c" is the most frequent
    shops = ["a", "b"] + ["c"] * 10
    events = [
        {"model": "shops", "id": f"{i}", "ts": start + 1, "features": {"x": 1.0},
         "prediction": 1, "segment": {"shop": shop}}
        for i, shop in enumerate(shops)
    ]  # fmt: skip
    worker = in_process_worker(store, keep_events="all", log_ids={topics.PREDICTIONS: "seg-test"})
    worker.manager.segments.max_values = 2
    tracker = QualityTracker(
        worker.labels, store, QualityConfig(window_seconds=WINDOW, min_labels=1),
        worker.manager.segments,
    )  # fmt: skip

    async def scenario() -> None:
        await worker.process([(tp, 0, start + 1.0, orjson.dumps(events))])
        worker.manager.close_due(time.time() + 7200)  # idle: the window closes
        await worker.pipeline.store_closed()
        assert await worker.raw.flush()
        labels = [{"model": "shops", "id": f"{i}", "label": 1, "ts": start + 5} for i in range(12)]
        worker.labels.write_labels(label_rows(labels, start + 5.0))
        await worker.score_quality(tracker)

    asyncio.run(scenario())
    worker.close()

    def slices(metric: str) -> set[str]:
        rows = store.backend.execute(
            "SELECT DISTINCT segment FROM metrics FINAL WHERE model = 'shops' "
            "AND metric = %(metric)s AND segment != '' AND segment NOT LIKE '@%%'",
            {"metric": metric},
        )
        return {str(r[0]) for r in rows}

    expected = {"shop=a", "shop=b", f"shop={OTHER_SEGMENT}"}
    assert slices("traffic.count") == expected
    assert slices("labels.count") == expected

    restarted = in_process_worker(store, restored=False, log_ids={topics.PREDICTIONS: "seg-test"})
    restarted.manager.segments.max_values = 2
    asyncio.run(restarted.restore([tp]))
    assert restarted.manager.segments.lookup("shops", "shop", "b") == "shop=b"
    assert restarted.manager.segments.admit("shops", "shop", "c") == f"shop={OTHER_SEGMENT}"
    restarted.close()
