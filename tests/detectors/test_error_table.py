"""The error-analysis table's arithmetic (``detectors/error_analysis.py``)."""

from __future__ import annotations

import pytest

from detectors.error_analysis import error_table


def test_rows_are_ranked_by_potential_gain_and_respect_baselines() -> None:
    errors = [1.0] * 10 + [0.0] * 90  # 10 % wrong
    groups = {
        ("tag", "blurry"): list(range(0, 20)),  # 20 % of data, half wrong
        ("tag", "rare"): [0, 1, 2, 95],  # 4 %, 75 % wrong
        ("segment", "web"): list(range(50, 100)),  # never wrong
    }
    overall, rows = error_table(errors, groups, {"blurry": 0.4}, min_size=1)
    assert overall.error == pytest.approx(0.1) and overall.errors == 10
    by = {r.name: r for r in rows}
    assert by["blurry"].potential_gain == pytest.approx((0.5 - 0.4) * 0.2)
    assert by["rare"].potential_gain == pytest.approx(0.75 * 0.04)
    assert by["web"].potential_gain == 0.0 and by["web"].gap == pytest.approx(-0.1)
    assert [r.name for r in rows] == ["rare", "blurry", "web"]
    assert by["blurry"].share_of_errors == pytest.approx(1.0)


def test_small_groups_are_left_out_and_bad_positions_refused() -> None:
    overall, rows = error_table([1.0, 0.0, 0.0], {("tag", "x"): [0]}, min_size=2)
    assert rows == [] and overall.size == 3
    with pytest.raises(ValueError, match="positions are 0 to 2"):
        error_table([1.0, 0.0, 0.0], {("tag", "x"): [3]})
    # no errors at all: shares of errors are 0, not a division by zero
    _, [row] = error_table([0.0, 0.0], {("tag", "x"): [0, 1]})
    assert row.share_of_errors == 0.0 and row.potential_gain == 0.0
