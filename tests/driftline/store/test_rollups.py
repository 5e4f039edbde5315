"""Hourly and daily rollups (``schema.METRICS_HOURLY``), on chDB and a real ClickHouse server:
they answer what pooling the stored windows answers, and a rewritten window counts once."""

from __future__ import annotations

import pytest

from driftline.cuts import version_cut
from driftline.store import MetricPoint, Store
from driftline.store.base import BUCKET_AGGREGATES

DAY = 1_699_920_000  # a UTC midnight
AGGREGATES = tuple(BUCKET_AGGREGATES)


def window(start: int, value: float, *, version: str = "1", segment: str = "") -> list[MetricPoint]:
    return [
        MetricPoint(
            "fraud", start, 60, "traffic.count", 100 + value, segment=segment, version=version
        ),
        MetricPoint("fraud", start, 60, "quality.error_rate", value / 10, segment=segment),
        MetricPoint("fraud", start, 60, "input.mean", value, feature="amount", segment=segment),
    ]


def history(store: Store) -> None:
    """Windows over two days and three hours: the last two hours of a day and the first of
    the next, 20 minutes apart, a slice beside the whole."""
    for hour in (DAY + 22 * 3600, DAY + 23 * 3600, DAY + 24 * 3600):
        for k in range(3):
            start = hour + 1200 * k
            store.write_window(window(start, start % 7 + k), [])
            store.write_window(window(start, k, segment="channel=web"), [])


def pooled(store: Store, step: int, agg: str, **kw: object) -> list[tuple[object, ...]]:
    return [
        (p.window_start, p.window_seconds, p.metric, p.feature, p.value, p.version)
        for p in store.metric_buckets("fraud", step, agg=agg, **kw)  # type: ignore[arg-type]
    ]


def same(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> None:
    assert [r[:4] + r[5:] for r in a] == [r[:4] + r[5:] for r in b]
    assert [r[4] for r in a] == pytest.approx([r[4] for r in b], rel=1e-12)


@pytest.mark.parametrize("step", [3600, 86400])
def test_rollups_answer_what_the_stored_windows_pooled_answer(store: Store, step: int) -> None:
    history(store)
    for agg in AGGREGATES:
        for kw in ({}, {"segment": "channel=web"}, {"name": "input.mean", "feature": "amount"}):
            rolled = pooled(store, step, agg, **kw)
            assert rolled, (agg, kw)
            same(rolled, pooled(store, step, agg, from_rollups=False, **kw))
    # by hand: the first hour's traffic, three windows of 100 + (start % 7 + k)
    first = [DAY + 22 * 3600 + 1200 * k for k in range(3)]
    values = [100 + s % 7 + k for k, s in enumerate(first)]
    hourly = pooled(store, 3600, "sum", name="traffic.count", start=first[0], end=first[0] + 1)
    assert hourly == [(first[0], 3600, "traffic.count", "", float(sum(values)), "1")]
    daily = pooled(store, 86400, "mean", name="traffic.count")
    assert [r[0] for r in daily] == [DAY, DAY + 86400]
    assert daily[0][4] == pytest.approx(
        sum(
            100 + s % 7 + k
            for h in (22, 23)
            for k, s in enumerate(DAY + h * 3600 + 1200 * j for j in range(3))
        )
        / 6
    )


def test_buckets_are_whole_and_the_range_picks_those_holding_its_windows(store: Store) -> None:
    history(store)
    hour = DAY + 23 * 3600
    got = pooled(store, 3600, "mean", name="traffic.count", start=hour + 1500, end=hour + 1600)
    assert [r[0] for r in got] == [hour]
    assert got == pooled(store, 3600, "mean", name="traffic.count", start=hour, end=hour + 3600)
    assert pooled(store, 3600, "mean", name="traffic.count", start=hour, end=hour) == []


def test_a_rewritten_window_counts_once_with_its_newest_value(store: Store) -> None:
    hour = DAY + 3600
    for k in range(3):
        store.write_window(window(hour + 60 * k, 1.0), [])
    store.write_window(window(hour + 2 * 3600, 1.0), [])  # a later hour, written after
    # late labels score the first window again, several times (the quality rows only), a
    # read between the rewrites (each read computes again what was written since the last)
    for score in (0.5, 0.7, 0.9):
        store.write_window([MetricPoint("fraud", hour, 60, "quality.error_rate", score)], [])
        first = store.metric_buckets("fraud", 3600, agg="max", name="quality.error_rate")[0]
        assert first.value == score
    # a replay rewrites a whole window with other figures
    store.write_window(window(hour + 60, 4.0), [])
    for step in (3600, 86400):
        got = store.metric_buckets("fraud", step, agg="sum", name="quality.error_rate")
        later = 0.0 if step == 3600 else 0.1  # the day holds the later hour's window too
        assert got[0].value == pytest.approx(0.9 + 0.4 + 0.1 + later)
        mean = store.metric_buckets("fraud", step, name="traffic.count")[0]
        expected = (101 + 104 + 101) / 3 if step == 3600 else (101 + 104 + 101 + 101) / 4
        assert mean.value == pytest.approx(expected)
        same(pooled(store, step, "sum"), pooled(store, step, "sum", from_rollups=False))
    (windows,) = store.backend.execute(
        "SELECT windows FROM metrics_hourly FINAL WHERE metric = 'quality.error_rate' "
        "AND bucket = toDateTime(%(hour)s)",
        {"hour": hour},
    )[0]
    assert windows == 3


def test_a_version_cut_pools_its_windows_from_the_stored_metrics(store: Store) -> None:
    hour = DAY + 3600
    store.write_window(window(hour, 1.0, version="1"), [])  # version 1 alone
    store.write_window(window(hour + 60, 2.0, version="2"), [])  # version 2 alone
    store.write_window(window(hour + 120, 3.0, version="2"), [])
    got = pooled(store, 3600, "sum", name="traffic.count", segment=version_cut("2"))
    assert got == [(hour, 3600, "traffic.count", "", 205.0, "2")]
    assert pooled(store, 3600, "last", name="traffic.count") == [
        (hour, 3600, "traffic.count", "", 103.0, "2")
    ]


def test_a_store_from_before_the_rollups_builds_them_from_its_metrics(store: Store) -> None:
    history(store)
    store.write_window(window(DAY + 22 * 3600, 9.0), [])  # a rewrite: the newest one counts
    want = {step: pooled(store, step, "mean") for step in (3600, 86400)}
    for table in ("metrics_hourly", "metrics_daily", "rollup_dirty", "rollup_done"):
        store.backend.execute(f"DROP TABLE {table}")
    store.init_schema()
    for step in (3600, 86400):
        same(pooled(store, step, "mean"), want[step])
        same(want[step], pooled(store, step, "mean", from_rollups=False))


def test_a_write_only_marks_its_hours_and_a_read_computes_them_once(store: Store) -> None:
    hour = DAY + 3600
    for k in range(3):
        store.write_window(window(hour + 60 * k, 1.0), [])
    count = "SELECT count() FROM metrics_hourly"
    assert store.backend.execute(count)[0][0] == 0  # writing computes nothing
    store.metric_buckets("fraud", 3600, name="traffic.count")
    assert store.backend.execute(count)[0][0] == 1  # the read's metric only, once
    store.metric_buckets("fraud", 3600, name="traffic.count")
    assert store.backend.execute(count)[0][0] == 1
    store.metric_buckets("fraud", 3600)
    assert store.backend.execute(count)[0][0] == 3


def test_an_unknown_step_or_aggregate_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="no rollup"):
        store.metric_buckets("fraud", 60)
    with pytest.raises(ValueError, match="no rollup"):
        store.metric_buckets("fraud", 3600, agg="median")
