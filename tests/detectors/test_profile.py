from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from detectors.columns import Kind, ModelSchema, build_batch
from detectors.profile import OTHER, MetricRow, ProfileConfig, WindowProfile
from detectors.sampling import BottomKSample


def make_events(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    return [
        {
            "model": "m",
            "features": {
                "x": float(rng.normal(10, 2)),
                "missing_often": None if i % 4 else 1.0,
                "country": ["FR", "DE", "ES"][i % 3],
            },
            "prediction": float(i % 2),
            "latency_ms": float(i),
        }
        for i in range(n)
    ]


def metric_map(rows: list[MetricRow]) -> dict[tuple[str, str, str], float]:
    return {(r.metric, r.feature, r.category): r.value for r in rows}


def profile_of(events: list[dict[str, Any]], **config: int) -> WindowProfile:
    schema = ModelSchema(features={})
    batch = build_batch(events, np.zeros(len(events)), schema)
    profile = WindowProfile(0, 60, ProfileConfig(**config))
    profile.add(batch)
    return profile


def test_window_metrics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    events = make_events(1000, rng)
    m = metric_map(profile_of(events).metrics({}))
    xs = np.array([e["features"]["x"] for e in events])
    assert m[("traffic.count", "", "")] == 1000
    assert m[("input.mean", "x", "")] == pytest.approx(xs.mean())
    assert m[("input.std", "x", "")] == pytest.approx(xs.std(ddof=1))
    assert m[("input.p50", "x", "")] == pytest.approx(np.quantile(xs, 0.5))
    assert m[("input.missing_rate", "missing_often", "")] == pytest.approx(0.75)
    assert m[("input.category_freq", "country", "FR")] == pytest.approx(334 / 1000)
    assert m[("output.mean", "", "")] == pytest.approx(0.5)
    assert m[("output.null_rate", "", "")] == 0.0
    assert m[("latency.p99", "", "")] == pytest.approx(np.quantile(np.arange(1000), 0.99))
    # no history of categories yet: no new-category rate
    assert ("input.new_category_rate", "country", "") not in m


def test_batches_merge_to_the_same_moments_as_one_pass() -> None:
    rng = np.random.default_rng(2)
    events = make_events(900, rng)
    schema = ModelSchema(features={})
    whole = profile_of(events)
    split = WindowProfile(0, 60, ProfileConfig())
    for chunk in (events[:100], events[100:650], events[650:]):
        split.add(build_batch(chunk, np.zeros(len(chunk)), schema))
    a, b = metric_map(whole.metrics({})), metric_map(split.metrics({}))
    for key in [("input.mean", "x", ""), ("input.std", "x", ""), ("input.missing_rate", "x", "")]:
        assert a[key] == pytest.approx(b[key])


def test_new_categories_capped_categories_and_type_mismatches() -> None:
    events = [
        {
            "model": "m",
            "features": {"c": f"v{i % 5}", "n": 1.0 if i < 9 else "oops"},
            "prediction": "a",
        }
        for i in range(10)
    ]
    profile = profile_of(events, max_categories=3)
    m = metric_map(profile.metrics({"c": {"v0", "v1"}}))
    assert m[("input.category_freq", "c", OTHER)] == pytest.approx(0.4)
    # v2 is new; the overflow bucket is never counted as new
    assert m[("input.new_category_rate", "c", "")] == pytest.approx(0.2)
    assert m[("input.type_mismatch_rate", "n", "")] == pytest.approx(0.1)
    assert m[("input.missing_rate", "n", "")] == pytest.approx(0.1)
    assert m[("output.class_freq", "", "a")] == 1.0


def test_probability_outputs_and_null_outputs() -> None:
    events: list[dict[str, Any]] = [
        {"model": "m", "features": {}, "prediction": p}
        for p in ([0.9, 0.1], [0.2, 0.8], [0.3, 0.7], None)
    ]
    m = metric_map(profile_of(events).metrics({}))
    assert m[("output.null_rate", "", "")] == 0.25
    assert m[("output.class_prob_mean", "", "1")] == pytest.approx((0.1 + 0.8 + 0.7) / 3)
    assert m[("output.class_freq", "", "1")] == pytest.approx(2 / 3)


def test_edge_cases_all_missing_feature_and_only_null_predictions() -> None:
    events: list[dict[str, Any]] = [
        {"model": "m", "features": {"x": None}, "prediction": None} for _ in range(5)
    ]
    m = metric_map(profile_of(events).metrics({}))
    assert m[("input.missing_rate", "x", "")] == 1.0
    assert ("input.mean", "x", "") not in m
    assert m[("output.null_rate", "", "")] == 1.0
    assert math.isclose(m[("traffic.count", "", "")], 5)


def test_feature_appearing_late_counts_earlier_rows_as_missing() -> None:
    schema = ModelSchema(features={})
    profile = WindowProfile(0, 60, ProfileConfig())
    first = [{"model": "m", "features": {}, "prediction": 1.0}] * 3
    second = [{"model": "m", "features": {"x": 1.0}, "prediction": 1.0}]
    profile.add(build_batch(first, np.zeros(3), schema))
    profile.add(build_batch(second, np.zeros(1), schema))
    assert metric_map(profile.metrics({}))[("input.missing_rate", "x", "")] == 0.75
    assert schema.features == {"x": Kind.NUMERIC}


def test_categorical_feature_takes_numbers_as_text() -> None:
    schema = ModelSchema(features={})
    events = [{"model": "m", "features": {"zip": z}, "prediction": 1} for z in ("75001", 75001)]
    batch = build_batch(events, np.zeros(2), schema)
    assert list(batch.features["zip"].values) == ["75001", "75001"]


def test_sample_stays_bounded_and_uniform() -> None:
    rng = np.random.default_rng(3)
    sample = BottomKSample(k=500)
    for _ in range(50):
        sample.add(rng.random(2000), rng)
    assert sample.seen == 100_000
    assert len(sample.values) == 500
    assert abs(float(np.mean(sample.values)) - 0.5) < 0.05
    merged = sample.merge(BottomKSample(k=500))
    assert len(merged.values) == 500 and merged.seen == 100_000


def test_merged_summaries_equal_one_pass_and_stay_bounded() -> None:
    from detectors.profile import CategoricalSummary, NumericSummary, merge_summaries

    rng = np.random.default_rng(4)
    events = make_events(3000, rng)
    whole = profile_of(events, sample_size=500)
    first, second = (
        profile_of(events[:1000], sample_size=500),
        profile_of(events[1000:], sample_size=500),
    )
    merged = merge_summaries(first.features["x"], second.features["x"])
    assert isinstance(merged, NumericSummary)
    one = whole.features["x"]
    assert isinstance(one, NumericSummary)
    assert merged.valid == one.valid
    assert merged.mean == pytest.approx(one.mean) and merged.std == pytest.approx(one.std)
    assert len(merged.sample.values) == 500 and merged.sample.seen == 3000
    cats = merge_summaries(first.features["country"], second.features["country"])
    whole_cats = whole.features["country"]
    assert isinstance(cats, CategoricalSummary) and isinstance(whole_cats, CategoricalSummary)
    assert cats.counts == whole_cats.counts
    assert merge_summaries(first.features["x"], first.features["country"]) is None


def test_custom_metrics_are_summarised_per_name_and_capped_per_window() -> None:
    rng = np.random.default_rng(3)
    gpu = rng.normal(5000, 100, 300)
    events = [
        {"model": "m", "features": {}, "prediction": 1,
         "metrics": {"gpu": float(g), **({"ctr": i % 2} if i < 100 else {}), f"n{i % 7}": 1}}
        for i, g in enumerate(gpu)
    ]  # fmt: skip
    events.append({"model": "m", "features": {}, "prediction": 1})  # none sent
    profile = profile_of(events, max_custom_metrics=5)  # gpu, ctr, n0, n1, n2; n3..n6 refused
    rows = metric_map(profile.metrics({}))
    assert rows[("custom.gpu.count", "", "")] == 300
    assert rows[("custom.gpu.mean", "", "")] == pytest.approx(gpu.mean())
    assert rows[("custom.gpu.sum", "", "")] == pytest.approx(gpu.sum())
    assert rows[("custom.gpu.p50", "", "")] == pytest.approx(np.quantile(gpu, 0.5))
    assert rows[("custom.gpu.p95", "", "")] == pytest.approx(np.quantile(gpu, 0.95))
    assert rows[("custom.ctr.count", "", "")] == 100 and rows[("custom.ctr.sum", "", "")] == 50
    names = {m.split(".")[1] for m, _, _ in rows if m.startswith("custom.") and m.count(".") == 2}
    assert names == {"gpu", "ctr", "n0", "n1", "n2"}
    assert rows[("custom.names_over_cap", "", "")] == 4
