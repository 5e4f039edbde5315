"""The batched drift tests give what the per-feature functions give.

``detectors.drift.batch`` computes the same integers (the KS gaps, the bin counts) and the same
floating-point operations in the same order (one ``np.dot`` per row for Wasserstein, row sums of
equal length for PSI and Jensen-Shannon) as the per-feature functions, so the results are
compared for *equality*, not closeness; the one approximation, the Kolmogorov tail, is shared by
both paths (``ks_asymptotic`` calls ``kolmogorov_sf`` too) and is checked against scipy's
scalar ``kolmogn`` here to 1e-12 relative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats._ksstats import kolmogn

from detectors.columns import ModelSchema, build_batch
from detectors.drift import CATEGORICAL_TESTS, NUMERIC_TESTS
from detectors.drift.batch import categorical_tests, missing_rate_tests, numeric_tests
from detectors.drift.kolmogorov import kolmogorov_sf
from detectors.drift.missing_rate import missing_rate_test
from detectors.drift.window import (
    DriftConfig,
    ModelReference,
    _compare_window_per_feature,
    compare_window,
    compare_windows,
)
from detectors.profile import ProfileConfig, WindowProfile
from detectors.reference import CategoricalReference, NumericReference

NUMERIC = tuple(NUMERIC_TESTS)
CATEGORICAL = tuple(CATEGORICAL_TESTS)


def test_the_kolmogorov_tail_is_kolmogn_in_every_regime() -> None:
    rng = np.random.default_rng(0)
    n_values, x_values = [], []
    for n in (1, 2, 5, 50, 140, 141, 194, 500, 833, 1450, 3000, 10_000, 20_000):
        edges = [0.5 / n, 1 / n, 1 - 1 / n, 0.5, 0.4999, (2.2 / n) ** 0.5, (370 / n) ** 0.5]
        grid = np.concatenate((np.linspace(0, 1, 21), rng.uniform(0, 3 / n**0.5, 12), edges))
        n_values += [n] * grid.size
        x_values += np.clip(grid, 0, 1).tolist()
    n_arr, x_arr = np.array(n_values, dtype=float), np.array(x_values)
    expected = np.array([kolmogn(int(n), x, cdf=False) for n, x in zip(n_arr, x_arr, strict=True)])
    got = kolmogorov_sf(n_arr, x_arr)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def _column(rng: np.random.Generator, kind: int, size: int) -> np.ndarray:
    """Numeric columns of the shapes the tests meet: continuous, rounded (ties), a few integer
    values, skewed, constant, and with missing values."""
    if kind == 0:
        return rng.normal(rng.uniform(-0.3, 0.3), 1.0, size)
    if kind == 1:
        return rng.normal(0.1, 1.0, size).round(1)
    if kind == 2:
        return rng.integers(0, 6, size).astype(np.float64)
    if kind == 3:
        return rng.lognormal(3, 1, size)
    if kind == 4:
        return np.full(size, 2.0)
    values = rng.normal(size=size)
    values[rng.random(size) < 0.2] = np.nan
    return values


def _pairs(seed: int) -> tuple[list[NumericReference], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    references, windows = [], []
    for i in range(36):
        kind = i % 6
        reference_size = int(rng.choice([20_000, 3_000, 40, 2]))
        references.append(NumericReference.from_values(_column(rng, kind, reference_size)))
        # the window sizes a profile meets: capped (2,048), exact-p sizes, tiny, one value
        windows.append(_column(rng, (kind + i // 6) % 6, int(rng.choice([2048, 700, 150, 3, 1]))))
    empty = NumericReference.from_values(np.full(10, np.nan))
    references += [empty, references[0], references[1]]
    windows += [rng.normal(size=100), np.full(50, np.nan), np.zeros(0)]
    return references, windows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numeric_tests_equal_the_per_feature_functions(seed: int) -> None:
    references, windows = _pairs(seed)
    batched = numeric_tests(references, windows, NUMERIC)
    for reference, values, results in zip(references, windows, batched, strict=True):
        assert list(results) == list(NUMERIC)
        for name in NUMERIC:
            assert results[name] == NUMERIC_TESTS[name](reference, values), name


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
@pytest.mark.parametrize("exact_max_pairs", [0, 1_000_000])
def test_ks_alone_ranks_the_window_in_the_reference_to_the_merge_s_result(
    seed: int, exact_max_pairs: int
) -> None:
    """A slice's decision test, KS without Wasserstein, takes ``_ranked_d`` instead of the
    merge: the same D, so the same result, to the bit (ties, NaN, empty, one-value columns)."""
    references, windows = _pairs(seed)
    rng = np.random.default_rng(seed)
    for reference in references[:6]:  # slice-sized windows, with ties against the reference
        sample = reference.sample
        if sample.size:
            references.append(reference)
            windows.append(rng.choice(sample, int(rng.integers(1, 257))))
    kw = {"exact_max_pairs": exact_max_pairs}
    alone = numeric_tests(references, windows, ("ks",), **kw)
    merged = numeric_tests(references, windows, ("ks", "wasserstein"), **kw)
    assert [r["ks"] for r in alone] == [r["ks"] for r in merged]
    assert any(r["ks"].statistic > 0 for r in alone)


def test_numeric_tests_take_the_tests_asked_in_their_order() -> None:
    references, windows = _pairs(3)
    only = numeric_tests(references[:5], windows[:5], ("psi", "ks"))
    assert [list(r) for r in only] == [["psi", "ks"]] * 5
    assert numeric_tests([], [], NUMERIC) == []
    with pytest.raises(ValueError, match="no batched numeric test"):
        numeric_tests(references[:1], windows[:1], ("chi_square",))


def test_gaps_beyond_int32_take_int64() -> None:
    rng = np.random.default_rng(4)
    # 60,000 x 40,000 pairs: gaps up to 2.4e9, past int32
    reference = NumericReference.from_values(rng.normal(size=60_000), sample_size=60_000)
    values = rng.normal(0.2, 1.0, 40_000)
    (results,) = numeric_tests([reference], [values], ("ks", "wasserstein"))
    assert results["ks"] == NUMERIC_TESTS["ks"](reference, values)
    assert results["wasserstein"] == NUMERIC_TESTS["wasserstein"](reference, values)


def test_categorical_tests_equal_the_per_test_functions() -> None:
    rng = np.random.default_rng(5)
    cases: list[tuple[CategoricalReference, dict[str, int]]] = [
        (CategoricalReference.from_counts({"a": 50, "b": 30, "c": 20}), {"a": 5, "b": 3, "d": 4}),
        (CategoricalReference.from_counts({"a": 10}), {"a": 7}),  # one category on both sides
        (CategoricalReference.from_counts({"a": 10}, missing=3), {}),  # an empty window
        (CategoricalReference.from_counts({}, missing=5), {"x": 2}),  # an all-missing reference
        (CategoricalReference.from_counts({"a": 4, "b": 1}), {"z": 9, "y": 1}),  # all unseen
    ]
    for _ in range(20):
        k = int(rng.integers(1, 12))
        ref_counts = {str(c): int(n) for c, n in enumerate(rng.integers(1, 500, k))}
        cur_counts = {str(c): int(n) for c, n in enumerate(rng.integers(0, 80, k + 2))}
        cases.append((CategoricalReference.from_counts(ref_counts), cur_counts))
    for reference, counts in cases:
        results = categorical_tests(reference, counts, CATEGORICAL)
        assert list(results) == list(CATEGORICAL)
        for name in CATEGORICAL:
            assert results[name] == CATEGORICAL_TESTS[name](reference, counts), name


def _profile(events: list[dict[str, Any]]) -> WindowProfile:
    profile = WindowProfile(0, 60, ProfileConfig())
    if events:
        profile.add(build_batch(events, np.zeros(len(events)), ModelSchema(features={})))
    return profile


def _events(n: int, shift: float, seed: int, prediction: str) -> list[dict[str, Any]]:
    """Numeric and categorical features, some missing, some present on one side only, one
    whose kind changes, and the output as a number, a label or class probabilities."""
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet([2 + shift, 2, 1], size=n)
    events = []
    for i in range(n):
        features: dict[str, Any] = {
            "x": float(rng.normal(shift, 1)),
            "rounded": round(float(rng.normal(shift, 1)), 1),
            "gappy": None if rng.random() < 0.1 + shift / 4 else float(rng.normal()),
            "const": 1.0,
            "colour": str(rng.choice(["red", "blue", "green" if shift else "red"])),
            "kind": str(i) if shift else float(i),  # numeric in the reference only
            f"only_{seed}": float(rng.normal()),  # in the reference or in the window only
        }
        output: Any = {
            "number": float(rng.normal(shift, 1)),
            "label": str(rng.choice(["yes", "no", "maybe" if shift else "no"])),
            "classes": probabilities[i].tolist(),
        }[prediction]
        events.append({"model": "m", "features": features, "prediction": output})
    return events


@pytest.mark.parametrize("prediction", ["number", "label", "classes"])
@pytest.mark.parametrize("size", [2_500, 120, 2])
def test_compare_window_is_the_per_feature_report(prediction: str, size: int) -> None:
    reference = ModelReference.from_rows(_events(4_000, 0.0, 0, prediction), "1")
    for shift, seed in ((0.0, 1), (0.4, 2)):
        window = _profile(_events(size, shift, seed, prediction))
        for config in (DriftConfig(), DriftConfig(numeric_decision="psi", numeric_tests=("ks",))):
            batched = compare_window(reference, window, config)
            assert batched == _compare_window_per_feature(reference, window, config)
            tested = {row.feature for row in batched.rows}
            assert {"x", "colour"} <= tested and not any(f.startswith("only_") for f in tested)
            assert ("kind" in tested) == (shift == 0.0)  # a feature that changed kind: skipped
    assert compare_window(reference, _profile([])) == _compare_window_per_feature(
        reference, _profile([])
    )


def test_missing_rate_tests_equal_the_per_feature_test() -> None:
    rng = np.random.default_rng(6)
    pairs = [
        (CategoricalReference.from_counts({"a": 10}, missing=0), (0, 0)),  # an empty window
        (CategoricalReference.from_counts({}, missing=0), (10, 3)),  # an empty reference
        (CategoricalReference.from_counts({}, missing=7), (5, 5)),  # all missing on both sides
        (CategoricalReference.from_counts({"a": 9}), (4, 0)),  # none missing on both sides
    ]
    for _ in range(300):
        count = int(rng.integers(1, 50_000))
        window = int(rng.integers(1, 5_000))
        reference = CategoricalReference.from_counts(
            {"a": count}, missing=int(rng.integers(0, count))
        )
        pairs.append((reference, (window, int(rng.integers(0, window + 1)))))
    currents = [
        CategoricalReference.from_counts({"a": rows - missing} if rows > missing else {}, missing)
        for _, (rows, missing) in pairs
    ]
    references = [reference for reference, _ in pairs]
    batched = missing_rate_tests(references, currents)
    for reference, current, result in zip(references, currents, batched, strict=True):
        assert result == missing_rate_test(reference, current)


def test_the_tail_at_the_effective_size_matches_the_exact_p_value_of_slice_sized_samples() -> None:
    # a slice's sample (<= 256 values) against a 5,000-value reference: ks_exact_max_pairs=0
    # (slices) takes the Kolmogorov tail at n m / (n + m) instead of scipy's exact recursion
    rng = np.random.default_rng(7)
    reference = NumericReference.from_values(rng.normal(size=20_000))
    gaps, rejected = [], []
    for n in (10, 30, 100, 256):
        currents = [rng.normal(0.2 * rng.random() * (i % 2), 1.0, n) for i in range(100)]
        exact = numeric_tests([reference] * 100, currents, ("ks",))
        tail = numeric_tests([reference] * 100, currents, ("ks",), exact_max_pairs=0)
        for e, t, values in zip(exact, tail, currents, strict=True):
            assert t["ks"].statistic == e["ks"].statistic
            effective = round(5_000 * n / (5_000 + n))
            assert t["ks"].p_value == pytest.approx(
                float(kolmogorov_sf(effective, e["ks"].statistic)), rel=1e-12
            )
            assert e["ks"].p_value == NUMERIC_TESTS["ks"](reference, values).p_value
            gaps.append(abs(float(t["ks"].p_value or 0) - float(e["ks"].p_value or 0)))
            rejected.append(((e["ks"].p_value or 1) < 0.05) == ((t["ks"].p_value or 1) < 0.05))
    assert max(gaps) < 0.01  # measured 0.0037 (n = 30)
    assert np.mean(rejected) >= 0.99


@pytest.mark.parametrize("prediction", ["number", "label", "classes"])
def test_windows_tested_together_give_each_one_s_report(prediction: str) -> None:
    """``compare_windows`` (a window's segment slices, tested together) gives the reports
    ``compare_window`` gives each window, to the bit: windows of different sizes (one empty),
    drifted and not, features on one side only, as slices and with every test."""
    reference = ModelReference.from_rows(_events(4_000, 0.0, 0, prediction), "1")
    windows = [
        _profile(_events(size, shift, seed, prediction))
        for size, shift, seed in (
            (300, 0.0, 1),
            (40, 0.4, 2),
            (0, 0.0, 3),
            (7, 0.0, 4),
            (256, 0.2, 5),
        )
    ]
    slice_config = DriftConfig(ks_exact_max_pairs=0, numeric_tests=(), categorical_tests=())
    for config in (slice_config, DriftConfig(ks_exact_max_pairs=0), DriftConfig()):
        together = compare_windows(reference, windows, config, "tag")
        assert together == [compare_window(reference, w, config, "tag") for w in windows]
        assert repr(together) == repr(
            [compare_window(reference, w, config, "tag") for w in windows]
        )
    assert compare_windows(reference, [], slice_config) == []
