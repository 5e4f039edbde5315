"""River's streaming drift detectors (ADWIN, KSWIN, Page-Hinkley) behind one small interface.

A ``StreamingSpec`` names a detector in ``STREAMING_DETECTORS`` and holds its constructor
arguments; it is frozen and JSON-friendly, so it can live in a model's monitoring config. A
``StreamingDetector`` feeds a micro-batch of one feature's values through the river detector
in order (river updates one value at a time; that loop is the detector's own cost) and
keeps the count and position of drift points. Missing values (NaN) are skipped but still
count as positions, so ``last_drift_index`` maps back to the events fed so far. The whole
detector pickles, so its state can be checkpointed with the window state.

KSWIN samples at random; its factory sets ``seed=0`` unless the spec gives one, so the same
stream always fires at the same places.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> stream = np.concatenate((rng.normal(0.0, 1.0, 1_000), rng.normal(2.0, 1.0, 1_000)))
>>> detector = StreamingDetector(StreamingSpec.of("adwin", delta=0.002))
>>> detector.update_many(stream[:1_000]), detector.last_drift_index
(0, None)
>>> detector.update_many(stream[1_000:]), detector.last_drift_index
(1, 1023)
>>> detector
StreamingDetector(StreamingSpec(detector='adwin', params=(('delta', 0.002),)))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from river import drift
from river.base import DriftDetector

Param = bool | int | float | str

STREAMING_DETECTORS: Mapping[str, Callable[..., DriftDetector]] = {
    "adwin": drift.ADWIN,
    "kswin": partial(drift.KSWIN, seed=0),  # a spec's own seed overrides this one
    "page_hinkley": drift.PageHinkley,
}


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


class StreamingDetector:
    """One river detector over one stream of numbers, fed in micro-batches."""

    def __init__(self, spec: StreamingSpec) -> None:
        self.spec = spec
        self._reset()

    def _reset(self) -> None:
        self._detector = STREAMING_DETECTORS[self.spec.detector](**dict(self.spec.params))
        self._seen = 0
        self._drift_count = 0
        self._last_drift_index: int | None = None

    def update_many(self, values: np.ndarray) -> int:
        """Feed ``values`` in order (NaN skipped); return how many drift points fired."""
        values = np.asarray(values, dtype=np.float64).ravel()
        present = np.flatnonzero(~np.isnan(values))
        detector, fired = self._detector, 0
        for position, value in zip(present.tolist(), values[present].tolist(), strict=True):
            detector.update(value)
            if detector.drift_detected:
                fired += 1
                self._last_drift_index = self._seen + position
        self._seen += int(values.size)
        self._drift_count += fired
        return fired

    @property
    def n_seen(self) -> int:
        """Values fed so far, missing included."""
        return self._seen

    @property
    def drift_detected_count(self) -> int:
        return self._drift_count

    @property
    def last_drift_index(self) -> int | None:
        """Position of the latest drift point among all values fed so far (None: none yet)."""
        return self._last_drift_index

    def __repr__(self) -> str:
        return f"StreamingDetector({self.spec!r})"
