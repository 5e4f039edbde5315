import dataclasses
import json

import numpy as np
import pytest

from detectors.columns import ModelSchema, build_batch
from detectors.drift.window import ModelReference, _compare_window_per_feature, compare_window
from detectors.profile import ProfileConfig, WindowProfile
from detectors.reference import (
    CategoricalReference,
    NumericReference,
    PackedSample,
    pack_sample,
)


def test_numeric_moments_and_counts_ignore_missing() -> None:
    values = np.array([1.0, np.nan, 2.0, 4.0, np.nan, 9.0])
    ref = NumericReference.from_values(values)
    assert (ref.count, ref.missing, ref.present) == (6, 2, 4)
    assert ref.mean == pytest.approx(4.0)
    assert ref.std == pytest.approx(np.std([1.0, 2.0, 4.0, 9.0], ddof=1))


def test_sample_is_sorted_uniform_subset_and_deterministic() -> None:
    values = np.random.default_rng(3).normal(size=20_000)
    ref = NumericReference.from_values(values, sample_size=1_000, seed=7)
    assert ref.sample.size == 1_000
    assert np.all(np.diff(ref.sample) >= 0)
    assert np.isin(ref.sample, values).all()
    again = NumericReference.from_values(values, sample_size=1_000, seed=7)
    other = NumericReference.from_values(values, sample_size=1_000, seed=8)
    np.testing.assert_array_equal(ref.sample, again.sample)
    assert not np.array_equal(ref.sample, other.sample)
    # uniform: the subsample's deciles track the full data's
    deciles = np.linspace(0.1, 0.9, 9)
    np.testing.assert_allclose(
        np.quantile(ref.sample, deciles), np.quantile(values, deciles), atol=0.15
    )


def test_small_input_keeps_every_value() -> None:
    ref = NumericReference.from_values(np.array([3.0, 1.0, 2.0]), sample_size=10)
    np.testing.assert_array_equal(ref.sample, [1.0, 2.0, 3.0])


def test_quantile_edges_and_proportions_by_hand() -> None:
    ref = NumericReference.from_values(np.arange(1.0, 101.0), bins=4)
    np.testing.assert_array_equal(ref.edges, [25.0, 50.0, 75.0])
    np.testing.assert_allclose(ref.proportions, [0.25, 0.25, 0.25, 0.25])
    # bins are closed on the right: an edge value belongs to the bin below it
    counts = ref.bin_counts(np.array([-1e9, 25.0, 25.5, 50.0, 75.0, 75.1, 1e9]))
    np.testing.assert_array_equal(counts, [2, 2, 1, 2])


def test_point_mass_keeps_every_bin_non_empty() -> None:
    values = np.concatenate((np.zeros(600), np.arange(1.0, 401.0)))  # 60% zeros
    ref = NumericReference.from_values(values, bins=10)
    assert ref.edges[0] == 0.0
    assert ref.proportions[0] == pytest.approx(0.6)
    assert (ref.proportions > 0).all()
    assert ref.proportions.sum() == pytest.approx(1.0)


def test_constant_feature_has_one_bin() -> None:
    ref = NumericReference.from_values(np.full(100, 3.5))
    assert ref.bins == 1 and ref.edges.size == 0
    np.testing.assert_array_equal(ref.proportions, [1.0])
    assert ref.std == 0.0


def test_all_missing_and_single_value() -> None:
    empty = NumericReference.from_values(np.full(5, np.nan))
    assert (empty.count, empty.missing, empty.bins, empty.sample.size) == (5, 5, 0, 0)
    assert empty.mean is None and empty.std is None
    single = NumericReference.from_values(np.array([2.0]))
    assert single.mean == 2.0 and single.std is None


def test_numeric_json_round_trip() -> None:
    values = np.random.default_rng(0).lognormal(size=3_000)
    values[::7] = np.nan
    ref = NumericReference.from_values(values, sample_size=500)
    back = NumericReference.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert back.to_dict() == ref.to_dict()
    for field in ("sample", "edges", "proportions"):
        np.testing.assert_array_equal(getattr(back, field), getattr(ref, field))
    empty = NumericReference.from_values(np.full(3, np.nan))
    assert NumericReference.from_dict(json.loads(json.dumps(empty.to_dict()))).mean is None


def test_numeric_reference_is_frozen_with_read_only_arrays() -> None:
    ref = NumericReference.from_values(np.arange(10.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.count = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        ref.sample[0] = 99.0


def test_numeric_from_dict_rejects_bad_input() -> None:
    data = NumericReference.from_values(np.arange(100.0)).to_dict()
    with pytest.raises(ValueError, match="not a numeric"):
        NumericReference.from_dict({**data, "kind": "categorical"})
    with pytest.raises(ValueError, match="proportions"):
        NumericReference.from_dict({**data, "proportions": [1.0]})
    with pytest.raises(ValueError, match="bins"):
        NumericReference.from_values(np.arange(3.0), bins=0)


def test_categorical_from_values_and_counts() -> None:
    ref = CategoricalReference.from_values(["b", "a", None, "b", "b", None])
    assert ref == CategoricalReference(6, 2, ("a", "b"), (1, 3))
    np.testing.assert_allclose(ref.proportions, [0.25, 0.75])
    assert CategoricalReference.from_counts({"b": 3, "a": 1, "z": 0}, missing=2) == ref


def test_categorical_json_round_trip_and_validation() -> None:
    ref = CategoricalReference.from_counts({"x": 5, "y": 2}, missing=1)
    assert CategoricalReference.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
    with pytest.raises(ValueError, match="count"):
        CategoricalReference.from_dict({**ref.to_dict(), "count": 99})
    with pytest.raises(ValueError, match="positive"):
        CategoricalReference(1, 0, ("x",), (-1,))
    all_missing = CategoricalReference.from_values([None, None])
    assert (all_missing.present, all_missing.proportions.size) == (0, 0)


def _bits(values: np.ndarray) -> list[int]:
    bits: list[int] = np.ascontiguousarray(values, dtype=np.float64).view(np.int64).tolist()
    return bits


def _samples() -> list[tuple[str, np.ndarray, bool]]:
    """(what, a sorted float64 sample, whether it packs as integer codes)."""
    rng = np.random.default_rng(11)
    normal = rng.normal(0, 1, 5_000)
    json_decimals = np.array(json.loads(json.dumps([f"{v:.3f}" for v in normal])), dtype=float)
    return [
        ("4 decimals, as np.round makes them", np.sort(normal.round(4)), True),
        ("3 decimals, parsed from text", np.sort(json_decimals), True),
        ("integers", np.sort(rng.integers(-(10**9), 10**9, 3_000).astype(float)), True),
        ("money", np.sort(rng.integers(0, 10**6, 2_000) / 100.0), True),
        ("a point mass", np.sort(np.concatenate((np.zeros(500), rng.integers(1, 9, 50)))), True),
        ("large integers", np.sort(rng.integers(0, 2**52, 100).astype(float)), False),
        ("arbitrary doubles", np.sort(normal), False),
        ("tiny", np.sort(normal * 1e-300), False),
        ("huge", np.sort(normal * 1e300), False),
        ("with -0.0", np.array([-1.0, -0.0, 0.5, 2.0]), False),
        ("with infinities", np.array([-np.inf, 0.25, 1.0, np.inf]), False),
        ("unsorted", np.array([3.0, 1.0, 2.0]), False),
        ("one value", np.array([0.1]), False),
        ("none", np.array([], dtype=float), False),
    ]


@pytest.mark.parametrize(("what", "sample", "packs"), _samples(), ids=[s[0] for s in _samples()])
def test_a_packed_sample_gives_back_every_value_bit_for_bit(
    what: str, sample: np.ndarray, packs: bool
) -> None:
    packed = pack_sample(sample)
    assert packed.size == sample.size
    assert _bits(packed.values()) == _bits(sample)
    assert (packed.raw is None) == packs, what
    if packs and packed.steps is not None:
        assert packed.steps.nbytes <= sample.nbytes / 2


def _reference_as_before(values: np.ndarray, sample_size: int, seed: int = 0) -> np.ndarray:
    """The sorted subsample ``from_values`` kept before samples were packed."""
    present = values[~np.isnan(values)]
    if present.size > sample_size:
        rng = np.random.default_rng(seed)
        return np.sort(present[rng.choice(present.size, size=sample_size, replace=False)])
    return np.sort(present)


@pytest.mark.parametrize("sample_size", [10, 1_000, 5_000])
def test_references_keep_the_samples_they_kept_before(sample_size: int) -> None:
    for what, sample, _ in _samples():
        rng = np.random.default_rng(sample.size)
        values = rng.permutation(sample)  # from_values takes them in any order
        if what in ("with infinities", "huge", "none"):
            continue  # not a feature's values (finite, with a finite variance)
        ref = NumericReference.from_values(values, sample_size=sample_size, seed=3)
        expected = _reference_as_before(values, sample_size, seed=3)
        assert _bits(ref.sample) == _bits(expected), what
        assert ref.sample_size == expected.size
        assert ref.to_dict()["sample"] == expected.tolist()
        back = NumericReference.from_dict(json.loads(json.dumps(ref.to_dict())))
        assert _bits(back.sample) == _bits(expected), what
        assert not ref.sample.flags.writeable


def test_drift_reports_are_the_same_with_the_sample_packed_or_not() -> None:
    """Every test, p-value and decision of a window against a reference whose samples are
    packed, and against the same reference with its samples kept as float64."""
    rng = np.random.default_rng(5)

    def events(n: int, shift: float) -> list[dict[str, object]]:
        x = (rng.normal(shift, 1, n)).round(4)
        y = rng.integers(0, 100, n) / 10
        return [
            {"model": "m", "features": {"x": float(a), "y": float(b), "z": float(a * 1.1)},
             "prediction": float(a > 0)}
            for a, b in zip(x, y, strict=True)
        ]  # fmt: skip

    def profile(rows: list[dict[str, object]]) -> WindowProfile:
        window = WindowProfile(0, 60, ProfileConfig())
        window.add(build_batch(rows, np.zeros(len(rows)), ModelSchema(features={})))
        return window

    reference = ModelReference.from_profiles([profile(events(3_000, 0.0))], "1")
    numeric = {f: r for f, r in reference.features.items() if isinstance(r, NumericReference)}
    assert {f for f, r in numeric.items() if r.packed.raw is None} == {"x", "y"}

    def unpacked(r: NumericReference) -> NumericReference:
        return dataclasses.replace(r, packed=PackedSample(r.sample_size, raw=r.sample))

    plain = dataclasses.replace(
        reference,
        features={f: unpacked(r) if isinstance(r, NumericReference) else r
                  for f, r in reference.features.items()},
        output=unpacked(reference.output)
        if isinstance(reference.output, NumericReference) else reference.output,
    )  # fmt: skip
    for n, shift in ((200, 0.0), (2_000, 0.0), (500, 0.3), (5_000, 1.0)):
        window = profile(events(n, shift))
        assert compare_window(reference, window) == compare_window(plain, window)
        assert _compare_window_per_feature(reference, window) == _compare_window_per_feature(
            plain, window
        )
