"""Reading feature values out of events (``detectors/feature_values.py``): the names come in
the order ``set.update`` per event gives (the order of a batch's columns, and of a profile's
random draws), and the readers give each value as it was sent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from detectors.feature_values import (
    all_names,
    carried_by_all,
    columns_of,
    columns_or_none,
    float_block,
    float_rows,
    same_names,
)


@pytest.mark.parametrize("width", [0, 1, 2, 3, 4, 5, 6, 11, 12, 40, 50, 100, 333])
@pytest.mark.parametrize("events", [1, 2, 3, 50])
def test_same_names_come_in_the_order_of_the_set_built_per_event(width: int, events: int) -> None:
    names = [f"feature_{i}" for i in range(width)]
    # the same names, in another order every other event
    dicts = [{n: float(i) for n in (names[::-1] if i % 2 else names)} for i in range(events)]
    assert same_names(dicts) == all_names(dicts)


def test_same_names_is_none_when_events_have_different_numbers_of_names() -> None:
    assert same_names([{"a": 1}, {"a": 1, "b": 2}]) is None
    assert same_names([]) is None
    # as many names, not the same ones: reading them says so
    dicts: list[dict[str, Any]] = [{"a": 1, "b": 2}, {"a": 1, "c": 3}]
    names = same_names(dicts)
    assert names is not None
    with pytest.raises(KeyError):
        columns_of(dicts, names)


def test_columns_hold_each_value_as_sent() -> None:
    dicts: list[dict[str, Any]] = [{"a": 1, "b": "x"}, {"a": 2.5, "b": None}, {"a": True}]
    assert columns_or_none(dicts, ["a", "b"]) == [(1, 2.5, True), ("x", None, None)]
    assert columns_of(dicts[:2], ["b"]) == [("x", None)]
    assert carried_by_all(dicts, ["a"]) and not carried_by_all(dicts, ["a", "b"])


def test_float_rows_are_numpys_floats_of_the_values() -> None:
    dicts: list[dict[str, Any]] = [{"a": 1, "b": 0.5}, {"a": True, "b": -0.0}, {"a": 2**60, "b": 3}]
    rows = float_rows(dicts, ["b", "a"])
    assert rows is not None and rows.flags.c_contiguous
    assert rows.tolist() == [[0.5, -0.0, 3.0], [1.0, 1.0, float(2**60)]]
    assert np.signbit(rows[0, 1])
    with_none = float_rows([{"a": None}, {"a": "1.5"}, {"a": 2}], ["a"])
    assert with_none is not None
    assert np.isnan(with_none[0, 0]) and with_none[0, 1:].tolist() == [1.5, 2.0]
    assert float_rows([{"a": "abc"}], ["a"]) is None
    with pytest.raises(KeyError):
        float_rows([{"a": 1.0}, {"b": 1.0}], ["a"])
    assert float_block([(1, None), (True, 2.0)]) is not None
    assert float_block([("abc", 1.0)]) is None
