"""Slice discovery (detectors/slices.py): planted slices are found, noise is not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.slices import MISSING, Slice, encode_features, find_slices

ROWS = 20_000


def _features(rng: np.random.Generator, n: int = ROWS) -> dict[str, np.ndarray]:
    """10 features: 5 numeric (quantile-binned), 5 categorical of 2 to 6 values."""
    columns: dict[str, np.ndarray] = {}
    for j in range(10):
        if j % 2:
            columns[f"x{j}"] = rng.normal(size=n)
        else:
            values = [f"v{i}" for i in range(2 + j // 2)]
            columns[f"c{j}"] = rng.choice(values, n)
    return columns


def _errors(rng: np.random.Generator, planted: np.ndarray, lift: float) -> np.ndarray:
    rate = np.where(planted, 0.1 * lift, 0.1)
    return (rng.random(planted.size) < rate).astype(np.float64)


def _as_lists(columns: dict[str, np.ndarray]) -> dict[str, list[object]]:
    return {name: values.tolist() for name, values in columns.items()}


def _top(found: list[Slice]) -> list[str]:
    return [s.describe() for s in found]


def test_a_planted_single_predicate_is_found() -> None:
    rng = np.random.default_rng(1)
    columns = _features(rng)
    # a value of its own for 30 % of c6=v2 (1 of its 5 values): 6 % of the rows
    planted = (columns["c6"] == "v2") & (rng.random(ROWS) < 0.3)
    columns["c6"] = np.where(planted, "rare", columns["c6"])
    errors = _errors(rng, planted, 2.5)
    found = find_slices(_as_lists(columns), errors)
    assert found, "nothing found"
    top = found[0]
    assert top.predicates == (("c6", "== rare"),)
    assert 0.02 < top.size / ROWS < 0.10
    assert 2.0 < top.lift < 3.0
    assert top.q_value < 1e-6 and top.p_value <= top.q_value
    assert top.rest_error_rate < top.error_rate
    # 0/1 errors: Fisher's exact test, one-sided (the z test's tail is too thin this far out)
    exact = stats.hypergeom.sf(top.errors - 1, ROWS, errors.sum(), top.size)
    assert top.p_value == pytest.approx(exact, rel=1e-6)


def test_a_planted_conjunction_of_two_is_found() -> None:
    rng = np.random.default_rng(2)
    columns = _features(rng)
    planted = (columns["c4"] == "v0") & (columns["x3"] > np.quantile(columns["x3"], 0.8))
    errors = _errors(rng, planted, 2.5)  # 1/4 of 1/5: 5 % of the rows
    found = find_slices(_as_lists(columns), errors)
    assert found, "nothing found"
    top = found[0]
    assert [f for f, _ in top.predicates] == ["x3", "c4"]  # in the features' order
    assert top.predicates[0][1].startswith(">= ")
    assert top.predicates[1] == ("c4", "== v0")
    assert top.size == int(planted.sum())
    assert top.lift > 1.8
    # the parents (c4=v0, x3 high) are worse only through the planted slice: not returned
    assert all(s.level >= 2 for s in found), _top(found)


def test_a_planted_conjunction_of_three_is_found() -> None:
    rng = np.random.default_rng(3)
    columns = _features(rng)
    planted = (columns["c0"] == "v1") & (columns["c2"] == "v0")
    planted &= columns["x5"] < np.quantile(columns["x5"], 0.2)  # 1/2 * 1/3 * 1/5: 3.3 %
    errors = _errors(rng, planted, 3.0)
    found = find_slices(_as_lists(columns), errors)
    assert found, "nothing found"
    top = found[0]
    assert top.level == 3
    assert top.predicates[:2] == (("c0", "== v1"), ("c2", "== v0"))
    assert top.predicates[2][0] == "x5" and top.predicates[2][1].startswith("< ")
    assert top.size == int(planted.sum())
    assert 2.0 < top.lift < 3.5
    assert len(found) <= 5


def test_max_level_bounds_the_conjunctions() -> None:
    rng = np.random.default_rng(3)
    columns = _features(rng)
    planted = (columns["c0"] == "v1") & (columns["c2"] == "v0")
    planted &= columns["x5"] < np.quantile(columns["x5"], 0.2)
    errors = _errors(rng, planted, 3.0)
    found = find_slices(_as_lists(columns), errors, max_level=2)
    assert found and all(s.level <= 2 for s in found)


def test_nothing_planted_finds_nothing_in_at_least_95_percent_of_seeds() -> None:
    fired = []
    for seed in range(20):
        rng = np.random.default_rng([seed, 99])
        columns = _features(rng, 10_000)
        errors = (rng.random(10_000) < 0.1).astype(np.float64)
        if find_slices(columns, errors):  # arrays are accepted as columns too
            fired.append(seed)
    assert len(fired) <= 1, f"significant slices on noise for seeds {fired}"


def test_regression_errors() -> None:
    rng = np.random.default_rng(4)
    columns = _features(rng)
    planted = (columns["c8"] == "v3") & (columns["x1"] > np.quantile(columns["x1"], 0.8))
    absolute = np.abs(rng.normal(0.0, 1.0, ROWS)) * np.where(planted, 2.5, 1.0)
    found = find_slices(_as_lists(columns), absolute.tolist())
    assert found, "nothing found"
    top = found[0]
    assert [f for f, _ in top.predicates] == ["x1", "c8"]
    assert top.size == int(planted.sum())
    assert top.error_rate == pytest.approx(float(absolute[planted].mean()))
    assert top.lift > 2.0 and top.q_value < 1e-6
    # the same errors without the planted effect: nothing
    assert find_slices(_as_lists(columns), np.abs(rng.normal(0.0, 1.0, ROWS))) == []


def test_missing_values_are_a_category_of_their_own() -> None:
    rng = np.random.default_rng(5)
    columns = _as_lists(_features(rng))
    missing = rng.random(ROWS) < 0.05
    # a numeric feature with None and NaN, a text feature with None: missing is one category
    pairs = enumerate(zip(missing, columns["x7"], strict=True))
    columns["x7"] = [None if m and i % 2 else float("nan") if m else v for i, (m, v) in pairs]
    columns["c6"] = [None if m else v for m, v in zip(missing, columns["c6"], strict=True)]
    errors = _errors(rng, missing, 2.5)
    found = find_slices(columns, errors)
    assert found, "nothing found"
    described = _top(found)
    # the same rows are missing in both: each is found, alone (their conjunction refines)
    assert sorted(described[:2]) == ["c6 is missing", "x7 is missing"], described
    assert found[0].predicates[0][1] == MISSING
    assert found[0].size == int(missing.sum())
    encoded = encode_features({"x7": columns["x7"]})
    assert encoded.conditions[-1] == MISSING  # None and NaN: one category, the last
    assert int((encoded.codes[:, 0] == len(encoded.conditions) - 1).sum()) == missing.sum()


def test_bools_and_mixed_columns_are_categories() -> None:
    encoded = encode_features(
        {"flag": [True, False, None, True], "mixed": [1, "1", True, 2.5], "n": [1, 2, 1, 2]}
    )
    assert encoded.conditions == (
        "== false", "== true", MISSING, "== 1", "== 1", "== 2.5", "== true", "== 1", "== 2",
    )  # fmt: skip
    # the number 1, the text "1" and True are three categories of "mixed"
    assert len(set(encoded.codes[:, 1].tolist())) == 4


def test_numeric_bins_follow_the_quantiles() -> None:
    encoded = encode_features({"amount": [float(v) for v in range(100)]}, bins=4)
    assert encoded.conditions == ("< 24.75", "in [24.75, 49.5)", "in [49.5, 74.25)", ">= 74.25")
    assert np.bincount(encoded.codes[:, 0]).tolist() == [25, 25, 25, 25]


def test_describe() -> None:
    found = Slice(
        predicates=(
            ("country", "== BR"),
            ("amount", "< 20.5"),
            ("age", "in [20, 30)"),
            ("score", ">= 0.9"),
            ("city", MISSING),
        ),
        size=100, errors=30.0, error_rate=0.3, rest_error_rate=0.1, lift=2.9, score=0.5,
        p_value=1e-9, q_value=1e-8,
    )  # fmt: skip
    assert found.describe() == (
        "country=BR ∧ amount<20.5 ∧ age in [20, 30) ∧ score>=0.9 ∧ city is missing"
    )
    assert found.level == 5


def test_lengths_that_differ_are_refused() -> None:
    with pytest.raises(ValueError, match=r"errors has 3 values but the features have 4 rows"):
        find_slices({"a": [1, 2, 3, 4]}, [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"feature 'b' has 3 values but 'a' has 4"):
        find_slices({"a": [1, 2, 3, 4], "b": [1, 2, 3]}, [0.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("errors", "kwargs", "message"),
    [
        ([0.0, -1.0, 0.0, 1.0], {}, "finite and >= 0"),
        ([0.0, float("nan"), 0.0, 1.0], {}, "finite and >= 0"),
        ([0.0, 1.0, 0.0, 1.0], {"k": 0}, "k must be"),
        ([0.0, 1.0, 0.0, 1.0], {"max_level": 0}, "max_level"),
        ([0.0, 1.0, 0.0, 1.0], {"alpha_score": 0.0}, "alpha_score"),
        ([0.0, 1.0, 0.0, 1.0], {"bins": 1}, "bins"),
    ],
)
def test_bad_arguments_are_refused(
    errors: list[float], kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        find_slices({"a": [1, 2, 3, 4]}, errors, **kwargs)  # type: ignore[arg-type]


def test_no_errors_or_too_few_rows_find_nothing() -> None:
    assert find_slices({"a": ["x"] * 100}, [0.0] * 100) == []
    assert find_slices({"a": ["x", "y"] * 10}, [1.0, 0.0] * 10) == []  # under 30 rows
