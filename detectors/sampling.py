"""A uniform, mergeable, bounded sample of a stream of numbers (bottom-k sampling).

Every value gets an independent random priority and the sample keeps the ``k`` values with the
smallest priorities. That is a uniform sample without replacement of everything seen, and two
samples merge by the same rule, so window profiles can be combined across partitions.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> s = BottomKSample(k=100)
>>> s.add(np.arange(10_000, dtype=float), rng)
>>> len(s.values), s.seen
(100, 10000)
>>> bool(abs(np.median(s.values) - 5_000) < 1_500)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass
class BottomKSample:
    k: int
    seen: int = 0
    # The kept values and their priorities are the first ``_size`` entries of these buffers,
    # which have room to grow (up to 2k): a batch appends what it keeps instead of copying
    # the whole sample, so a full sample costs what the few values it still takes do.
    _values: FloatArray = field(default_factory=_empty, repr=False)
    _keys: FloatArray = field(default_factory=_empty, repr=False)
    _size: int = 0
    # Priority of the k-th kept value once the sample is full: nothing above it can enter.
    _threshold: float = 1.0

    def add(self, values: FloatArray, rng: np.random.Generator) -> None:
        """Offer ``values`` (missing values already removed) to the sample."""
        if values.size == 0:
            return
        self.offer(values, rng.random(values.size))

    def offer(self, values: FloatArray, keys: FloatArray) -> None:
        """Offer ``values`` with their priorities (``rng.random`` draws, one per value)."""
        self.seen += int(values.size)
        keep = keys < self._threshold
        if not keep.all():
            values, keys = values[keep], keys[keep]
        self._append(values, keys)

    def merge(self, other: BottomKSample) -> BottomKSample:
        merged = BottomKSample(k=min(self.k, other.k), seen=self.seen + other.seen)
        merged._values = np.concatenate((self._kept(self._values), other._kept(other._values)))
        merged._keys = np.concatenate((self._kept(self._keys), other._kept(other._keys)))
        merged._size = merged._values.size
        merged._compact()
        return merged

    @property
    def values(self) -> FloatArray:
        """The sample: at most ``k`` values, in no particular order."""
        # read when the window closes: the room goes (compacted into buffers of k)
        if self._size > self.k:
            self._compact(self.k)
        elif self._values.size > self._size:
            self._values = self._values[: self._size].copy()
            self._keys = self._keys[: self._size].copy()
        return self._values

    def _kept(self, buffer: FloatArray) -> FloatArray:
        return buffer[: self._size]

    def _append(self, values: FloatArray, keys: FloatArray) -> None:
        end = self._size + values.size
        if end > self._values.size:  # doubling, up to the 2k a full sample compacts at
            room = max(end, min(2 * end, 2 * self.k))
            self._values = _grown(self._values, self._size, room)
            self._keys = _grown(self._keys, self._size, room)
        self._values[self._size : end] = values
        self._keys[self._size : end] = keys
        self._size = end
        if end > 2 * self.k:
            self._compact()

    def _compact(self, room: int = 0) -> None:
        """Keep the k values of smallest priority, in new buffers of ``room`` (2k unless
        said), so that an array ``values`` returned before stays as it was."""
        if self._size <= self.k:
            return
        keys = self._kept(self._keys)
        order = np.argpartition(keys, self.k - 1)[: self.k]
        room = room or 2 * self.k
        values, self._values = self._values, np.empty(room)
        self._keys = np.empty(room)
        np.take(values, order, out=self._values[: self.k])
        np.take(keys, order, out=self._keys[: self.k])
        self._size = self.k
        self._threshold = float(self._keys[: self.k].max())


def offer_each(
    samples: Sequence[BottomKSample], values: FloatArray, keys: FloatArray, counts: list[int]
) -> None:
    """``sample.offer`` of each sample in turn, its values and keys the next ``count`` of
    ``values`` and ``keys``: the same samples, with the priorities compared in one call."""
    thresholds = np.array([sample._threshold for sample in samples])
    width = counts[0] if counts else 0
    if counts.count(width) == len(counts):  # as many values for each (no missing values)
        if width == 0:
            return
        keep = keys.reshape(len(samples), width) < thresholds[:, None]
        kept = keep.sum(axis=1).tolist()
    else:
        keep = keys < np.repeat(thresholds, counts)
        owners = np.repeat(np.arange(len(samples)), counts)[keep]
        kept = np.bincount(owners, minlength=len(samples)).tolist()
    if sum(kept) < keys.size:  # (until a sample is full, each keeps every value)
        values, keys = values[keep.reshape(-1)], keys[keep.reshape(-1)]
    start = 0
    for sample, count, n in zip(samples, counts, kept, strict=True):
        sample.seen += count
        if n:  # (nothing kept: the sample is as an empty offer leaves it)
            sample._append(values[start : start + n], keys[start : start + n])
            start += n


def _grown(buffer: FloatArray, size: int, room: int) -> FloatArray:
    """A new buffer of ``room`` entries starting with the first ``size`` of ``buffer``."""
    out = np.empty(room, dtype=np.float64)
    out[:size] = buffer[:size]
    return out
