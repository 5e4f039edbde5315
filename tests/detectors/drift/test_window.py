from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from detectors.columns import ModelSchema, build_batch
from detectors.drift.ks import ks_test
from detectors.drift.window import (
    PREDICTION,
    ClassProbabilities,
    DriftConfig,
    DriftReport,
    ModelReference,
    ResultRow,
    compare_window,
)
from detectors.profile import ProfileConfig, WindowProfile
from detectors.reference import CategoricalReference, NumericReference


def window(events: list[dict[str, Any]]) -> WindowProfile:
    p = WindowProfile(0, 60, ProfileConfig())
    if events:
        p.add(build_batch(events, np.zeros(len(events)), ModelSchema(features={})))
    return p


def sample(n: int, shift: float = 0.0, missing: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "model": "m",
            "features": {
                "x": None if rng.random() < missing else float(rng.normal(shift, 1)),
                "const": 1.0,
                "c": str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2])),
            },
            "prediction": str(rng.choice(["yes", "no"])),
        }
        for _ in range(n)
    ]


REFERENCE = ModelReference.from_rows(sample(5000, seed=99), "1")


def test_reference_from_rows_profiles_each_feature_and_the_output() -> None:
    assert isinstance(REFERENCE.features["x"], NumericReference)
    assert isinstance(REFERENCE.features["c"], CategoricalReference)
    assert isinstance(REFERENCE.output, CategoricalReference)
    assert REFERENCE.features["x"].count == 5000
    again = ModelReference.from_dict(REFERENCE.to_dict())
    assert again.to_dict() == REFERENCE.to_dict()
    flat = ModelReference.from_rows([{"x": 1.0, "prediction": 0.5}, {"x": 2.0}], "1")
    assert set(flat.features) == {"x"} and isinstance(flat.output, NumericReference)
    with pytest.raises(ValueError, match="no rows"):
        ModelReference.from_rows([], "1")


def test_stationary_window_is_quiet_and_shifted_one_names_the_feature() -> None:
    quiet = compare_window(REFERENCE, window(sample(2000, seed=1)))
    assert quiet.drifted_features == () and quiet.share_drifted == 0.0
    assert quiet.features_tested == 3
    shifted = compare_window(REFERENCE, window(sample(2000, shift=0.5, seed=2)))
    assert shifted.drifted_features == ("x",)
    assert shifted.share_drifted == pytest.approx(1 / 3)
    metrics = {(m, f): v for m, f, v in shifted.metrics}
    assert metrics[("drift.drifted", "x")] == 1.0 and metrics[("drift.drifted", "c")] == 0.0
    assert metrics[("drift.share_drifted", "")] == pytest.approx(1 / 3)
    tests = {(r.feature, r.result.test) for r in shifted.rows}
    assert {("x", "ks"), ("x", "wasserstein"), ("x", "psi"), ("x", "jensen_shannon"),
            ("x", "missing_rate"), ("c", "chi_square"), ("c", "total_variation"),
            (PREDICTION, "chi_square")} <= tests  # fmt: skip


def test_missing_rate_jump_is_drift_of_that_feature() -> None:
    report = compare_window(REFERENCE, window(sample(2000, missing=0.2, seed=3)))
    assert report.drifted_features == ("x",)
    row = next(r for r in report.rows if r.feature == "x" and r.result.test == "missing_rate")
    assert row.in_decision and row.drifted and row.adjusted_p_value is not None


def test_edge_cases_empty_window_unseen_category_and_kind_change() -> None:
    empty = compare_window(REFERENCE, window([]))
    assert empty.drifted_features == () and empty.features_tested == 0
    unseen = [{**e, "features": {**e["features"], "c": "z"}} for e in sample(2000, seed=4)]
    assert compare_window(REFERENCE, window(unseen)).drifted_features == ("c",)
    kind_changed = [{**e, "features": {"x": "text"}} for e in sample(50)]
    assert compare_window(REFERENCE, window(kind_changed)).features_tested == 0


def test_tiny_shift_on_a_huge_window_is_not_drift() -> None:
    big = window(sample(100_000, shift=0.02, seed=5))
    assert compare_window(REFERENCE, big).drifted_features == ()


def test_unknown_test_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown numeric test"):
        DriftConfig(numeric_tests=("nope",))
    with pytest.raises(ValueError, match="ks_exact_max_pairs"):
        DriftConfig(ks_exact_max_pairs=-1)


def test_class_probability_outputs_are_tested_class_by_class() -> None:
    def rows(n: int, confident: float, seed: int) -> list[dict[str, Any]]:
        rng = np.random.default_rng(seed)
        p1 = np.clip(rng.normal(confident, 0.1, n), 0, 1)
        return [{"model": "m", "features": {"x": 1.0}, "prediction": [1 - p, p]} for p in p1]

    reference = ModelReference.from_rows(rows(4000, 0.7, 0), "1")
    again = ModelReference.from_dict(reference.to_dict())
    assert again.to_dict() == reference.to_dict()
    quiet = compare_window(reference, window(rows(2000, 0.7, 1)))
    assert quiet.prediction_drifted is False
    # the argmax class barely changes (p1 stays > 0.5) but the model is less confident
    shifted = compare_window(reference, window(rows(2000, 0.6, 2)))
    assert shifted.prediction_drifted is True
    decided = {r.feature for r in shifted.rows if r.in_decision and r.drifted}
    assert decided == {f"{PREDICTION}[0]", f"{PREDICTION}[1]"}
    metrics = {(m, f) for m, f, _ in shifted.metrics}
    assert ("drift.prediction.ks.statistic", "class:1") in metrics


def _probability_events(alphas: list[float], n: int, seed: int) -> list[dict[str, Any]]:
    rows = np.random.default_rng(seed).dirichlet(alphas, size=n)
    return [{"model": "m", "features": {"x": 1.0}, "prediction": p} for p in rows.tolist()]


def _output_rows(report: DriftReport) -> list[ResultRow]:
    return [r for r in report.rows if r.feature.startswith(PREDICTION)]


def test_each_class_is_tested_like_a_numeric_feature_without_the_missing_rows() -> None:
    missing: list[dict[str, Any]] = [
        {"model": "m", "features": {"x": 1.0}, "prediction": p} for p in (None, [0.3, None, 0.2])
    ]
    reference = ModelReference.from_rows(_probability_events([2, 2, 2], 3_000, 0) + missing, "1")
    assert isinstance(reference.output, ClassProbabilities)
    assert [c.count for c in reference.output.classes] == [3_000] * 3
    assert reference.output.missing == 2
    current = _probability_events([3, 2, 1], 800, 1)
    report = compare_window(reference, window(current))
    ks = {r.feature: r for r in _output_rows(report) if r.result.test == "ks"}
    assert list(ks) == [f"{PREDICTION}[{k}]" for k in range(3)]
    columns = np.array([e["prediction"] for e in current])
    for k, class_ref in enumerate(reference.output.classes):
        assert ks[f"{PREDICTION}[{k}]"].result == ks_test(class_ref, columns[:, k])
    assert ks[f"{PREDICTION}[0]"].drifted and ks[f"{PREDICTION}[2]"].drifted
    # rows with a missing prediction (or a missing class probability) are left out
    gappy = compare_window(reference, window(current + missing))
    assert _output_rows(gappy) == _output_rows(report)
    assert {r.result.n_current for r in _output_rows(gappy)} == {800}


def test_class_probability_outputs_take_the_configured_tests_and_need_the_same_classes() -> None:
    reference = ModelReference.from_rows(_probability_events([2, 2], 2_000, 4), "1")
    psi_only = DriftConfig(numeric_tests=("psi",), numeric_decision="psi")
    report = compare_window(reference, window(_probability_events([2, 2], 500, 5)), psi_only)
    assert {r.result.test for r in _output_rows(report)} == {"psi"}
    # other classes than the reference's: no comparison, rather than a wrong one
    three = compare_window(reference, window(_probability_events([1, 1, 1], 500, 6)))
    assert three.prediction_drifted is None and _output_rows(three) == []
