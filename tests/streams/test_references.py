from __future__ import annotations

import numpy as np

from detectors.columns import ModelSchema, build_batch
from detectors.drift.window import ModelReference
from detectors.profile import ProfileConfig, WindowProfile
from detectors.reference import NumericReference
from streams.references import ReferenceBook, ReferencePolicy


def profile(shift: float = 0.0, n: int = 500, seed: int = 0) -> WindowProfile:
    rng = np.random.default_rng(seed)
    events = [{"model": "m", "features": {"x": float(v)}, "prediction": 1.0}
              for v in rng.normal(shift, 1, n)]  # fmt: skip
    p = WindowProfile(0, 60, ProfileConfig())
    p.add(build_batch(events, np.zeros(n), ModelSchema(features={})))
    return p


def test_warmup_learns_once_from_the_first_windows_of_each_version() -> None:
    book = ReferenceBook(ReferencePolicy("warmup", windows=3, min_events=1000))
    assert book.observe("m", "1", profile(), drifted=False) is None
    assert book.observe("m", "1", profile(), drifted=False) is None
    assert book.reference_for("m", "1") is None
    learned = book.observe("m", "1", profile(), drifted=False)
    assert learned is not None and learned.source == "warmup"
    assert learned.features["x"].count == 1500
    assert book.reference_for("m", "1") is learned
    assert book.observe("m", "1", profile(5.0), drifted=True) is None  # never relearned
    assert book.reference_for("m", "2") is None  # a new version learns its own


def test_warmup_waits_for_enough_events() -> None:
    book = ReferenceBook(ReferencePolicy("warmup", windows=2, min_events=1000))
    assert book.observe("m", "1", profile(n=100), drifted=False) is None
    assert book.observe("m", "1", profile(n=100), drifted=False) is None
    assert book.observe("m", "1", profile(n=900), drifted=False) is not None


def test_uploaded_reference_wins_and_stops_warmup() -> None:
    book = ReferenceBook(ReferencePolicy("warmup", windows=1, min_events=1))
    uploaded = ModelReference.from_profiles([profile()], "*", "uploaded")
    book.load([("m", uploaded)])
    assert book.reference_for("m", "7") is uploaded
    assert book.observe("m", "7", profile(), drifted=False) is None


def test_rolling_reference_leaves_out_drifted_windows() -> None:
    book = ReferenceBook(ReferencePolicy("rolling", windows=2, min_events=1))
    book.observe("m", "1", profile(0.0), drifted=False)
    assert book.reference_for("m", "1") is None  # not enough windows yet
    book.observe("m", "1", profile(0.0, seed=1), drifted=False)
    first = book.reference_for("m", "1")
    assert first is not None and first.source == "rolling"
    assert book.reference_for("m", "1") is first  # built once per new window
    book.observe("m", "1", profile(4.0), drifted=True)  # a drifted window is not folded in
    assert book.reference_for("m", "1") is first
    reference = first.features["x"]
    assert isinstance(reference, NumericReference)
    assert reference.mean is not None and abs(reference.mean) < 0.2


def test_a_learned_reference_is_stored_as_its_dict_and_read_back_the_same() -> None:
    """The analyzer hands a learned reference over as itself; its stored form, made when it
    is written, is its ``to_dict()``, and the worker reads that back into an equal reference
    (its samples packed again, the same values)."""
    from detectors.drift.window import DriftConfig
    from driftline.store import StoredReference
    from streams.drift import DriftAnalyzer, read_references

    analyzer = DriftAnalyzer(ReferenceBook(ReferencePolicy("warmup", 2, 500)), DriftConfig())
    assert analyzer.analyze("m", "1", profile(seed=1)) == (None, [])
    report, [learned] = analyzer.analyze("m", "1", profile(seed=2))
    assert report is None and learned.unit == "m"
    assert learned.reference is analyzer.book.reference_for("m", "1")
    stored = learned.stored()
    reference = learned.reference
    assert stored == StoredReference("m", "1", "warmup", reference.to_dict(), learned.created_at)
    [(model, back)] = read_references([stored])
    assert model == "m" and back.to_dict() == reference.to_dict()
