import math
import pickle

import numpy as np
import pytest

from detectors.canary import (
    ERROR_RATE,
    LATENCY,
    METRICS,
    MISMATCH_SHARE,
    MISMATCHES,
    NULL_RATE,
    ArmWindow,
    CanaryConfig,
    CanaryJudge,
    Decision,
    latency_spread,
    rate_harm_log_evidence,
    t_harm_log_evidence,
)

WINDOW_EVENTS = 1000


def _arm(
    rng: np.random.Generator,
    events: int,
    *,
    error_rate: float = 0.10,
    null_rate: float = 0.01,
    slower: float = 1.0,
) -> ArmWindow:
    """One arm's window: every scorable event labelled, lognormal latencies (median 40 ms)."""
    nulls = int(rng.binomial(events, null_rate))
    labelled = events - nulls
    latency = rng.lognormal(math.log(40.0), 0.5, events) * slower
    return ArmWindow(
        events,
        int(rng.binomial(events, 0.005)),
        nulls,
        labelled,
        int(rng.binomial(labelled, error_rate)),
        float(np.percentile(latency, 95)),
    )


def _step(
    seed: int, share: float, windows: int, config: CanaryConfig, **candidate: float
) -> list[Decision]:
    """The decisions of one step, window by window, stopping at the first rollback."""
    rng = np.random.default_rng(seed)
    judge = CanaryJudge(config)
    n_c = round(WINDOW_EVENTS * share)
    decisions: list[Decision] = []
    for _ in range(windows):
        verdict = judge.update(_arm(rng, WINDOW_EVENTS - n_c), _arm(rng, n_c, **candidate))
        decisions.append(verdict.decision)
        if verdict.decision == "rollback":
            break
    return decisions


def _windows_to_rollback(decisions: list[Decision]) -> int | None:
    return decisions.index("rollback") + 1 if "rollback" in decisions else None


@pytest.mark.parametrize("share", [0.05, 0.5])
def test_identical_arms_never_roll_back_over_many_windows(share: float) -> None:
    # a long step, every window looked at: an always-valid test keeps the rate under alpha
    config = CanaryConfig(alpha=0.01, step_windows=40)
    rollbacks = sum("rollback" in _step(seed, share, 40, config) for seed in range(150))
    assert rollbacks <= 1  # expected at most 1.5 of 150 at alpha 0.01; measured 0


def test_identical_arms_promote_at_the_end_of_the_step() -> None:
    decisions = _step(1, 0.25, 10, CanaryConfig())
    assert decisions == ["hold"] * 9 + ["promote"]


def test_a_better_candidate_is_never_rolled_back() -> None:
    config = CanaryConfig(step_windows=20)
    for seed in range(30):
        assert "rollback" not in _step(seed, 0.5, 20, config, error_rate=0.02, null_rate=0.0)


def test_ten_points_worse_is_rolled_back_quickly() -> None:
    delays = [
        _windows_to_rollback(_step(s, 0.25, 10, CanaryConfig(), error_rate=0.2)) for s in range(20)
    ]
    assert all(d is not None for d in delays), delays
    assert float(np.median([d for d in delays if d is not None])) <= 3


@pytest.mark.parametrize(("share", "within"), [(0.05, 2), (0.25, 1)])
def test_broken_outputs_are_rolled_back_within_two_windows(share: float, within: int) -> None:
    # at 5 % the first window has 50 of the 100 candidate events needed: the second decides
    for seed in range(10):
        delay = _windows_to_rollback(_step(seed, share, 10, CanaryConfig(), null_rate=0.3))
        assert delay is not None and delay <= within, (seed, delay)


def test_broken_outputs_blame_the_null_rate() -> None:
    rng = np.random.default_rng(3)
    verdict = CanaryJudge().update(_arm(rng, 750), _arm(rng, 250, null_rate=0.3))
    assert verdict.decision == "rollback"
    assert verdict.metrics[NULL_RATE].harmful
    assert verdict.reason.startswith("output.null_rate is worse than tolerated")


def test_a_slower_candidate_is_rolled_back_once_the_windows_pin_down_the_spread() -> None:
    delays = [
        _windows_to_rollback(_step(s, 0.5, 10, CanaryConfig(), slower=1.5)) for s in range(10)
    ]
    assert all(d is not None and d >= 2 for d in delays), delays


def _history_spread(seed: int) -> float:
    """The latency spread of 20 baseline windows of all the traffic, before the canary."""
    rng = np.random.default_rng(seed)
    windows = [_arm(rng, WINDOW_EVENTS) for _ in range(20)]
    return latency_spread([w.latency_p95 or 0.0 for w in windows], [w.events for w in windows])


def test_latency_spread_measures_the_sd_of_log_p95_at_one_event() -> None:
    # lognormal sigma 0.5: var(log p95) ~ 0.95 * 0.05 / (n * (pdf(1.645) / 0.5)^2)
    expected = math.sqrt(0.95 * 0.05) * 0.5 / 0.10314
    spreads = [_history_spread(seed) for seed in range(20)]
    assert float(np.mean(spreads)) == pytest.approx(expected, rel=0.15)
    with pytest.raises(ValueError, match="at least 3 windows"):
        latency_spread([40.0, 41.0], [1000, 1000])


def test_a_known_spread_rolls_back_a_slower_candidate_within_two_windows() -> None:
    for seed in range(10):
        config = CanaryConfig(latency_spread=_history_spread(100 + seed))
        delays = _windows_to_rollback(_step(seed, 0.5, 10, config, slower=1.5))
        assert delays is not None and delays <= 2, (seed, delays)


def test_a_known_spread_keeps_identical_arms_from_rolling_back() -> None:
    rollbacks = 0
    for seed in range(100):
        config = CanaryConfig(step_windows=20, latency_spread=_history_spread(1000 + seed))
        rollbacks += "rollback" in _step(seed, 0.25, 20, config)
    assert rollbacks <= 1


def test_wait_under_min_events_says_how_many_it_has_and_needs() -> None:
    judge = CanaryJudge(CanaryConfig(min_events=100, min_labelled=100))
    verdict = judge.update(ArmWindow(960, labelled=900, errors=90), ArmWindow(40, labelled=40))
    assert verdict.decision == "wait"
    assert verdict.reason == (
        "waiting for data: the candidate has 40 of 100 events and 40 of 100 labelled events"
    )
    # broken outputs too: nothing is decided on 40 events
    assert judge.update(ArmWindow(960), ArmWindow(40, nulls=40)).decision == "wait"


def test_a_step_without_enough_labels_waits_instead_of_promoting() -> None:
    judge = CanaryJudge(CanaryConfig(step_windows=2, min_events=100, min_labelled=100))
    first = judge.update(ArmWindow(750, labelled=10, errors=1), ArmWindow(250, labelled=10))
    second = judge.update(ArmWindow(750, labelled=10, errors=1), ArmWindow(250, labelled=10))
    assert (first.decision, second.decision) == ("hold", "wait")
    assert "20 of 100 labelled events" in second.reason


def test_rollback_is_kept_for_the_rest_of_the_step_and_reset_starts_afresh() -> None:
    rng = np.random.default_rng(4)
    judge = CanaryJudge(CanaryConfig(step_windows=3))
    assert judge.update(_arm(rng, 500), _arm(rng, 500, null_rate=0.5)).decision == "rollback"
    for _ in range(3):  # good windows after the harm do not undo it
        assert judge.update(_arm(rng, 500), _arm(rng, 500)).decision == "rollback"
    judge.reset()
    assert (judge.windows, judge.verdict) == (0, None)
    decisions = [judge.update(_arm(rng, 500), _arm(rng, 500)).decision for _ in range(3)]
    assert decisions == ["hold", "hold", "promote"]


def test_a_judge_pickles_with_its_state() -> None:
    rng = np.random.default_rng(6)
    judge = CanaryJudge(CanaryConfig(step_windows=3))
    for _ in range(2):
        judge.update(_arm(rng, 750), _arm(rng, 250))
    copy = pickle.loads(pickle.dumps(judge))
    baseline, candidate = _arm(rng, 750), _arm(rng, 250)
    assert copy.update(baseline, candidate) == judge.update(baseline, candidate)
    assert copy.windows == judge.windows == 3 and repr(copy) == repr(judge)


def test_verdict_reports_every_metric_with_its_direction() -> None:
    rng = np.random.default_rng(5)
    judge = CanaryJudge()
    candidates = [_arm(rng, 250) for _ in range(3)]
    for candidate in candidates:
        verdict = judge.update(_arm(rng, 750), candidate)
    assert tuple(verdict.metrics) == (*METRICS, *MISMATCHES)
    for metric in METRICS:
        evidence = verdict.metrics[metric]
        assert evidence.ready and not evidence.harmful
        assert 0.0 < evidence.p_value <= 1.0
        assert evidence.alpha == pytest.approx(0.01 * (1 - MISMATCH_SHARE) / 4)
    # no profile comparison was given: the mismatch tests have no windows, and no say
    assert all(verdict.metrics[m].samples == 0 and not verdict.metrics[m].gated for m in MISMATCHES)
    assert verdict.metrics[ERROR_RATE].samples == sum(c.labelled for c in candidates)
    assert verdict.metrics[NULL_RATE].samples == 750
    assert verdict.metrics[LATENCY].samples == 3


def test_rate_evidence_grows_with_the_candidates_count_and_is_none_below_the_tolerance() -> None:
    logs = [rate_harm_log_evidence((x, 500), (100, 1500), 0.01, 0.05) for x in (30, 60, 90)]
    assert logs[0] < 0 < logs[1] < logs[2]


def test_latency_evidence_does_not_depend_on_the_scale_and_ignores_improvements() -> None:
    values = np.array([0.2, 0.25, 0.15, 0.3])
    one = t_harm_log_evidence(4, float(values.sum()), float((values**2).sum()), 2.0)
    ten = t_harm_log_evidence(4, float(10 * values.sum()), float(((10 * values) ** 2).sum()), 2.0)
    assert one == pytest.approx(ten) and one > 0
    assert t_harm_log_evidence(4, float(-values.sum()), float((values**2).sum()), 2.0) == 0.0
    assert t_harm_log_evidence(1, 0.5, 0.25, 2.0) == 0.0  # one window says nothing of the spread


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha must be in (0, 1)"),
        ({"alpha": 1.0}, "alpha must be in (0, 1)"),
        ({"alpha": -0.1}, "alpha must be in (0, 1)"),
        ({"error_rate_tolerance": -0.01}, "error_rate_tolerance must be >= 0"),
        ({"null_rate_tolerance": -0.01}, "null_rate_tolerance must be >= 0"),
        ({"invalid_rate_tolerance": -1.0}, "invalid_rate_tolerance must be >= 0"),
        ({"latency_tolerance": -0.1}, "latency_tolerance must be >= 0"),
        ({"latency_tolerance": math.nan}, "latency_tolerance must be >= 0"),
        ({"min_events": -1}, "min_events must be >= 0"),
        ({"step_windows": 0}, "step_windows must be >= 1"),
        ({"rate_mixture_sd": 0.0}, "rate_mixture_sd must be > 0"),
        ({"latency_spread": -1.0}, "latency_spread must be > 0 or None"),
    ],
)
def test_bad_config_says_what_is_wrong(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CanaryConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"events": -1}, "counts must be >= 0"),
        ({"events": 10, "nulls": 11}, "among the events"),
        ({"events": 10, "labelled": 5, "errors": 6}, "among the labelled"),
        ({"events": 10, "latency_p95": 0.0}, "latency_p95 must be a positive finite number"),
        ({"events": 0, "latency_p95": 40.0}, "no events has no latency p95"),
    ],
)
def test_bad_windows_say_what_is_wrong(window: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArmWindow(**window)  # type: ignore[arg-type]


# --- the non-inferiority gate: a promotion needs evidence, not the absence of it ---------


def test_five_points_worse_at_five_percent_is_not_promoted() -> None:
    # no harm test can reject this in 10 windows of ~50 labels; the gate must refuse it: the
    # chance of passing is bounded by promote_alpha (0.05) since 5 points is past the margin
    promoted = sum(
        _step(seed, 0.05, 10, CanaryConfig(), error_rate=0.15)[-1] == "promote"
        for seed in range(200)
    )
    assert promoted <= 10  # expected well under 5 %; 10 of 200 is 5 %


def test_a_good_candidate_at_a_quarter_of_the_traffic_is_promoted_at_the_step_end() -> None:
    promoted = [_step(100 + seed, 0.25, 10, CanaryConfig()) for seed in range(10)]
    assert sum(d == ["hold"] * 9 + ["promote"] for d in promoted) >= 9


def test_a_hold_says_what_is_missing() -> None:
    rng = np.random.default_rng(11)
    judge = CanaryJudge(CanaryConfig(step_windows=3))
    for _ in range(3):
        verdict = judge.update(_arm(rng, 950), _arm(rng, 50))
    assert verdict.decision == "hold"
    evidence = verdict.metrics[ERROR_RATE]
    assert evidence.gated and not evidence.shown and evidence.margin == 0.03
    assert evidence.upper is not None and evidence.upper > 0.03
    assert "quality.error_rate: cannot yet rule out a harm of 3.0 points: upper bound" in (
        verdict.reason
    )
    assert "more candidate labels needed" in verdict.reason or "would not rule" in verdict.reason
    assert "always-valid test at 0.01" in verdict.reason


def test_a_held_step_rechecks_and_promotes_once_the_data_show_it() -> None:
    # at 5 % a 2-window step's end cannot show 3 points; the later windows re-check, always valid
    config = CanaryConfig(step_windows=2)
    late = 0
    for seed in range(10):
        decisions = _step(seed, 0.05, 40, config)
        assert "rollback" not in decisions and decisions[1] != "promote"
        late += "promote" in decisions  # measured: 9 of 10, between windows 9 and 40
    assert late >= 6


def test_without_labels_the_error_rate_is_not_gated_and_the_reason_says_so() -> None:
    rng = np.random.default_rng(12)
    judge = CanaryJudge(CanaryConfig(step_windows=2, min_labelled=0))
    for _ in range(2):
        b, c = _arm(rng, 750), _arm(rng, 250)
        verdict = judge.update(
            ArmWindow(b.events, b.invalid, b.nulls, latency_p95=b.latency_p95),
            ArmWindow(c.events, c.invalid, c.nulls, latency_p95=c.latency_p95),
        )
    assert verdict.decision == "promote"
    assert not verdict.metrics[ERROR_RATE].gated
    assert "quality.error_rate: not gated (min_labelled is 0" in verdict.reason


def test_a_step_without_baseline_traffic_promotes_with_nothing_to_compare() -> None:
    judge = CanaryJudge(CanaryConfig(step_windows=1, min_labelled=0))
    verdict = judge.update(ArmWindow(0), ArmWindow(1000, nulls=10, latency_p95=40.0))
    assert verdict.decision == "promote"
    assert "the baseline has no data to compare with" in verdict.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"error_rate_margin": 0.005}, "error_rate_margin must be > 0 and >= error_rate_tolerance"),
        ({"null_rate_margin": 0.0}, "null_rate_margin must be > 0"),
        ({"invalid_rate_margin": math.inf}, "invalid_rate_margin must be > 0"),
        ({"latency_margin": 0.05}, "latency_margin must be > 0 and >= latency_tolerance"),
        ({"latency_tolerance": 0.3}, "latency_margin must be > 0 and >= latency_tolerance"),
        ({"promote_alpha": 0.0}, "promote_alpha must be in"),
        ({"promote_alpha": 1.0}, "promote_alpha must be in"),
    ],
)
def test_bad_margins_say_what_is_wrong(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CanaryConfig(**kwargs)  # type: ignore[arg-type]


def test_mismatch_tests_stay_quiet_on_uniform_p_values_and_catch_a_routing_bug() -> None:
    from detectors.canary import INPUT_MISMATCH, OUTPUT_SHIFT, Versus

    rng = np.random.default_rng(11)
    config = CanaryConfig(step_windows=10, min_labelled=0)
    arm = ArmWindow(500, 2, 5, 0, 0, 80.0)
    rolled = 0
    for _ in range(2000):
        judge = CanaryJudge(config)
        for _ in range(10):
            versus = Versus(float(rng.random()), float(rng.random()))
            if judge.update(arm, arm, versus).decision == "rollback":
                rolled += 1
                break
    # at most mismatch_alpha (0.0002) under the null; allow for chance
    assert rolled / 2000 <= 0.003, rolled
    judge = CanaryJudge(config)
    decisions = [judge.update(arm, arm, Versus(1e-6, 0.5)).decision for _ in range(2)]
    assert decisions[-1] == "rollback"
    verdict = judge.verdict
    assert verdict is not None and "routing or feature bug" in verdict.reason
    assert verdict.metrics[INPUT_MISMATCH].harmful
    # outputs that differ are reported, never judged: a new model's outputs may
    judge = CanaryJudge(config)
    verdict = judge.update(arm, arm, Versus(0.5, 1e-12))
    assert verdict.decision != "rollback" and verdict.metrics[OUTPUT_SHIFT].p_value < 1e-5
    assert not verdict.metrics[OUTPUT_SHIFT].harmful
    with pytest.raises(ValueError, match="p-value in"):
        Versus(1.5)


def test_a_step_of_all_traffic_promotes_when_the_baseline_has_gone() -> None:
    """The switch to 100 % lands inside a window: the baseline serves a little of that one and
    none after. What it left cannot be compared with; the step promotes after its windows
    instead of holding for a baseline that will not come back."""
    rng = np.random.default_rng(9)
    judge = CanaryJudge(CanaryConfig(step_windows=2, min_labelled=0))
    decisions = [judge.update(_arm(rng, 300), _arm(rng, 700)).decision]
    decisions += [judge.update(ArmWindow(0), _arm(rng, 1000)).decision for _ in range(2)]
    assert decisions == ["hold", "promote", "promote"]
    verdict = judge.verdict
    assert verdict is not None and "serves no traffic now" in verdict.reason
