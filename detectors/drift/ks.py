"""Two-sample Kolmogorov-Smirnov test of a numeric feature against its reference sample.

The statistic D is the largest gap between the two empirical CDFs; it is also the effect
size. It works on any continuous shape and needs no bins, but it is most sensitive near the
median and weak in the tails.

Default ``min_effect`` 0.1: a mean shift of d standard deviations of a normal feature moves
D by about 2 Phi(d/2) - 1, so D = 0.1 is a shift of about 0.25 sigma. A 0.5 sigma shift gives
D = 0.2 (drift from a few hundred events on); a 0.02 sigma shift gives D = 0.008, which a
window of 100,000 events can make significant but never large. Under no drift, D stays near
1.36 sqrt(1/n + 1/m) at p = 0.05: 0.047 for a 1,000-event window against 5,000 reference
values, so the effect floor rarely binds there, while for windows under ~200 events the
p-value is what holds back noise.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = NumericReference.from_values(rng.normal(size=20_000))
>>> ks_test(ref, rng.normal(size=1_000)).is_drift()
False
>>> shifted = ks_test(ref, rng.normal(0.5, 1.0, size=1_000))
>>> shifted.is_drift(), round(shifted.effect_size, 1)
(True, 0.2)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import distributions

# the exact two-sample tail ks_2samp(method="exact") computes, called without its per-call
# argument handling (which cost about twice the computation at window sizes)
from scipy.stats._stats_py import _attempt_exact_2kssamp

from detectors.drift.histograms import present_values
from detectors.drift.kolmogorov import kolmogorov_sf
from detectors.drift.result import DriftTestResult, DriftWhen, FloatArray, no_evidence
from detectors.reference import NumericReference

KS_MIN_EFFECT = 0.1
# scipy's exact p-value costs O(n m); above this the asymptotic one agrees to ~1e-3 and is
# ten times cheaper (10 ms vs 1 ms for 5,000 x 10,000).
_EXACT_MAX_PAIRS = 1_000_000


def ks_test(
    reference: NumericReference, current: FloatArray, *, min_effect: float = KS_MIN_EFFECT
) -> DriftTestResult:
    """KS test of the window's values (NaN ignored) against ``reference.sample``."""
    present = present_values(current)
    sample = reference.sample
    n_ref, n_cur = int(sample.size), int(present.size)
    if n_ref == 0 or n_cur == 0:
        return no_evidence("ks", min_effect, n_ref, n_cur, has_p_value=True)
    if n_ref * n_cur <= _EXACT_MAX_PAIRS:
        d, p_value = ks_exact(sample, present)
    else:
        d, p_value = ks_asymptotic(sample, present)
    return DriftTestResult(
        test="ks",
        statistic=d,
        p_value=p_value,
        effect_size=d,
        min_effect=min_effect,
        n_reference=n_ref,
        n_current=n_cur,
        drift_when=DriftWhen.P_VALUE_AND_EFFECT,
    )


def ks_exact(
    reference: FloatArray, current: FloatArray, d: float | None = None
) -> tuple[float, float]:
    """(D, p) as ``ks_2samp(reference, current, method="exact")`` gives them, to the bit, for
    a *sorted* reference sample and values without NaN (``d``: their D, if known): D rounded
    to the lattice of the two sizes, and scipy's exact two-sided tail, or its asymptotic one
    where the exact recursion cannot run (sizes whose lcm overflows, a floating-point error),
    as there; tested against ``ks_2samp`` (tests/detectors/drift/test_fast_paths.py)."""
    n1, n2 = int(reference.size), int(current.size)
    if d is None:
        d = ks_statistic(reference, current)
    g = math.gcd(n1, n2)
    success = False
    if n1 // g < np.iinfo(np.int32).max / (n2 // g):
        success, d, p = _attempt_exact_2kssamp(n1, n2, g, d, "two-sided")
    if not success:
        m, n = sorted((float(n1), float(n2)), reverse=True)
        p = distributions.kstwo.sf(d, np.round(m * n / (m + n)))
    return float(d), float(np.clip(p, 0.0, 1.0))


def ks_statistic(reference: FloatArray, current: FloatArray) -> float:
    """D of a *sorted* reference sample against values (no NaN): the largest gap between the
    two empirical CDFs over every value of either, as ``scipy.stats.ks_2samp`` finds it, in
    one merge of the two sorted samples (not a binary search per value): after each run of
    equal values, the gap is (i n2 - j n1) / (n1 n2) with i and j the counts at or below it."""
    values = np.sort(current)
    n1, n2 = reference.size, values.size
    merged = np.concatenate((reference, values))
    order = np.argsort(merged, kind="stable")  # two sorted runs: a linear merge
    steps = np.where(order < n1, n2, -n1)  # integers: no rounding before the last step
    gaps = np.cumsum(steps)
    ordered = merged[order]
    last = np.append(ordered[1:] != ordered[:-1], True)  # the last of each run of ties
    gaps = gaps[last]
    return float(max(np.clip(-gaps.min() / (n1 * n2), 0.0, 1.0), gaps.max() / (n1 * n2)))


def ks_asymptotic(reference: FloatArray, current: FloatArray) -> tuple[float, float]:
    """(D, p) with the asymptotic two-sided p-value: what ``ks_2samp(method="asymp")`` gives
    (Smirnov's limit through ``kstwo``'s survival function at the rounded effective size),
    without its per-call argument handling, which cost more than the test itself. The tail is
    ``kolmogorov_sf``, scipy's ``kolmogn`` on arrays (equal to ~1e-12 relative), so this
    and the batched KS of ``detectors.drift.batch`` give the same p-value to the bit."""
    d = ks_statistic(reference, current)
    m, n = sorted((float(reference.size), float(current.size)), reverse=True)
    p = float(np.clip(kolmogorov_sf(np.round(m * n / (m + n)), d)[()], 0.0, 1.0))
    return d, p
