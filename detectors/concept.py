"""Concept drift: river's drift detectors on a model's per-event error stream.

Feature drift says the inputs moved; concept drift says the model got worse at its job. Once
labels arrive, ``detectors.quality.score_quality`` turns each (prediction, label) pair into
an error, 0/1 misclassified or the absolute error of a regression, in event order, and an
``ErrorStreamDetector`` watches that stream for a rise. ``ERROR_DETECTORS`` is the one table
of detectors: DDM, EDDM, HDDM_A and HDDM_W take bits (river's binary detectors), so they
watch classification errors only; ADWIN takes any number and watches both tasks
(``detectors_for``). It is a ``detectors.streaming.RiverDetector``, like the feature-value
detectors: it feeds each micro-batch in order, skips NaN but counts it as a position, and
pickles with its state.

River's defaults are kept, so results match river's documentation. Measured on seeded
stationary streams of 5,000 events at a 10% error rate, ADWIN, HDDM_A and HDDM_W stayed
quiet; DDM fired in about half of them, mostly in its first few hundred events, where its
minimum error estimate is still noisy (``warm_start=30``); EDDM fired in nearly all of them
(river's own example lowers its ``alpha`` and ``beta``). Pass parameters to trade delay for
quiet; at a 30% error rate HDDM_W also fires often, HDDM_A and ADWIN seldom.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> errors = np.concatenate((rng.random(2_000) < 0.1, rng.random(2_000) < 0.4))
>>> detector = ErrorStreamDetector("ddm")
>>> detector.update_many(errors[:2_000]), detector.last_detection_index
(0, None)
>>> detector.update_many(errors[2_000:]), detector.last_detection_index
(1, 2008)
>>> detectors_for("regression")
('adwin',)
>>> ErrorStreamDetector("ddm", task="regression")
Traceback (most recent call last):
...
ValueError: 'ddm' watches 0/1 classification errors; a regression error stream needs one of: adwin
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from river import drift
from river.base import BinaryDriftDetector, DriftDetector

from detectors.columns import FloatArray
from detectors.quality import TASKS, Task
from detectors.streaming import RiverDetector

Param = bool | int | float | str

ERROR_DETECTORS: Mapping[str, Callable[..., DriftDetector | BinaryDriftDetector]] = {
    "ddm": drift.binary.DDM,
    "eddm": drift.binary.EDDM,
    "hddm_a": drift.binary.HDDMA,
    "hddm_w": drift.binary.HDDMW,
    "adwin": drift.ADWIN,
}


def _takes_bits(name: str) -> bool:
    # river's own class hierarchy says which detectors only understand 0/1 input
    return isinstance(ERROR_DETECTORS[name](), BinaryDriftDetector)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")


def detectors_for(task: Task) -> tuple[str, ...]:
    """The names in ``ERROR_DETECTORS`` that can watch the error stream of ``task``."""
    _check_task(task)
    return tuple(n for n in ERROR_DETECTORS if task == "classification" or not _takes_bits(n))


class ErrorStreamDetector(RiverDetector):
    """One river detector over one model's error stream, fed in micro-batches."""

    def __init__(self, name: str, *, task: Task = "classification", **params: Param) -> None:
        if name not in ERROR_DETECTORS:
            known = ", ".join(ERROR_DETECTORS)
            raise ValueError(f"unknown error-stream detector {name!r}; use one of {known}")
        _check_task(task)
        self._name, self._task, self._params = name, task, dict(sorted(params.items()))
        super().__init__()

    def _new_detector(self) -> DriftDetector | BinaryDriftDetector:
        detector = ERROR_DETECTORS[self._name](**self._params)
        self._bits = isinstance(detector, BinaryDriftDetector)
        if self._bits and self._task == "regression":
            usable = ", ".join(detectors_for("regression"))
            raise ValueError(
                f"{self._name!r} watches 0/1 classification errors; "
                f"a regression error stream needs one of: {usable}"
            )
        return detector

    def _inputs(self, present: FloatArray) -> list[Any]:
        if self._bits and not np.isin(present, (0.0, 1.0)).all():
            raise ValueError(f"{self._name!r} takes 0/1 errors (1 = misclassified)")
        if not np.isfinite(present).all():
            raise ValueError("errors must be finite numbers (NaN marks a missing one)")
        return [x == 1.0 for x in present.tolist()] if self._bits else super()._inputs(present)

    @property
    def name(self) -> str:
        return self._name

    @property
    def task(self) -> Task:
        return self._task

    @property
    def params(self) -> dict[str, Param]:
        return dict(self._params)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self._params.items())
        return f"ErrorStreamDetector({self._name!r}, task={self._task!r}{args})"
