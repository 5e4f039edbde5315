"""Change in a feature's missing rate: a two-proportion z-test with Cohen's h as the effect.

Works for any feature kind: it reads only ``count`` (rows, missing included) and ``missing``,
which reference profiles and window summaries both have. The statistic is the pooled z
(positive: more missing than in the reference); the p-value is two-sided, from the normal
distribution.

The effect size is Cohen's h = |2 asin(sqrt(p1)) - 2 asin(sqrt(p0))|, not the plain
difference of rates. Missing rates usually sit near 0, where a change from 0% to 2% matters
far more than one from 40% to 42%; h stretches the scale near 0 and 1 so one threshold fits
every base rate. Default ``min_effect`` 0.2 (Cohen's "small"): 0% -> 1% (h = 0.20),
1% -> 5% (0.25), 10% -> 20% (0.28) are drift; 1% -> 1.1% (0.01), 10% -> 15% (0.15) and
30% -> 35% (0.11) are not, however many events make them significant. For comparison an
absolute-difference threshold of 0.05 would miss 0% -> 4% entirely.

>>> from detectors.reference import CategoricalReference
>>> ref = CategoricalReference.from_counts({"a": 9_900}, missing=100)  # 1% missing
>>> window = CategoricalReference.from_counts({"a": 990}, missing=10)
>>> missing_rate_test(ref, window).is_drift()
False
>>> window = CategoricalReference.from_counts({"a": 940}, missing=60)  # 6% missing
>>> missing_rate_test(ref, window).is_drift()
True
"""

from __future__ import annotations

import math
from typing import Protocol

from scipy import special

from detectors.drift.result import DriftTestResult, DriftWhen, no_evidence

MISSING_RATE_MIN_EFFECT = 0.2


class Counted(Protocol):
    """Anything that knows its rows and how many were missing (references, window summaries)."""

    @property
    def count(self) -> int: ...

    @property
    def missing(self) -> int: ...


def missing_rate_test(
    reference: Counted, current: Counted, *, min_effect: float = MISSING_RATE_MIN_EFFECT
) -> DriftTestResult:
    """Two-proportion z-test of the missing rate; effect = Cohen's h."""
    n0, n1 = reference.count, current.count
    if n0 == 0 or n1 == 0:
        return no_evidence("missing_rate", min_effect, n0, n1, has_p_value=True)
    p0, p1 = reference.missing / n0, current.missing / n1
    pooled = (reference.missing + current.missing) / (n0 + n1)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1))
    z = (p1 - p0) / se if se > 0 else 0.0  # se = 0: both all or both none missing
    h = abs(2.0 * math.asin(math.sqrt(p1)) - 2.0 * math.asin(math.sqrt(p0)))
    return DriftTestResult(
        test="missing_rate",
        statistic=z,
        p_value=float(2.0 * special.ndtr(-abs(z))),  # the normal tail, as stats.norm.sf
        effect_size=h,
        min_effect=min_effect,
        n_reference=n0,
        n_current=n1,
        drift_when=DriftWhen.P_VALUE_AND_EFFECT,
    )
