import dataclasses

import pytest

from detectors.drift.result import DriftTestResult, DriftWhen, no_evidence


def _result(p_value: float | None, effect: float, min_effect: float = 0.1) -> DriftTestResult:
    when = DriftWhen.EFFECT_ONLY if p_value is None else DriftWhen.P_VALUE_AND_EFFECT
    return DriftTestResult("t", effect, p_value, effect, min_effect, 100, 100, when)


@pytest.mark.parametrize(
    ("p_value", "effect", "alpha", "expected"),
    [
        (0.01, 0.2, 0.05, True),
        (0.01, 0.05, 0.05, False),  # significant but negligible
        (0.2, 0.5, 0.05, False),  # large but could be noise
        (0.01, 0.2, 0.001, False),
        (None, 0.2, 0.05, True),  # no p-value: the effect decides
        (None, 0.05, 0.05, False),
    ],
)
def test_is_drift_follows_the_stated_rule(
    p_value: float | None, effect: float, alpha: float, expected: bool
) -> None:
    assert _result(p_value, effect).is_drift(alpha) is expected


def test_effect_equal_to_min_effect_is_drift() -> None:
    assert _result(None, 0.25, min_effect=0.25).is_drift()


def test_inconsistent_results_are_rejected() -> None:
    with pytest.raises(ValueError, match="p-value"):
        DriftTestResult("t", 0.0, None, 0.1, 0.1, 1, 1, DriftWhen.P_VALUE_AND_EFFECT)
    with pytest.raises(ValueError, match="p-value"):
        DriftTestResult("t", 0.0, 0.5, 0.1, 0.1, 1, 1, DriftWhen.EFFECT_ONLY)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _result(1.5, 0.1)
    with pytest.raises(ValueError, match="distances"):
        _result(0.5, float("nan"))


def test_no_evidence_never_drifts_and_is_frozen() -> None:
    for has_p in (True, False):
        result = no_evidence("t", 0.0, 10, 0, has_p_value=has_p)
        assert result.effect_size == 0.0 and result.p_value == (1.0 if has_p else None)
        assert not result.is_drift(alpha=0.99)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.effect_size = 1.0  # type: ignore[misc]
