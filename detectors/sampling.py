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
    _values: FloatArray = field(default_factory=_empty, repr=False)
    _keys: FloatArray = field(default_factory=_empty, repr=False)
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
        self._values = np.concatenate((self._values, values))
        self._keys = np.concatenate((self._keys, keys))
        if self._values.size > 2 * self.k:
            self._compact()

    def merge(self, other: BottomKSample) -> BottomKSample:
        merged = BottomKSample(k=min(self.k, other.k), seen=self.seen + other.seen)
        merged._values = np.concatenate((self._values, other._values))
        merged._keys = np.concatenate((self._keys, other._keys))
        merged._compact()
        return merged

    @property
    def values(self) -> FloatArray:
        """The sample: at most ``k`` values, in no particular order."""
        if self._values.size > self.k:
            self._compact()
        return self._values

    def _compact(self) -> None:
        if self._values.size <= self.k:
            return
        order = np.argpartition(self._keys, self.k - 1)[: self.k]
        self._values, self._keys = self._values[order], self._keys[order]
        self._threshold = float(self._keys.max())
