"""The columnar folding path (``build_batch``, ``WindowProfile.add``) gives what the per-value
path it replaced gives (``detectors/fold_reference.py``): the same columns in the same order,
the same schema, and the same profile to the last bit, random sample draws included, for
plain batches and for the odd ones (features missing from some events or from a whole batch,
None, a string in a numeric feature, numbers and bools in a text feature, NaN and infinities,
features first seen in a later batch)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.columns import EventBatch, ModelSchema, build_batch
from detectors.fold_reference import add_per_column, build_batch_per_value
from detectors.profile import (
    CategoricalSummary,
    ColumnSummary,
    NumericSummary,
    ProbabilitySummary,
    ProfileConfig,
    WindowProfile,
    add_parts,
)
from detectors.sampling import BottomKSample

# infinities overflow the moments (inf - inf), in both paths alike
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

Events = list[dict[str, Any]]
LEVELS = ["a", "b", "c", "d"]
ODD_NUMBERS: list[Any] = [
    None,
    True,
    False,
    0,
    7,
    2**53 + 1,
    2**64 + 5,
    -0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
    1e308,
]
ODD_TEXT: list[Any] = [None, "", "a", 75001, 1.0, 2.5, True, False, "1.5"]


def exact(value: Any) -> Any:
    """A form that compares equal only when the values are the same bits (NaN included)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return ("objects", value.shape, [exact(v) for v in value.tolist()])
        return (str(value.dtype), value.shape, value.tobytes())
    if isinstance(value, float | np.floating):
        return ("float", float(value).hex())
    if isinstance(value, BottomKSample):  # the kept part of its buffers; the reference path
        # has the concatenating sample of then, which test_sampling.py holds the new one to
        kept = value._size
        return ("sample", value.k, value.seen, exact(value._values[:kept]),
                exact(value._keys[:kept]), exact(value._threshold))  # fmt: skip
    if isinstance(value, dict):  # Counter too: insertion order shows in most_common ties
        return [(exact(k), exact(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [exact(v) for v in value]
    if isinstance(value, set):
        return sorted(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f.name for f in dataclasses.fields(value) if f.name != "_rng"]
        return (type(value).__name__, [(f, exact(getattr(value, f))) for f in fields])
    return value


def profile_state(profile: WindowProfile) -> Any:
    return (exact(profile), profile._rng.bit_generator.state)


def batch_state(batch: EventBatch) -> Any:
    return exact(batch)


def fold_both(
    batches: list[Events], config: ProfileConfig | None = None
) -> tuple[WindowProfile, WindowProfile]:
    """Each batch through both paths (each with its own schema and profile), checking the
    batches and the profiles agree after every one."""
    config = config or ProfileConfig(sample_size=64, max_categories=3)
    schemas = ModelSchema(features={}), ModelSchema(features={})
    new, old = WindowProfile(120, 60, config), WindowProfile(120, 60, config)
    for events in batches:
        ts = np.arange(len(events), dtype=float)
        batch = build_batch(events, ts, schemas[0])
        reference = build_batch_per_value(events, ts, schemas[1])
        assert batch_state(batch) == batch_state(reference)
        assert schemas[0] == schemas[1]
        # both paths fail alike where they fail at all, leaving the same state
        assert failure(WindowProfile.add, new, batch) == failure(add_per_column, old, reference)
        assert profile_state(new) == profile_state(old)
    return new, old


def failure(
    add: Callable[[WindowProfile, EventBatch], None], profile: WindowProfile, batch: EventBatch
) -> str | None:
    try:
        add(profile, batch)
    except TypeError as exc:
        return str(exc)
    return None


def event(features: dict[str, Any], i: int) -> dict[str, Any]:
    return {"model": "m", "features": features, "prediction": float(i % 3), "latency_ms": 1.0}


def plain_events(rng: np.random.Generator, n: int, numeric: int, text: int) -> Events:
    values = rng.normal(size=(n, numeric))
    picks = rng.integers(0, len(LEVELS), (n, text))
    return [
        event(
            {
                **{f"n{j}": float(values[i, j]) for j in range(numeric)},
                **{f"c{j}": LEVELS[picks[i, j]] for j in range(text)},
            },
            i,
        )
        for i in range(n)
    ]


def odd_events(rng: np.random.Generator, n: int, numeric: int, text: int, odd: float) -> Events:
    """Events where each value is, with probability ``odd``, absent, None or of an odd type."""
    out = []
    for i in range(n):
        features: dict[str, Any] = {}
        for j in range(numeric):
            roll = rng.random()
            if roll < odd / 3:
                continue  # absent from this event
            if roll < odd / 2:
                features[f"n{j}"] = "abc" if rng.random() < 0.5 else "1.5"
            elif roll < odd:
                features[f"n{j}"] = ODD_NUMBERS[rng.integers(len(ODD_NUMBERS))]
            else:
                features[f"n{j}"] = float(rng.normal())
        for j in range(text):
            roll = rng.random()
            if roll < odd / 3:
                continue
            if roll < odd:
                features[f"c{j}"] = ODD_TEXT[rng.integers(len(ODD_TEXT))]
            else:
                features[f"c{j}"] = LEVELS[rng.integers(len(LEVELS))]
        out.append({**event(features, i), **extras(rng, odd)})
    return out


def extras(rng: np.random.Generator, odd: float) -> dict[str, Any]:
    """The other fields an event may carry, each sent with probability ``odd``."""
    sent = {
        "version": ["v1", "v2", 3, None][rng.integers(4)],
        "latency_ms": [None, 0.0, 12.5][rng.integers(3)],
        "segment": [None, {}, {"channel": "web"}, {"channel": "app", "region": "eu"}][
            rng.integers(4)
        ],
        "shadow": [None, True, False][rng.integers(3)],
        "decided_by": [None, "model", "human"][rng.integers(3)],
        "metrics": [None, {}, {"revenue": 2.5}, {"revenue": 1, "clicks": 3}][rng.integers(4)],
        "prediction": [None, 1.0, 0, True][rng.integers(4)],
    }
    return {name: value for name, value in sent.items() if rng.random() < odd}


def test_plain_batches_fold_to_the_same_profile() -> None:
    rng = np.random.default_rng(0)
    new, _ = fold_both([plain_events(rng, 200, 40, 10) for _ in range(6)])
    assert isinstance(new.features["n0"], NumericSummary)
    assert new.features["n0"].sample.seen == 1200  # the samples filled and were compacted


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("odd", [0.02, 0.3])
def test_odd_batches_fold_to_the_same_profile(seed: int, odd: float) -> None:
    rng = np.random.default_rng([seed, int(odd * 100)])
    batches = []
    for size in [1, 40, 3, 150, 60, 90]:
        # features come and go: some batches hold only a few of them
        numeric, text = int(rng.integers(1, 12)), int(rng.integers(0, 5))
        if rng.random() < 0.3:
            batches.append(plain_events(rng, size, numeric, text))
        else:
            batches.append(odd_events(rng, size, numeric, text, odd))
    fold_both(batches)


def test_the_cases_each_path_handles_its_own_way_agree() -> None:
    one = [event({"x": float(i)}, i) for i in range(5)]  # one numeric feature
    text_only = [event({"c": "a" if i % 2 else "b"}, i) for i in range(5)]
    nothing = [event({}, i) for i in range(4)]
    later = [event({"x": 1.0, "y": 2, "late": "z"}, i) for i in range(3)]
    strings = [event({"x": "1_000" if i == 2 else 2.0, "y": " 3 "}, i) for i in range(4)]
    bad = [event({"x": "abc" if i == 1 else 2.0, "y": None, "late": 5}, i) for i in range(4)]
    zeros = [event({"x": z, "y": -z}, i) for i, z in enumerate([0.0, -0.0, 0.0, -0.0])]
    # as many features in every event, not the same ones
    swapped = [
        event({"x": 1.0, "y": 2.0} if i % 2 else {"x": 3.0, "late": "q"}, i) for i in range(6)
    ]
    fold_both([one, text_only, nothing, later, strings, bad, zeros, nothing, swapped, later])


def test_a_batch_longer_than_numpy_buffers_sums_alike() -> None:
    rng = np.random.default_rng(3)
    events = plain_events(rng, 9000, 3, 1)
    for e in events[::7]:
        e["features"]["n1"] = None  # one column with gaps, two without
    fold_both([events, events[:10]], ProfileConfig(sample_size=2048))


def test_a_feature_null_then_text_becomes_categorical_alike() -> None:
    """A feature null in its first batch gets a numeric summary (its kind unknown); when
    text arrives a categorical summary takes over, the earlier rows counted as missing (it
    used to fail every later batch of the window with a TypeError: events dead-lettered as an
    internal error). Both paths do it alike."""
    schemas = ModelSchema(features={}), ModelSchema(features={})
    first = [event({"x": 1.0, "z": None}, i) for i in range(3)]
    then = [event({"x": 2.0, "z": "text"}, i) for i in range(3)]
    profiles = [WindowProfile(0, 60, ProfileConfig()) for _ in range(2)]
    failures = []
    for events in (first, then):
        ts = np.zeros(len(events))
        batch = build_batch(events, ts, schemas[0])
        reference = build_batch_per_value(events, ts, schemas[1])
        failures.append(failure(WindowProfile.add, profiles[0], batch))
        assert failures[-1] == failure(add_per_column, profiles[1], reference)
        assert profile_state(profiles[0]) == profile_state(profiles[1])
    assert failures == [None, None]
    summary = profiles[0].features["z"]
    assert isinstance(summary, CategoricalSummary)
    assert (summary.count, summary.missing, dict(summary.counts)) == (6, 3, {"text": 3})


def test_probabilities_and_taken_rows_fold_alike() -> None:
    """Class probabilities as the output, and the rows of one window of a batch (``take``)."""
    rng = np.random.default_rng(5)
    events = plain_events(rng, 120, 5, 2)
    for i, e in enumerate(events):
        e["prediction"] = [0.2, 0.8] if i % 5 else None
    schemas = ModelSchema(features={}), ModelSchema(features={})
    profiles = [WindowProfile(0, 60, ProfileConfig(sample_size=32)) for _ in range(2)]
    rows = np.flatnonzero(np.arange(120) % 3 == 0)
    ts = np.zeros(120)
    new = build_batch(events, ts, schemas[0]).take(rows)
    old = build_batch_per_value(events, ts, schemas[1]).take(rows)
    profiles[0].add(new)
    add_per_column(profiles[1], old)
    assert profile_state(profiles[0]) == profile_state(profiles[1])
    summaries: list[ColumnSummary | None] = [p.output for p in profiles]
    assert all(isinstance(s, ProbabilitySummary) for s in summaries)
    assert isinstance(profiles[0].features["c0"], CategoricalSummary)


feature_names = st.sampled_from([f"f{i}" for i in range(12)])
feature_value = st.one_of(
    st.floats(width=64),  # NaN and infinities included
    st.floats(-1e6, 1e6),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.sampled_from(["a", "b", "", "1.5", "abc", " 2 "]),
)
batches_of_events = st.lists(
    st.lists(
        st.dictionaries(feature_names, feature_value, max_size=8).map(lambda f: event(f, 0)),
        min_size=1,
        max_size=25,
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(batches_of_events)
def test_any_batches_fold_to_the_same_profile(batches: list[Events]) -> None:
    """Features that come and go, of any value a JSON event may hold (and NaN and infinities,
    which a caller other than the decoder may pass)."""
    fold_both(batches)


def parts_both(batches: list[Events], seed: int, config: ProfileConfig | None = None) -> None:
    """Each batch's rows split into parts, as slices split them (every event in one part per
    key, some in none), folded by ``add_parts`` into one set of profiles and by
    ``profile.add(batch.take(rows))`` into another: the same profiles after every batch."""
    config = config or ProfileConfig(sample_size=16, max_categories=3)
    rng = np.random.default_rng(seed)
    schema = ModelSchema(features={})
    together: dict[str, WindowProfile] = {}
    apart: dict[str, WindowProfile] = {}
    for events in batches:
        batch = build_batch(events, np.zeros(len(events)), schema)
        rows_of: dict[str, list[int]] = {}
        for key in range(2):
            values = rng.integers(0, 4, len(events))
            for row, value in enumerate(values.tolist()):
                if value < 3:  # the rest carry no value of this key
                    rows_of.setdefault(f"k{key}={value}", []).append(row)
        parts = []
        for label, rows in rows_of.items():
            taken = np.asarray(rows, dtype=np.int64)
            for profiles in (together, apart):
                if label not in profiles:
                    profiles[label] = WindowProfile(120, 60, config)
            parts.append((together[label], taken))
            apart[label].add(batch.take(taken))
        add_parts(parts, batch)
        assert together.keys() == apart.keys()
        for label, profile in together.items():
            assert profile_state(profile) == profile_state(apart[label]), label


def test_parts_fold_as_each_part_alone() -> None:
    rng = np.random.default_rng(7)
    plain = [plain_events(rng, 300, 30, 5) for _ in range(4)]
    parts_both(plain, 0)
    gaps = [odd_events(rng, size, 8, 3, 0.1) for size in (200, 1, 40, 300, 120)]
    parts_both(gaps, 1)
    # long parts: pairwise sums past numpy's 128-value blocks, with and without gaps
    long = plain_events(rng, 2000, 4, 1)
    for e in long[::11]:
        e["features"]["n2"] = None
    parts_both([long, long[:30]], 2, ProfileConfig(sample_size=512))


@pytest.mark.parametrize("seed", range(8))
def test_odd_parts_fold_as_each_part_alone(seed: int) -> None:
    rng = np.random.default_rng([seed, 99])
    batches = []
    for size in [1, 40, 3, 150, 60, 90]:
        numeric, text = int(rng.integers(0, 10)), int(rng.integers(0, 4))
        batches.append(odd_events(rng, size, numeric, text, [0.02, 0.3][seed % 2]))
    parts_both(batches, seed)


@settings(max_examples=100, deadline=None)
@given(batches_of_events, st.integers(0, 2**16))
def test_any_parts_fold_as_each_part_alone(batches: list[Events], seed: int) -> None:
    parts_both(batches, seed)
