"""A sequential canary judge: promote, hold or roll back a candidate version, window by window.

A deployment sends a share of the traffic (5 %, 25 %, 50 %, 100 %) to the candidate version for
``step_windows`` windows per step. Every window, ``CanaryJudge.update`` gets one ``ArmWindow``
per arm (counts, not rates: events, invalid events, null outputs, labelled events and errors
among them, and the window's latency p95) and returns a ``Verdict``: "rollback" as soon as a
harm test rejects "the candidate is no worse than the baseline plus the metric's tolerance";
"promote" once the step has run ``step_windows`` windows with enough data and no harm test has
rejected; "hold" while watching; "wait" until the candidate has ``min_events`` events (and
``min_labelled`` labelled ones, which the error rate needs).

The judge looks after every window, so a fixed-sample test would be peeked at ten times per step
and its false-rollback rate would grow with every look. Every test is always valid instead: its
p-value may be read after every window and the chance that it *ever* falls below alpha under
the null stays at most alpha (Ville's inequality on a test martingale):

- rates (``quality.error_rate``, ``output.null_rate``, ``traffic.invalid_rate``): a one-sided
  mixture SPRT (mSPRT, Johari et al. 2017) on the difference of proportions, counts pooled over
  the step's windows, Agresti-Caffo adjusted (one success and one failure added to each arm, so
  a rate of 0 never gives a variance of 0), mixing over harms with a half-normal of scale
  ``rate_mixture_sd``;
- latency (``latency.p95``): the per-window log ratio log(candidate p95 / baseline p95), whose
  spread nobody knows in advance, goes into a sequential t-test: the Bayes factor of a normal
  prior on the standardised harm (sd ``latency_mixture_sd``) with the scale-invariant prior on
  sigma, which is a test martingale under the null (group invariance; Perez-Ortiz et al. 2022).
  It needs two windows to say anything and, with few windows, at least ~5 to reject at 0.0025.
  Where the spread is known from the baseline's windows before the canary
  (``latency_spread``, put into ``CanaryConfig.latency_spread``), the log ratios go into the
  same one-sided mSPRT as the rates instead, each window weighted by its events, and one window
  can suffice. Latency traffic swings common to both arms inflate that spread: conservative.

Each test's null is composite ("no worse than tolerance"); a candidate better than the boundary
only makes each statistic smaller, so a test valid at the boundary is valid for all of it. The
rate tests and the known-spread latency test are valid up to the normal approximation of pooled
counts and a plug-in variance (the t-test needs neither). Alpha is split equally over the four
metrics (Bonferroni). A rollback stays for the rest of the step; windows after the step's last
keep being judged (promote, unless a harm test rejects later). The defaults (``CanaryConfig``):
alpha 0.01, 100 candidate events and 100 labelled ones, 10 windows a step; the candidate may be
at most 1 point worse in error rate, 0.5 point in null and invalid rate, and 10 % slower at p95.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> def arm(events: int, error_rate: float, null_rate: float, p95: float) -> ArmWindow:
...     errors, nulls = rng.binomial(events, error_rate), rng.binomial(events, null_rate)
...     return ArmWindow(events, 0, nulls, events, errors, p95 * rng.lognormal(0.0, 0.05))
>>> judge = CanaryJudge(CanaryConfig(step_windows=5))
>>> [judge.update(arm(750, 0.1, 0.01, 80.0), arm(250, 0.1, 0.01, 80.0)).decision
...  for _ in range(5)]
['hold', 'hold', 'hold', 'hold', 'promote']
>>> judge.reset()
>>> [judge.update(arm(750, 0.1, 0.01, 80.0), arm(250, 0.2, 0.01, 80.0)).decision
...  for _ in range(2)]
['hold', 'rollback']
>>> print(judge.verdict.reason)  # doctest: +NORMALIZE_WHITESPACE
quality.error_rate is worse than tolerated: candidate 0.200 vs baseline 0.099
(+10.1 points, tolerance 1.0 point); always-valid p 8.6e-05 <= 0.0025
>>> judge = CanaryJudge(CanaryConfig())
>>> print(judge.update(arm(950, 0.1, 0.01, 80.0), arm(50, 0.1, 0.01, 80.0)).reason)
waiting for data: the candidate has 50 of 100 events and 50 of 100 labelled events
>>> CanaryConfig(alpha=1.5)
Traceback (most recent call last):
...
ValueError: alpha must be in (0, 1), the overall false-rollback budget of a step; got 1.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
LATENCY_MIN_WINDOWS = 2  # a t-test needs two windows to estimate the spread
LATENCY_LOG_MIXTURE_SD = 0.2  # with a known spread: harms of ~20 % beyond the tolerance


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
class CanaryConfig:
    """What the judge tolerates, and how much evidence it needs.

    Tolerances: error, null and invalid rates in absolute points (0.01 = 1 point), latency p95
    relative (0.10 = 10 % slower). The mixture scales say which harms beyond the tolerance the
    tests are most sensitive to: a few points for rates, a standardised shift of about one to
    three per-window spreads for latency. ``latency_spread``: the sd of a window's log p95
    times the square root of its events, measured on the baseline before the canary
    (``latency_spread``); None when unknown.
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

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(
                "alpha must be in (0, 1), the overall false-rollback budget of a step; "
                f"got {self.alpha}"
            )
        for name in ("min_events", "min_labelled"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.step_windows < 1:
            raise ValueError(f"step_windows must be >= 1; got {self.step_windows}")
        for name in (
            "error_rate_tolerance",
            "null_rate_tolerance",
            "invalid_rate_tolerance",
            "latency_tolerance",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(
                    f"{name} must be >= 0 (how much worse the candidate may be); got {value}"
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
        """Each metric's share of ``alpha`` (Bonferroni over ``METRICS``)."""
        return self.alpha / len(METRICS)

    def tolerance(self, metric: str) -> float:
        return {
            ERROR_RATE: self.error_rate_tolerance,
            NULL_RATE: self.null_rate_tolerance,
            INVALID_RATE: self.invalid_rate_tolerance,
            LATENCY: self.latency_tolerance,
        }[metric]


@dataclass(frozen=True)
class MetricEvidence:
    """One metric's harm test so far. A *small* ``p_value`` means harm.

    ``effect`` is candidate minus baseline for rates, candidate / baseline - 1 for latency (the
    geometric mean of the per-window p95 ratios), in the units of ``tolerance``. ``p_value`` is
    the always-valid p-value of "candidate no worse than baseline + tolerance", the smallest
    over the step's windows since the metric had ``needed`` samples (candidate events, labelled
    candidate events, or windows with both arms' p95).
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

    @property
    def ready(self) -> bool:
        return self.samples >= self.needed

    @property
    def harmful(self) -> bool:
        return self.ready and self.p_value <= self.alpha

    def describe(self) -> str:
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


def rate_harm_log_evidence(
    candidate: tuple[int, int], baseline: tuple[int, int], tolerance: float, scale: float
) -> float:
    """log mSPRT evidence that the candidate's rate exceeds the baseline's by > ``tolerance``.

    Each arm is (count, total) pooled over the step; Agresti-Caffo adjusted.
    """
    (x_c, n_c), (x_b, n_b) = candidate, baseline
    p_c, p_b = (x_c + 1) / (n_c + 2), (x_b + 1) / (n_b + 2)
    variance = p_c * (1 - p_c) / (n_c + 2) + p_b * (1 - p_b) / (n_b + 2)
    return _log_one_sided_mixture(p_c - p_b - tolerance, variance, scale)


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
        # latency: paired windows, sums of log p95 per arm, and of the excess log ratio
        self._latency_windows = 0
        self._log_p95 = [0.0, 0.0]
        self._excess_sum = 0.0
        self._excess_sq_sum = 0.0
        # with a known spread: information (1 / variance) and information-weighted excess
        self._information = 0.0
        self._weighted_excess = 0.0
        self._min_p = dict.fromkeys(METRICS, 1.0)
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

    def update(self, baseline: ArmWindow, candidate: ArmWindow) -> Verdict:
        self._windows += 1
        for pooled, arm in ((self._baseline, baseline), (self._candidate, candidate)):
            counts = (arm.events, arm.invalid, arm.nulls, arm.labelled, arm.errors)
            for i, count in enumerate(counts):
                pooled[i] += count
        if baseline.latency_p95 is not None and candidate.latency_p95 is not None:
            log_b, log_c = math.log(baseline.latency_p95), math.log(candidate.latency_p95)
            excess = log_c - log_b - math.log1p(self.config.latency_tolerance)
            self._latency_windows += 1
            self._log_p95[0] += log_b
            self._log_p95[1] += log_c
            self._excess_sum += excess
            self._excess_sq_sum += excess**2
            if self.config.latency_spread is not None:
                variance = self.config.latency_spread**2 * (
                    1 / baseline.events + 1 / candidate.events
                )
                self._information += 1 / variance
                self._weighted_excess += excess / variance
        evidence = {metric: self._evidence(metric) for metric in METRICS}
        self._verdict = self._decide(evidence)
        return self._verdict

    def _evidence(self, metric: str) -> MetricEvidence:
        cfg = self.config
        tolerance = cfg.tolerance(metric)
        if metric == LATENCY:
            n = self._latency_windows
            if cfg.latency_spread is None:
                log_e = t_harm_log_evidence(
                    n, self._excess_sum, self._excess_sq_sum, cfg.latency_mixture_sd
                )
                needed = LATENCY_MIN_WINDOWS
            else:
                log_e = (
                    _log_one_sided_mixture(
                        self._weighted_excess / self._information,
                        1 / self._information,
                        LATENCY_LOG_MIXTURE_SD,
                    )
                    if n
                    else 0.0
                )
                needed = 1
            baseline = math.exp(self._log_p95[0] / n) if n else None
            candidate = math.exp(self._log_p95[1] / n) if n else None
            effect = math.exp((self._log_p95[1] - self._log_p95[0]) / n) - 1 if n else None
        else:
            count, total = {ERROR_RATE: (4, 3), NULL_RATE: (2, 0), INVALID_RATE: (1, 0)}[metric]
            c = (self._candidate[count], self._candidate[total])
            b = (self._baseline[count], self._baseline[total])
            log_e = rate_harm_log_evidence(c, b, tolerance, cfg.rate_mixture_sd)
            candidate = c[0] / c[1] if c[1] else None
            baseline = b[0] / b[1] if b[1] else None
            effect = None if candidate is None or baseline is None else candidate - baseline
            n, needed = c[1], cfg.min_labelled if metric == ERROR_RATE else cfg.min_events
        if n >= needed:
            # Ville: the running maximum of the evidence, read every window, stays valid
            self._min_p[metric] = min(self._min_p[metric], math.exp(-log_e))
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
        return Verdict(
            "promote",
            evidence,
            f"{self._windows} of {cfg.step_windows} windows, {events:,} candidate events "
            f"({labelled:,} labelled): no metric worse than tolerated at alpha {cfg.alpha:g}",
        )

    def _waiting(self, events: int, labelled: int) -> str:
        cfg = self.config
        return (
            f"waiting for data: the candidate has {events:,} of {cfg.min_events:,} events "
            f"and {labelled:,} of {cfg.min_labelled:,} labelled events"
        )

    def __repr__(self) -> str:
        return f"CanaryJudge({self.config!r})"
