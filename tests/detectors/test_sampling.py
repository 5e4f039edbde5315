"""The bottom-k sample (``detectors/sampling.py``): what it keeps is what the concatenating
sample it replaced kept (``detectors/fold_reference.py``: the same values and priorities in
the same order, the same threshold), whether values are offered one batch at a time,
several samples at once (``offer_each``), or samples are merged; and it stays uniform and
bounded."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.fold_reference import ConcatenatingSample
from detectors.sampling import BottomKSample, FloatArray, offer_each


def same(new: BottomKSample, old: BottomKSample) -> bool:
    assert isinstance(old, ConcatenatingSample)
    return (
        new.seen == old.seen
        and new._threshold == old._threshold
        and new._values[: new._size].tobytes() == old._values.tobytes()
        and new._keys[: new._size].tobytes() == old._keys.tobytes()
    )


@pytest.mark.parametrize("k", [1, 5, 64])
def test_offers_keep_what_the_concatenating_sample_kept(k: int) -> None:
    sizes = np.random.default_rng(k).integers(0, 4 * k + 3, 60)
    new, old = BottomKSample(k), ConcatenatingSample(k)
    rngs = np.random.default_rng(7), np.random.default_rng(7)
    read: list[tuple[FloatArray, FloatArray]] = []
    for step, size in enumerate(sizes.tolist()):
        values = np.arange(size, dtype=float) + 1000.0 * step
        new.add(values, rngs[0])
        old.add(values, rngs[1])
        assert same(new, old)
        if step % 7 == 0:  # reading compacts, and what was read must not change afterwards
            got = new.values
            assert got.tobytes() == old.values.tobytes()
            read.append((got, got.copy()))
    for got, copy in read:
        assert got.tobytes() == copy.tobytes()


def test_offer_each_is_each_sample_offered_in_turn() -> None:
    rng = np.random.default_rng(3)
    samples = [BottomKSample(8) for _ in range(4)]
    olds = [ConcatenatingSample(8) for _ in range(4)]
    draws = np.random.default_rng(11), np.random.default_rng(11)
    for step in range(45):
        counts = rng.integers(0, 12, len(samples)).tolist()
        if step % 3 == 0:  # as many values for each sample (a batch without missing values)
            counts = [counts[0]] * len(samples)
        values = rng.normal(size=sum(counts))
        offer_each(samples, values, draws[0].random(sum(counts)), counts)
        start = 0
        for old, count in zip(olds, counts, strict=True):
            old.add(values[start : start + count], draws[1])
            start += count
        assert all(same(s, o) for s, o in zip(samples, olds, strict=True))


def test_merges_keep_what_the_concatenating_sample_kept() -> None:
    rngs = np.random.default_rng(2), np.random.default_rng(2)
    pairs: list[tuple[BottomKSample, BottomKSample]] = []
    for k, n in [(16, 5), (16, 40), (8, 100)]:
        new, old = BottomKSample(k), ConcatenatingSample(k)
        values = np.linspace(0, 1, n)
        new.add(values, rngs[0])
        old.add(values, rngs[1])
        pairs.append((new, old))
    merged_new, merged_old = pairs[0][0], pairs[0][1]
    for a, b in pairs[1:]:
        merged_new, merged_old = merged_new.merge(a), merged_old.merge(b)
        assert same(merged_new, merged_old)
    merged_new.add(np.ones(50), rngs[0])
    merged_old.add(np.ones(50), rngs[1])
    assert same(merged_new, merged_old)


def test_a_sample_is_uniform_and_bounded() -> None:
    rng = np.random.default_rng(0)
    sample = BottomKSample(500)
    for start in range(0, 100_000, 1_000):
        sample.add(np.arange(start, start + 1_000, dtype=float), rng)
    assert sample.seen == 100_000
    assert sample.values.size == 500
    assert sample._values.size == 500  # read at a window's close: no room kept
    assert abs(float(np.median(sample.values)) - 50_000) < 6_000
