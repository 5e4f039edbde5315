"""``linear_quantiles`` is ``np.quantile`` (its default method), to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.quantiles import linear_quantiles


def test_the_same_numbers_as_np_quantile() -> None:
    rng = np.random.default_rng(0)
    qs = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0, 1 / 3, 0.999]
    for trial in range(3_000):
        n = int(rng.integers(1, 3_000)) if trial % 3 else int(rng.integers(1, 12))
        values = rng.normal(0, 10 ** rng.uniform(-3, 6), n)
        if trial % 4 == 0:  # ties
            values = np.round(values, int(rng.integers(0, 2)))
        if trial % 50 == 0:
            values[: n // 2] = np.inf if trial % 100 else -np.inf
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
