"""A sequential canary judge: promote, hold or roll back a candidate version, window by window.

A deployment sends a share of the traffic (5 %, 25 %, 50 %, 100 %) to the candidate version for
``step_windows`` windows per step. Every window, ``CanaryJudge.update`` gets one ``ArmWindow``
per arm (counts, not rates: events, invalid events, null outputs, labelled events and errors
among them, and the window's latency p95) and returns a ``Verdict``: "rollback" as soon as a
harm test rejects "the candidate is no worse than the baseline plus the metric's tolerance";
"promote" once the step has run ``step_windows`` windows, no harm test has rejected, *and* the
data rule out, for every metric, a harm of the metric's margin or more (the non-inferiority
gate below); "hold" while watching, and past the step's end while the gate has not passed;
"wait" until the candidate has ``min_events`` events (and ``min_labelled`` labelled ones, which
the error rate needs).

Harm tests. The judge looks after every window, so a fixed-sample test would be peeked at ten
times per step and its false-rollback rate would grow with every look. Every harm test is
always valid instead: its p-value may be read after every window and the chance that it *ever*
falls below alpha under the null stays at most alpha (Ville's inequality on a test martingale):

- rates (``quality.error_rate``, ``output.null_rate``, ``traffic.invalid_rate``): a one-sided
  mixture SPRT (mSPRT, Johari et al. 2017) on the difference of proportions, counts pooled over
  the step's windows, Agresti-Caffo adjusted (one success and one failure added to each arm, so
  a rate of 0 never gives a variance of 0), mixing over harms with a half-normal of scale
  ``rate_mixture_sd``;
- latency (``latency.p95``): the per-window log ratio log(candidate p95 / baseline p95), whose
  spread nobody knows in advance, goes into a sequential t-test: the Bayes factor of a normal
  prior on the standardised harm (sd ``latency_mixture_sd``) with the scale-invariant prior on
  sigma, which is a test martingale under the null (group invariance; Perez-Ortiz et al. 2022).
  It needs two windows to say anything and, with few windows, at least ~5 to reject at 0.00245.
  Where the spread is known from the baseline's windows before the canary
  (``latency_spread``, put into ``CanaryConfig.latency_spread``), the log ratios go into the
  same one-sided mSPRT as the rates instead, each window weighted by its events, and one window
  can suffice. Latency traffic swings common to both arms inflate that spread: conservative.

Each test's null is composite ("no worse than tolerance"); a candidate better than the boundary
only makes each statistic smaller, so a test valid at the boundary is valid for all of it. The
rate tests and the known-spread latency test are valid up to the normal approximation of pooled
counts and a plug-in variance (the t-test needs neither). Alpha is split (Bonferroni): 98 % of it
equally over the four metrics, 2 % to the input mismatch test below (a routing bug gives
p-values far below that; a larger share would slow the latency test down by a window). A
rollback stays for the rest of the step.

Mismatch tests. Both arms get the same traffic, so the candidate's inputs should look like the
baseline's: if they differ, requests are routed by something that matters, or the candidate's
feature code differs (a bug either way). Its outputs should differ only as the two models do.
When the worker compares the two arms' window profiles (``Versus``: the drift tests of the
candidate's cut against the baseline's cut of the same window), each window gives a p-value per
kind; ``calibrated_log_e`` turns each into an e-value and their product over the step's windows
is a test supermartingale under "no difference", read after every window like the others
(``versus.inputs``, ``versus.output``). The input mismatch has ``MISMATCH_SHARE`` of alpha and
can roll back, never hold a promotion back; the output shift is reported with its p-value, not
judged: a new model's outputs are meant to differ, and its harms show in the other metrics.

The non-inferiority gate. No rejection is no evidence: at 5 % of traffic a step has too few
events for a harm test to reject a candidate 5 points worse, and promoting on silence promoted
it ~90 % of the time. So a promotion needs evidence of its own: for each metric, the null
"the candidate is worse than the baseline by the metric's margin or more" (``*_margin``, at
least the tolerance) must be rejected. The same statistics, mirrored: the rates' Agresti-Caffo
difference and variance, the latency log ratios (t on the per-window ratios with the spread
unknown, the events-weighted z with it known), against the margin instead of the tolerance.

- One look at the step's end. At the first window from ``step_windows`` on at which a metric
  has its data, the gate takes one fixed-sample one-sided test (z for rates and the known
  spread, Student t with n - 1 degrees of freedom for the latency ratios) at
  ``step_end_alpha`` = 0.8 * ``promote_alpha``. One look at a time fixed by sample sizes, not
  by outcomes, is an ordinary fixed-sample test: no peeking correction.
- Always-valid re-checks after it. A step that fails the look holds, and every later window
  re-checks with an mSPRT for "harm below the margin" (the t-test's Bayes factor for latency)
  at ``recheck_alpha`` = 0.2 * ``promote_alpha``, read as a running minimum (Ville again).
  Harm tests keep running and can still roll back. Under a metric's null the chance that it is
  *ever* shown, by the look or by a re-check, is at most 0.8 + 0.2 = 1 times ``promote_alpha``
  (a union bound).
- No split over metrics. A promotion needs *every* gated metric shown; a candidate harmful in
  any one metric is promoted only if that metric's test wrongly passes, which has chance at
  most ``promote_alpha`` whatever the other metrics do (the intersection-union principle,
  Berger 1982). A Bonferroni split would only cost power.
- What is gated. Every metric with data on both arms. Not the error rate when ``min_labelled``
  is 0 (a deployment without labels: said in the reason); not a metric the baseline has no data
  for (a step at 100 %: nothing to compare with, said too); not latency when no window has both
  arms' p95. Latency with an unknown spread needs two windows: a step of one window holds until
  the second.

A held step's reason says what is missing: the upper bound the gate compares with the margin
(fixed-sample at the look, always-valid after it), and how many more candidate labels, events or
windows the current estimate would need to pass the always-valid re-check at the current
traffic share.

The defaults (``CanaryConfig``): alpha 0.01, 100 candidate events and 100 labelled ones, 10
windows a step; the candidate may be at most 1 point worse in error rate, 0.5 point in null and
invalid rate, and 10 % slower at p95 (tolerances); a promotion rules out 3 points of error, null
and invalid rate and 20 % of p95 (margins) at promote_alpha 0.05. The margins are a trade: the
error-rate margin must stay under 5 points for a step to refuse a candidate 5 points worse;
smaller margins hold good candidates longer at small shares (at 5 % of 1,000-event windows a
10-window step shows an as-good candidate within 3 points about two times in three; at 25 %
nearly always), larger ones promote more candidates between the tolerance and the margin.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> def arm(events: int, error_rate: float, null_rate: float, p95: float) -> ArmWindow:
...     errors, nulls = rng.binomial(events, error_rate), rng.binomial(events, null_rate)
...     return ArmWindow(events, 0, nulls, events, errors, p95 * rng.lognormal(0.0, 0.05))
>>> judge = CanaryJudge(CanaryConfig(step_windows=5))
>>> [judge.update(arm(750, 0.1, 0.01, 80.0), arm(250, 0.1, 0.01, 80.0)).decision
...  for _ in range(5)]
['hold', 'hold', 'hold', 'hold', 'promote']
>>> print(judge.verdict.metrics[ERROR_RATE].describe_gate())
quality.error_rate: harm of 3.0 points ruled out (upper bound +0.4 points)
>>> judge.reset()
>>> [judge.update(arm(750, 0.1, 0.01, 80.0), arm(250, 0.2, 0.01, 80.0)).decision
...  for _ in range(2)]
['hold', 'rollback']
>>> print(judge.verdict.reason)  # doctest: +NORMALIZE_WHITESPACE
quality.error_rate is worse than tolerated: candidate 0.200 vs baseline 0.099
(+10.1 points, tolerance 1.0 point); always-valid p 8.6e-05 <= 0.0024

At 5 % of the traffic, 5 windows of a candidate 5 points worse: no harm test rejects, but the
gate cannot rule out a harm of 3 points, so the step holds and says what is missing.

>>> judge = CanaryJudge(CanaryConfig(step_windows=5))
>>> decisions = [judge.update(arm(950, 0.1, 0.01, 80.0), arm(50, 0.15, 0.01, 80.0)).decision
...              for _ in range(5)]
>>> decisions
['wait', 'hold', 'hold', 'hold', 'hold']
>>> print(judge.verdict.metrics[ERROR_RATE].describe_gate())  # doctest: +NORMALIZE_WHITESPACE
quality.error_rate: cannot yet rule out a harm of 3.0 points: upper bound +9.3 points;
more data at the current estimate would not rule it out
>>> judge = CanaryJudge(CanaryConfig())
>>> print(judge.update(arm(950, 0.1, 0.01, 80.0), arm(50, 0.1, 0.01, 80.0)).reason)
waiting for data: the candidate has 50 of 100 events and 50 of 100 labelled events
>>> CanaryConfig(alpha=1.5)
Traceback (most recent call last):
...
ValueError: alpha must be in (0, 1), the overall false-rollback budget of a step; got 1.5
>>> CanaryConfig(error_rate_margin=0.005)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: error_rate_margin must be > 0 and >= error_rate_tolerance (0.01): the harm a ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import special

Decision = Literal["promote", "hold", "rollback", "wait"]
ERROR_RATE, NULL_RATE, INVALID_RATE, LATENCY = (
    "quality.error_rate",
    "output.null_rate",
    "traffic.invalid_rate",
    "latency.p95",
)
METRICS = (ERROR_RATE, NULL_RATE, INVALID_RATE, LATENCY)
# the same traffic goes to both arms, so their inputs should not differ (else: a routing or
# feature bug): a harm test on the per-window comparison of the two arms' profiles (``Versus``),
# never a gate of a promotion. Their outputs differ as the two models do (a better model too):
# the shift is measured and reported, not judged
INPUT_MISMATCH, OUTPUT_SHIFT = "versus.inputs", "versus.output"
MISMATCHES = (INPUT_MISMATCH, OUTPUT_SHIFT)
MISMATCH_SHARE = 0.02  # of alpha, for the input mismatch; the rest is split over METRICS
CALIBRATOR_KAPPA = 0.5  # p -> kappa * p ** (kappa - 1): an e-value from a p-value
LATENCY_MIN_WINDOWS = 2  # a t-test needs two windows to estimate the spread
LATENCY_LOG_MIXTURE_SD = 0.2  # with a known spread: harms of ~20 % beyond the tolerance
# promote_alpha's share spent on the one fixed-sample look at the step's end; the rest goes to
# the always-valid re-checks of the windows after it (a union bound: the two add up)
STEP_END_SHARE = 0.8
# why a metric is not gated once the baseline has stopped serving (a step of 100 %)
GONE = "the baseline serves no traffic now: nothing left to compare with"


@dataclass(frozen=True)
class ArmWindow:
    """One arm's counts over one window; ``errors`` are among the ``labelled`` events.

    ``events`` counts every event the arm received, invalid ones included; ``latency_p95`` is
    None when the arm reported no latency in the window.
    """

    events: int
    invalid: int = 0
    nulls: int = 0
    labelled: int = 0
    errors: int = 0
    latency_p95: float | None = None

    def __post_init__(self) -> None:
        counts = {n: getattr(self, n) for n in ("events", "invalid", "nulls", "labelled", "errors")}
        if any(v < 0 for v in counts.values()):
            raise ValueError(f"window counts must be >= 0; got {counts}")
        if self.invalid > self.events or self.nulls > self.events:
            raise ValueError(
                f"invalid ({self.invalid}) and nulls ({self.nulls}) are among the events "
                f"({self.events}), so neither can exceed them"
            )
        if self.errors > self.labelled:
            raise ValueError(f"errors ({self.errors}) are among the labelled ({self.labelled})")
        p95 = self.latency_p95
        if p95 is not None and not (math.isfinite(p95) and p95 > 0):
            raise ValueError(f"latency_p95 must be a positive finite number or None; got {p95}")
        if p95 is not None and self.events == 0:
            raise ValueError("a window with no events has no latency p95; pass None")


@dataclass(frozen=True)
class Versus:
    """One window's comparison of the candidate's profile with the baseline's (the worker's
    ``versus.*`` rows): the p-value that the inputs differ (the smallest multiplicity-adjusted
    p over the features) and that the outputs differ (the output's drift test); None when
    not tested. Under "no difference" each is uniform or larger (valid p-values)."""

    inputs_p: float | None = None
    output_p: float | None = None

    def __post_init__(self) -> None:
        for name in ("inputs_p", "output_p"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a p-value in [0, 1] or None; got {value}")


def calibrated_log_e(p: float, kappa: float = CALIBRATOR_KAPPA) -> float:
    """log of the e-value kappa * p^(kappa - 1) of a p-value (Vovk & Wang 2021): its mean is
    at most 1 under the null, so a product over independent windows is a test supermartingale
    and may be read after each (Ville). p = 1 gives log(kappa) < 0: quiet windows count
    against a rollback."""
    return math.log(kappa) + (kappa - 1.0) * math.log(max(p, 1e-300))


@dataclass(frozen=True)
class CanaryConfig:
    """What the judge tolerates, what a promotion must rule out, and how much evidence it needs.

    Tolerances: error, null and invalid rates in absolute points (0.01 = 1 point), latency p95
    relative (0.10 = 10 % slower): a harm test rolls back once the data show the candidate
    worse than that. Margins, in the same units and at least the tolerances: a step promotes
    only once the data rule out a harm of the margin or more, for every metric
    (``promote_alpha`` is the chance of promoting a candidate that is worse by a margin in
    some metric). The mixture scales say which harms beyond the tolerance the tests are most
    sensitive to: a few points for rates, a standardised shift of about one to three per-window
    spreads for latency. ``latency_spread``: the sd of a window's log p95 times the square root
    of its events, measured on the baseline before the canary (``latency_spread``); None when
    unknown.
    """

    alpha: float = 0.01
    min_events: int = 100
    min_labelled: int = 100
    step_windows: int = 10
    error_rate_tolerance: float = 0.01
    null_rate_tolerance: float = 0.005
    invalid_rate_tolerance: float = 0.005
    latency_tolerance: float = 0.10
    rate_mixture_sd: float = 0.05
    latency_mixture_sd: float = 2.0
    latency_spread: float | None = None
    error_rate_margin: float = 0.03
    null_rate_margin: float = 0.03
    invalid_rate_margin: float = 0.03
    latency_margin: float = 0.20
    promote_alpha: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(
                "alpha must be in (0, 1), the overall false-rollback budget of a step; "
                f"got {self.alpha}"
            )
        if not 0.0 < self.promote_alpha < 1.0:
            raise ValueError(
                "promote_alpha must be in (0, 1), the chance of promoting a candidate worse "
                f"than a margin; got {self.promote_alpha}"
            )
        for name in ("min_events", "min_labelled"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.step_windows < 1:
            raise ValueError(f"step_windows must be >= 1; got {self.step_windows}")
        for metric in METRICS:
            name = _FIELD[metric]
            value = getattr(self, f"{name}_tolerance")
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(
                    f"{name}_tolerance must be >= 0 (how much worse the candidate may be); "
                    f"got {value}"
                )
        for metric in METRICS:
            name = _FIELD[metric]
            tolerance, margin = getattr(self, f"{name}_tolerance"), getattr(self, f"{name}_margin")
            if not (math.isfinite(margin) and margin > 0.0 and margin >= tolerance):
                raise ValueError(
                    f"{name}_margin must be > 0 and >= {name}_tolerance ({tolerance:g}): the "
                    f"harm a promotion must rule out, at least what is tolerated; got {margin}"
                )
        for name in ("rate_mixture_sd", "latency_mixture_sd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be > 0; got {value}")
        spread = self.latency_spread
        if spread is not None and not (math.isfinite(spread) and spread > 0.0):
            raise ValueError(f"latency_spread must be > 0 or None (unknown); got {spread}")

    @property
    def metric_alpha(self) -> float:
        """Each metric's share of ``alpha`` (Bonferroni over ``METRICS``, after the share of
        the mismatch tests)."""
        return self.alpha * (1.0 - MISMATCH_SHARE) / len(METRICS)

    @property
    def mismatch_alpha(self) -> float:
        """The input mismatch test's share of ``alpha``."""
        return self.alpha * MISMATCH_SHARE

    @property
    def step_end_alpha(self) -> float:
        """The level of each metric's one fixed-sample non-inferiority look, at the step's end."""
        return self.promote_alpha * STEP_END_SHARE

    @property
    def recheck_alpha(self) -> float:
        """The level of each metric's always-valid non-inferiority test after the step's end."""
        return self.promote_alpha * (1.0 - STEP_END_SHARE)

    def tolerance(self, metric: str) -> float:
        return float(getattr(self, f"{_FIELD[metric]}_tolerance"))

    def margin(self, metric: str) -> float:
        return float(getattr(self, f"{_FIELD[metric]}_margin"))


_FIELD = {
    ERROR_RATE: "error_rate",
    NULL_RATE: "null_rate",
    INVALID_RATE: "invalid_rate",
    LATENCY: "latency",
}


@dataclass(frozen=True)
class MetricEvidence:
    """One metric's harm test and non-inferiority gate so far. A *small* ``p_value`` means harm.

    ``effect`` is candidate minus baseline for rates, candidate / baseline - 1 for latency (the
    geometric mean of the per-window p95 ratios), in the units of ``tolerance``. ``p_value`` is
    the always-valid p-value of "candidate no worse than baseline + tolerance", the smallest
    over the step's windows since the metric had ``needed`` samples (candidate events, labelled
    candidate events, or windows with both arms' p95).

    The gate: ``margin`` is the harm a promotion must rule out; ``upper`` the upper confidence
    bound on the effect that the gate compares with it (fixed-sample at level
    ``CanaryConfig.step_end_alpha`` up to the step's end look, always-valid at
    ``recheck_alpha`` after it); ``promote_p`` the p-value of "harm of ``margin`` or more"
    behind the last gate check (small means non-inferior); ``shown`` whether the gate has
    passed in this step; ``gated`` whether a promotion needs it (not without labels, or
    without any baseline data to compare with); ``more`` how many more samples (candidate
    labels or events, or windows) the data as they stand would need to pass, None when more
    data at the current estimate would not do (or when shown); ``note`` why not gated.
    """

    metric: str
    baseline: float | None
    candidate: float | None
    effect: float | None
    tolerance: float
    p_value: float
    alpha: float
    samples: int
    needed: int
    margin: float | None = None
    upper: float | None = None
    promote_p: float = 1.0
    shown: bool = False
    gated: bool = True
    more: int | None = None
    note: str = ""

    @property
    def ready(self) -> bool:
        return self.samples >= self.needed

    @property
    def harmful(self) -> bool:
        return self.ready and self.alpha > 0.0 and self.p_value <= self.alpha

    def describe(self) -> str:
        if self.metric in MISMATCHES:
            what = "inputs" if self.metric == INPUT_MISMATCH else "outputs"
            why = " (a routing or feature bug)" if self.metric == INPUT_MISMATCH else ""
            state = "differ" if self.harmful else "compared"
            return (
                f"{self.metric}: the candidate's {what} and the baseline's on the same traffic "
                f"{state}{why} over {self.samples} windows"
            )
        if self.candidate is None or self.baseline is None or self.effect is None:
            return f"{self.metric}: no data"
        if self.metric == LATENCY:
            change = (
                f"candidate p95 {self.effect:+.1%} vs baseline "
                f"(tolerance {self.tolerance:.0%} slower)"
            )
        else:
            change = (
                f"candidate {self.candidate:.3f} vs baseline {self.baseline:.3f} "
                f"({100 * self.effect:+.1f} points, tolerance {100 * self.tolerance:.1f} point)"
            )
        return f"{self.metric} is worse than tolerated: {change}" if self.harmful else change

    def _amount(self, value: float) -> str:
        if self.metric == LATENCY:
            return f"{value:+.1%}"
        return f"{100 * value:+.1f} points"

    def describe_gate(self) -> str:
        """What the non-inferiority gate says of this metric, for a verdict's reason."""
        if not self.gated:
            return f"{self.metric}: not gated ({self.note})"
        margin = self._amount(self.margin or 0.0).lstrip("+")
        if self.metric == LATENCY:
            margin += " slower"
        if not self.ready:
            unit = "windows with both arms' p95" if self.metric == LATENCY else "samples"
            return (
                f"{self.metric}: cannot yet rule out a harm of {margin}: {self.samples} of "
                f"{self.needed} {unit}"
            )
        bound = "-" if self.upper is None else self._amount(self.upper)
        if self.shown:
            return f"{self.metric}: harm of {margin} ruled out (upper bound {bound})"
        unit = {
            ERROR_RATE: "candidate labels",
            NULL_RATE: "candidate events",
            INVALID_RATE: "candidate events",
            LATENCY: "windows",
        }[self.metric]
        more = (
            f"~{self.more:,} more {unit} needed at the current estimate"
            if self.more is not None
            else "more data at the current estimate would not rule it out"
        )
        return f"{self.metric}: cannot yet rule out a harm of {margin}: upper bound {bound}; {more}"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    metrics: dict[str, MetricEvidence]
    reason: str


def _log_one_sided_mixture(excess: float, variance: float, scale: float) -> float:
    """log of the mSPRT statistic for harm: an estimate ``excess`` over the boundary, N(., var).

    The normal likelihood ratio mixed over harms > 0 with a half-normal of sd ``scale``.
    """
    total = variance + scale**2
    exponent = excess**2 * scale**2 / (2.0 * variance * total)
    z = excess * scale / math.sqrt(variance * total)
    log_tail = float(special.log_ndtr(z))
    return math.log(2.0) + 0.5 * math.log(variance / total) + exponent + log_tail


def _agresti_caffo(candidate: tuple[int, int], baseline: tuple[int, int]) -> tuple[float, float]:
    """The adjusted difference of rates (candidate - baseline) and its variance."""
    (x_c, n_c), (x_b, n_b) = candidate, baseline
    p_c, p_b = (x_c + 1) / (n_c + 2), (x_b + 1) / (n_b + 2)
    variance = p_c * (1 - p_c) / (n_c + 2) + p_b * (1 - p_b) / (n_b + 2)
    return p_c - p_b, variance


def rate_harm_log_evidence(
    candidate: tuple[int, int], baseline: tuple[int, int], tolerance: float, scale: float
) -> float:
    """log mSPRT evidence that the candidate's rate exceeds the baseline's by > ``tolerance``.

    Each arm is (count, total) pooled over the step; Agresti-Caffo adjusted.
    """
    difference, variance = _agresti_caffo(candidate, baseline)
    return _log_one_sided_mixture(difference - tolerance, variance, scale)


def rate_safety_log_evidence(
    candidate: tuple[int, int], baseline: tuple[int, int], margin: float, scale: float
) -> float:
    """log mSPRT evidence that the candidate's rate exceeds the baseline's by < ``margin``.

    The mirror image of ``rate_harm_log_evidence``: the null is "harm of ``margin`` or more".
    """
    difference, variance = _agresti_caffo(candidate, baseline)
    return _log_one_sided_mixture(margin - difference, variance, scale)


def t_harm_log_evidence(n: int, total: float, total_sq: float, scale: float) -> float:
    """log Bayes factor of a positive mean, from n values' sum and sum of squares (scale-free).

    A normal prior of sd ``scale`` on mean / sigma against mean 0 (Gonen et al. 2005), with
    t^2 / (nu + t^2) written as total^2 / (n * total_sq) so that a zero spread is no special
    case. Only a positive mean counts as evidence (the test is one-sided).
    """
    if n < LATENCY_MIN_WINDOWS or total <= 0.0 or total_sq <= 0.0:
        return 0.0
    g = 1.0 + n * scale**2
    share = min(total**2 / (n * total_sq), 1.0)
    return -0.5 * math.log(g) - 0.5 * n * math.log(1.0 - share + share / g)


def latency_spread(p95: Sequence[float], events: Sequence[int]) -> float:
    """The spread of log p95 at one event, from windows of one arm (the baseline, before).

    A quantile's sampling variance shrinks as 1 / events, so each window's squared deviation
    from the events-weighted mean is scaled by its events.
    """
    if len(p95) != len(events) or len(p95) < 3:
        raise ValueError("latency_spread needs the p95 and events of at least 3 windows")
    if any(n <= 0 for n in events) or any(not (math.isfinite(v) and v > 0) for v in p95):
        raise ValueError("latency_spread needs positive p95 values and events")
    logs = [math.log(v) for v in p95]
    mean = sum(n * x for n, x in zip(events, logs, strict=True)) / sum(events)
    squares = sum(n * (x - mean) ** 2 for n, x in zip(events, logs, strict=True))
    return math.sqrt(squares / (len(p95) - 1))


def _p_value(log_evidence: float) -> float:
    """The p-value of a test martingale's value: 1 / evidence, at most 1."""
    return math.exp(-min(max(log_evidence, 0.0), 700.0))


def _root(f: Callable[[float], float], lo: float, hi: float) -> float | None:
    """The x in [lo, hi] where an increasing ``f`` crosses 0 (bisection), None if it does not."""
    if f(hi) < 0.0:
        return None
    if f(lo) >= 0.0:
        return lo
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < 0.0 else (lo, mid)
    return hi


@dataclass(frozen=True)
class _Gate:
    """One check of the non-inferiority gate: p of "harm >= margin", the bound, more needed."""

    p: float
    upper: float | None
    more: float | None  # a factor on the samples so far; None: more data would not do


class CanaryJudge:
    """Judges one step of a canary from its windows; ``update`` once per window."""

    def __init__(self, config: CanaryConfig | None = None) -> None:
        self.config = config if config is not None else CanaryConfig()
        self._reset()

    def _reset(self) -> None:
        self._windows = 0
        # per arm, pooled over the step: events, invalid, nulls, labelled, errors
        self._candidate = [0, 0, 0, 0, 0]
        self._baseline = [0, 0, 0, 0, 0]
        # latency: paired windows, sums of log p95 per arm, of the log ratio and its square
        self._latency_windows = 0
        self._log_p95 = [0.0, 0.0]
        self._ratio_sum = 0.0
        self._ratio_sq_sum = 0.0
        # with a known spread: information (1 / variance) and information-weighted log ratio
        self._information = 0.0
        self._weighted_ratio = 0.0
        self._min_p = dict.fromkeys(METRICS, 1.0)
        # the gate: each metric's always-valid p (running minimum), its one fixed-sample look
        # (taken or not), and whether it has passed
        self._min_safe_p = dict.fromkeys(METRICS, 1.0)
        self._looked = dict.fromkeys(METRICS, False)
        self._shown = dict.fromkeys(METRICS, False)
        # the mismatch tests: windows compared, and the log e-process of each
        self._versus_windows = dict.fromkeys(MISMATCHES, 0)
        self._versus_log_e = dict.fromkeys(MISMATCHES, 0.0)
        self._baseline_now = True
        self._latency_now = True
        self._rolled_back: str | None = None
        self._verdict: Verdict | None = None

    def reset(self) -> None:
        """Start a new step (a new traffic share): forget every window seen."""
        self._reset()

    @property
    def windows(self) -> int:
        return self._windows

    @property
    def verdict(self) -> Verdict | None:
        """The last verdict, or None before the first window of a step."""
        return self._verdict

    def update(
        self, baseline: ArmWindow, candidate: ArmWindow, versus: Versus | None = None
    ) -> Verdict:
        """One window: both arms' counts, and the comparison of their profiles if made."""
        self._windows += 1
        # whether the baseline still serves: at a step of 100 % its last requests end with the
        # switch, and what they left is no comparison a promotion could wait on
        self._baseline_now = baseline.events > 0
        self._latency_now = baseline.latency_p95 is not None and candidate.latency_p95 is not None
        if versus is not None:
            for metric, p in ((INPUT_MISMATCH, versus.inputs_p), (OUTPUT_SHIFT, versus.output_p)):
                if p is not None:
                    self._versus_windows[metric] += 1
                    self._versus_log_e[metric] += calibrated_log_e(p)
        for pooled, arm in ((self._baseline, baseline), (self._candidate, candidate)):
            counts = (arm.events, arm.invalid, arm.nulls, arm.labelled, arm.errors)
            for i, count in enumerate(counts):
                pooled[i] += count
        if baseline.latency_p95 is not None and candidate.latency_p95 is not None:
            log_b, log_c = math.log(baseline.latency_p95), math.log(candidate.latency_p95)
            ratio = log_c - log_b
            self._latency_windows += 1
            self._log_p95[0] += log_b
            self._log_p95[1] += log_c
            self._ratio_sum += ratio
            self._ratio_sq_sum += ratio**2
            if self.config.latency_spread is not None:
                variance = self.config.latency_spread**2 * (
                    1 / baseline.events + 1 / candidate.events
                )
                self._information += 1 / variance
                self._weighted_ratio += ratio / variance
        evidence = {metric: self._evidence(metric) for metric in METRICS}
        evidence.update({metric: self._mismatch(metric) for metric in MISMATCHES})
        self._verdict = self._decide(evidence)
        return self._verdict

    def _mismatch(self, metric: str) -> MetricEvidence:
        """A mismatch test: the e-process of the windows' p-values, as an always-valid p
        (its running maximum: a product of e-values is a supermartingale under the null)."""
        n = self._versus_windows[metric]
        if n:
            p = math.exp(-max(self._versus_log_e[metric], 0.0))
            self._min_p[metric] = min(self._min_p.get(metric, 1.0), p)
        judged = metric == INPUT_MISMATCH
        return MetricEvidence(
            metric, None, None, None, 0.0, self._min_p.get(metric, 1.0),
            self.config.mismatch_alpha if judged else 0.0, n, 1, gated=False,
            note="a harm test only" if judged else "reported, not judged",
        )  # fmt: skip

    # --- the harm tests -------------------------------------------------------------------

    def _latency_harm_log_evidence(self) -> float:
        cfg, n = self.config, self._latency_windows
        boundary = math.log1p(cfg.latency_tolerance)
        if cfg.latency_spread is None:
            # the excess over the tolerance: x_i = ratio_i - boundary
            total = self._ratio_sum - n * boundary
            total_sq = self._ratio_sq_sum - 2 * boundary * self._ratio_sum + n * boundary**2
            return t_harm_log_evidence(n, total, total_sq, cfg.latency_mixture_sd)
        if not n:
            return 0.0
        mean = self._weighted_ratio / self._information
        return _log_one_sided_mixture(
            mean - boundary, 1 / self._information, LATENCY_LOG_MIXTURE_SD
        )

    # --- the non-inferiority gate ---------------------------------------------------------

    def _rate_gate(
        self,
        c: tuple[int, int],
        b: tuple[int, int],
        margin: float,
        fixed: bool,
        bounds: bool = True,
    ) -> _Gate:
        """The fixed-sample check, or the always-valid one (its bound and needs if ``bounds``)."""
        difference, variance = _agresti_caffo(c, b)
        return self._normal_gate(
            difference, variance, margin, self.config.rate_mixture_sd, fixed, bounds
        )

    def _normal_gate(
        self,
        estimate: float,
        variance: float,
        margin: float,
        scale: float,
        fixed: bool,
        bounds: bool,
    ) -> _Gate:
        """The gate of an estimate ~ N(harm, variance) against ``margin``: the fixed-sample
        z check at the step's end, or the always-valid mSPRT after it, with its upper bound
        and the factor of more data it needs (if ``bounds``)."""
        cfg = self.config
        room, sd = margin - estimate, math.sqrt(variance)
        if fixed:
            z = special.ndtri(1.0 - cfg.step_end_alpha)
            more = (z * sd / room) ** 2 if room > 0 else None
            return _Gate(float(special.ndtr(-room / sd)), estimate + z * sd, more)
        threshold = math.log(1.0 / cfg.recheck_alpha)
        p = _p_value(_log_one_sided_mixture(room, variance, scale))
        if not bounds:
            return _Gate(p, None, None)
        # the always-valid bound: the smallest u with evidence of "harm < u" at recheck_alpha
        upper = _root(
            lambda u: _log_one_sided_mixture(u - estimate, variance, scale) - threshold,
            estimate,
            estimate + 100 * sd + 1.0,
        )
        more = None
        if room > 0:
            more = _root(
                lambda k: _log_one_sided_mixture(room, variance / k, scale) - threshold, 1.0, 1e6
            )
        return _Gate(p, upper, more)

    def _latency_gate(self, fixed: bool, bounds: bool = True) -> _Gate:
        cfg, n = self.config, self._latency_windows
        bound = math.log1p(cfg.latency_margin)
        if cfg.latency_spread is not None:
            mean, variance = self._weighted_ratio / self._information, 1 / self._information
            gate = self._normal_gate(mean, variance, bound, LATENCY_LOG_MIXTURE_SD, fixed, bounds)
            upper = None if gate.upper is None else math.expm1(gate.upper)
            return _Gate(gate.p, upper, gate.more)
        # unknown spread: a t-test on the per-window log ratios
        mean = self._ratio_sum / n
        var = max(self._ratio_sq_sum - n * mean**2, 0.0) / (n - 1)
        se = math.sqrt(var / n)
        room = bound - mean
        if fixed:
            t = float(special.stdtrit(n - 1, 1.0 - cfg.step_end_alpha))
            zero = 0.0 if room > 0 else 1.0  # identical ratios: the bound is their value
            p = zero if se == 0.0 else float(special.stdtr(n - 1, -room / se))
            more = None
            if room > 0 and se > 0:
                # windows needed for t * se / sqrt(k) < room, with t at the current df
                more = (t * se / room) ** 2
            elif room > 0:
                more = 1.0
            return _Gate(p, math.expm1(mean + t * se), more)
        threshold, scale = math.log(1.0 / cfg.recheck_alpha), cfg.latency_mixture_sd

        def t_log_e(u: float, k: float = 1.0) -> float:
            # the values u - ratio_i, their sum and sum of squares, k times as many windows
            total = n * u - self._ratio_sum
            total_sq = n * u**2 - 2 * u * self._ratio_sum + self._ratio_sq_sum
            return t_harm_log_evidence(round(n * k), k * total, k * total_sq, scale)

        p = _p_value(t_log_e(bound))
        if not bounds:
            return _Gate(p, None, None)
        upper = _root(lambda u: t_log_e(u) - threshold, mean, mean + 100 * math.sqrt(var) + 1.0)
        more = _root(lambda k: t_log_e(bound, k) - threshold, 1.0, 1e4) if room > 0 else None
        return _Gate(p, None if upper is None else math.expm1(upper), more)

    def _gate(
        self, metric: str, ready: bool, gated: bool, c: tuple[int, int], b: tuple[int, int]
    ) -> tuple[_Gate | None, int | None]:
        """Check the gate of one metric at this window; remember what passes."""
        cfg = self.config
        if not (gated and ready):
            return None, None
        # the always-valid test, every window it is ready (Ville: its running minimum is valid);
        # its bound and what it needs matter from the step's end on
        ended = self._windows >= cfg.step_windows
        if metric == LATENCY:
            valid = self._latency_gate(fixed=False, bounds=ended)
        else:
            valid = self._rate_gate(c, b, cfg.margin(metric), fixed=False, bounds=ended)
        self._min_safe_p[metric] = min(self._min_safe_p[metric], valid.p)
        shown_valid = self._min_safe_p[metric] <= cfg.recheck_alpha
        check = valid
        if self._windows >= cfg.step_windows and not self._looked[metric]:
            # the one fixed-sample look: the first window from the step's end with the data
            self._looked[metric] = True
            if metric == LATENCY:
                check = self._latency_gate(fixed=True)
            else:
                check = self._rate_gate(c, b, cfg.margin(metric), fixed=True)
            if check.p <= cfg.step_end_alpha:
                self._shown[metric] = True
        elif self._windows < cfg.step_windows:
            # before the step's end: what the look would say now (nothing is decided on it)
            if metric == LATENCY:
                check = self._latency_gate(fixed=True)
            else:
                check = self._rate_gate(c, b, cfg.margin(metric), fixed=True)
        if self._windows >= cfg.step_windows and shown_valid:
            self._shown[metric] = True
        # what more the test that decides from here on needs: the look's before the step's end,
        # the always-valid one's from it
        factor = check.more if self._windows < cfg.step_windows else valid.more
        samples = self._latency_windows if metric == LATENCY else c[1]
        more = None if factor is None else max(1, math.ceil(samples * (factor - 1.0)))
        return check, more

    def _evidence(self, metric: str) -> MetricEvidence:
        cfg = self.config
        tolerance = cfg.tolerance(metric)
        c = b = (0, 0)
        note = ""
        if metric == LATENCY:
            n = self._latency_windows
            log_e = self._latency_harm_log_evidence()
            needed = LATENCY_MIN_WINDOWS if cfg.latency_spread is None else 1
            baseline = math.exp(self._log_p95[0] / n) if n else None
            candidate = math.exp(self._log_p95[1] / n) if n else None
            effect = math.exp((self._log_p95[1] - self._log_p95[0]) / n) - 1 if n else None
            gated = n > 0 and self._latency_now
            if not n:
                note = "no window with both arms' latency p95"
            elif not gated:
                note = GONE
        else:
            count, total = {ERROR_RATE: (4, 3), NULL_RATE: (2, 0), INVALID_RATE: (1, 0)}[metric]
            c = (self._candidate[count], self._candidate[total])
            b = (self._baseline[count], self._baseline[total])
            log_e = rate_harm_log_evidence(c, b, tolerance, cfg.rate_mixture_sd)
            candidate = c[0] / c[1] if c[1] else None
            baseline = b[0] / b[1] if b[1] else None
            effect = None if candidate is None or baseline is None else candidate - baseline
            n, needed = c[1], cfg.min_labelled if metric == ERROR_RATE else cfg.min_events
            gated = (
                b[1] > 0
                and self._baseline_now
                and not (metric == ERROR_RATE and cfg.min_labelled == 0)
            )
            if metric == ERROR_RATE and cfg.min_labelled == 0:
                note = "min_labelled is 0: a deployment without labels"
            elif not b[1]:
                note = "the baseline has no data to compare with"
            elif not gated:
                note = GONE
        if n >= needed:
            # Ville: the running maximum of the evidence, read every window, stays valid
            self._min_p[metric] = min(self._min_p[metric], math.exp(-log_e))
        check, more = self._gate(metric, n >= needed, gated, c, b)
        return MetricEvidence(
            metric,
            baseline,
            candidate,
            effect,
            tolerance,
            self._min_p[metric],
            cfg.metric_alpha,
            n,
            needed,
            margin=cfg.margin(metric),
            upper=None if check is None else check.upper,
            promote_p=1.0 if check is None else check.p,
            shown=self._shown[metric],
            gated=gated,
            more=None if self._shown[metric] else more,
            note=note,
        )

    def _decide(self, evidence: dict[str, MetricEvidence]) -> Verdict:
        cfg = self.config
        events, labelled = self._candidate[0], self._candidate[3]
        if events < cfg.min_events:
            return Verdict("wait", evidence, self._waiting(events, labelled))
        harmful = [e for e in evidence.values() if e.harmful]
        if self._rolled_back is None and harmful:
            worst = min(harmful, key=lambda e: e.p_value)
            self._rolled_back = (
                f"{worst.describe()}; always-valid p {worst.p_value:.2g} <= {worst.alpha:.2g}"
            )
        if self._rolled_back is not None:
            return Verdict("rollback", evidence, self._rolled_back)
        if self._windows < cfg.step_windows:
            closest = min(evidence.values(), key=lambda e: e.p_value)
            return Verdict(
                "hold",
                evidence,
                f"window {self._windows} of {cfg.step_windows}: no metric worse than tolerated "
                f"so far (smallest p {closest.p_value:.2g}, {closest.metric})",
            )
        if labelled < cfg.min_labelled:
            return Verdict("wait", evidence, self._waiting(events, labelled))
        missing = [e for e in evidence.values() if e.gated and not e.shown]
        ungated = "; ".join(
            e.describe_gate()
            for e in evidence.values()
            if not e.gated and e.metric not in MISMATCHES
        )
        ungated = f"; {ungated}" if ungated else ""
        if missing:
            later = (
                f"windows after the step's end re-check with an always-valid test at "
                f"{cfg.recheck_alpha:g}"
            )
            return Verdict(
                "hold",
                evidence,
                f"window {self._windows} of {cfg.step_windows}: no metric worse than tolerated, "
                f"but not shown non-inferior: "
                + "; ".join(e.describe_gate() for e in missing)
                + f" ({later}){ungated}",
            )
        shown = "; ".join(e.describe_gate() for e in evidence.values() if e.gated)
        return Verdict(
            "promote",
            evidence,
            f"{self._windows} of {cfg.step_windows} windows, {events:,} candidate events "
            f"({labelled:,} labelled): no metric worse than tolerated at alpha {cfg.alpha:g}, "
            f"and every margin ruled out at promote_alpha {cfg.promote_alpha:g}: "
            + (shown or "nothing to compare")
            + ungated,
        )

    def _waiting(self, events: int, labelled: int) -> str:
        cfg = self.config
        return (
            f"waiting for data: the candidate has {events:,} of {cfg.min_events:,} events "
            f"and {labelled:,} of {cfg.min_labelled:,} labelled events"
        )

    def __repr__(self) -> str:
        return f"CanaryJudge({self.config!r})"
