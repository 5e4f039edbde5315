"""River's streaming drift detectors (ADWIN, KSWIN, Page-Hinkley) behind one small interface.

``RiverDetector`` is the base of every river-backed detector here: ``update(x)`` feeds one
value, ``update_many(values)`` a micro-batch in order (river updates one value at a time;
that loop is the detector's own cost), and read-only properties say what it found:
``n_seen``, ``detections``, ``last_detection_index`` and river's ``drift_detected``. Missing
values (NaN) are skipped but still count as positions, so ``last_detection_index`` maps back
to the values fed so far. A detector pickles with its state, so it can be checkpointed with
the window state. ``StreamingDetector`` watches a feature's values; the concept-drift
detectors of ``detectors.concept`` watch a model's error stream.

A ``StreamingSpec`` names a detector in ``STREAMING_DETECTORS`` and holds its constructor
arguments; it is frozen and JSON-friendly, so it can live in a model's monitoring config.
``ColumnDetectors`` runs a model's specs on every numeric column of its event batches.

KSWIN samples at random; its factory sets ``seed=0`` unless the spec gives one, so the same
stream always fires at the same places.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> stream = np.concatenate((rng.normal(0.0, 1.0, 1_000), rng.normal(2.0, 1.0, 1_000)))
>>> detector = StreamingDetector(StreamingSpec.of("adwin", delta=0.002))
>>> detector.update_many(stream[:1_000]), detector.last_detection_index
(0, None)
>>> detector.update_many(stream[1_000:]), detector.last_detection_index
(1, 1023)
>>> detector.update(float("nan")); detector.n_seen, detector.detections, detector.drift_detected
(2001, 1, False)
>>> detector
StreamingDetector(StreamingSpec(detector='adwin', params=(('delta', 0.002),)))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift
from river.base import BinaryDriftDetector, DriftDetector

from detectors.columns import EventBatch, FloatArray, Kind
from detectors.drift.window import PREDICTION

Param = bool | int | float | str

STREAMING_DETECTORS: Mapping[str, Callable[..., DriftDetector]] = {
    "adwin": drift.ADWIN,
    "kswin": partial(drift.KSWIN, seed=0),  # a spec's own seed overrides this one
    "page_hinkley": drift.PageHinkley,
}


class RiverDetector:
    """One river detector over one stream of numbers, fed in order; subclasses say which
    detector (``_new_detector``) and what it takes (``_inputs``)."""

    def __init__(self) -> None:
        self._reset()

    def _new_detector(self) -> DriftDetector | BinaryDriftDetector:
        raise NotImplementedError

    def _inputs(self, present: FloatArray) -> list[Any]:
        """The batch's present values as the river detector takes them. Raise ValueError
        here to reject a batch: it runs before any update, so the state stays untouched."""
        inputs: list[Any] = present.tolist()
        return inputs

    def _reset(self) -> None:
        self._detector = self._new_detector()
        self._n_seen = 0
        self._detections = 0
        self._last_detection_index: int | None = None

    def update(self, x: float) -> None:
        """Feed one value (NaN: missing, still a position)."""
        self.update_many((x,))

    def update_many(self, values: npt.ArrayLike) -> int:
        """Feed ``values`` in order (NaN skipped); return how many detections fired."""
        array = np.asarray(values, dtype=np.float64).ravel()
        missing = np.isnan(array)
        if missing.any():
            positions = np.flatnonzero(~missing)
            inputs = self._inputs(array[positions])
            stream: Iterable[tuple[int, Any]] = zip(positions.tolist(), inputs, strict=True)
        else:  # the usual case: nothing missing, the position is the index
            stream = enumerate(self._inputs(array))
        detector = self._detector
        update = detector.update
        fired, last = 0, 0
        for position, value in stream:
            update(value)
            if detector.drift_detected:
                fired += 1
                last = position
        if fired:
            self._detections += fired
            self._last_detection_index = self._n_seen + last
        self._n_seen += int(array.size)
        return fired

    @property
    def n_seen(self) -> int:
        """Values fed so far, missing included."""
        return self._n_seen

    @property
    def detections(self) -> int:
        """Detections fired so far."""
        return self._detections

    @property
    def last_detection_index(self) -> int | None:
        """Position of the latest detection among all values fed so far (None: none yet)."""
        return self._last_detection_index

    @property
    def drift_detected(self) -> bool:
        """Whether the latest value fed fired a detection (river's flag of the same name)."""
        return self._n_seen > 0 and self._last_detection_index == self._n_seen - 1


@dataclass(frozen=True)
class StreamingSpec:
    """A detector name (a key of ``STREAMING_DETECTORS``) and its arguments, sorted by name."""

    detector: str
    params: tuple[tuple[str, Param], ...] = ()

    def __post_init__(self) -> None:
        if self.detector not in STREAMING_DETECTORS:
            known = ", ".join(sorted(STREAMING_DETECTORS))
            raise ValueError(f"unknown streaming detector {self.detector!r}; use one of {known}")

    @classmethod
    def of(cls, detector: str, **params: Param) -> StreamingSpec:
        return cls(detector, tuple(sorted(params.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamingSpec:
        return cls.of(data["detector"], **data.get("params", {}))


class StreamingDetector(RiverDetector):
    """A ``StreamingSpec``'s river detector over one feature's values."""

    def __init__(self, spec: StreamingSpec) -> None:
        self.spec = spec
        super().__init__()

    def _new_detector(self) -> DriftDetector:
        return STREAMING_DETECTORS[self.spec.detector](**dict(self.spec.params))

    def __repr__(self) -> str:
        return f"StreamingDetector({self.spec!r})"


class ColumnDetectors:
    """A model's streaming detectors: each spec on each numeric column (and a numeric output,
    named ``PREDICTION``), created when the column first shows up.

    >>> import numpy as np
    >>> from detectors.columns import ModelSchema, build_batch
    >>> rng = np.random.default_rng(0)
    >>> values = np.concatenate((rng.normal(0.0, 1.0, 1_000), rng.normal(3.0, 1.0, 1_000)))
    >>> events = [{"features": {"x": float(v), "c": "a"}, "prediction": "yes"} for v in values]
    >>> batch = build_batch(events, np.arange(values.size, dtype=float), ModelSchema({}))
    >>> ColumnDetectors((StreamingSpec.of("adwin"),)).feed(batch)
    {('x', 'adwin'): 1}
    """

    def __init__(self, specs: tuple[StreamingSpec, ...]) -> None:
        self.specs = specs
        self._detectors: dict[tuple[str, str], StreamingDetector] = {}

    def feed(self, batch: EventBatch) -> dict[tuple[str, str], int]:
        """Feed the batch in event-time order; detections per (column, detector) fed, zeros
        included (a column that was watched and stayed quiet says so)."""
        columns = {n: c for n, c in batch.features.items() if c.kind is Kind.NUMERIC}
        if batch.prediction is not None and batch.prediction.kind is Kind.NUMERIC:
            columns[PREDICTION] = batch.prediction
        order = np.argsort(batch.ts, kind="stable")
        fired: dict[tuple[str, str], int] = {}
        for name, column in columns.items():
            values = column.values[order]
            for spec in self.specs:
                key = (name, spec.detector)
                detector = self._detectors.get(key)
                if detector is None:
                    detector = self._detectors[key] = StreamingDetector(spec)
                fired[key] = fired.get(key, 0) + detector.update_many(values)
        return fired

    def __repr__(self) -> str:
        return f"ColumnDetectors({self.specs!r})"
