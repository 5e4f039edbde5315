"""The store suite, run on chDB and on a real ClickHouse server (Debian's 18.16)."""

from __future__ import annotations

from driftline.store import MetricPoint, OffsetMark, Store

W = 1_700_000_000


def points(model: str, start: int, count: float) -> list[MetricPoint]:
    return [
        MetricPoint(model, start, 60, "traffic.count", count, version="3"),
        MetricPoint(model, start, 60, "input.mean", 1.5, feature="amount"),
        MetricPoint(model, start, 60, "input.category_freq", 0.7, "country", "FR"),
        MetricPoint(model, start, 60, "input.category_freq", 0.3, "country", "it's"),
        MetricPoint(model, start, 60, "output.std", float("nan")),
    ]


def test_writes_are_idempotent_per_window_metric_and_feature(store: Store) -> None:
    store.write_window(points("fraud", W, 10), [])
    store.write_window(points("fraud", W, 12), [])  # the same window, processed again
    series = store.metrics("fraud", name="traffic.count")
    assert [(p.window_start, p.value, p.version) for p in series] == [(W, 12.0, "3")]
    assert store.models() == [
        {
            "model": "fraud",
            "first_window": W,
            "last_window": W,
            "events": 12,
            "windows": 1,
            "stages": [],
        }
    ]


def test_metric_queries_filter_by_name_feature_and_time(store: Store) -> None:
    for i in range(3):
        store.write_window(points("fraud", W + 60 * i, 10 + i), [])
    store.write_window(points("churn", W, 5), [])
    got = store.metrics("fraud", name="traffic.count", start=W + 60, end=W + 180)
    assert [(p.window_start, p.value) for p in got] == [(W + 60, 11.0), (W + 120, 12.0)]
    cats = store.metrics("fraud", feature="country", start=W, end=W + 60)
    assert {(p.category, p.value) for p in cats} == {("FR", 0.7), ("it's", 0.3)}
    assert store.metrics("fraud", name="output.std") == []  # NaN is not stored
    assert store.model_features("fraud") == [("amount", "numeric"), ("country", "categorical")]
    assert store.known_categories("fraud") == {"country": {"FR", "it's"}}
    assert store.model_versions("fraud") == ["3"]
    assert "input.category_freq" in store.metric_names("fraud")
    assert [m["model"] for m in store.models()] == ["churn", "fraud"]
    assert store.models("fraud") == [store.models()[1]]
    assert store.models("nobody") == []


def test_offset_marks_replace_per_model_and_log(store: Store) -> None:
    store.write_window([], [OffsetMark("fraud", "log-1", 0, 10, W)])
    store.write_window([], [OffsetMark("fraud", "log-1", 0, 25, W + 60)])
    store.write_window([], [OffsetMark("fraud", "log-2", 0, 3, W)])
    assert store.offset_marks(["log-1"]) == [OffsetMark("fraud", "log-1", 0, 25, W + 60)]
    assert store.offset_marks([]) == []


def test_unknown_model_has_no_points(store: Store) -> None:
    assert store.metrics("nobody") == []


def test_references_and_drift_results_round_trip(store: Store) -> None:
    from driftline.store import DriftRow, StoredReference

    profile = {"version": "1", "source": "uploaded", "profiles": {"x": {"kind": "numeric"}}}
    stamp = store.references_stamp()
    store.save_reference(StoredReference("fraud", "1", "uploaded", profile, W))
    assert store.references_stamp() != stamp
    store.save_reference(StoredReference("fraud", "1", "uploaded", {**profile, "v": 2}, W))
    [saved] = store.references("fraud")
    assert saved.profile["v"] == 2 and saved.created_at == W
    seen = store.references_stamp()
    store.save_reference(StoredReference("churn", "1", "warmup", profile, W))
    assert store.references_stamp() == seen  # learned references are not uploads
    assert store.references(uploaded_since=seen) == []
    store.save_reference(StoredReference("churn", "2", "uploaded", profile, W))
    assert [r.model for r in store.references(uploaded_since=seen)] == ["churn"]
    assert len(store.references()) == 3
    lazily = store.iter_references()  # the worker's read: decoded one at a time
    assert next(lazily) == store.references()[0]
    assert [store.references()[0], *lazily] == store.references()
    assert list(store.iter_references(uploaded_since=seen)) == store.references(uploaded_since=seen)
    row = DriftRow(
        "fraud",
        W,
        60,
        "x",
        "ks",
        0.3,
        1e-9,
        1e-8,
        0.3,
        0.1,
        True,
        True,
        "p_value_below_alpha_and_effect_at_least_min",
        5000,
        2048,
        "uploaded:1",
    )
    no_p = DriftRow(
        "fraud",
        W,
        60,
        "x",
        "psi",
        0.2,
        None,
        None,
        0.2,
        0.1,
        True,
        False,
        "effect_at_least_min",
        5000,
        2048,
        "uploaded:1",
    )
    store.write_window([], [], [row, no_p])
    store.write_window([], [], [row])  # the window again: replaced, not duplicated
    got = store.drift_results("fraud", start=W, end=W + 60)
    assert got == [row, no_p]


def test_offset_marks_keep_what_was_read_when_the_window_closed(store: Store) -> None:
    store.write_window([], [OffsetMark("fraud", "log-1", 0, 10, W, seen_below=14)])
    assert store.offset_marks(["log-1"]) == [OffsetMark("fraud", "log-1", 0, 10, W, 14)]


def test_a_store_from_before_seen_below_gets_the_column(store: Store) -> None:
    """A data directory or server written by the previous release has worker_offsets without
    seen_below: starting on it adds the column, and its old marks read as 0 (nothing seen)."""
    store.backend.execute("DROP TABLE worker_offsets")
    store.backend.execute(
        "CREATE TABLE worker_offsets (model String, log_id String, partition UInt32, "
        "next_offset UInt64, window_start DateTime, written_at UInt64) "
        "ENGINE = ReplacingMergeTree(written_at) ORDER BY (model, log_id, partition)"
    )
    store.backend.insert(
        "worker_offsets",
        ("model", "log_id", "partition", "next_offset", "window_start", "written_at"),
        [("old", "log-1", 0, 7, W, 1)],
    )
    store.init_schema()
    store.init_schema()  # and again: nothing to add the second time
    assert store.offset_marks(["log-1"]) == [OffsetMark("old", "log-1", 0, 7, W, 0)]
    store.write_window([], [OffsetMark("new", "log-1", 0, 9, W, seen_below=12)])
    assert OffsetMark("new", "log-1", 0, 9, W, 12) in store.offset_marks(["log-1"])


# what the catalogue reads answered when they scanned the metrics history: the oracle
HISTORY = {
    "models": "SELECT model, toUInt32(min(window_start)), toUInt32(max(window_start)), "
    "sumIf(value, stage = ''), sum(value), uniqExact(window_start), groupUniqArray(stage) "
    "FROM metrics FINAL WHERE metric = 'traffic.count' AND segment = '' "
    "GROUP BY model ORDER BY model",
    "metric_names": "SELECT DISTINCT metric FROM metrics FINAL WHERE model = 'fraud' "
    "ORDER BY metric",
    "versions": "SELECT DISTINCT version FROM metrics FINAL WHERE model = 'fraud' "
    "AND metric = 'traffic.count' ORDER BY version",
    "segments": "SELECT DISTINCT segment FROM metrics FINAL WHERE model = 'fraud' "
    "AND stage = '' AND segment != '' AND metric = 'traffic.count' "
    "AND substring(segment, 1, 1) != '@' ORDER BY segment",
    "features": "SELECT feature, max(metric = 'input.category_freq') FROM metrics FINAL "
    "WHERE model = 'fraud' AND stage = '' AND feature != '' AND metric LIKE 'input.%' "
    "GROUP BY feature ORDER BY feature",
    "categories": "SELECT DISTINCT feature, category FROM metrics FINAL WHERE model = 'fraud' "
    "AND stage = '' AND metric = 'input.category_freq' ORDER BY feature, category",
}


def catalogue_windows(store: Store) -> None:
    for i in range(3):
        start = W + 60 * i
        store.write_window(points("fraud", start, 10 + i), [])
        store.write_window(
            [
                MetricPoint("fraud", start, 60, "traffic.count", 4, segment="channel=web"),
                MetricPoint(
                    "fraud", start, 60, "traffic.count", 6, segment="@version=4", version="4"
                ),
                MetricPoint("fraud", start, 60, "input.category_freq", 1.0, "device", f"d{i}"),
                MetricPoint("fraud", start, 60, "traffic.count", 3, stage="asr"),
                MetricPoint("churn", start, 60, "traffic.count", 2, stage="asr"),
            ],
            [],
        )


def answers(store: Store) -> dict[str, object]:
    return {
        "models": [
            (
                m["model"],
                m["first_window"],
                m["last_window"],
                m["events"],
                m["windows"],
                m["stages"],
            )
            for m in store.models()
        ],
        "metric_names": store.metric_names("fraud"),
        "versions": store.model_versions("fraud"),
        "segments": store.segments("fraud"),
        "features": store.model_features("fraud"),
        "categories": sorted(
            (f, c) for f, cs in store.known_categories("fraud").items() for c in cs
        ),
    }


def history(store: Store) -> dict[str, object]:
    rows = {name: store.backend.execute(sql) for name, sql in HISTORY.items()}
    return {
        "models": [
            (
                str(r[0]),
                int(r[1]),
                int(r[2]),
                int(float(r[3]) or float(r[4])),
                int(r[5]),
                sorted(str(s) for s in r[6] if s),
            )
            for r in rows["models"]
        ],
        "metric_names": [str(r[0]) for r in rows["metric_names"]],
        "versions": [str(r[0]) for r in rows["versions"]],
        "segments": [str(r[0]) for r in rows["segments"]],
        "features": [
            (str(r[0]), "categorical" if int(r[1]) else "numeric") for r in rows["features"]
        ],
        "categories": [(str(r[0]), str(r[1])) for r in rows["categories"]],
    }


def test_the_catalogue_answers_what_the_metrics_history_would(store: Store) -> None:
    catalogue_windows(store)
    listed = answers(store)
    assert listed == history(store)
    assert listed["versions"] == ["", "3", "4"] and listed["segments"] == ["channel=web"]
    assert ("device", "categorical") in listed["features"]  # type: ignore[operator]
    # a second process's store (its own memory of what it wrote) adds nothing twice
    again = Store(store.backend)
    again.write_window(points("fraud", W, 12), [])
    assert answers(again) == history(again) == answers(store)


def test_a_store_from_before_the_catalogue_builds_it_from_its_metrics(store: Store) -> None:
    catalogue_windows(store)
    before = answers(store)
    for table in ("catalogue", "window_index"):
        store.backend.execute(f"DROP TABLE {table}")
    store.init_schema()  # an upgraded process starts on the old store
    assert answers(store) == before == history(store)


# each version's traffic as it was read from the metrics history before the version index
VERSION_HISTORY = (
    "SELECT if(segment = '', version, substring(segment, 10)) AS v, sum(value), "
    "uniqExact(window_start), toUInt32(max(window_start)) FROM metrics FINAL "
    "WHERE model = 'fraud' AND stage = '' AND metric = 'traffic.count' "
    "AND window_start >= toDateTime(%(since)s) AND (segment LIKE '@version=%%' OR "
    "(segment = '' AND window_start NOT IN (SELECT window_start FROM metrics "
    "WHERE model = 'fraud' AND stage = '' AND metric = 'traffic.count' "
    "AND segment LIKE '@version=%%'))) GROUP BY v ORDER BY v"
)


def version_windows(store: Store) -> None:
    """Windows of version 1 alone, then a canary (versions 1 and 2 in one window, each with
    its cut), then version 2 alone; one window rewritten (a replay) with the same rows."""
    for i in range(6):
        start = W + 60 * i
        shared = 2 <= i <= 3
        whole_version = "1" if i < 4 else "2"
        window = [MetricPoint("fraud", start, 60, "traffic.count", 10 + i, version=whole_version)]
        if shared:
            window += [
                MetricPoint("fraud", start, 60, "traffic.count", 7, segment="@version=1"),
                MetricPoint("fraud", start, 60, "traffic.count", 3 + i, segment="@version=2"),
            ]
        window.append(MetricPoint("fraud", start, 60, "traffic.count", 5, stage="asr"))
        store.write_window(window, [])
    store.write_window([MetricPoint("fraud", W, 60, "traffic.count", 10, version="1")], [])


def traffic(store: Store, since: int = 0) -> list[tuple[str, int, int, int]]:
    return [
        (r["version"], r["events"], r["windows"], r["last_window"])
        for r in store.version_traffic("fraud", since=since)
    ]


def traffic_history(store: Store, since: int = 0) -> list[tuple[str, int, int, int]]:
    rows = store.backend.execute(VERSION_HISTORY, {"since": since})
    return [(str(r[0]), int(float(r[1])), int(r[2]), int(r[3])) for r in rows]


def test_each_version_s_traffic_is_kept_as_windows_are_written(store: Store) -> None:
    version_windows(store)
    assert (
        traffic(store)
        == traffic_history(store)
        == [
            ("1", 10 + 11 + 7 + 7, 4, W + 180),
            ("2", 5 + 6 + 14 + 15, 4, W + 300),
        ]
    )
    assert traffic(store, since=W + 180) == traffic_history(store, since=W + 180)
    assert store.version_traffic("fraud", stage="asr") == [
        {"version": "", "events": 30, "windows": 6, "last_window": W + 300}
    ]


def test_a_store_from_before_the_version_index_builds_it_from_its_metrics(store: Store) -> None:
    version_windows(store)
    before = traffic(store)
    store.backend.execute("DROP TABLE version_index")
    store.init_schema()  # an upgraded process starts on the old store
    assert traffic(store) == before == traffic_history(store)
    assert traffic(store, since=W + 180) == traffic_history(store, since=W + 180)
