import dataclasses

import numpy as np
import pytest
from scipy import stats

from detectors.drift import decide, ks_test
from detectors.drift.result import DriftTestResult, DriftWhen
from detectors.reference import NumericReference


def _tested(p_value: float, effect: float) -> DriftTestResult:
    return DriftTestResult(
        "ks", effect, p_value, effect, 0.1, 5_000, 1_000, DriftWhen.P_VALUE_AND_EFFECT
    )


def _effect_only(effect: float) -> DriftTestResult:
    return DriftTestResult("psi", effect, None, effect, 0.1, 5_000, 1_000, DriftWhen.EFFECT_ONLY)


def test_benjamini_hochberg_by_hand() -> None:
    ps = {"a": 0.01, "b": 0.02, "c": 0.03, "d": 0.5}
    decision = decide({k: _tested(p, 0.3) for k, p in ps.items()}, alpha=0.05)
    assert decision.adjusted_p_values == pytest.approx({"a": 0.04, "b": 0.04, "c": 0.04, "d": 0.5})
    assert decision.drifted == ("a", "b", "c")
    assert decision.share_drifted == pytest.approx(0.75)
    assert decision.correction == "bh" and decision.alpha == 0.05


def test_adjustments_match_scipy_and_bonferroni() -> None:
    ps = np.random.default_rng(0).uniform(0, 0.1, size=12)
    results = {f"f{i:02d}": _tested(float(p), 0.3) for i, p in enumerate(ps)}
    bh = decide(results)
    expected = stats.false_discovery_control(ps, method="bh")
    assert [f.adjusted_p_value for f in bh.features] == pytest.approx(list(expected))
    bonf = decide(results, correction="bonferroni")
    assert [f.adjusted_p_value for f in bonf.features] == pytest.approx(
        list(np.minimum(1.0, ps * 12))
    )
    assert set(bonf.drifted) <= set(bh.drifted)


def test_effect_threshold_applies_after_correction() -> None:
    decision = decide({"big": _tested(1e-8, 0.4), "tiny": _tested(1e-8, 0.01)})
    assert decision.drifted == ("big",)
    assert [f.drifted for f in decision.features] == [True, False]
    assert decision.max_effect == 0.4


def test_effect_only_results_decide_alone_and_do_not_count_in_m() -> None:
    results = {"p": _tested(0.03, 0.3), "x": _effect_only(0.25), "y": _effect_only(0.05)}
    decision = decide(results, correction="bonferroni")
    assert decision.adjusted_p_values == {"p": pytest.approx(0.03), "x": None, "y": None}
    assert decision.drifted == ("p", "x")


def test_empty_window_and_bad_arguments() -> None:
    empty = decide({})
    assert (empty.drifted, empty.share_drifted, empty.max_effect) == ((), 0.0, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        decide({}, alpha=0.0)
    with pytest.raises(ValueError, match="correction"):
        decide({}, correction="holm")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        empty.alpha = 0.1  # type: ignore[misc]


def test_stationary_features_rarely_flag_a_window() -> None:
    rng = np.random.default_rng(2024)
    refs = [NumericReference.from_values(rng.normal(size=20_000)) for _ in range(30)]
    windows, flagged, raw_flagged = 200, 0, 0
    for _ in range(windows):
        results = {f"f{i}": ks_test(ref, rng.normal(size=1_000)) for i, ref in enumerate(refs)}
        flagged += bool(decide(results).drifted)
        raw_flagged += any(r.p_value is not None and r.p_value < 0.05 for r in results.values())
    assert flagged <= 0.01 * windows
    # without correction and effect threshold most windows would raise an alarm
    assert raw_flagged > 0.5 * windows
