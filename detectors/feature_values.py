"""A batch's feature values, read out of its events with no Python code run per value: a
C-level ``itemgetter`` over the names, ``struct`` to pack each event's numbers into float64
rows, ``zip`` to turn rows into columns (``detectors/columns.py`` builds on these).

The names come in the order of the set of names the events carry, built as ``build_batch``
always built it (``set.update`` with each event's features, in order): that order is the
order of a batch's columns, and so the order in which a window profile draws the random keys
of its samples (tests/detectors/test_fold_reference.py holds it to the per-value path).
"""

from __future__ import annotations

import collections
import functools
import itertools
import operator
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def same_names(dicts: list[dict[str, Any]]) -> list[str] | None:
    """The names, when every event has as many as the first: the usual case, every event with
    the same features, which reading them confirms (a KeyError if not). None otherwise."""
    if not dicts or len(set(map(len, dicts))) != 1:
        return None
    # The set is then the first event's names as the first two updates leave it: the second,
    # although it adds nothing, can grow the set's table (CPython makes room for a dict's keys
    # before it adds them), which changes its order; from the third on, nothing changes.
    names: set[str] = set()
    for _ in dicts[:2]:
        names.update(dicts[0])
    return list(names)


def all_names(dicts: list[dict[str, Any]]) -> list[str]:
    names: set[str] = set()
    for f in dicts:
        names.update(f)
    return list(names)


def float_rows(dicts: list[dict[str, Any]], names: list[str]) -> FloatArray | None:
    """The values of ``names`` (which every event carries: KeyError if not) as a float64
    array, a contiguous row per name; None when a value is not a number."""
    order = in_event_order(dicts, names)
    get = operator.itemgetter(*order)
    pack = _doubles(len(order)).pack
    try:  # the usual case, every value a number: each event's doubles packed in C
        rows = map(get, dicts)
        packed = b"".join(map(pack, rows) if len(order) == 1 else itertools.starmap(pack, rows))
        flat = np.frombuffer(packed, dtype=np.float64)
    except struct.error:  # a None, or a value that float() may parse or refuse
        values = list(map(get, dicts))
        if len(order) == 1:
            values = [(v,) for v in values]
        try:  # NumPy's float() of each value, as before: None is NaN, "1.5" is 1.5
            flat = np.fromiter(
                itertools.chain.from_iterable(values), np.float64, len(values) * len(order)
            )
        except (TypeError, ValueError):
            return None
    where = {name: i for i, name in enumerate(order)}
    # a row per name, in the order of ``names`` and contiguous: a summary reduces each row as
    # it would a 1-D array
    by_event = flat.reshape(len(dicts), len(order))
    return np.ascontiguousarray(by_event[:, [where[name] for name in names]].T)


def in_event_order(dicts: list[dict[str, Any]], names: list[str]) -> list[str]:
    """``names`` in the order the first event holds them, when it holds them all. Reading the
    events' values in the order they were made (and so laid out in memory) is up to twice as
    fast, on events that are not in the cache, as in the set's order, which is the hashes'."""
    if not dicts:
        return names
    wanted = set(names)
    order = [name for name in dicts[0] if name in wanted]
    return order if len(order) == len(names) else names


def float_block(columns: list[tuple[Any, ...]]) -> FloatArray | None:
    """``float_rows`` of values read as columns (the general path)."""
    rows, width = len(columns), len(columns[0]) if columns else 0
    try:
        flat = np.fromiter(itertools.chain.from_iterable(columns), np.float64, rows * width)
    except (TypeError, ValueError):
        return None
    return flat.reshape(rows, width)


def columns_of(dicts: list[dict[str, Any]], names: list[str]) -> list[tuple[Any, ...]]:
    """Per name, its value in each event; KeyError when an event lacks one of ``names``."""
    if not names:
        return []
    if len(names) == 1:  # itemgetter of one name gives the value, not a 1-tuple
        return [tuple(map(operator.itemgetter(names[0]), dicts))]
    order = in_event_order(dicts, names)
    rows = list(map(operator.itemgetter(*order), dicts))
    if not rows:
        return [() for _ in names]
    by_name = dict(zip(order, zip(*rows, strict=True), strict=True))
    return [by_name[name] for name in names]


def columns_or_none(dicts: list[dict[str, Any]], names: list[str]) -> list[tuple[Any, ...]]:
    """Per name, its value in each event, None where an event lacks it."""
    rows = [tuple(map(f.get, names)) for f in dicts]
    return list(zip(*rows, strict=True)) if rows else [() for _ in names]


def carried_by_all(dicts: list[dict[str, Any]], names: list[str]) -> bool:
    """Whether every event carries each of ``names`` (with a value, None included)."""
    try:
        collections.deque(map(operator.itemgetter(*names), dicts), maxlen=0)
    except KeyError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _doubles(width: int) -> struct.Struct:
    return struct.Struct(f"{width}d")  # native order and size: NumPy's float64
