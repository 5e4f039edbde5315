"""The drift tests' own arithmetic gives what the scipy calls it replaces give: the same
statistics and p-values on the same data, to float rounding (the per-call wrappers, not the
maths, were the cost)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from detectors.drift.chi_square import homogeneity
from detectors.drift.ks import ks_asymptotic, ks_exact, ks_statistic
from detectors.drift.missing_rate import missing_rate_test
from detectors.drift.wasserstein import wasserstein_sorted
from detectors.reference import NumericReference


def _samples(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=5000), rng.normal(shift, scale, size=n))
        for shift, scale, n in [(0, 1, 1000), (0.3, 1, 2000), (0, 2, 700), (1, 1, 5000)]
    ] + [
        # ties: rounded values, and a feature with few distinct values
        (rng.normal(size=5000).round(1), rng.normal(0.1, 1, size=3000).round(1)),
        (rng.integers(0, 5, 5000).astype(float), rng.integers(0, 6, 1500).astype(float)),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_and_wasserstein_match_scipy(seed: int) -> None:
    for ref, cur in _samples(seed):
        reference = np.sort(ref)
        expected = stats.ks_2samp(ref, cur, method="asymp")
        d, p = ks_asymptotic(reference, cur)
        assert d == pytest.approx(float(expected.statistic), abs=1e-15)
        assert ks_statistic(reference, cur) == d
        assert p == pytest.approx(float(expected.pvalue), rel=1e-12, abs=1e-300)
        assert wasserstein_sorted(reference, cur) == pytest.approx(
            stats.wasserstein_distance(ref, cur), rel=1e-12
        )


def test_the_exact_ks_p_value_is_scipy_s_to_the_bit() -> None:
    """Sizes the exact regime takes (n m <= 1e6), equal and coprime sizes, continuous values,
    ties and few distinct values, no shift and shifts: (D, p) equal ks_2samp's exactly."""
    rng = np.random.default_rng(11)
    sizes = [(1, 1), (5, 5), (7, 13), (2000, 1), (256, 256), (2000, 400), (4999, 200)]
    sizes += [(int(rng.integers(1, 3000)), int(rng.integers(1, 300))) for _ in range(150)]
    for i, (n1, n2) in enumerate(sizes):
        kind = i % 3
        if kind == 0:
            ref, cur = rng.normal(size=n1), rng.normal(rng.normal() * 0.3, 1, n2)
        elif kind == 1:
            ref, cur = rng.integers(0, 5, n1).astype(float), rng.integers(0, 6, n2).astype(float)
        else:
            ref, cur = rng.normal(size=n1).round(1), rng.normal(size=n2).round(1)
        expected = stats.ks_2samp(ref, cur, method="exact")
        got = ks_exact(np.sort(ref), cur)
        assert got == (float(expected.statistic), float(expected.pvalue)), (n1, n2, kind)


def test_homogeneity_matches_chi2_contingency() -> None:
    rng = np.random.default_rng(3)
    for k in (2, 3, 8, 40):
        for _ in range(5):
            table = rng.integers(1, 500, size=(2, k)).astype(np.float64)
            expected = stats.chi2_contingency(table, correction=False)
            statistic, p = homogeneity(table)
            assert statistic == pytest.approx(float(expected.statistic), rel=1e-12)
            assert p == pytest.approx(float(expected.pvalue), rel=1e-10, abs=1e-300)


def test_the_missing_rate_tail_is_the_normal_one() -> None:
    ref = NumericReference.from_values(np.where(np.arange(1000) % 10 == 0, np.nan, 1.0))
    cur = NumericReference.from_values(np.where(np.arange(500) % 4 == 0, np.nan, 1.0))
    result = missing_rate_test(ref, cur)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(result.statistic)), rel=1e-12)


def test_a_reference_from_columns_is_the_one_its_rows_make() -> None:
    from detectors.drift.window import ModelReference

    rng = np.random.default_rng(4)
    n = 3000
    amount = rng.lognormal(3, 1, n)
    amount[rng.random(n) < 0.1] = np.nan
    country = [None if rng.random() < 0.05 else str(c) for c in rng.choice(["FR", "DE"], n)]
    items = rng.integers(0, 9, n)
    flag = [bool(b) for b in rng.random(n) < 0.3]
    mixed: list[object] = [1.5, "x", None] * (n // 3)
    prediction = [None if i % 50 == 0 else float(p) for i, p in enumerate(rng.random(n))]
    rows = [
        {
            "features": {
                "amount": None if np.isnan(amount[i]) else float(amount[i]),
                "country": country[i],
                "items": int(items[i]),
                "flag": flag[i],
                "mixed": mixed[i],
                "empty": None,
            },
            "prediction": prediction[i],
        }
        for i in range(n)
    ]
    columns: dict[str, Any] = {
        "amount": amount,
        "country": country,
        "items": items.astype(np.float64),
        "flag": flag,
        "mixed": mixed,
        "empty": np.full(n, np.nan),
    }
    by_rows = ModelReference.from_rows(rows, "3")
    assert ModelReference.from_columns(columns, prediction, "3").to_dict() == by_rows.to_dict()
    booleans = [bool(b) for b in rng.random(n) < 0.5]
    assert (
        ModelReference.from_columns(columns, booleans, "3").to_dict()
        == ModelReference.from_rows(
            [{**r, "prediction": b} for r, b in zip(rows, booleans, strict=True)], "3"
        ).to_dict()
    )
    with pytest.raises(ValueError, match="different lengths"):
        ModelReference.from_columns({"a": amount, "b": country[:10]}, None, "3")


def test_bin_counts_are_the_binary_searches_counts() -> None:
    from detectors.reference import _assign_bins, _sorted_bin_counts

    rng = np.random.default_rng(8)
    for trial in range(300):
        values = rng.normal(0, 1, int(rng.integers(1, 5_000)))
        if trial % 3 == 0:
            values = np.round(values, 1)  # ties with the edges
        many = int(rng.integers(0, 10)) if trial % 2 else int(rng.integers(10, 60))
        edges = np.unique(np.quantile(values, rng.random(many)))  # both ways of counting
        expected = np.bincount(_assign_bins(edges, values), minlength=edges.size + 1)
        assert np.array_equal(_sorted_bin_counts(edges, np.sort(values)), expected)


def test_text_columns_past_the_category_cap_or_named_other_take_the_profile() -> None:
    from detectors.drift.window import ModelReference

    many = [f"c{i}" for i in range(10_001)] + [None, "c0"]  # one category over the cap
    odd = ["__other__", "a", None, "a"]  # a value named as the profile's other bucket
    for column in (many, odd):
        rows = [{"features": {"t": v}, "prediction": 0.5} for v in column]
        by_columns = ModelReference.from_columns({"t": column}, [0.5] * len(column), "1")
        assert by_columns.to_dict() == ModelReference.from_rows(rows, "1").to_dict()


def test_an_upload_s_column_of_lists_or_mixed_kinds_is_left_to_the_profile() -> None:
    from detectors.drift.window import _direct_reference

    assert _direct_reference([["a"], "b", None]) is None  # unhashable: not counted
    assert _direct_reference(["a", 1, None]) is None  # a number among texts
    assert _direct_reference(["a", True]) is None
    # a str subclass equal to a text counts with it, as a profile counts it
    made = _direct_reference(["a", np.str_("a"), None])
    assert made is not None and made.to_dict()["counts"] == {"a": 2}
