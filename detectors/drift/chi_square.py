"""Chi-square test of a categorical feature: reference counts against the window's counts.

The 2 x k contingency table has one row per sample and one column per reference category,
plus one "unseen" column for categories the reference never had, so new categories are
evidence of drift. Columns empty on both sides are dropped; no Yates correction (k is rarely
2, and one rule for every k is easier to check). The p-value comes from scipy; with many rare
categories (expected counts below ~5) it is only approximate.

The effect size is Cramer's V of the table re-weighted to equal sample sizes,
V = sqrt(0.5 * sum((p - q)^2 / (p + q))) over the two samples' proportions p and q. The plain
Cramer's V shrinks towards 0 as the reference grows larger than the window (it measures how
much knowing the sample tells about the category), so the same change would look smaller
against a bigger training set; the re-weighted one depends only on the two distributions. It
lies in [0, 1]: 1 for disjoint categories.

Default ``min_effect`` 0.1, Cohen's "small" effect: moving 10 percentage points of mass
between two equal categories (50/50 to 60/40) gives V = 0.1; a new category taking 5% of a
window gives about 0.16 on its own.

>>> colours = CategoricalReference.from_counts({"red": 5_000, "blue": 5_000})
>>> chi_square_test(colours, {"red": 505, "blue": 495}).is_drift()
False
>>> chi_square_test(colours, {"red": 350, "blue": 650}).is_drift()
True
>>> chi_square_test(colours, {"red": 450, "blue": 450, "green": 100}).is_drift()
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from scipy import special

from detectors.drift.histograms import category_counts
from detectors.drift.result import DriftTestResult, DriftWhen, FloatArray, no_evidence
from detectors.reference import CategoricalReference

CHI_SQUARE_MIN_EFFECT = 0.1


def chi_square_test(
    reference: CategoricalReference,
    current: Mapping[str, int],
    *,
    min_effect: float = CHI_SQUARE_MIN_EFFECT,
) -> DriftTestResult:
    """Chi-square test of homogeneity; effect = Cramer's V at equal sample sizes."""
    return chi_square_aligned(*category_counts(reference, current), min_effect=min_effect)


def chi_square_aligned(
    ref: FloatArray, cur: FloatArray, *, min_effect: float = CHI_SQUARE_MIN_EFFECT
) -> DriftTestResult:
    """The test on counts already aligned by ``category_counts`` (reference, window)."""
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if n_ref == 0 or n_cur == 0:
        return no_evidence("chi_square", min_effect, n_ref, n_cur, has_p_value=True)
    seen = (ref + cur) > 0
    table = np.vstack((ref[seen], cur[seen]))
    if table.shape[1] < 2:  # one category on both sides: nothing can differ
        statistic, p_value = 0.0, 1.0
    else:
        statistic, p_value = homogeneity(table)
    p, q = table[0] / n_ref, table[1] / n_cur
    effect = float(np.sqrt(0.5 * np.sum((p - q) ** 2 / (p + q))))
    return DriftTestResult(
        test="chi_square",
        statistic=statistic,
        p_value=p_value,
        effect_size=effect,
        min_effect=min_effect,
        n_reference=n_ref,
        n_current=n_cur,
        drift_when=DriftWhen.P_VALUE_AND_EFFECT,
    )


def homogeneity(table: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Pearson's chi-square of a 2 x k table of counts with no empty column, and its p-value:
    ``scipy.stats.chi2_contingency(table, correction=False)`` without its argument handling
    (the expected counts, the statistic, the chi-square tail with k - 1 degrees of freedom)."""
    observed = table.astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return statistic, float(special.chdtrc(table.shape[1] - 1, statistic))
