import dataclasses
import pickle
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest
from river import drift
from river.base import DriftDetector

from detectors.columns import ModelSchema, build_batch
from detectors.concept import ERROR_DETECTORS, ErrorStreamDetector
from detectors.drift.window import PREDICTION
from detectors.streaming import (
    STREAMING_DETECTORS,
    ColumnDetectors,
    RiverDetector,
    StreamingDetector,
    StreamingSpec,
)

DETECTORS = sorted(STREAMING_DETECTORS)
# river's own classes, typed through their base class (some constructors carry no hints)
RIVER: dict[str, Callable[..., DriftDetector]] = {
    "adwin": drift.ADWIN,
    "kswin": drift.KSWIN,
    "page_hinkley": drift.PageHinkley,
}


def _stream(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate((rng.normal(0.0, 1.0, 1_000), rng.normal(3.0, 1.0, 1_000)))


def _river_drift_points(detector: DriftDetector, values: np.ndarray) -> list[int]:
    points = []
    for i, x in enumerate(values.tolist()):
        detector.update(x)
        if detector.drift_detected:
            points.append(i)
    return points


@pytest.mark.parametrize("name", DETECTORS)
def test_fires_after_a_change(name: str) -> None:
    detector = StreamingDetector(StreamingSpec.of(name))
    stream = _stream()
    detector.update_many(stream[:1_000])
    assert detector.update_many(stream[1_000:]) >= 1
    assert detector.last_detection_index is not None and detector.last_detection_index >= 1_000
    assert detector.n_seen == 2_000


def test_adwin_stays_quiet_on_a_stationary_stream() -> None:
    detector = StreamingDetector(StreamingSpec.of("adwin"))
    assert detector.update_many(np.random.default_rng(1).normal(size=5_000)) == 0
    assert (detector.detections, detector.last_detection_index) == (0, None)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("adwin", {"delta": 0.01}),
        ("kswin", {"alpha": 0.001, "seed": 0}),
        ("page_hinkley", {"threshold": 20.0}),
    ],
)
def test_same_drift_points_as_river_itself(name: str, params: dict[str, float]) -> None:
    stream = _stream(2)
    expected = _river_drift_points(RIVER[name](**params), stream)
    detector = StreamingDetector(StreamingSpec.of(name, **params))
    assert detector.update_many(stream) == len(expected) > 0
    assert detector.last_detection_index == expected[-1]


@pytest.mark.parametrize("name", DETECTORS)
def test_micro_batches_and_missing_values_do_not_change_the_result(name: str) -> None:
    stream = _stream(3)
    whole = StreamingDetector(StreamingSpec.of(name))
    whole.update_many(stream)
    chunked = StreamingDetector(StreamingSpec.of(name))
    fired = sum(chunked.update_many(chunk) for chunk in np.array_split(stream, 7))
    assert fired == whole.detections
    assert chunked.last_detection_index == whole.last_detection_index
    # a NaN before every value: same detections, positions counted with the NaN
    gappy = np.column_stack((np.full(stream.size, np.nan), stream)).ravel()
    with_gaps = StreamingDetector(StreamingSpec.of(name))
    assert with_gaps.update_many(gappy) == whole.detections
    assert whole.last_detection_index is not None
    assert with_gaps.last_detection_index == 2 * whole.last_detection_index + 1
    assert with_gaps.n_seen == 2 * stream.size


@pytest.mark.parametrize("name", DETECTORS)
def test_pickled_state_carries_on_identically(name: str) -> None:
    stream = _stream(4)
    detector = StreamingDetector(StreamingSpec.of(name))
    detector.update_many(stream[:1_100])
    restored = pickle.loads(pickle.dumps(detector))
    assert restored.spec == detector.spec and restored.n_seen == 1_100
    assert restored.update_many(stream[1_100:]) == detector.update_many(stream[1_100:])
    assert restored.detections == detector.detections
    assert restored.last_detection_index == detector.last_detection_index


def test_spec_is_frozen_json_friendly_and_checked() -> None:
    spec = StreamingSpec.of("kswin", window_size=200, alpha=0.001)
    assert spec.params == (("alpha", 0.001), ("window_size", 200))
    assert StreamingSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.detector = "adwin"  # type: ignore[misc]
    with pytest.raises(ValueError, match="adwin, kswin, page_hinkley"):
        StreamingSpec.of("cusum")


def test_results_are_read_only_and_repr_shows_the_spec() -> None:
    detector = StreamingDetector(StreamingSpec.of("adwin", delta=0.01))
    with pytest.raises(AttributeError):
        detector.detections = 5  # type: ignore[misc]
    assert repr(detector) == (
        "StreamingDetector(StreamingSpec(detector='adwin', params=(('delta', 0.01),)))"
    )


# every river-backed detector, through the one base class
RIVER_DETECTORS: dict[str, Callable[[], RiverDetector]] = {
    **{f"streaming:{n}": partial(StreamingDetector, StreamingSpec.of(n)) for n in DETECTORS},
    **{f"error:{n}": partial(ErrorStreamDetector, n) for n in ERROR_DETECTORS},
}


@pytest.mark.parametrize("name", sorted(RIVER_DETECTORS))
def test_every_river_detector_updates_one_value_as_a_batch_does(name: str) -> None:
    stream = _stream(5) if name.startswith("streaming") else (_stream(5) > 1.5).astype(float)
    stream[::13] = np.nan
    batched, single = RIVER_DETECTORS[name](), RIVER_DETECTORS[name]()
    assert batched.update_many(stream) >= 1
    flags = []
    for x in stream.tolist():
        single.update(x)
        flags.append(single.drift_detected)
    assert (single.n_seen, single.detections) == (batched.n_seen, batched.detections)
    assert single.last_detection_index == batched.last_detection_index
    assert sum(flags) == batched.detections
    assert flags[single.last_detection_index or 0] and not flags[-1]
    assert batched.drift_detected is False
    with pytest.raises(AttributeError):
        batched.n_seen = 0  # type: ignore[misc]


def test_column_detectors_watch_numeric_columns_and_the_output_in_event_time_order() -> None:
    values = _stream(6)
    events = [
        {"features": {"x": float(v), "c": "a"}, "prediction": float(v)} for v in values.tolist()
    ]
    ts = np.arange(values.size, dtype=np.float64)
    batch = build_batch(events, ts, ModelSchema(features={}))
    specs = (StreamingSpec.of("adwin"), StreamingSpec.of("page_hinkley"))
    expected = StreamingDetector(specs[0])
    fired = expected.update_many(values)
    columns = ColumnDetectors(specs)
    counts = columns.feed(batch)
    assert set(counts) == {(c, s.detector) for c in ("x", PREDICTION) for s in specs}
    assert counts[("x", "adwin")] == counts[(PREDICTION, "adwin")] == fired >= 1
    # shuffled arrival, same event times: fed in event-time order all the same
    shuffled = np.random.default_rng(7).permutation(values.size)
    again = ColumnDetectors(specs).feed(batch.take(shuffled))
    assert again == counts
    # the detectors carry on across batches: a stationary tail fires nothing more
    quiet = [{"features": {"x": 3.0, "c": "a"}, "prediction": 3.0}] * 200
    later = columns.feed(build_batch(quiet, np.full(200, ts[-1] + 1), ModelSchema(features={})))
    assert later[("x", "adwin")] == 0 and set(later) == set(counts)
