"""One drift decision per model and window: multiple-testing control across its features.

Testing 30 features at alpha = 0.05 flags at least one in most windows by chance alone, so
the p-values of one window are adjusted together: Benjamini-Hochberg ("bh", controls the
share of false alarms among flagged features) or Bonferroni ("bonferroni", min(1, p m),
controls the chance of any false alarm). A feature drifts when its adjusted p-value is below
``alpha`` and its effect reaches its test's ``min_effect``; tests without a p-value decide on
the effect alone and do not count in m.

>>> from detectors.drift.result import DriftTestResult, DriftWhen
>>> def ks(p, d):
...     return DriftTestResult("ks", d, p, d, 0.1, 5000, 1000, DriftWhen.P_VALUE_AND_EFFECT)
>>> d = decide({"age": ks(0.001, 0.3), "income": ks(0.04, 0.2), "zip": ks(0.5, 0.01)})
>>> d.drifted, [round(f.adjusted_p_value or 0, 3) for f in d.features]
(('age',), [0.003, 0.06, 0.5])
>>> round(d.share_drifted, 2), d.max_effect
(0.33, 0.3)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from detectors.drift.result import DriftTestResult

Correction = Literal["bh", "bonferroni"]


@dataclass(frozen=True)
class FeatureDecision:
    feature: str
    result: DriftTestResult
    adjusted_p_value: float | None  # None when the test has no p-value
    drifted: bool


@dataclass(frozen=True)
class DriftDecision:
    """The features of one window, sorted by name, and what they add up to.

    ``max_effect`` is the largest ``effect_size`` (0 with no features); it compares features
    only when they share a test, since each test measures effect on its own scale.
    """

    alpha: float
    correction: Correction
    features: tuple[FeatureDecision, ...]
    drifted: tuple[str, ...]
    share_drifted: float
    max_effect: float

    @property
    def adjusted_p_values(self) -> dict[str, float | None]:
        return {f.feature: f.adjusted_p_value for f in self.features}


def _adjust(p_values: list[float], correction: Correction) -> list[float]:
    if not p_values:
        return []
    p = np.array(p_values, dtype=np.float64)
    if correction == "bh":
        return [float(v) for v in stats.false_discovery_control(p, method="bh")]
    return [float(v) for v in np.minimum(1.0, p * p.size)]


def decide(
    results: Mapping[str, DriftTestResult], alpha: float = 0.05, correction: Correction = "bh"
) -> DriftDecision:
    """Adjust the window's p-values together and flag the features that drifted."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if correction not in ("bh", "bonferroni"):
        raise ValueError(f"correction must be 'bh' or 'bonferroni', got {correction!r}")
    names = sorted(results)
    tested: dict[str, float] = {}
    for name in names:
        p_value = results[name].p_value
        if p_value is not None:
            tested[name] = p_value
    adjusted = dict(zip(tested, _adjust(list(tested.values()), correction), strict=True))
    features = []
    for name in names:
        result, p = results[name], adjusted.get(name)
        drifted = result.is_drift(alpha, p_value=p)
        features.append(FeatureDecision(name, result, p, drifted))
    drifted_names = tuple(f.feature for f in features if f.drifted)
    return DriftDecision(
        alpha=alpha,
        correction=correction,
        features=tuple(features),
        drifted=drifted_names,
        share_drifted=len(drifted_names) / len(names) if names else 0.0,
        max_effect=max((r.effect_size for r in results.values()), default=0.0),
    )
