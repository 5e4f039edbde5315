"""The numeric drift tests of many features in one pass: what ``compare_window`` runs.

``ks_test``, ``wasserstein_test``, ``psi_numeric`` and ``jensen_shannon_numeric`` each take one
feature. ``numeric_tests`` takes every numeric column of a window (features, a numeric output,
each class of a class-probability output) and computes the same results with one array
operation per step across all of them:

- the window's values, padded with NaN to one width, are sorted row by row (NaN last: the
  missing values drop out as ``present_values`` drops them);
- KS and Wasserstein share one stable merge per row of the sorted reference sample (kept
  sorted since the reference was built) with the sorted window: the integer gaps
  ``i n2 - j n1`` after every run of ties give D, exactly as ``ks_statistic`` does (the same
  integers and the same last division, so the same float), and the gaps times the steps
  between merged values give W1, as ``wasserstein_sorted`` (the same products, summed by the
  same ``np.dot`` per row);
- PSI and Jensen-Shannon count the sorted window in the reference's bins (the edges and
  reference proportions fixed when the reference was built) by one binary search of the
  edges per row, which gives the counts ``bin_counts`` gives, then evaluate every row with the
  same number of bins in one call (row sums add in the order a one-row sum does);
- the KS p-value: pairs with ``n m <= 1e6`` take scipy's exact p-value as ``ks_test`` does (a
  per-feature call: it is an O(n m) recursion); the others the asymptotic tail at the rounded
  effective size, for all of them at once (``kolmogorov_sf``, scipy's ``kolmogn`` regimes on
  arrays).

So every result is the per-feature function's, to the bit (tests/detectors/drift/test_batch.py
checks equality on random data with ties, NaN, empty and tiny samples): the per-feature
``ks_test`` takes the same ``kolmogorov_sf`` tail, which is scipy's ``kolmogn`` to ~6e-13
relative (``detectors.drift.kolmogorov`` says why).

>>> import numpy as np
>>> from detectors.drift import NUMERIC_TESTS
>>> rng = np.random.default_rng(0)
>>> refs = [NumericReference.from_values(rng.normal(size=5_000)) for _ in range(3)]
>>> windows = [rng.normal(shift, 1.0, 2_048) for shift in (0.0, 0.3, 1.0)]
>>> batched = numeric_tests(refs, windows, ("ks", "wasserstein"))
>>> [round(r["ks"].effect_size, 2) for r in batched]
[0.02, 0.12, 0.37]
>>> batched[2]["wasserstein"] == NUMERIC_TESTS["wasserstein"](refs[2], windows[2])
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy.spatial.distance import jensenshannon

from detectors.drift.chi_square import chi_square_aligned
from detectors.drift.histograms import DEFAULT_EPSILON, category_counts, present_values
from detectors.drift.jensen_shannon import (
    JENSEN_SHANNON_MIN_EFFECT,
    jensen_shannon_aligned,
    jensen_shannon_numeric,
)
from detectors.drift.kolmogorov import kolmogorov_sf
from detectors.drift.ks import _EXACT_MAX_PAIRS, KS_MIN_EFFECT, ks_exact
from detectors.drift.missing_rate import MISSING_RATE_MIN_EFFECT, Counted
from detectors.drift.psi import PSI_MIN_EFFECT, psi_aligned, psi_numeric
from detectors.drift.result import DriftTestResult, DriftWhen, FloatArray, no_evidence
from detectors.drift.total_variation import total_variation_aligned
from detectors.drift.wasserstein import WASSERSTEIN_MIN_EFFECT
from detectors.reference import CategoricalReference, NumericReference

IntArray = npt.NDArray[np.int64]
SignedArray = npt.NDArray[np.signedinteger[Any]]
Results = list[dict[str, DriftTestResult]]


def numeric_tests(
    references: Sequence[NumericReference],
    currents: Sequence[FloatArray],
    tests: Collection[str],
    *,
    exact_max_pairs: int = _EXACT_MAX_PAIRS,
) -> Results:
    """For each (reference, window values) pair, the named tests (``ks``, ``wasserstein``,
    ``psi``, ``jensen_shannon``) with their default ``min_effect``: per pair, what
    ``{name: NUMERIC_TESTS[name](reference, values)}`` gives, in the order of ``tests``.
    ``exact_max_pairs``: KS pairs of sizes with ``n m`` up to this take scipy's exact p-value
    (the default, as ``ks_test``); the others, all of them at 0, the tail at the effective
    size (see ``DriftConfig.ks_exact_max_pairs``)."""
    unknown = set(tests) - set(_COLUMN_TESTS)
    if unknown:
        raise ValueError(f"no batched numeric test {sorted(unknown)}; known: {_COLUMN_TESTS}")
    if len(references) != len(currents):
        raise ValueError("one window column per reference")
    results: Results = [{} for _ in references]
    if not references:
        return results
    window = _sorted_rows(currents)
    present = (~np.isnan(window)).sum(axis=1)
    computed: dict[str, list[DriftTestResult]] = {}
    if "ks" in tests or "wasserstein" in tests:
        computed.update(
            _merged_tests(references, currents, window, present, tests, exact_max_pairs)
        )
    binned = [name for name in ("psi", "jensen_shannon") if name in tests]
    if binned:
        computed.update(_binned_tests(binned, references, window, present))
    for name in tests:
        for row, result in zip(results, computed[name], strict=True):
            row[name] = result
    return results


_COLUMN_TESTS = ("ks", "wasserstein", "psi", "jensen_shannon")


def _sorted_rows(currents: Sequence[FloatArray]) -> FloatArray:
    """The window columns as rows of one array, NaN-padded and sorted (NaN last)."""
    columns = [np.asarray(c, dtype=np.float64).ravel() for c in currents]
    width = max((c.size for c in columns), default=0)
    rows = np.full((len(columns), max(width, 1)), np.nan)
    for row, column in zip(rows, columns, strict=True):
        row[: column.size] = column
    rows.sort(axis=1)
    return rows


def _merged_tests(
    references: Sequence[NumericReference],
    currents: Sequence[FloatArray],
    window: FloatArray,
    present: IntArray,
    tests: Collection[str],
    exact_max_pairs: int,
) -> dict[str, list[DriftTestResult]]:
    """KS and Wasserstein of every row from one stable merge per row; KS alone (a slice's
    decision test) by ranking the window's values in the reference sample (``_ranked_d``)."""
    n1 = np.array([r.sample_size for r in references], dtype=np.int64)
    n2 = present.astype(np.int64)
    if "wasserstein" not in tests:
        d = _ranked_d(references, window, n1, n2)
        return {"ks": _ks_results(references, window, n1, n2, d, exact_max_pairs)}
    d, distance = np.zeros(n1.size), np.zeros(n1.size)
    # a few rows at a time: the arrays of one block stay in cache (and in the allocator's
    # reused memory) instead of being faulted in afresh for every window
    step = max(1, _MERGE_CELLS // (int(n1.max(initial=0)) + window.shape[1]))
    for start in range(0, n1.size, step):
        block = slice(start, start + step)
        d[block], distance[block] = _merged_block(
            references[block], window[block], n1[block], n2[block]
        )
    out: dict[str, list[DriftTestResult]] = {}
    if "ks" in tests:
        out["ks"] = _ks_results(references, window, n1, n2, d, exact_max_pairs)
    if "wasserstein" in tests:
        out["wasserstein"] = _wasserstein_results(references, currents, n1, n2, distance)
    return out


_MERGE_CELLS = 1 << 15  # merged values per block: 256 KiB of float64


def _merged_block(
    references: Sequence[NumericReference], window: FloatArray, n1: IntArray, n2: IntArray
) -> tuple[FloatArray, FloatArray]:
    """(D, W1) of each row: ``ks_statistic`` and ``wasserstein_sorted`` of one merge."""
    width = int(n1.max(initial=0))
    merged = np.empty((n1.size, width + window.shape[1]))
    for row, reference in zip(merged, references, strict=True):
        sample = reference.sample
        row[: sample.size] = sample
        row[sample.size : width] = np.nan
    merged[:, width:] = window
    # two sorted runs per row (NaN padding last in each): timsort merges them linearly; ties
    # keep the reference first, as the per-feature merge does
    order = np.argsort(merged, axis=1, kind="stable")
    values = np.take_along_axis(merged, order, axis=1)
    gaps = _gaps(order < width, n1, n2)
    ends = np.ones(values.shape, dtype=bool)  # the last value of each run of ties
    ends[:, :-1] = values[:, 1:] != values[:, :-1]
    if int((n1 + n2).min()) < merged.shape[1]:  # padding (NaN: each its own "run")
        ends &= np.arange(merged.shape[1]) < (n1 + n2)[:, None]
    at_ends = gaps * ends  # 0 is among the gaps anyway (the final one)
    pairs = n1 * n2
    with np.errstate(invalid="ignore", divide="ignore"):
        below = np.clip(-at_ends.min(axis=1) / pairs, 0.0, 1.0)
        d = np.maximum(below, at_ends.max(axis=1) / pairs)
    widths = np.diff(values, axis=1)
    heights = np.abs(gaps).astype(np.float64)
    distance = np.zeros(n1.size)
    for i, end in enumerate((n1 + n2 - 1).tolist()):
        if n1[i] and n2[i]:  # the products wasserstein_sorted forms, summed by one np.dot
            distance[i] = np.dot(heights[i, :end], widths[i, :end]) / pairs[i]
    return d, distance


def _ranked_d(
    references: Sequence[NumericReference], window: FloatArray, n1: IntArray, n2: IntArray
) -> FloatArray:
    """D of each row, the one ``_merged_block`` finds, from the ranks of the window's values in
    the reference sample (two binary searches a value) instead of a merge of the two: a
    slice's window (<= 256 values) against a reference of up to 5,000 costs its own size, not
    the reference's.

    The gap ``g = i n2 - j n1`` (i, j: the reference and window values at or below a point)
    steps up at reference values and down at window values, so over the merged values its
    maximum is just before some window value ``u`` (``g = L(u) n2 - j_before(u) n1``, L the
    reference values below u), or 0 at the end, and its minimum at some ``u`` once its ties
    are counted (``g = R(u) n2 - j(u) n1``, R the reference values at or below u), or 0.
    Taking the left form at every position of a run of ties (it only falls along the run) and
    the right form at every position (it only rises towards the run's end), with the right
    form's maximum at runs' ends alone, gives the same integer extremes as the merge, so the
    same D to the bit (tests/detectors/drift/test_batch.py)."""
    rows, width = window.shape
    left = np.zeros((rows, width), dtype=np.int64)
    right = np.zeros((rows, width), dtype=np.int64)
    for i, reference in enumerate(references):
        if n1[i] and n2[i]:
            sample, values = reference.sample, window[i, : n2[i]]
            left[i, : n2[i]] = np.searchsorted(sample, values, side="left")
            right[i, : n2[i]] = np.searchsorted(sample, values, side="right")
    counted = np.arange(width) < n2[:, None]  # the window's values (NaN padding after them)
    ends = np.ones((rows, width), dtype=bool)  # the last of each run of equal values
    ends[:, :-1] = window[:, 1:] != window[:, :-1]
    ends &= counted
    before = np.arange(width, dtype=np.int64)  # window values below the run, at its start
    after = before + 1  # ... at or below its value, at its end
    up = left * n2[:, None] - before * n1[:, None]
    down = right * n2[:, None] - after * n1[:, None]
    high = np.maximum(np.where(counted, up, 0), np.where(ends, down, 0)).max(axis=1, initial=0)
    low = np.where(counted, down, 0).min(axis=1, initial=0)
    pairs = n1 * n2
    d = np.zeros(rows)
    tested = pairs > 0
    d[tested] = np.maximum(
        np.clip(-low[tested] / pairs[tested], 0.0, 1.0), high[tested] / pairs[tested]
    )
    return d


def _gaps(from_reference: npt.NDArray[np.bool_], n1: IntArray, n2: IntArray) -> SignedArray:
    """``i n2 - j n1`` after each merged position, i and j the reference and window values so
    far: the cumulative sum of +n2 / -n1 steps the per-feature merge takes, as
    ``(n1 + n2) i - n1 (i + j)`` (the same integers; valid up to each row's n1 + n2, after
    which the NaN padding sorts). In int32 where every term fits: a cumulative sum of int32
    costs a quarter of one of int64 here."""
    width = from_reference.shape[1]
    fits = int(((n1 + n2) * np.maximum(n1, n2)).max(initial=0)) < 2**31 and width < 2**31
    kind = np.int32 if fits else np.int64
    so_far: SignedArray = np.cumsum(from_reference, axis=1, dtype=kind)
    positions: SignedArray = np.arange(1, width + 1, dtype=kind)
    total: SignedArray
    first: SignedArray
    if (n1 == n1[0]).all() and (n2 == n2[0]).all():  # the usual case: one size for all
        total, first = np.asarray(n1[0] + n2[0], dtype=kind), np.asarray(n1[0], dtype=kind)
    else:
        total = cast(SignedArray, (n1 + n2).astype(kind)[:, None])
        first = cast(SignedArray, n1.astype(kind)[:, None])
    return np.asarray(so_far * total - positions * first, dtype=kind)


def _ks_results(
    references: Sequence[NumericReference],
    window: FloatArray,
    n1: IntArray,
    n2: IntArray,
    d: FloatArray,
    exact_max_pairs: int,
) -> list[DriftTestResult]:
    pairs = n1 * n2
    asymptotic = (pairs > exact_max_pairs) & (n1 > 0) & (n2 > 0)
    p_values = np.ones(d.size)
    if asymptotic.any():
        big = np.maximum(n1, n2)[asymptotic].astype(np.float64)
        small = np.minimum(n1, n2)[asymptotic].astype(np.float64)
        effective = np.round(big * small / (big + small))
        p_values[asymptotic] = np.clip(kolmogorov_sf(effective, d[asymptotic]), 0.0, 1.0)
    results = []
    for i, reference in enumerate(references):
        n_ref, n_cur = int(n1[i]), int(n2[i])
        if n_ref == 0 or n_cur == 0:
            results.append(no_evidence("ks", KS_MIN_EFFECT, n_ref, n_cur, has_p_value=True))
            continue
        statistic, p_value = float(d[i]), float(p_values[i])
        if not asymptotic[i]:  # scipy's exact p-value, as ks_test takes it
            statistic, p_value = ks_exact(reference.sample, window[i, :n_cur], statistic)
        results.append(
            DriftTestResult(
                "ks",
                statistic,
                p_value,
                statistic,
                KS_MIN_EFFECT,
                n_ref,
                n_cur,
                DriftWhen.P_VALUE_AND_EFFECT,
            )
        )
    return results


def _wasserstein_results(
    references: Sequence[NumericReference],
    currents: Sequence[FloatArray],
    n1: IntArray,
    n2: IntArray,
    distances: FloatArray,
) -> list[DriftTestResult]:
    results = []
    for i, reference in enumerate(references):
        n_ref, n_cur = int(n1[i]), int(n2[i])
        if n_ref == 0 or n_cur == 0:
            results.append(
                no_evidence("wasserstein", WASSERSTEIN_MIN_EFFECT, n_ref, n_cur, has_p_value=False)
            )
            continue
        distance = float(distances[i])
        if reference.std:
            scale = reference.std
        else:  # the pooled scale, its values in the window's order (the sum's order)
            pooled = np.concatenate((reference.sample, present_values(currents[i])))
            scale = float(pooled.std())
        results.append(
            DriftTestResult(
                "wasserstein",
                distance,
                None,
                distance / scale if distance > 0 else 0.0,
                WASSERSTEIN_MIN_EFFECT,
                n_ref,
                n_cur,
                DriftWhen.EFFECT_ONLY,
            )
        )
    return results


def _psi_rows(p: FloatArray, q: FloatArray) -> FloatArray:
    """``psi`` of each row: smooth() with the row's own number of bins, then the sum."""
    k = p.shape[1]
    ps = (p + DEFAULT_EPSILON) / (1.0 + k * DEFAULT_EPSILON)
    qs = (q + DEFAULT_EPSILON) / (1.0 + k * DEFAULT_EPSILON)
    return np.asarray(np.sum((qs - ps) * np.log(qs / ps), axis=1), dtype=np.float64)


def _js_rows(p: FloatArray, q: FloatArray) -> FloatArray:
    distance = np.asarray(jensenshannon(p, q, base=2, axis=1), dtype=np.float64)
    return np.where(np.isnan(distance), 0.0, distance)  # sqrt of a rounding -0 is NaN


_BINNED: Mapping[str, tuple[Callable[[FloatArray, FloatArray], FloatArray], float]] = {
    "psi": (_psi_rows, PSI_MIN_EFFECT),
    "jensen_shannon": (_js_rows, JENSEN_SHANNON_MIN_EFFECT),
}


def _binned_tests(
    names: Sequence[str],
    references: Sequence[NumericReference],
    window: FloatArray,
    present: IntArray,
) -> dict[str, list[DriftTestResult]]:
    """PSI and/or JS of every row over its reference's bins, from one count of each row in its
    bins; rows grouped by their bin count, one array call per group and test."""
    results: dict[str, list[DriftTestResult | None]] = {n: [None] * len(references) for n in names}
    groups: dict[int, list[int]] = {}
    for i, reference in enumerate(references):
        n_ref, n_cur = reference.present, int(present[i])
        if n_ref and n_cur and reference.bins:
            groups.setdefault(reference.bins, []).append(i)
            continue
        for name in names:
            if n_ref == 0 or n_cur == 0:
                min_effect = _BINNED[name][1]
                results[name][i] = no_evidence(name, min_effect, n_ref, n_cur, has_p_value=False)
            else:  # a reference without bins: the per-feature test decides what that means
                results[name][i] = _PER_FEATURE[name](reference, window[i, :n_cur])
    for bins, members in groups.items():
        p = np.stack([references[i].proportions for i in members])
        sizes = present[members].astype(np.int64)
        # the count of each bin (e[b-1], e[b]] from the sorted values: the values at or
        # below each edge, then differences (no value is NaN)
        at_or_below = np.zeros((len(members), bins + 1), dtype=np.int64)
        at_or_below[:, -1] = sizes
        for row, i, n_cur in zip(at_or_below, members, sizes.tolist(), strict=True):
            row[1:-1] = np.searchsorted(window[i, :n_cur], references[i].edges, side="right")
        q = np.diff(at_or_below, axis=1) / sizes[:, None]
        for name in names:
            rows_of, min_effect = _BINNED[name]
            for i, value in zip(members, rows_of(p, q).tolist(), strict=True):
                results[name][i] = DriftTestResult(
                    name,
                    value,
                    None,
                    value,
                    min_effect,
                    references[i].present,
                    int(present[i]),
                    DriftWhen.EFFECT_ONLY,
                )
    return {name: [r for r in rows if r is not None] for name, rows in results.items()}


_PER_FEATURE: Mapping[str, Callable[[NumericReference, FloatArray], DriftTestResult]] = {
    "psi": psi_numeric,
    "jensen_shannon": jensen_shannon_numeric,
}


def categorical_tests(
    reference: CategoricalReference, current: Mapping[str, int], tests: Collection[str]
) -> dict[str, DriftTestResult]:
    """The named categorical tests of one feature with their default ``min_effect``, from one
    alignment of the counts (``category_counts``) instead of one per test: what
    ``{name: CATEGORICAL_TESTS[name](reference, current)}`` gives."""
    ref, cur = category_counts(reference, current)
    return {name: _ALIGNED[name](ref, cur) for name in tests}


_ALIGNED: Mapping[str, Callable[[FloatArray, FloatArray], DriftTestResult]] = {
    "chi_square": chi_square_aligned,
    "psi": psi_aligned,
    "jensen_shannon": jensen_shannon_aligned,
    "total_variation": total_variation_aligned,
}


def missing_rate_tests(
    references: Sequence[Counted], currents: Sequence[Counted]
) -> list[DriftTestResult]:
    """``missing_rate_test`` of each (reference, window column) pair, as arrays: the same
    divisions, square roots and normal tail in the same order, element-wise; the arcsines
    of Cohen's h by ``math.asin`` per column, as there (numpy's vectorised arcsine may differ
    from it in the last bit)."""
    n0 = np.array([r.count for r in references], dtype=np.int64)
    n1 = np.array([c.count for c in currents], dtype=np.int64)
    m0 = np.array([r.missing for r in references], dtype=np.int64)
    m1 = np.array([c.missing for c in currents], dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p0, p1 = m0 / n0, m1 / n1
        pooled = (m0 + m1) / (n0 + n1)
        se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1))
        z = np.where(se > 0, (p1 - p0) / se, 0.0)  # se = 0: both all or both none missing
        root0, root1 = np.sqrt(p0).tolist(), np.sqrt(p1).tolist()
    tails = 2.0 * special.ndtr(-np.abs(z))
    results = []
    for i, (count0, count1) in enumerate(zip(n0.tolist(), n1.tolist(), strict=True)):
        if count0 == 0 or count1 == 0:
            results.append(
                no_evidence(
                    "missing_rate", MISSING_RATE_MIN_EFFECT, count0, count1, has_p_value=True
                )
            )
            continue
        results.append(
            DriftTestResult(
                "missing_rate",
                float(z[i]),
                float(tails[i]),
                abs(2.0 * math.asin(root1[i]) - 2.0 * math.asin(root0[i])),
                MISSING_RATE_MIN_EFFECT,
                count0,
                count1,
                DriftWhen.P_VALUE_AND_EFFECT,
            )
        )
    return results
