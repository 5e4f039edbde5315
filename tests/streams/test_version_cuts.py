"""Versions are cuts (issue 14 and 15, point 1): a window is computed as a whole and per
version present in it, uncapped; each version is tested against its own reference and learns
it; a one-version window is stored as its version's cut too; ``version=`` reads them through
the API; rules select versions. On both store backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from helpers import in_process_worker
from scipy import stats

from alarms.rules import Comparison, Rule, RuleIndex
from alarms.state import evaluate
from api.main import create_app
from detectors.drift.window import DriftConfig
from driftline import topics
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from streams.alarms import with_version_cut
from streams.drift import DriftAnalyzer
from streams.labels import label_rows
from streams.quality import QualityConfig, QualityTracker
from streams.references import ReferenceBook, ReferencePolicy

WINDOW = 10  # in_process_worker's windows
TP = (topics.PREDICTIONS, 0)


def events(start: int, version: str, n: int, shift: float, rng: np.random.Generator) -> list[Any]:
    return [
        {"model": "rank", "ts": start + 1, "version": version, "prediction": 0.2 + shift / 10,
         "features": {"x": float(x)}}
        for x in rng.normal(shift, 1.0, n)
    ]  # fmt: skip


def value(store: Store, metric: str, start: int, cut: str, feature: str = "") -> float | None:
    points = store.metrics("rank", name=metric, feature=feature, start=start, end=start + 1,
                           segment=cut)  # fmt: skip
    return points[0].value if points else None


def test_each_version_is_a_cut_with_its_own_reference(store: Store) -> None:
    rng = np.random.default_rng(7)
    base = int(time.time() // WINDOW) * WINDOW - 10 * WINDOW
    starts = [base + i * WINDOW for i in range(5)]
    windows = [
        events(starts[0], "1", 200, 0.0, rng),  # version 1 warms up its reference
        events(starts[1], "1", 200, 0.0, rng),
        # a 24 % canary of version 2, whose inputs differ (a feature bug, say)
        events(starts[2], "1", 190, 0.0, rng) + events(starts[2], "2", 60, 3.0, rng),
        events(starts[3], "2", 100, 3.0, rng),  # version 2 alone: it warms up its own
        events(starts[4], "2", 100, 3.0, rng),
    ]
    drift = DriftAnalyzer(ReferenceBook(ReferencePolicy("warmup", 2, 50)), DriftConfig())
    worker = in_process_worker(store, drift=drift, log_ids={topics.PREDICTIONS: "version-test"})

    async def scenario() -> None:
        for offset, batch in enumerate(windows):
            await worker.process([(TP, offset, starts[offset] + 1.0, orjson.dumps(batch))])
            worker.manager.close_due(time.time() + 7200)  # idle: the window closes
            await worker.pipeline.store_closed()

    asyncio.run(scenario())
    worker.close()

    v1, v2 = "@version=1", "@version=2"
    # a one-version window is its version's cut too
    assert value(store, "traffic.count", starts[0], "") == 200
    assert value(store, "traffic.count", starts[0], v1) == 200
    assert value(store, "traffic.count", starts[0], v2) is None
    # the mixed window: the whole and each version, never capped or folded into __other__
    assert value(store, "traffic.count", starts[2], "") == 250
    assert value(store, "traffic.count", starts[2], v1) == 190
    assert value(store, "traffic.count", starts[2], v2) == 60
    assert value(store, "output.mean", starts[2], v1) == pytest.approx(0.2)
    assert value(store, "output.mean", starts[2], v2) == pytest.approx(0.5)
    mean_v1 = value(store, "input.mean", starts[2], v1, "x")
    assert mean_v1 is not None and abs(mean_v1) < 0.3
    # version 1's cut against version 1's reference: no drift; the whole (mixed) drifts
    assert value(store, "drift.share_drifted", starts[2], v1) == 0
    assert value(store, "drift.share_drifted", starts[2], "") == 1
    # version 2 learned its own reference from its own windows, and is not drifted from it
    assert {r.version for r in store.references("rank")} == {"1", "2"}
    assert value(store, "drift.share_drifted", starts[4], v2) == 0
    assert value(store, "drift.share_drifted", starts[4], "") == 0

    settings = Settings()
    with TestClient(create_app(settings, Stores(store))) as client:
        model = client.get("/v1/models/rank").json()
        traffic = {t["version"]: t for t in model["traffic"]}
        assert traffic["1"]["events"] == 590 and traffic["2"]["events"] == 260
        assert traffic["1"]["share"] + traffic["2"]["share"] == pytest.approx(1.0)
        assert model["segments"] == []  # versions are not slices
        reply = client.get("/v1/models/rank/metrics", params={"name": "traffic.count",
                                                              "version": "2"})  # fmt: skip
        [series] = reply.json()["series"]
        assert [p["value"] for p in series["points"]] == [60, 100, 100]
        assert {p["version"] for p in series["points"]} == {"2"}
        drift_v2 = client.get("/v1/models/rank/drift", params={"version": "2"}).json()
        assert [w["share_drifted"] for w in drift_v2["windows"]][-1] == 0
        unknown = client.get("/v1/models/rank/metrics", params={"version": "9"})
        assert unknown.status_code == 404 and "versions: '1', '2'" in unknown.json()["detail"]
        both = client.get("/v1/models/rank/metrics", params={"version": "2", "segment": "a=b"})
        assert both.status_code == 422
        assert client.get("/v1/alerts", params={"version": "2"}).json() == []


def test_rules_select_versions_and_version_cuts_only_when_named() -> None:
    canary = Rule("c", "CanaryNulls", "output.null_rate", Comparison.GT, 0.1, version="2")
    every = Rule("e", "AnyVersionNulls", "output.null_rate", Comparison.GT, 0.1, version="*")
    whole = Rule("w", "Nulls", "output.null_rate", Comparison.GT, 0.1)  # segment "*"
    index = RuleIndex([canary, every, whole])

    def ids(segment: str) -> list[str]:
        return sorted(r.id for r in index.candidates("output.null_rate", "m", "", segment))

    assert ids("") == ["w"]
    assert ids("channel=web") == ["w"]  # a slice: the segment selector
    assert ids("@version=2") == ["c", "e"]  # a version's cut: only the rules that name one
    assert ids("@version=1") == ["e"]
    assert (
        canary.segment == "@version=2" and Rule(**{**_fields(canary), "version": ""}).version == "2"
    )
    with pytest.raises(ValueError, match="a segment slice or a version, not both"):
        Rule("x", "X", "output.null_rate", Comparison.GT, 0.1, segment="a=b", version="2")


def _fields(rule: Rule) -> dict[str, Any]:
    """A rule as the store gives it back: its version only in its segment."""
    keys = ("id", "name", "metric", "comparison", "threshold", "model", "feature", "segment")
    return {k: getattr(rule, k) for k in keys}


def test_a_version_rule_sees_one_version_windows_as_that_versions_cut() -> None:
    """A one-version window stores no cut; the alarm service hands a version rule its whole
    points as the version's cut, so the rule fires on a version at 100 % as at 5 %."""
    rule = Rule("c", "CanaryNulls", "output.null_rate", Comparison.GT, 0.1, version="2")
    index = RuleIndex([rule])
    alone = [MetricPoint("m", 0, 10, "output.null_rate", 0.5, version="2")]
    mixed = [
        MetricPoint("m", 10, 10, "output.null_rate", 0.3, version="1"),
        MetricPoint("m", 10, 10, "output.null_rate", 0.05, segment="@version=1", version="1"),
        MetricPoint("m", 10, 10, "output.null_rate", 0.9, segment="@version=2", version="2"),
    ]
    assert (
        index.watches_versions
        and not RuleIndex([Rule("w", "W", "x.y", Comparison.GT, 1)]).watches_versions
    )
    fired = evaluate(index, {}, "m", 0, with_version_cut(alone), 1.0)
    assert [(c.alert.segment, c.alert.value) for c in fired] == [("@version=2", 0.5)]
    assert with_version_cut(mixed) == mixed  # the cuts are there: nothing is added
    moved = evaluate(
        index, {fired[0].alert.key: fired[0].alert}, "m", 10, with_version_cut(mixed), 2.0
    )
    assert [c.alert.value for c in moved] == [0.9]


def test_shadow_predictions_and_who_decided_are_cuts(store: Store) -> None:
    """Shadow predictions are monitored in their own cut and left out of the whole (what was
    acted on); the cases people decided and those the model did are cuts, with the share of
    human decisions and each group's quality once labels arrive."""
    start = int(time.time() // WINDOW) * WINDOW - 3 * WINDOW
    live = [
        {"model": "loans", "id": f"c{i}", "ts": start + 1, "version": "1", "features": {"x": 1.0},
         "prediction": "approve", "decided_by": "human" if i < 20 else "model"}
        for i in range(100)
    ]  # fmt: skip
    shadow = [{**e, "version": "2", "prediction": "deny", "shadow": True} for e in live]
    for e in shadow:
        del e["decided_by"]
    worker = in_process_worker(store, keep_events="all", log_ids={topics.PREDICTIONS: "shadow"})
    tracker = QualityTracker(
        worker.labels, store, QualityConfig(window_seconds=WINDOW, min_labels=1),
        worker.manager.segments,
    )  # fmt: skip
    # people got every case right; the model, half of its own
    labels = [{"model": "loans", "id": f"c{i}", "label": "approve" if i < 60 else "deny",
               "ts": start + 5} for i in range(100)]  # fmt: skip

    async def scenario() -> None:
        await worker.process([(TP, 0, start + 1.0, orjson.dumps(live + shadow))])
        worker.manager.close_due(time.time() + 7200)
        await worker.pipeline.store_closed()
        assert await worker.raw.flush()
        worker.labels.write_labels(label_rows(labels, start + 5.0))
        await worker.score_quality(tracker)

    asyncio.run(scenario())
    worker.close()

    def stored(metric: str, cut: str = "", category: str = "") -> float | None:
        points = [p for p in store.metrics("loans", name=metric, start=start, end=start + 1,
                                           segment=cut) if p.category == category]  # fmt: skip
        return points[0].value if points else None

    assert stored("traffic.count") == 100  # the live predictions only
    assert stored("traffic.count", "@shadow=true") == 100
    assert stored("output.class_freq", "", "approve") == 1.0
    assert stored("output.class_freq", "@shadow=true", "deny") == 1.0
    shadow_points = store.metrics("loans", name="traffic.count", segment="@shadow=true")
    assert {p.version for p in shadow_points} == {"2"}
    # joined by id to its live twin: the shadow model never agrees with the live one here
    assert stored("shadow.joined", "@shadow=true") == 100
    assert stored("shadow.agreement", "@shadow=true") == 0.0
    assert stored("shadow.output_shift", "@shadow=true") == 1.0
    assert stored("traffic.human_share") == pytest.approx(0.2)
    assert stored("traffic.count", "@decided_by=human") == 20
    assert stored("traffic.count", "@decided_by=model") == 80
    # the label join kept the live predictions: a shadow twin did not replace them
    assert stored("labels.count") == 100
    assert stored("quality.accuracy") == pytest.approx(0.6)
    # the shadow's own quality on its cut, and both versions on the same labelled ids: of the
    # 100 pairs exactly one is right each time, the live model 60 times (McNemar, two-sided)
    assert stored("labels.count", "@shadow=true") == 100
    assert stored("quality.accuracy", "@shadow=true") == pytest.approx(0.4)
    assert stored("shadow.quality.paired", "@shadow=true") == 100
    assert stored("shadow.quality.accuracy", "@shadow=true") == pytest.approx(0.4)
    assert stored("shadow.quality.live_accuracy", "@shadow=true") == pytest.approx(0.6)
    p_value = stats.binomtest(40, 100).pvalue
    assert stored("shadow.quality.p_value", "@shadow=true") == pytest.approx(p_value)
    assert stored("quality.error_rate", "@decided_by=human") == 0
    assert stored("quality.error_rate", "@decided_by=model") == pytest.approx(0.5)

    with TestClient(create_app(Settings(), Stores(store))) as client:
        reply = client.get("/v1/models/loans/metrics",
                           params={"name": "traffic.count", "shadow": "true"})  # fmt: skip
        assert [p["value"] for p in reply.json()["series"][0]["points"]] == [100]
        reply = client.get("/v1/models/loans/metrics",
                           params={"name": "traffic.count", "decided_by": "human"})  # fmt: skip
        assert [p["value"] for p in reply.json()["series"][0]["points"]] == [20]
        both = client.get("/v1/models/loans/metrics", params={"shadow": "true", "version": "1"})
        assert both.status_code == 422 and "one cut at a time" in both.text
        assert client.get("/v1/models/loans").json()["segments"] == []
