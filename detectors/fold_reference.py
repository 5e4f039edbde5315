"""The per-value folding path that ``build_batch`` and ``WindowProfile.add`` replaced (issue 16).

Kept as it was, for the equivalence tests (tests/detectors/test_fold_reference.py: the same
profile, random draws included, from the same events; tests/detectors/test_sampling.py: the
same samples) and for ``bench.folding``, which times both in the same run. Nothing else
calls it. ``add_per_column`` gives the profile's summaries the sample they had then, which
concatenated every batch onto the whole sample.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from detectors.columns import (
    _NAN,
    Column,
    EventBatch,
    FloatArray,
    Kind,
    ModelSchema,
    _general_column,
    _objects,
    _prediction_column,
    _shadow,
    build_column,
    custom_columns,
)
from detectors.profile import (
    ColumnSummary,
    NumericSummary,
    ProbabilitySummary,
    WindowProfile,
    _count_absent,
    new_summary,
    only_missing,
    replaced_placeholder,
)
from detectors.profile import update_summary as _update_summary
from detectors.sampling import BottomKSample


class ConcatenatingSample(BottomKSample):
    """``BottomKSample`` as it was: each offer concatenates onto the whole sample (``_size``
    is kept as the length of the arrays, for comparisons with the one that replaced it)."""

    def offer(self, values: FloatArray, keys: FloatArray) -> None:
        self.seen += int(values.size)
        keep = keys < self._threshold
        if not keep.all():
            values, keys = values[keep], keys[keep]
        self._values = np.concatenate((self._values, values))
        self._keys = np.concatenate((self._keys, keys))
        self._size = self._values.size
        if self._values.size > 2 * self.k:
            self._compact()

    def merge(self, other: BottomKSample) -> BottomKSample:
        merged = ConcatenatingSample(k=min(self.k, other.k), seen=self.seen + other.seen)
        merged._values = np.concatenate((self._values, other._values[: other._size]))
        merged._keys = np.concatenate((self._keys, other._keys[: other._size]))
        merged._size = merged._values.size
        merged._compact()
        return merged

    @property
    def values(self) -> FloatArray:
        if self._values.size > self.k:
            self._compact()
        return self._values

    def _compact(self, room: int = 0) -> None:  # (its arrays have no room)
        if self._values.size <= self.k:
            return
        order = np.argpartition(self._keys, self.k - 1)[: self.k]
        self._values, self._keys = self._values[order], self._keys[order]
        self._size = self.k
        self._threshold = float(self._keys.max())


def _with_old_samples(summary: ColumnSummary) -> ColumnSummary:
    """A new summary with the samples of then."""
    if isinstance(summary, NumericSummary):
        summary.sample = ConcatenatingSample(summary.sample.k)
    elif isinstance(summary, ProbabilitySummary):
        summary.samples = [ConcatenatingSample(s.k) for s in summary.samples]
    return summary


def _numeric_block_per_value(dicts: list[dict[str, Any]], names: list[str]) -> dict[str, Column]:
    get = operator.itemgetter(*names)
    try:
        rows = list(map(get, dicts))
        block = np.array(rows if len(names) > 1 else [[r] for r in rows], dtype=object)
        block[block == None] = _NAN  # noqa: E711 (element-wise comparison)
        floats = block.astype(np.float64)
    except (KeyError, TypeError, ValueError):
        return {}
    if floats.ndim != 2:
        return {}
    return {name: Column(Kind.NUMERIC, floats[:, i]) for i, name in enumerate(names)}


def build_batch_per_value(
    events: list[dict[str, Any]], ts: FloatArray, schema: ModelSchema
) -> EventBatch:
    """``build_batch`` as it was: an object block for the numeric features every event
    carries, a list per other feature."""
    feature_dicts = [e["features"] for e in events]
    names: set[str] = set()
    for f in feature_dicts:
        names.update(f)
    columns: dict[str, Column] = {}
    numeric = [n for n in names if schema.features.get(n) is Kind.NUMERIC]
    if numeric:
        columns.update(_numeric_block_per_value(feature_dicts, numeric))
    for name in names:
        if name in columns:
            continue
        kind = schema.features.get(name)
        if kind is Kind.NUMERIC:
            try:
                floats = [_NAN if (v := f.get(name)) is None else v for f in feature_dicts]
                columns[name] = Column(Kind.NUMERIC, np.array(floats, dtype=float))
                continue
            except (ValueError, TypeError):
                pass
        columns[name] = _general_column(name, [f.get(name) for f in feature_dicts], schema)
    for name, kind in schema.features.items():
        if name not in columns:
            columns[name] = build_column([None] * len(events), kind)

    prediction = _prediction_column([e["prediction"] for e in events], schema)
    latency = np.array(
        [_NAN if (v := e.get("latency_ms")) is None else v for e in events], dtype=float
    )
    versions = np.array(
        [v if type(v := e.get("version")) is str else str(v or "unknown") for e in events],
        dtype=object,
    )
    return EventBatch(
        len(events),
        ts,
        latency,
        columns,
        prediction,
        versions,
        custom_columns(events),
        segments=_objects([e.get("segment") for e in events]),
        shadow=_shadow(events),
        decided_by=_objects([e.get("decided_by") for e in events]),
    )


def add_per_column(profile: WindowProfile, batch: EventBatch) -> None:
    """``WindowProfile.add`` as it was: one summary update (and one draw) per column."""
    if profile.latency.count == 0 and not isinstance(profile.latency.sample, ConcatenatingSample):
        _with_old_samples(profile.latency)
    profile.count += batch.size
    profile.versions.update(batch.versions.tolist())
    profile.latency.update(batch.latency_ms, 0, profile._rng)
    for name, column in batch.features.items():
        summary = profile.features.get(name)
        if summary is None:
            summary = profile.features[name] = _with_old_samples(
                new_summary(column, profile.config)
            )
            _count_absent(summary, profile.count - batch.size)
        elif column.kind is not Kind.NUMERIC and only_missing(summary):  # as WindowProfile
            fresh = _with_old_samples(new_summary(column, profile.config))
            summary = profile.features[name] = replaced_placeholder(summary, fresh)
        _update_summary(summary, column, profile._rng)
    for name, summary in profile.features.items():
        if name not in batch.features:
            _count_absent(summary, batch.size)
    if batch.prediction is not None:
        if profile.output is None:
            profile.output = _with_old_samples(new_summary(batch.prediction, profile.config))
            _count_absent(profile.output, profile.output_rows)
        _update_summary(profile.output, batch.prediction, profile._rng)
    elif profile.output is not None:
        _count_absent(profile.output, batch.size)
    profile.output_rows += batch.size
    for name, values in batch.custom.items():
        custom = profile.custom.get(name)
        if custom is None:
            if len(profile.custom) >= profile.config.max_custom_metrics:
                profile.custom_over_cap.add(name)
                continue
            custom = NumericSummary(profile.config.sample_size)
            profile.custom[name] = custom
            _with_old_samples(custom)
        custom.update(values, 0, profile._rng)
