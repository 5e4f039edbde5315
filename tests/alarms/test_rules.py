from __future__ import annotations

import pytest

from alarms.rules import (
    DEFAULT_RULES,
    Comparison,
    Rule,
    RuleIndex,
    Selector,
    is_data_drift_metric,
    metric_kind,
)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "", True),
        ("*", "fraud", True),
        ("fraud", "fraud", True),
        ("fraud", "fraud-2", False),
        ("", "", True),
        ("", "age", False),
        ("fraud-*", "fraud-eu", True),
        ("fraud-*", "churn", False),
        ("a?e", "age", True),
        ("[ab]*", "beta", True),
        ("[ab]*", "gamma", False),
    ],
)
def test_selector_is_exact_or_glob(pattern: str, value: str, expected: bool) -> None:
    assert Selector(pattern).matches(value) is expected


@pytest.mark.parametrize(
    ("comparison", "value", "breached"),
    [
        (Comparison.GT, 0.5, False),
        (Comparison.GT, 0.51, True),
        (Comparison.GE, 0.5, True),
        (Comparison.LT, 0.5, False),
        (Comparison.LT, 0.49, True),
        (Comparison.LE, 0.5, True),
    ],
)
def test_comparison_direction_is_explicit(
    comparison: Comparison, value: float, breached: bool
) -> None:
    assert comparison.breached(value, 0.5) is breached


def test_worse_value_is_further_past_the_threshold() -> None:
    assert Comparison.GT.worse(0.6, 0.9) == 0.9
    assert Comparison.LE.worse(0.6, 0.1) == 0.1


def rule(rule_id: str, metric: str = "latency.p99", **kw: object) -> Rule:
    return Rule(rule_id, rule_id, metric, Comparison.GT, 1.0, **kw)  # type: ignore[arg-type]


def test_index_finds_rules_by_metric_model_and_feature() -> None:
    index = RuleIndex(
        [
            rule("exact", model="fraud"),
            rule("glob", model="fr*"),
            rule("any"),
            rule("other-metric", metric="output.null_rate"),
            rule("other-model", model="churn"),
            rule("off", enabled=False),
            rule("age-only", metric="input.mean", feature="age"),
        ]
    )
    assert [r.id for r in index.candidates("latency.p99", "fraud")] == ["exact", "glob", "any"]
    assert [r.id for r in index.candidates("latency.p99", "churn")] == ["other-model", "any"]
    assert index.candidates("drift.psi", "fraud") == ()
    assert [r.id for r in index.candidates("input.mean", "fraud", "age")] == ["age-only"]
    assert index.candidates("input.mean", "fraud", "amount") == ()
    assert "off" not in index.rules and len(index) == 6


def test_rule_selects_feature_segment_and_category() -> None:
    r = rule("r", feature="age", segment="", category="*")
    assert r.selects("fraud", "age", "", "")
    assert not r.selects("fraud", "amount", "", "")
    assert not r.selects("fraud", "age", "channel=web", "")
    index = RuleIndex([r, rule("any-slice", feature="age")])
    assert [x.id for x in index.candidates("latency.p99", "fraud", "age", "", "FR")] == [
        "r",
        "any-slice",
    ]
    assert [x.id for x in index.candidates("latency.p99", "fraud", "age", "s=1", "")] == [
        "any-slice"
    ]


def test_default_rules_cover_drift_missing_nulls_latency_concept_drift_and_set_aside() -> None:
    metrics = {r.metric for r in DEFAULT_RULES}
    assert metrics == {
        "drift.share_drifted",
        "drift.concept",
        "drift.harm",  # estimated harm, before labels
        "input.missing_rate",
        "output.null_rate",
        "latency.p99",
        "store.windows_set_aside",
    }
    assert all(r.origin == "default" and r.model == "*" for r in DEFAULT_RULES)
    assert len({r.id for r in DEFAULT_RULES}) == len(DEFAULT_RULES)


def test_metric_kinds_keep_window_label_and_estimated_alerts_apart() -> None:
    assert metric_kind("drift.share_drifted") == "window"
    assert metric_kind("quality.accuracy") == "labels" and metric_kind("drift.concept") == "labels"
    assert metric_kind("quality.estimated.accuracy") == "estimates"
    assert metric_kind("drift.harm") == "estimates" == metric_kind("drift.estimated_drop")
    assert is_data_drift_metric("drift.share_drifted")
    assert is_data_drift_metric("drift.prediction_drifted")
    assert not is_data_drift_metric("drift.concept") and not is_data_drift_metric("drift.harm")


def test_index_answers_as_the_rules_select_and_caches_only_narrowed_series() -> None:
    """The index against each rule's own ``selects`` (the uncached truth), on series of many
    models, features, slices, versions and categories; the series of (metric, model) pairs
    whose rules all watch every series, or that no rule watches, take no cache entry."""
    rules = [
        *DEFAULT_RULES,
        rule("every"),
        rule("age", feature="age"),
        rule("whole", metric="input.mean", segment=""),
        rule("web", metric="input.mean", segment="channel=web", category="*"),
        rule("v2", metric="input.mean", version="2"),
        rule("fr", metric="drift.drifted", model="fr*", category="FR"),
    ]
    index = RuleIndex(rules)
    metrics = sorted({r.metric for r in rules} | {"drift.ks.p_value", "input.category_freq"})
    models = ["fraud", "fraud-eu", "churn"]
    features = ["", "age", "amount"]
    segments = ["", "channel=web", "channel=app", "@version=2", "@version=3"]
    categories = ["", "FR", "DE"]
    narrowed = {
        (r.metric, m) for r in rules for m in models if r._selectors[0].matches(m) and r._narrowing
    }
    for _ in range(2):  # the first pass fills the caches, the second reads them
        for metric in metrics:
            for model in models:
                for feature in features:
                    for segment in segments:
                        for category in categories:
                            expected = [
                                r
                                for r in rules
                                if r.metric == metric
                                and r.enabled
                                and r.selects(model, feature, segment, category)
                            ]
                            found = index.candidates(metric, model, feature, segment, category)
                            assert sorted(r.id for r in found) == sorted(r.id for r in expected)
    cached = {(metric, model) for metric, model, *_ in index._of_series}
    assert cached == narrowed
    assert not {m for m, _ in cached} & {"drift.ks.p_value", "input.category_freq"}
