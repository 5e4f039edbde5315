"""Reference profiles: what a feature looked like in training, computed once and stored as JSON.

Drift tests compare every window with a reference, so the reference holds exactly what they
need and nothing per-window: for a numeric feature a sorted uniform subsample (KS, Wasserstein),
reference-quantile bin edges with the reference share of each bin (PSI, Jensen-Shannon), and
the moments; for a categorical feature the count of each category. Both carry ``count`` and
``missing`` for the missing-rate test. ``to_dict()`` gives plain JSON types and
``from_dict()`` reads them back.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = NumericReference.from_values(rng.normal(size=20_000), sample_size=1_000)
>>> ref.count, ref.missing, ref.sample.size, ref.bins
(20000, 0, 1000, 10)
>>> [round(p, 2) for p in ref.proportions.tolist()][:3]
[0.1, 0.1, 0.1]
>>> NumericReference.from_values(np.full(50, 3.0)).bins  # a constant feature: one bin
1
>>> colour = CategoricalReference.from_values(["red", "red", "blue", None])
>>> colour.categories, colour.counts, colour.missing
(('blue', 'red'), (1, 2), 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.quantiles import inverted_cdf_quantiles

FloatArray = npt.NDArray[np.float64]


def _frozen(values: Any) -> FloatArray:
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False  # the dataclass is frozen; so are the arrays it holds
    return array


# A sorted sample of decimals (what JSON carries: 0.1234, 12.5, 3) is kept as its integer
# codes k = v * 10**d, delta-coded in the narrowest unsigned type the steps fit: for a
# 4-decimal feature 2 bytes a value instead of 8. Only where decoding gives back every value
# bit for bit (checked when packed); any other sample is kept as it is, in float64.
_MAX_DECIMALS = 12
_MAX_CODE = 2**53  # integers exactly representable in float64
_STEP_TYPES = (np.uint8, np.uint16, np.uint32)
_PROBE = 16  # values tried at each level before the whole sample


@dataclass(frozen=True, eq=False)
class PackedSample:
    """A float64 sample, losslessly packed (see ``pack_sample``); ``values()`` unpacks it."""

    size: int
    raw: FloatArray | None = None  # the values themselves, where they do not pack
    first: int = 0  # the first integer code ...
    steps: npt.NDArray[np.unsignedinteger[Any]] | None = None  # ... and the code differences
    decimals: int = 0  # code = value * 10**decimals

    def values(self) -> FloatArray:
        if self.raw is not None:
            return self.raw
        return _unpack(self.first, self.steps, self.decimals)


def _unpack(
    first: int, steps: npt.NDArray[np.unsignedinteger[Any]] | None, decimals: int
) -> FloatArray:
    codes = np.empty(0 if steps is None else steps.size + 1, dtype=np.int64)
    if steps is not None:
        codes[0] = first
        np.cumsum(steps, dtype=np.int64, out=codes[1:])
        codes[1:] += first
    values = codes.astype(np.float64)
    if decimals:
        values /= 10.0**decimals  # correctly rounded: the double nearest to the decimal
    values.flags.writeable = False
    return values


def pack_sample(sample: FloatArray) -> PackedSample:
    """``sample`` (float64) packed as integer codes where that is exact for every value (its
    bit pattern included, so -0.0 stays unpacked), else kept as it is."""
    n = int(sample.size)
    raw = PackedSample(n, raw=sample)
    if n < 2 or not np.isfinite(sample).all():
        return raw
    magnitude = float(np.abs(sample).max())
    bits = sample.view(np.int64)
    probe, probe_bits = sample[:_PROBE], bits[:_PROBE]
    for decimals in range(_MAX_DECIMALS + 1):
        scale = 10.0**decimals
        if magnitude * scale >= _MAX_CODE:
            break
        # a few values first: most samples of measurements are no decimals at all, and a
        # level their first values fail, the whole sample fails (a larger level's steps are
        # larger, so no break is skipped)
        back = np.rint(probe * scale)
        if decimals:
            back /= scale
        if not np.array_equal(back.view(np.int64), probe_bits):
            continue
        codes = np.rint(sample * scale).astype(np.int64)
        steps = np.diff(codes)
        if steps.min() < 0:
            return raw  # not sorted: stored as given
        if int(steps.max()) > np.iinfo(np.uint32).max:
            break
        dtype = next(t for t in _STEP_TYPES if int(steps.max()) <= np.iinfo(t).max)
        narrow: npt.NDArray[np.unsignedinteger[Any]] = steps.astype(dtype)
        if np.array_equal(_unpack(int(codes[0]), narrow, decimals).view(np.int64), bits):
            return PackedSample(n, first=int(codes[0]), steps=narrow, decimals=decimals)
    return raw


def _assign_bins(edges: FloatArray, values: FloatArray) -> npt.NDArray[np.intp]:
    # Bins are closed on the right, (e[i-1], e[i]], so a value tied with an edge (a point
    # mass such as a zero-inflated feature's 0) falls in the bin below it, together with
    # the reference values that made that quantile.
    return np.searchsorted(edges, values, side="left")


def _sorted_bin_counts(edges: FloatArray, ordered: FloatArray) -> npt.NDArray[np.int64]:
    """``np.bincount(_assign_bins(edges, ordered), minlength=edges.size + 1)`` for values
    already sorted: a binary search per edge, not per value. Bin i holds the values in
    (e[i-1], e[i]]."""
    at_or_below = np.searchsorted(ordered, edges, side="right")
    bounds: npt.NDArray[np.int64] = np.concatenate(([0], at_or_below, [ordered.size]))
    return np.diff(bounds)


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class NumericReference:
    """A numeric feature in the training data.

    ``edges`` are the interior bin edges: the reference quantiles at 1/bins, 2/bins, ...
    (each a reference value), unique and below the reference maximum, so every bin holds
    some reference mass and the outer bins run to -inf and +inf. A constant feature has no
    edge and one bin. ``proportions`` are the shares of all present reference values in each
    bin; ``sample`` is a sorted uniform subsample of them. ``mean`` and ``std`` (ddof=1) are
    None where undefined (no present value; fewer than two).
    """

    count: int
    missing: int
    mean: float | None
    std: float | None
    packed: PackedSample  # the sample (``sample``), packed: a reference lives for the worker's life
    edges: FloatArray
    proportions: FloatArray

    @classmethod
    def of(
        cls,
        count: int,
        missing: int,
        mean: float | None,
        std: float | None,
        sample: Any,
        edges: FloatArray,
        proportions: FloatArray,
    ) -> NumericReference:
        """A reference with this sample (sorted float64 values), packed."""
        return cls(count, missing, mean, std, pack_sample(_frozen(sample)), edges, proportions)

    @property
    def sample(self) -> FloatArray:
        """The sorted subsample (read-only float64), unpacked anew on each read: keep it in a
        local where it is used more than once."""
        return self.packed.values()

    @property
    def sample_size(self) -> int:
        return self.packed.size

    @property
    def present(self) -> int:
        return self.count - self.missing

    @property
    def bins(self) -> int:
        return int(self.proportions.size)

    def bin_counts(self, values: FloatArray) -> npt.NDArray[np.int64]:
        """How many of ``values`` (no NaN) fall in each reference bin."""
        if self.bins == 0:
            return np.zeros(0, dtype=np.int64)
        return np.bincount(_assign_bins(self.edges, values), minlength=self.bins)

    @classmethod
    def from_values(
        cls, values: FloatArray, bins: int = 10, sample_size: int = 5000, seed: int = 0
    ) -> NumericReference:
        """Profile ``values`` (NaN = missing); the subsample is the same for the same seed."""
        if bins < 1 or sample_size < 1:
            raise ValueError(f"bins and sample_size must be >= 1, got {bins} and {sample_size}")
        values = np.asarray(values, dtype=np.float64).ravel()
        present = values[~np.isnan(values)]
        count, n = int(values.size), int(present.size)
        if n == 0:
            empty = _frozen([])
            return cls.of(count, count, None, None, empty, empty, empty)
        ordered = np.sort(present)
        if n > sample_size:
            rng = np.random.default_rng(seed)
            sample = np.sort(present[rng.choice(n, size=sample_size, replace=False)])
        else:
            sample = ordered
        probs = np.arange(1, bins) / bins
        edges = np.unique(inverted_cdf_quantiles(ordered, probs))
        edges = edges[edges < ordered[-1]]
        proportions = _sorted_bin_counts(edges, ordered) / n
        std = float(present.std(ddof=1)) if n > 1 else None
        return cls.of(
            count=count,
            missing=count - n,
            mean=float(present.mean()),
            std=std,
            sample=sample,
            edges=_frozen(edges),
            proportions=_frozen(proportions),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean,
            "std": self.std,
            "sample": self.sample.tolist(),
            "edges": self.edges.tolist(),
            "proportions": self.proportions.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericReference:
        if data.get("kind") != "numeric":
            raise ValueError(f"not a numeric reference: kind={data.get('kind')!r}")
        edges, proportions = _frozen(data["edges"]), _frozen(data["proportions"])
        if proportions.size not in (0, edges.size + 1):
            raise ValueError(
                f"a numeric reference with {edges.size} edges needs {edges.size + 1} "
                f"proportions, got {proportions.size}"
            )
        mean, std = data["mean"], data["std"]
        return cls.of(
            count=int(data["count"]),
            missing=int(data["missing"]),
            mean=None if mean is None else float(mean),
            std=None if std is None else float(std),
            sample=data["sample"],
            edges=edges,
            proportions=proportions,
        )


@dataclass(frozen=True)
class CategoricalReference:
    """A categorical feature in the training data: each category's count, sorted by name."""

    count: int  # rows, missing included
    missing: int
    categories: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.categories) != len(self.counts):
            raise ValueError("categories and counts must have the same length")
        if any(n <= 0 for n in self.counts) or self.missing < 0:
            raise ValueError("category counts must be positive and missing non-negative")
        if self.count != self.missing + sum(self.counts):
            raise ValueError("count must equal missing plus the category counts")

    @property
    def present(self) -> int:
        return self.count - self.missing

    @property
    def proportions(self) -> FloatArray:
        counts = np.array(self.counts, dtype=np.float64)
        return counts / counts.sum() if counts.size else counts

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], missing: int = 0) -> CategoricalReference:
        kept = sorted((c, int(n)) for c, n in counts.items() if n)
        categories = tuple(c for c, _ in kept)
        values = tuple(n for _, n in kept)
        return cls(missing + sum(values), missing, categories, values)

    @classmethod
    def from_values(cls, values: Iterable[str | None]) -> CategoricalReference:
        tally: Counter[str | None] = Counter(values)
        missing = tally.pop(None, 0)
        return cls.from_counts({str(c): n for c, n in tally.items()}, missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "count": self.count,
            "missing": self.missing,
            "counts": dict(zip(self.categories, self.counts, strict=True)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalReference:
        if data.get("kind") != "categorical":
            raise ValueError(f"not a categorical reference: kind={data.get('kind')!r}")
        reference = cls.from_counts(data["counts"], int(data["missing"]))
        if reference.count != int(data["count"]):
            raise ValueError("count must equal missing plus the category counts")
        return reference
