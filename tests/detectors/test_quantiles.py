"""``linear_quantiles`` is ``np.quantile`` (its default method), to the bit, and
``inverted_cdf_quantiles`` is its "inverted_cdf" method, as a numeric reference's bins use it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from detectors.quantiles import inverted_cdf_quantiles, linear_quantiles, linear_quantiles_many
from detectors.reference import NumericReference, _assign_bins


def _draws(
    rng: np.random.Generator, trials: int, most: int
) -> Iterator[tuple[int, npt.NDArray[np.float64]]]:
    """(trial, values): up to ``most`` values (a third of the draws up to 12), of every scale,
    with ties in a quarter of them and half infinities in one in fifty."""
    for trial in range(trials):
        n = int(rng.integers(1, most)) if trial % 3 else int(rng.integers(1, 12))
        values = rng.normal(0, 10 ** rng.uniform(-3, 6), n)
        if trial % 4 == 0:  # ties
            values = np.round(values, int(rng.integers(0, 2)))
        if trial % 50 == 0:
            values[: n // 2] = np.inf if trial % 100 else -np.inf
        yield trial, values


def test_the_same_numbers_as_np_quantile() -> None:
    rng = np.random.default_rng(0)
    qs = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0, 1 / 3, 0.999]
    for trial, values in _draws(rng, 3_000, 3_000):
        n = values.size
        with np.errstate(invalid="ignore"):  # inf - inf, as in linear_quantiles
            expected = np.quantile(values, qs).tolist()
        got = linear_quantiles(values, qs)
        assert np.array_equal(np.array(got), np.array(expected), equal_nan=True), (n, trial)
    assert linear_quantiles(np.array([7.0]), [0.05, 0.5, 0.95]) == [7.0, 7.0, 7.0]


@pytest.mark.parametrize("qs", [[-0.1], [1.5], [float("nan")], [0.5, 2.0]])
def test_a_quantile_outside_0_1_is_an_error_as_in_numpy(qs: list[float]) -> None:
    values = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        np.quantile(values, qs)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        linear_quantiles(values, qs)


def test_no_values_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        linear_quantiles(np.array([]), [0.5])
    with pytest.raises(ValueError, match="no values"):
        inverted_cdf_quantiles(np.array([]), np.array([0.5]))


@pytest.mark.parametrize("qs", [[-0.1], [1.5], [float("nan")], [0.5, 2.0]])
def test_an_inverted_cdf_quantile_outside_0_1_is_an_error_as_in_numpy(qs: list[float]) -> None:
    values = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        np.quantile(values, qs, method="inverted_cdf")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        inverted_cdf_quantiles(values, np.array(qs))


def test_inverted_cdf_quantiles_are_np_quantile_s() -> None:
    rng = np.random.default_rng(1)
    for trial, values in _draws(rng, 2_000, 5_000):
        n = values.size
        bins = int(rng.integers(1, 40))
        qs = np.arange(1, bins) / bins if trial % 2 else np.sort(rng.random(bins))
        expected = np.quantile(values, qs, method="inverted_cdf")
        assert np.array_equal(inverted_cdf_quantiles(np.sort(values), qs), expected), (n, trial)


def test_a_numeric_reference_s_bins_are_np_quantile_s() -> None:
    # the reference's edges and proportions as they were made before (np.quantile's
    # partition, then a bin per value)
    rng = np.random.default_rng(2)
    for trial in range(300):
        values = rng.gamma(0.5, 3.0, int(rng.integers(1, 20_000)))
        if trial % 3 == 0:
            values = np.round(values, 0)  # a point mass at 0 and ties with the edges
        if trial % 5 == 0:
            values[rng.random(values.size) < 0.1] = np.nan
        present = values[~np.isnan(values)]
        if present.size == 0:
            continue
        ref = NumericReference.from_values(values)
        edges = np.unique(np.quantile(present, np.arange(1, 10) / 10, method="inverted_cdf"))
        edges = edges[edges < present.max()]
        counts = np.bincount(_assign_bins(edges, present), minlength=edges.size + 1)
        assert np.array_equal(ref.edges, edges)
        assert np.array_equal(ref.proportions, counts / present.size)


def test_many_arrays_at_once_give_each_one_s_numbers() -> None:
    """``linear_quantiles_many`` (a profile's features, arrays of one size sorted together)
    gives what ``linear_quantiles`` gives each array, to the bit: ties, signed zeros,
    infinities, single values, sizes shared and not."""
    rng = np.random.default_rng(11)
    arrays = [values for _, values in _draws(rng, 300, 300)]
    arrays += [np.full(256, 2.5) for _ in range(3)] + [np.array([0.0, -0.0] * 64)]
    arrays += [rng.normal(size=256) for _ in range(40)]  # one size, as a slice's samples
    qs = [0.0, 0.05, 0.5, 0.95, 1.0, 0.3333]
    many = linear_quantiles_many(arrays, qs)
    for values, found in zip(arrays, many, strict=True):
        assert [v.hex() for v in found] == [v.hex() for v in linear_quantiles(values, qs)]
    assert linear_quantiles_many([], qs) == []
