"""Total variation distance of a categorical feature: the share of mass that moved.

TVD = 0.5 * sum(|p - q|) over the reference categories plus an "unseen" bucket, so a new
category holding 3% of a window adds 0.03. It reads directly as "this fraction of events
would have to change category to restore the reference mix". No p-value.

Default ``min_effect`` 0.1: a tenth of the events in a different category. Sampling noise
alone gives about sqrt(k / (2 pi n)) for k equally common categories: 0.04 for 10 categories
and 1,000 events, 0.09 for 200 and 0.13 for 100, so with many categories a window needs a few
hundred events before the distance means anything (the chi-square test's p-value guards
small windows).

>>> colours = CategoricalReference.from_counts({"red": 5_000, "blue": 5_000})
>>> total_variation_test(colours, {"red": 520, "blue": 480}).is_drift()
False
>>> total_variation_test(colours, {"red": 400, "blue": 480, "green": 120}).is_drift()
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from detectors.drift.histograms import category_counts
from detectors.drift.result import DriftTestResult, DriftWhen, FloatArray, no_evidence
from detectors.reference import CategoricalReference

TOTAL_VARIATION_MIN_EFFECT = 0.1


def total_variation_test(
    reference: CategoricalReference,
    current: Mapping[str, int],
    *,
    min_effect: float = TOTAL_VARIATION_MIN_EFFECT,
) -> DriftTestResult:
    """Total variation distance between reference and window category shares."""
    return total_variation_aligned(*category_counts(reference, current), min_effect=min_effect)


def total_variation_aligned(
    ref: FloatArray, cur: FloatArray, *, min_effect: float = TOTAL_VARIATION_MIN_EFFECT
) -> DriftTestResult:
    """The distance of counts already aligned by ``category_counts`` (reference, window)."""
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if n_ref == 0 or n_cur == 0:
        return no_evidence("total_variation", min_effect, n_ref, n_cur, has_p_value=False)
    distance = float(0.5 * np.abs(ref / n_ref - cur / n_cur).sum())
    return DriftTestResult(
        test="total_variation",
        statistic=distance,
        p_value=None,
        effect_size=distance,
        min_effect=min_effect,
        n_reference=n_ref,
        n_current=n_cur,
        drift_when=DriftWhen.EFFECT_ONLY,
    )
