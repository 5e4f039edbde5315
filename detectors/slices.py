"""Slice discovery: the groups of rows, described by a few feature values, where a model fails.

``find_slices`` is SliceLine (Sagadeeva & Boehm, "SliceLine: Fast, Linear-Algebra-based Slice
Finding for ML Model Debugging", SIGMOD 2021) with a significance test on top. Every feature
becomes one-hot columns (``encode_features``): a category per distinct value of a text, bool or
mixed column, quantile bins for a numeric one (``bins``; a numeric column with at most ``bins``
distinct values keeps its values), and a category of its own for missing values (None, NaN).
A slice is a conjunction of such predicates, at most one per feature. Slices are enumerated
level-wise up to ``max_level`` predicates: a level joins the slices of the level before that
share all but one predicate, and a candidate is kept only when all its parents survived.
Candidates are pruned by minimum support and by SliceLine's upper bound on the score (from the
parents' sizes, error sums and largest errors, all of which can only shrink in a refinement),
and each level evaluates at most ``max_candidates`` of them, those of the highest bound.
The score of a slice S of |S| rows, among n rows of mean error ē, is SliceLine's

    score = alpha * (mean error of S / ē - 1) - (1 - alpha) * (n / |S| - 1)

(a bigger slice, or a worse one, scores higher). Every evaluated slice of enough support gets
a one-sided test that its error is higher than the rest's (the two-proportion test, exact
(Fisher's), for 0/1 errors: the z test's normal tail is too thin that far out; Welch's t test
for other errors), Benjamini-Hochberg adjusted over all evaluated slices, with every other
conjunction a level's join made (a parent missing, out of the bounds, over the cap) counted
as tested with p = 1: they were screened on the same errors.
The result is the top ``k`` by score among slices with q <= ``fdr`` and a lift (slice
error / overall error) of at least ``min_lift``, leaving out a refinement (a superset of the
predicates) of a returned slice that scores no higher. The score may be negative: a small slice
that is clearly worse is still found, though SliceLine's own top-k keeps only positive scores.

The one-hot matrix is a ``scipy.sparse`` matrix (the 1-slices' statistics are its products
with the error vector); deeper slices are evaluated as bit-packed row masks: a candidate's rows
are the AND of its predicates' masks, its size a popcount, and for 0/1 errors its error count
the popcount of that AND the errors' mask.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n = 5_000
>>> country = rng.choice(["BR", "DE", "FR", "US"], n)
>>> amount = rng.integers(0, 100, n).astype(float)
>>> planted = (country == "BR") & (amount < 20)  # 5 % of the rows, wrong 4 times as often
>>> errors = (rng.random(n) < np.where(planted, 0.4, 0.1)).astype(float)
>>> found = find_slices({"country": country.tolist(), "amount": amount.tolist()}, errors)
>>> top = found[0]
>>> top.describe(), top.size, round(top.lift, 1), top.q_value < 1e-6  # the bin edge: 19
('country=BR ∧ amount<19', 247, 3.4, True)
>>> top.predicates
(('country', '== BR'), ('amount', '< 19'))
>>> len(found)  # its parents (country=BR, amount<19) are worse only through it: left out
1
>>> noise = (rng.random(n) < 0.1).astype(float)  # nothing planted: nothing significant
>>> find_slices({"country": country.tolist(), "amount": amount.tolist()}, noise)
[]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy import stats as scipy_stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Masks = npt.NDArray[np.uint64]
Column = Sequence[object] | npt.NDArray[Any]  # a feature's values, one per row
Errors = Sequence[float] | npt.NDArray[Any]

MISSING = "is missing"  # the condition of a feature's missing values (None, NaN)
MIN_SLICE_ROWS = 30  # the least support a slice may have, whatever ``min_support`` gives
MAX_CANDIDATES = 1_000  # candidates evaluated per level, those of the highest upper bound
CHUNK_BITS = 1 << 22  # rows x candidates unpacked at a time (non-0/1 errors)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


@dataclass(frozen=True)
class Slice:
    """A group of rows described by predicates, with its error against the rest's.

    ``predicates`` pairs a feature with its condition: ``("country", "== BR")``,
    ``("amount", "< 20.5")``, ``("amount", "in [20.5, 80)")``, ``("amount", ">= 80")`` or
    ``("amount", "is missing")``. ``errors`` is the sum of the rows' errors (the number of
    wrong ones for 0/1 errors), ``error_rate`` their mean (the MAE for absolute errors) and
    ``lift`` that mean over the mean of all rows. ``p_value`` is the one-sided test that the
    slice's error is higher than the rest's, ``q_value`` it adjusted (Benjamini-Hochberg) over
    every slice evaluated.
    """

    predicates: tuple[tuple[str, str], ...]
    size: int
    errors: float
    error_rate: float
    rest_error_rate: float
    lift: float
    score: float
    p_value: float
    q_value: float

    @property
    def level(self) -> int:
        """The number of predicates."""
        return len(self.predicates)

    def describe(self) -> str:
        """The predicates as one line: ``country=BR ∧ amount<20.5``."""
        return " ∧ ".join(_describe(feature, condition) for feature, condition in self.predicates)


def _describe(feature: str, condition: str) -> str:
    for operator, shown in (("== ", "="), ("< ", "<"), (">= ", ">=")):
        if condition.startswith(operator):
            return f"{feature}{shown}{condition[len(operator) :]}"
    return f"{feature} {condition}"


# ---- the one-hot encoding --------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class EncodedFeatures:
    """Features as one-hot columns: ``codes[i, f]`` is the column row i has for feature f.

    Columns are numbered across features (those of feature 0 first); ``column_feature`` gives
    each column's feature and ``conditions`` its condition text.
    """

    names: tuple[str, ...]
    codes: IntArray
    column_feature: IntArray
    conditions: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_columns(self) -> int:
        return len(self.conditions)

    def one_hot(self) -> sparse.csr_matrix:
        """The n x columns 0/1 matrix, one 1 per row and feature."""
        n, m = self.codes.shape
        data = np.ones(n * m, dtype=np.float64)
        indptr = np.arange(0, n * m + 1, m, dtype=np.int64)
        return sparse.csr_matrix(
            (data, self.codes.ravel(), indptr), shape=(n, max(1, self.n_columns))
        )

    def predicate(self, column: int) -> tuple[str, str]:
        return self.names[int(self.column_feature[column])], self.conditions[column]


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def _numbers_text(values: FloatArray) -> list[str]:
    """Each number as short text, precise enough that distinct numbers stay distinct."""
    texts = [_number(float(v)) for v in values]
    if len(set(texts)) < len(texts):
        texts = [repr(float(v)) for v in values]
    return texts


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return _number(float(value))
    return str(value)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _numeric(values: Column) -> FloatArray | None:
    """The column as floats (NaN for missing, None or not finite) when it is numeric."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuf":
            return None
        numbers = values.astype(np.float64)
    else:
        kinds = set(map(type, values))
        kinds.discard(type(None))
        if not kinds or not kinds <= {int, float}:
            return None
        try:
            numbers = np.asarray(values, dtype=np.float64)
        except OverflowError:  # a huge integer: the column is text, one value a category
            return None
    return np.where(np.isfinite(numbers), numbers, np.nan)


def _encode_numeric(numbers: FloatArray, bins: int) -> tuple[IntArray, list[str]]:
    """Local codes and conditions of a numeric column: quantile bins, or its few values."""
    missing = np.isnan(numbers)
    present = numbers[~missing]
    conditions: list[str] = []
    codes = np.zeros(numbers.size, dtype=np.int64)
    if present.size:
        distinct = np.unique(present)
        if distinct.size <= bins:
            local = np.searchsorted(distinct, present)
            conditions = [f"== {t}" for t in _numbers_text(distinct)]
        else:
            quantiles = np.quantile(present, np.arange(1, bins) / bins)
            edges = np.unique(quantiles[quantiles > distinct[0]])
            local = np.searchsorted(edges, present, side="right")
            texts = _numbers_text(edges)
            conditions = [
                f"< {texts[0]}",
                *(f"in [{a}, {b})" for a, b in pairwise(texts)),
                f">= {texts[-1]}",
            ]
        codes[~missing] = local
    if missing.any():
        codes[missing] = len(conditions)
        conditions.append(MISSING)
    return codes, conditions


def _encode_categorical(values: Column) -> tuple[IntArray, list[str]]:
    """Local codes and conditions of a text, bool or mixed column: a category per value."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "US":
        distinct, inverse = np.unique(values.astype(str), return_inverse=True)
        return inverse.astype(np.int64).ravel(), [f"== {v}" for v in distinct.tolist()]
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds <= {str}:  # the common case: distinct values and codes from dicts, in C
        seen = dict.fromkeys(values)
        texts = sorted(str(v) for v in seen if v is not None)
        index: dict[object, int] = {v: i for i, v in enumerate(texts)}
        conditions = [f"== {v}" for v in texts]
        if None in seen:
            index[None] = len(texts)
            conditions.append(MISSING)
        codes = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values))
        return codes, conditions
    keys: dict[tuple[str, object], int] = {}
    labels: list[str] = []
    local = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        # keyed by type: True and 1 are different categories, and NaN is missing
        key = ("missing", None) if _is_missing(value) else (type(value).__name__, value)
        code = keys.get(key)
        if code is None:
            code = keys[key] = len(labels)
            labels.append(MISSING if key[0] == "missing" else f"== {_value_text(value)}")
        local[i] = code
    # conditions in text order, missing last, as the other paths give them
    order = sorted(range(len(labels)), key=lambda c: (labels[c] == MISSING, labels[c]))
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels))
    return rank[local], [labels[c] for c in order]


def encode_features(features: Mapping[str, Column], *, bins: int = 5) -> EncodedFeatures:
    """The one-hot columns ``find_slices`` searches (numeric columns in ``bins`` quantile bins).

    >>> encoded = encode_features({"x": [1.5, 2.5, None, 7.0], "c": ["a", None, "a", "b"]})
    >>> encoded.conditions
    ('== 1.5', '== 2.5', '== 7', 'is missing', '== a', '== b', 'is missing')
    >>> encoded.codes.tolist()
    [[0, 4], [1, 6], [3, 4], [2, 5]]
    """
    if not features:
        raise ValueError("no features: pass at least one column")
    if bins < 2:
        raise ValueError(f"bins must be at least 2, not {bins}")
    lengths = {name: len(values) for name, values in features.items()}
    n = next(iter(lengths.values()))
    for name, length in lengths.items():
        if length != n:
            first = next(iter(lengths))
            raise ValueError(
                f"feature {name!r} has {length} values but {first!r} has {n}: "
                "every feature needs one value per row"
            )
    columns: list[IntArray] = []
    column_feature: list[int] = []
    conditions: list[str] = []
    for f, (name, values) in enumerate(features.items()):
        if not isinstance(name, str):
            raise ValueError(f"feature names must be text, not {name!r}")
        numbers = _numeric(values)
        local, texts = (
            _encode_categorical(values) if numbers is None else _encode_numeric(numbers, bins)
        )
        columns.append(local + len(conditions))
        column_feature += [f] * len(texts)
        conditions += texts
    codes = np.column_stack(columns) if n else np.zeros((0, len(columns)), dtype=np.int64)
    return EncodedFeatures(
        tuple(features),
        np.ascontiguousarray(codes, dtype=np.int64),
        np.asarray(column_feature, dtype=np.int64),
        tuple(conditions),
    )


# ---- row masks -------------------------------------------------------------------------


def _pack(bits: BoolArray) -> Masks:
    """Boolean rows (k x n) as bit-packed uint64 words (k x ceil(n / 64))."""
    k, n = bits.shape
    padded = np.zeros((k, -(-n // 64) * 64), dtype=np.bool_)
    padded[:, :n] = bits
    return np.packbits(padded, axis=1).view(np.uint64)


def _popcount(masks: Masks) -> FloatArray:
    """The number of set bits of each row."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        counts = np.bitwise_count(masks).sum(axis=1, dtype=np.int64)
    else:
        counts = _POPCOUNT[masks.view(np.uint8)].sum(axis=1)
    return np.asarray(counts, dtype=np.float64)


@dataclass(frozen=True)
class _Stats:
    """Per slice: size, error sum, error square sum and largest error."""

    size: FloatArray
    errors: FloatArray
    squares: FloatArray
    largest: FloatArray

    def take(self, keep: IntArray | BoolArray) -> _Stats:
        return _Stats(self.size[keep], self.errors[keep], self.squares[keep], self.largest[keep])

    def minus(self, other: _Stats) -> _Stats:
        """The rows of these slices outside ``other`` (rows of it, row for row); the largest
        error stays a bound."""
        return _Stats(
            self.size - other.size,
            np.maximum(self.errors - other.errors, 0.0),
            np.maximum(self.squares - other.squares, 0.0),
            self.largest,
        )

    @staticmethod
    def concat(parts: Sequence[_Stats]) -> _Stats:
        return _Stats(
            np.concatenate([s.size for s in parts]),
            np.concatenate([s.errors for s in parts]),
            np.concatenate([s.squares for s in parts]),
            np.concatenate([s.largest for s in parts]),
        )


class _Rows:
    """The rows of slices as bit-packed masks (the AND of their columns'), and their stats."""

    def __init__(
        self, encoded: EncodedFeatures, errors: FloatArray, binary: bool, columns: IntArray
    ) -> None:
        self.n = encoded.n_rows
        self.errors = errors
        self.binary = binary
        self.row_of = np.full(encoded.n_columns, -1, dtype=np.int64)
        self.row_of[columns] = np.arange(columns.size)
        bits = columns[:, None] == encoded.codes[:, encoded.column_feature[columns]].T
        self.masks = _pack(bits)
        self.error_mask = _pack((errors > 0)[None, :])[0]
        words = self.masks.shape[1]
        # slices a chunk: 16 MiB of masks, or CHUNK_BITS unpacked rows for other errors
        self.step = max(1, min(4096, (1 << 21) // max(1, words)))
        if not binary:
            self.step = max(1, min(self.step, CHUNK_BITS // max(1, self.n)))
        self._cache: dict[tuple[int, ...], Masks] = {}

    def masks_of(self, slices: IntArray) -> Masks:
        """The masks of slices of one level (slices x level column numbers)."""
        rows = self.row_of[slices]
        masks = self.masks[rows[:, 0]].copy()
        for level in range(1, slices.shape[1]):
            masks &= self.masks[rows[:, level]]
        return masks

    def mask_of(self, columns: tuple[int, ...]) -> Masks:
        if columns not in self._cache:
            self._cache[columns] = self.masks_of(np.array([columns], dtype=np.int64))[0]
        return self._cache[columns]

    def stats(self, masks: Masks) -> _Stats:
        size = _popcount(masks)
        if self.binary:
            wrong = _popcount(masks & self.error_mask)
            return _Stats(size, wrong, wrong.copy(), (wrong > 0).astype(np.float64))
        member = np.unpackbits(masks.view(np.uint8), axis=1, count=self.n).astype(np.float64)
        return _Stats(
            size,
            member @ self.errors,
            member @ np.square(self.errors),
            (member * self.errors).max(axis=1, initial=0.0),
        )

    def evaluate(self, slices: IntArray) -> _Stats:
        parts = [
            self.stats(self.masks_of(slices[start : start + self.step]))
            for start in range(0, slices.shape[0], self.step)
        ]
        return _Stats.concat(parts) if parts else _Stats(*(np.zeros(0) for _ in range(4)))


# ---- scores and tests ------------------------------------------------------------------


def slice_score(
    size: FloatArray, errors: FloatArray, n: int, mean_error: float, alpha: float
) -> FloatArray:
    """SliceLine's score of slices of ``size`` rows and error sums ``errors``.

    >>> slice_score(np.array([100.0, 1000.0]), np.array([30.0, 200.0]), 10_000, 0.1, 0.95)
    ... # doctest: +NORMALIZE_WHITESPACE
    array([-3.05,  0.5 ])
    """
    sizes = np.maximum(size, 1.0)
    relative = (errors / sizes) / mean_error - 1.0
    return np.asarray(alpha * relative - (1.0 - alpha) * (n / sizes - 1.0), dtype=np.float64)


def _upper_bound(
    bounds: _Stats, sigma: int, n: int, mean: float, alpha: float
) -> FloatArray:  # fmt: skip
    """SliceLine's bound on the score of a slice and of its refinements: a size in
    [sigma, size] with an error sum of at most min(errors, largest * size); the score is
    monotone between the three sizes probed."""
    size, errors, largest = bounds.size, bounds.errors, bounds.largest
    best = np.full(size.shape, -np.inf)
    top = np.maximum(size, float(sigma))
    for at in (np.full(size.shape, float(sigma)), errors / np.maximum(largest, 1e-300), size):
        at = np.clip(at, float(sigma), top)
        best = np.maximum(best, slice_score(at, np.minimum(errors, largest * at), n, mean, alpha))
    return best


def _can_lift(bounds: _Stats, sigma: int, least: float) -> BoolArray:
    """Whether a slice or a refinement of it (at least ``sigma`` rows) may reach a mean error
    of ``least``: its error sum and largest error bound the refinements'."""
    return np.asarray(np.minimum(bounds.largest, bounds.errors / sigma) >= least)


def _p_worse(first: _Stats, second: _Stats, binary: bool, fisher: bool = True) -> FloatArray:
    """One-sided p of each first group's mean error being higher than the second's: the
    two-proportion test for 0/1 errors (exact: Fisher's; or, not ``fisher``, the binomial
    tail of the first group's count at the pooled rate, a little more conservative and many
    times faster), Welch's t test otherwise; 1 for a group of fewer than 2 rows."""
    n1, n2 = first.size, second.size
    s1, s2 = first.errors, second.errors
    p = np.ones(n1.size)
    ok = (n1 >= 2) & (n2 >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        m1, m2 = s1 / n1, s2 / n2
        if binary:
            # Fisher's exact test, one-sided: the z test's normal tail is far too thin at the
            # small p a search over thousands of slices needs (a 1 % slice of 10 % errors)
            wrong = np.rint(s1).astype(np.int64)
            if not fisher:
                pooled = (s1 + s2) / (n1 + n2)
                p[ok] = scipy_stats.binom.sf(wrong[ok] - 1, n1[ok].astype(np.int64), pooled[ok])
                return np.clip(p, 0.0, 1.0)
            p[ok] = scipy_stats.hypergeom.sf(
                wrong[ok] - 1, (n1 + n2)[ok].astype(np.int64),
                np.rint(s1 + s2)[ok].astype(np.int64), n1[ok].astype(np.int64),
            )  # fmt: skip
            return np.clip(p, 0.0, 1.0)
        a = np.maximum(first.squares - s1 * m1, 0.0) / (n1 - 1.0) / n1
        b = np.maximum(second.squares - s2 * m2, 0.0) / (n2 - 1.0) / n2
        spread = a + b
        exact = ok & (spread <= 0)  # no spread on either side: the means decide
        p[exact] = np.where(m1[exact] > m2[exact], 0.0, 1.0)
        ok &= spread > 0
        df = np.square(spread) / (np.square(a) / (n1 - 1.0) + np.square(b) / (n2 - 1.0))
        t = (m1 - m2) / np.sqrt(spread)
    p[ok] = scipy_stats.t.sf(t[ok], df[ok])
    return np.clip(p, 0.0, 1.0)


def benjamini_hochberg(p_values: FloatArray) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given.

    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    m = p_values.size
    if m == 0:
        return np.zeros(0)
    order = np.argsort(p_values, kind="stable")
    ranked = p_values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(adjusted, 1.0)
    return q


# ---- the search ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
    """Slices of one level: column numbers (slices x level, ascending) and statistics."""

    columns: IntArray
    stats: _Stats

    def take(self, keep: IntArray | BoolArray) -> _Level:
        return _Level(self.columns[keep], self.stats.take(keep))


def _candidates(
    parents: _Level, base: _Level, column_feature: IntArray
) -> tuple[_Level, FloatArray, int]:  # fmt: skip
    """The next level's candidates: a parent joined with one more base column of another
    feature, kept when all its parents are there (every one of its predicates can be left
    out), each with SliceLine's bounds (the least size, error sum and largest error of its
    parents); the least mean error of its parents; and how many conjunctions the join made."""
    level = parents.columns.shape[1] + 1
    columns = base.columns[:, 0]
    feature_of = column_feature[parents.columns]  # parents x (level - 1)
    clash = (feature_of[:, :, None] == column_feature[columns][None, None, :]).any(axis=1)
    parent, extra = np.nonzero(~clash)
    if parent.size == 0:
        return _Level(np.zeros((0, level), dtype=np.int64), base.stats.take(parent)), np.zeros(0), 0
    joined = np.sort(np.column_stack([parents.columns[parent], columns[extra]]), axis=1)
    unique, inverse, counts = np.unique(joined, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    bounds = []
    mine_rate = parents.stats.errors / parents.stats.size
    theirs_rate = base.stats.errors / base.stats.size
    for mine, theirs in (
        (parents.stats.size, base.stats.size),
        (parents.stats.errors, base.stats.errors),
        (parents.stats.largest, base.stats.largest),
        (mine_rate, theirs_rate),
    ):
        bound = np.full(unique.shape[0], np.inf)
        np.minimum.at(bound, inverse, np.minimum(mine[parent], theirs[extra]))
        bounds.append(bound)
    complete = counts == level  # a child of ``level`` parents is joined once from each
    size, errors, largest, rate = (b[complete] for b in bounds)
    level_ = _Level(unique[complete].astype(np.int64), _Stats(size, errors, errors, largest))
    return level_, rate, int(unique.shape[0])


def _check_arguments(
    k: int, max_level: int, min_support: float, alpha: float, fdr: float, max_candidates: int
) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if max_level < 1:
        raise ValueError(f"max_level must be at least 1, not {max_level}")
    if not 0.0 <= min_support < 1.0:
        raise ValueError(f"min_support is a share of the rows in [0, 1), not {min_support}")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha_score must be in (0, 1], not {alpha}")
    if not 0.0 < fdr < 1.0:
        raise ValueError(f"fdr must be in (0, 1), not {fdr}")
    if max_candidates < 1:
        raise ValueError(f"max_candidates must be at least 1, not {max_candidates}")


def _as_errors(errors: Errors, n: int) -> FloatArray:
    values = np.asarray(errors, dtype=np.float64).ravel()
    if values.size != n:
        raise ValueError(
            f"errors has {values.size} values but the features have {n} rows: "
            "pass one error per row"
        )
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("errors must be finite and >= 0 (0/1 wrong, or an absolute error)")
    return values


def find_slices(
    features: Mapping[str, Column],
    errors: Errors,
    *,
    k: int = 5,
    max_level: int = 3,
    min_support: float = 0.01,
    alpha_score: float = 0.95,
    bins: int = 5,
    fdr: float = 0.05,
    min_lift: float = 1.2,
    max_candidates: int = MAX_CANDIDATES,
) -> list[Slice]:
    """The ``k`` best significant slices where the errors are higher, best first.

    ``features`` has a column per feature (numbers, text, bools, None), ``errors`` one error
    per row: 0/1 (wrong or not) or an absolute error >= 0. A slice needs at least
    ``min_support`` of the rows and ``MIN_SLICE_ROWS``. The module docstring has the method.
    """
    _check_arguments(k, max_level, min_support, alpha_score, fdr, max_candidates)
    encoded = encode_features(features, bins=bins)
    values = _as_errors(errors, encoded.n_rows)
    n = encoded.n_rows
    sigma = max(MIN_SLICE_ROWS, math.ceil(min_support * n))
    if n < sigma or float(values.sum()) <= 0.0:
        return []
    search = _Search(encoded, values, sigma, alpha_score, min_lift)
    levels = [search.first_level()]
    parents = levels[0].take(search.may_refine(levels[0].stats))
    base = parents
    for _ in range(2, max_level + 1):
        if parents.columns.shape[0] == 0:
            break
        candidates, parent_rate, joined = _candidates(parents, base, encoded.column_feature)
        evaluated = search.evaluate(candidates, parent_rate, max_candidates)
        # every conjunction the join made was screened with the same errors (a parent left
        # out, a bound, the cap): those not evaluated count as tested, p = 1, in the
        # adjustment, else the screening would pass for evidence
        search.unevaluated += joined - evaluated.columns.shape[0]
        levels.append(evaluated)
        parents = evaluated.take(search.may_refine(evaluated.stats))
    return search.result(levels, fdr, k)


class _Search:
    """One search's data: the rows, the errors and the statistics of all rows."""

    def __init__(
        self, encoded: EncodedFeatures, errors: FloatArray, sigma: int, alpha: float,
        min_lift: float,
    ) -> None:  # fmt: skip
        self.encoded = encoded
        self.errors = errors
        self.n = encoded.n_rows
        self.sigma = sigma
        self.alpha = alpha
        self.min_lift = min_lift
        self.binary = bool(np.isin(errors, (0.0, 1.0)).all())
        self.all = _Stats(
            np.array([float(self.n)]),
            np.array([float(errors.sum())]),
            np.array([float(np.square(errors).sum())]),
            np.array([float(errors.max())]),
        )
        self.mean = float(self.all.errors[0]) / self.n
        self.rows: _Rows | None = None
        self.unevaluated = 0  # conjunctions joined but not evaluated (or under the support)

    def first_level(self) -> _Level:
        """The one-hot columns of enough support, from the sparse matrix's products."""
        encoded, values = self.encoded, self.errors
        one_hot = encoded.one_hot()
        size = np.bincount(encoded.codes.ravel(), minlength=encoded.n_columns)
        largest = np.zeros(encoded.n_columns)
        np.maximum.at(largest, encoded.codes.ravel(), np.repeat(values, encoded.codes.shape[1]))
        stats = _Stats(
            size.astype(np.float64),
            np.asarray(one_hot.T @ values, dtype=np.float64),
            np.asarray(one_hot.T @ np.square(values), dtype=np.float64),
            largest,
        )
        columns = np.flatnonzero(size >= self.sigma).astype(np.int64)
        level = _Level(columns[:, None], stats.take(columns))
        base = level.columns[self.may_refine(level.stats), 0]
        self.rows = _Rows(encoded, values, self.binary, base)
        return level

    def may_refine(self, stats: _Stats) -> BoolArray:
        """Slices worth refining: enough rows, some error, and a lift within reach."""
        return (
            (stats.size >= self.sigma)
            & (stats.errors > 0)
            & _can_lift(stats, self.sigma, self.min_lift * self.mean)
        )

    def evaluate(self, candidates: _Level, parent_rate: FloatArray, most: int) -> _Level:
        """The candidates within the bounds, evaluated; those of enough support.

        At most ``most``: those whose parents are all worst (the highest least mean error of
        the parents), ties by SliceLine's upper bound on the score. The bound alone ranks
        poorly: for 0/1 errors it grows with the parents' error counts only, so it favours
        the refinements of big slices over those of bad ones.
        """
        assert self.rows is not None
        bounds = candidates.stats
        keep = np.flatnonzero(self.may_refine(bounds))
        if keep.size > most:
            ub = _upper_bound(bounds.take(keep), self.sigma, self.n, self.mean, self.alpha)
            order = np.lexsort((-ub, -parent_rate[keep]))
            keep = np.sort(keep[order[:most]])
        columns = candidates.columns[keep]
        evaluated = _Level(columns, self.rows.evaluate(columns))
        return evaluated.take(evaluated.stats.size >= self.sigma)

    def rest(self, stats: _Stats) -> _Stats:
        """The rows outside each slice."""
        whole = _Stats(*(np.repeat(a, stats.size.size) for a in (
            self.all.size, self.all.errors, self.all.squares, self.all.largest
        )))  # fmt: skip
        return whole.minus(stats)

    def result(self, levels: Sequence[_Level], fdr: float, k: int) -> list[Slice]:
        columns = [tuple(int(c) for c in row) for level in levels for row in level.columns]
        stats = _Stats.concat([level.stats for level in levels])
        scores = slice_score(stats.size, stats.errors, self.n, self.mean, self.alpha)
        p = _p_worse(stats, self.rest(stats), self.binary)
        tested = p.size + self.unevaluated
        q = benjamini_hochberg(np.concatenate([p, np.ones(self.unevaluated)]))[: p.size]
        rate = stats.errors / np.maximum(stats.size, 1.0)
        lift = rate / self.mean
        rejected = q <= fdr
        if not rejected.any():
            return []
        significant = np.flatnonzero(rejected & (lift >= self.min_lift))
        order = significant[_ranked(scores[significant], [columns[i] for i in significant])]
        picked: list[int] = []
        for i in order.tolist():
            own = set(columns[i])
            if any(set(columns[j]) < own for j in picked):
                continue  # a refinement of a slice returned, scoring no higher
            worse = significant[lift[significant] > lift[i]]
            if self._explained(i, worse, columns, stats, fdr, tested):
                continue
            picked.append(i)
            if len(picked) == k:
                break
        result = []
        rest = self.rest(stats)
        for i in picked:
            ordered = sorted(columns[i], key=lambda c: (int(self.encoded.column_feature[c]), c))
            result.append(
                Slice(
                    predicates=tuple(self.encoded.predicate(c) for c in ordered),
                    size=int(stats.size[i]),
                    errors=float(stats.errors[i]),
                    error_rate=float(rate[i]),
                    rest_error_rate=float(rest.errors[i] / max(rest.size[i], 1.0)),
                    lift=float(lift[i]),
                    score=float(scores[i]),
                    p_value=float(p[i]),
                    q_value=float(q[i]),
                )
            )
        return result

    def _explained(
        self, i: int, others: IntArray, columns: Sequence[tuple[int, ...]], stats: _Stats,
        fdr: float, tested: int,
    ) -> bool:  # fmt: skip
        """Whether slice i's excess error lies in one of ``others`` (slices of a higher lift):
        its rows outside that slice are no longer significantly worse than the rows in
        neither. Outside a refinement of it (the parent of a slice that is much worse), at
        ``fdr``; outside a slice it merely overlaps, at the Bonferroni level over the
        ``tested`` slices, since those rows were picked among many too and
        Benjamini-Hochberg's own cut loosens with every rejection the worse slice's
        neighbours bring."""
        assert self.rows is not None
        feature = self.encoded.column_feature
        mine = {int(feature[c]): c for c in columns[i]}
        # slices with another value of one of slice i's features share no row with it
        overlapping = [
            j for j in others.tolist()
            if all(mine.get(int(feature[c]), c) == c for c in columns[j])
        ]  # fmt: skip
        if not overlapping:
            return False
        own = self.rows.mask_of(columns[i])
        theirs = np.stack([self.rows.mask_of(columns[j]) for j in overlapping])
        both = self.rows.stats(theirs & own)
        me = stats.take(np.full(len(overlapping), i))
        outside = me.minus(both)
        neither = self.rest(me).minus(stats.take(np.array(overlapping)).minus(both))
        refines = np.array([set(columns[i]) < set(columns[j]) for j in overlapping])
        cut = np.where(refines, fdr, fdr / tested)
        p = _p_worse(outside, neither, self.binary, fisher=False)  # a check, many times
        return bool((p > cut).any())


def _ranked(scores: FloatArray, columns: Sequence[tuple[int, ...]]) -> IntArray:
    """Slices best first: by score, then fewer predicates, then column numbers."""
    if not columns:
        return np.zeros(0, dtype=np.int64)
    levels = np.array([len(c) for c in columns])
    width = int(levels.max())
    padded = np.array([(*c, *([-1] * (width - len(c)))) for c in columns], dtype=np.int64)
    keys = [padded[:, j] for j in range(width - 1, -1, -1)]
    return np.lexsort([*keys, levels, -scores]).astype(np.int64)
