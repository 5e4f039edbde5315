"""`make bench-canary`: the sequential canary judge against a Kayenta-style judge, simulated.

Each trial is one step of a canary: ``--windows`` windows of 1,000 events, a share of them
(5 %, 25 %, 50 %) served by the candidate. Per event: a null output (baseline 1 %), an invalid
event (0.5 %), a label for a share of the scorable events (``--labelled-share``, default all)
and a misclassification (baseline 10 %), and a lognormal latency (median 40 ms, sigma 0.5); each
arm's window p95 is computed from its own events. Candidates: as good as the baseline; 2, 5 and
10 points less accurate; 30 % slower (every latency x1.3, so p95 +30 %); broken outputs (null
rate +20 points). Against tolerances of 1 point (error rate), 0.5 point (null and invalid
rates) and 10 % (p95), every one of these but the first is bad. Two more good candidates,
worse than the baseline but within tolerance (0.5 point less accurate; p95 +5 %), show which
judge rolls back what its tolerances allow; they are reported apart from the comparison.

All judges see the same simulated windows. ``detectors.canary.CanaryJudge`` uses its defaults
(alpha 0.01 per step, 100 candidate events and labels before any verdict): "sequential" knows
nothing more; "sequential+h" also gets the latency spread of the baseline's 20 windows before
the canary (``detectors.canary.latency_spread``), so that its latency test needs no windows to
learn the spread. The Kayenta-style judge (``kayenta_verdicts``) follows Kayenta's classic ACA
judge: every window, per metric, a Mann-Whitney U test of the candidate's per-window values
against the baseline's over the windows seen so far, at Kayenta's 98 % confidence (one-sided
p < 0.01 in the harmful direction), a metric failing only when its mean also exceeds the same
tolerance; the score is the share of the four metrics that pass, and the step rolls back as
soon as it falls below 80 % (one failing metric of four scores 75 %: as if every metric were
critical) and promotes at the end of the step;
"kayenta@0.0025" is the same at the sequential judge's per-metric alpha.

The sequential judge promotes only through its non-inferiority gate (a harm of 3 points of
error, null or invalid rate or 20 % of p95 ruled out at promote_alpha 0.05); a step it cannot
yet show non-inferior is left undecided (held past the step's end, re-checked in later windows
the bench does not simulate): not a false verdict, but printed, and counted as the whole step in
the windows to a verdict.

Prints, per candidate, share and judge: how often the step was promoted, rolled back or left
undecided, the false-verdict rate (rollbacks of the good candidate, promotions of bad ones), and
the median windows to a verdict; then the targets, met or not, with the arithmetic where a
target cannot be met with the data a step has. Seeded: the same arguments print the same table.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from detectors.canary import ArmWindow, CanaryConfig, CanaryJudge, latency_spread

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

EVENTS_PER_WINDOW = 1000
SHARES = (0.05, 0.25, 0.50)
BASE_ERROR, BASE_NULL, BASE_INVALID = 0.10, 0.01, 0.005
LATENCY_MEDIAN_MS, LATENCY_SIGMA = 40.0, 0.5
KAYENTA_ALPHA = 0.01  # one side of Kayenta's two-sided 98 % confidence interval
KAYENTA_PASS_SCORE = 0.8
HISTORY_WINDOWS = 20  # the baseline's windows before the canary, all traffic on it


def history_spreads(rng: np.random.Generator, trials: int) -> FloatArray:
    """Per trial, ``latency_spread`` of the baseline's windows before the canary."""
    latency = rng.lognormal(
        math.log(LATENCY_MEDIAN_MS), LATENCY_SIGMA, (trials, HISTORY_WINDOWS, EVENTS_PER_WINDOW)
    )
    p95 = np.percentile(latency, 95, axis=-1)
    events = [EVENTS_PER_WINDOW] * HISTORY_WINDOWS
    return np.array([latency_spread(row.tolist(), events) for row in p95])


@dataclass(frozen=True)
class Candidate:
    name: str
    error_points: float = 0.0
    latency_factor: float = 1.0
    null_points: float = 0.0

    tolerated: bool = False  # worse than the baseline, but within the judge's tolerances

    @property
    def good(self) -> bool:
        same = self.error_points == 0 and self.latency_factor == 1 and self.null_points == 0
        return same or self.tolerated


CANDIDATES = (
    Candidate("as good"),
    Candidate("2 points worse", error_points=0.02),
    Candidate("5 points worse", error_points=0.05),
    Candidate("10 points worse", error_points=0.10),
    Candidate("p95 +30 %", latency_factor=1.3),
    Candidate("nulls +20 points", null_points=0.20),
    # not among the brief's candidates: good ones a little worse than the baseline, within the
    # tolerances, which a judge testing "candidate worse than baseline" would roll back
    Candidate("0.5 point worse", error_points=0.005, tolerated=True),
    Candidate("p95 +5 %", latency_factor=1.05, tolerated=True),
)


@dataclass(frozen=True)
class Arm:
    """One arm's windows over all trials: each array has shape (trials, windows)."""

    events: IntArray
    invalid: IntArray
    nulls: IntArray
    labelled: IntArray
    errors: IntArray
    p95: FloatArray

    def window(self, trial: int, w: int) -> ArmWindow:
        return ArmWindow(
            int(self.events[trial, w]),
            int(self.invalid[trial, w]),
            int(self.nulls[trial, w]),
            int(self.labelled[trial, w]),
            int(self.errors[trial, w]),
            float(self.p95[trial, w]),
        )

    def values(self) -> dict[str, FloatArray]:
        """The per-window metric series Kayenta compares (NaN: no labels in the window)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            error_rate = np.where(self.labelled > 0, self.errors / self.labelled, np.nan)
        return {
            "quality.error_rate": error_rate,
            "output.null_rate": self.nulls / self.events,
            "traffic.invalid_rate": self.invalid / self.events,
            "latency.p95": self.p95,
        }


def simulate_arm(
    rng: np.random.Generator,
    shape: tuple[int, int],
    events: int,
    candidate: Candidate,
    labelled_share: float,
) -> Arm:
    null_rate = BASE_NULL + candidate.null_points
    nulls = rng.binomial(events, null_rate, shape)
    labelled = rng.binomial(events - nulls, labelled_share)  # a null output cannot be scored
    errors = rng.binomial(labelled, BASE_ERROR + candidate.error_points)
    latency = rng.lognormal(math.log(LATENCY_MEDIAN_MS), LATENCY_SIGMA, (*shape, events))
    p95 = np.percentile(latency * candidate.latency_factor, 95, axis=-1)
    return Arm(
        np.full(shape, events, dtype=np.int64),
        rng.binomial(events, BASE_INVALID, shape),
        nulls,
        labelled,
        errors,
        p95,
    )


@dataclass(frozen=True)
class Outcome:
    """Per trial: the final decision and the window (1-based) it was reached, 0 if none."""

    decision: npt.NDArray[np.str_]
    windows: IntArray


def sequential_verdicts(
    baseline: Arm, candidate: Arm, config: CanaryConfig, spreads: FloatArray | None = None
) -> Outcome:
    """``spreads``: per trial, the baseline's latency spread before the canary, if known."""
    trials, windows = baseline.events.shape
    decisions, at = [], np.zeros(trials, dtype=np.int64)
    for t in range(trials):
        if spreads is not None:
            config = replace(config, latency_spread=float(spreads[t]))
        judge = CanaryJudge(config)
        decision = "wait"
        for w in range(windows):
            decision = judge.update(baseline.window(t, w), candidate.window(t, w)).decision
            if decision in ("rollback", "promote"):
                at[t] = w + 1
                break
        decisions.append(decision)
    return Outcome(np.array(decisions), at)


def kayenta_verdicts(
    baseline: Arm, candidate: Arm, config: CanaryConfig, alpha: float = KAYENTA_ALPHA
) -> Outcome:
    """Kayenta's classic judge, re-run on the windows so far after every window.

    A metric fails when the one-sided Mann-Whitney p-value is below ``alpha`` and its mean
    is worse than the baseline's by more than the tolerance (Kayenta's effect-size check).
    """
    trials, windows = baseline.events.shape
    base, cand = baseline.values(), candidate.values()
    decisions = np.full(trials, "promote", dtype="<U8")
    at = np.full(trials, windows, dtype=np.int64)
    open_ = np.ones(trials, dtype=bool)
    for w in range(1, windows + 1):
        failing = np.zeros(trials, dtype=np.int64)
        for metric, b_all in base.items():
            b, c = b_all[:, :w], cand[metric][:, :w]
            tolerance = config.tolerance(metric)
            with np.errstate(invalid="ignore", divide="ignore"):
                p = stats.mannwhitneyu(
                    c, b, alternative="greater", axis=1, method="asymptotic", nan_policy="omit"
                ).pvalue
                b_mean, c_mean = np.nanmean(b, axis=1), np.nanmean(c, axis=1)
            effect = c_mean / b_mean - 1 if metric == "latency.p95" else c_mean - b_mean
            failing += (np.nan_to_num(p, nan=1.0) < alpha) & (effect > tolerance)
        score = 1.0 - failing / len(base)
        rolled = open_ & (score < KAYENTA_PASS_SCORE)
        decisions[rolled], at[rolled] = "rollback", w
        open_ &= ~rolled
    return Outcome(decisions, at)


def summarise(outcome: Outcome, good: bool, windows: int) -> dict[str, Any]:
    """A step held past its end (undecided) counts as ``windows`` in the median to a verdict."""
    n = len(outcome.decision)
    promoted = float(np.mean(outcome.decision == "promote"))
    rolled = float(np.mean(outcome.decision == "rollback"))
    decided = np.where(outcome.windows > 0, outcome.windows, windows)
    return {
        "promoted": promoted,
        "rolled_back": rolled,
        "undecided": float(np.mean(~np.isin(outcome.decision, ("promote", "rollback")))),
        "false_verdicts": rolled if good else promoted,
        "median_windows": float(np.median(decided)) if decided.size else None,
        "median_windows_to_rollback": (
            float(np.median(outcome.windows[outcome.decision == "rollback"])) if rolled else None
        ),
        "trials": n,
    }


def fixed_horizon_labels(effect: float, tolerance: float, share: float, alpha: float) -> float:
    """Candidate labels a one-shot one-sided z-test needs for 95 % power (a lower bound)."""
    p_b, p_c = BASE_ERROR, BASE_ERROR + effect
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(0.95)
    # candidate variance + baseline variance scaled by n_c / n_b = share / (1 - share)
    variance = p_c * (1 - p_c) + p_b * (1 - p_b) * share / (1 - share)
    return float(z**2 * variance / (effect - tolerance) ** 2)


def limits(config: CanaryConfig, labelled_share: float) -> list[str]:
    """What a step can detect at all: arithmetic, not simulation."""
    out = ["what a step of this traffic can detect (sequential judge):"]
    for points in (0.02, 0.05, 0.10):
        cells = []
        for share in SHARES:
            per_window = EVENTS_PER_WINDOW * share * (1 - BASE_NULL) * labelled_share
            needed = fixed_horizon_labels(
                points, config.error_rate_tolerance, share, config.metric_alpha
            )
            cells.append(f"{needed / per_window:.1f} at {share:.0%}")
        out.append(
            f"  {100 * points:.0f} points worse: windows of labels a one-shot test at alpha "
            f"{config.metric_alpha:g} needs for 95 % power: {', '.join(cells)}"
        )
    # the promotion gate's one look at the step's end, for an as-good candidate (normal approx.)
    z = float(stats.norm.ppf(1 - config.step_end_alpha))
    cells, needs = [], []
    for share in SHARES:
        per_c = EVENTS_PER_WINDOW * share * (1 - BASE_NULL) * labelled_share
        per_b = per_c * (1 - share) / share
        unit = BASE_ERROR * (1 - BASE_ERROR) * (1 / per_c + 1 / per_b)  # variance, one window
        sd = math.sqrt(unit / config.step_windows)
        cells.append(f"{stats.norm.cdf(config.error_rate_margin / sd - z):.0%} at {share:.0%}")
        # windows for an 80 % chance: margin / sd(w) - z = z_0.8
        needs.append(f"{unit * ((z + stats.norm.ppf(0.8)) / config.error_rate_margin) ** 2:.1f}")
    out.append(
        f"  promotion gate, error rate: the chance an as-good candidate rules out the "
        f"{100 * config.error_rate_margin:g}-point margin at the step's end (one look at "
        f"{config.step_end_alpha:g}): {', '.join(cells)}; windows for an 80 % chance: "
        f"{', '.join(needs)}"
    )
    scale, threshold = config.latency_mixture_sd, math.log(1 / config.metric_alpha)
    # the t-test's largest possible evidence after n windows is (1 + n tau^2)^((n - 1) / 2)
    first = next(n for n in range(2, 1000) if (n - 1) / 2 * math.log1p(n * scale**2) >= threshold)
    out.append(
        f"  latency: with the spread of log p95 ratios unknown, the sequential t-test cannot "
        f"reject before window {first} however slow the candidate (its evidence is at most "
        f"(1 + n * {scale:g}^2)^((n - 1) / 2) after n windows, against 1/{config.metric_alpha:g})"
    )
    return out


def fmt(value: float | None, pattern: str) -> str:
    width = int(pattern.split(".")[0] or 0)
    return "-".rjust(width) if value is None else format(value, pattern)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=400, help="steps per candidate and share")
    parser.add_argument("--quick", action="store_true", help="40 trials: a fast check")
    parser.add_argument("--windows", type=int, default=10, help="windows per step")
    parser.add_argument("--labelled-share", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    trials = 40 if args.quick else args.trials
    config = CanaryConfig(step_windows=args.windows)

    print(
        f"{trials} trials per row; steps of {args.windows} windows x {EVENTS_PER_WINDOW:,} "
        f"events; labelled share {args.labelled_share:g}; seed {args.seed}; alpha "
        f"{config.alpha:g} ({config.metric_alpha:g} per metric)"
    )
    judges: dict[str, Callable[[Arm, Arm, CanaryConfig], Outcome]] = {
        "sequential": sequential_verdicts,
        "sequential+h": sequential_verdicts,  # + the latency spread of the baseline's history
        "kayenta": kayenta_verdicts,
        # the same per-metric alpha as the sequential judge's, but no care for the peeking
        "kayenta@" + format(config.metric_alpha, "g"): partial(
            kayenta_verdicts, alpha=config.metric_alpha
        ),
    }
    header = (
        f"{'candidate':17} {'share':>5} {'judge':14} {'promote':>8} {'rollback':>8} "
        f"{'undecided':>9} {'false':>7} {'windows':>7}"
    )
    print(header)
    rows: list[dict[str, Any]] = []
    for ci, candidate in enumerate(CANDIDATES):
        for si, share in enumerate(SHARES):
            rng = np.random.default_rng([args.seed, ci, si])
            n_c = round(EVENTS_PER_WINDOW * share)
            shape = (trials, args.windows)
            baseline = simulate_arm(
                rng, shape, EVENTS_PER_WINDOW - n_c, Candidate("baseline"), args.labelled_share
            )
            cand = simulate_arm(rng, shape, n_c, candidate, args.labelled_share)
            spreads = history_spreads(rng, trials)
            judges["sequential+h"] = partial(sequential_verdicts, spreads=spreads)
            for judge, run in judges.items():
                row = {
                    "candidate": candidate.name,
                    "good": candidate.good,
                    "tolerated": candidate.tolerated,
                    "share": share,
                    "judge": judge,
                    **summarise(run(baseline, cand, config), candidate.good, args.windows),
                }
                rows.append(row)
                print(
                    f"{candidate.name:17} {share:5.0%} {judge:14} {row['promoted']:8.1%} "
                    f"{row['rolled_back']:8.1%} {row['undecided']:9.1%} "
                    f"{row['false_verdicts']:7.1%} {fmt(row['median_windows'], '7.1f')}",
                    flush=True,
                )
    print()
    for line in targets(rows, config, args.labelled_share, trials):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def _row(rows: list[dict[str, Any]], candidate: str, share: float, judge: str) -> dict[str, Any]:
    return next(
        r
        for r in rows
        if r["candidate"] == candidate and r["share"] == share and r["judge"] == judge
    )


def targets(
    rows: list[dict[str, Any]], config: CanaryConfig, labelled_share: float, trials: int
) -> list[str]:
    out = ["targets (sequential judge):"]
    for tolerated in (False, True):
        good = [
            r
            for r in rows
            if r["good"] and r["tolerated"] == tolerated and r["judge"] == "sequential"
        ]
        worst = max(r["false_verdicts"] for r in good)
        ok = "met" if worst <= 0.01 else "NOT met"
        which = "candidates within tolerance" if tolerated else "the as-good candidate"
        out.append(
            f"  false rollbacks <= 1 % at every share, {which}: {ok} (worst {worst:.1%} of "
            f"{trials}; the tests bound it at alpha {config.alpha:g})"
        )

    five = _row(rows, "5 points worse", 0.05, "sequential")["promoted"]
    ok = "met" if five <= 0.05 else "NOT met"
    out.append(
        f"  5 points worse at 5 % promoted <= 5 %: {ok} ({five:.1%}; the non-inferiority gate "
        f"bounds it at promote_alpha {config.promote_alpha:g}: 5 points is past the "
        f"{100 * config.error_rate_margin:g}-point margin)"
    )
    held = []
    for share in SHARES:
        cells = [
            f"{_row(rows, name, share, 'sequential')['undecided']:.0%}"
            for name in ("as good", "0.5 point worse", "p95 +5 %")
        ]
        held.append(f"{share:.0%}: {' / '.join(cells)}")
    out.append(
        "  good candidates held past the step, not yet shown non-inferior (undecided, not a "
        f"false verdict; as good / 0.5 point worse / p95 +5 %): {'; '.join(held)}"
    )
    medians = {
        share: _row(rows, "10 points worse", share, "sequential")["median_windows_to_rollback"]
        for share in (0.25, 0.50)
    }
    fast = [f"{share:.0%}: {fmt(m, '.1f')}" for share, m in medians.items()]
    ok = "met" if all(m is not None and m <= 3 for m in medians.values()) else "NOT met"
    ten_5 = _row(rows, "10 points worse", 0.05, "sequential")["median_windows_to_rollback"]
    out.append(
        f"  10 points worse rolled back within 3 windows (median) at 25 % and 50 %: {ok} "
        f"({', '.join(fast)}; at 5 %: {fmt(ten_5, '.1f')}, where the first verdict "
        f"waits for {config.min_events} candidate events, window 2)"
    )

    # the comparison is over the brief's candidates; the tolerated ones get their own line
    def judged(judge: str) -> dict[str, float]:
        mine = [r for r in rows if r["judge"] == judge]

        def mean(key: str, keep: Callable[[dict[str, Any]], bool]) -> float:
            return float(np.mean([r[key] for r in mine if keep(r)]))

        return {
            "false rollbacks": mean("false_verdicts", lambda r: r["good"] and not r["tolerated"]),
            "false promotions": mean("false_verdicts", lambda r: not r["good"]),
            "false verdicts": mean("false_verdicts", lambda r: not r["tolerated"]),
            # a bad candidate's verdict should come early; a promotion counts as the whole step
            "windows": mean("median_windows", lambda r: not r["good"]),
            "tolerated rollbacks": mean("false_verdicts", lambda r: r["tolerated"]),
            "held good": mean("undecided", lambda r: r["good"] and not r["tolerated"]),
            "held bad": mean("undecided", lambda r: not r["good"]),
        }

    judges = list(dict.fromkeys(r["judge"] for r in rows))
    summary = {judge: judged(judge) for judge in judges}
    keys = ("false rollbacks", "false promotions", "false verdicts", "windows")
    out.append(
        "  comparison over the brief's candidates (means over the rows; windows: median windows "
        "to the verdict on a bad candidate, a promotion or a hold past the step counting as "
        "the whole step; ratio: against kayenta in this run; held: undecided at the step's "
        "end, good and bad candidates):"
    )
    out.append(
        f"    {'judge':14}"
        + "".join(f" {k:>17}" for k in keys)
        + f" {'tolerated rollbacks':>20} {'held good':>9} {'held bad':>9}"
    )
    base = summary["kayenta"]
    for judge, figures in summary.items():
        cells = [f"{figures[k]:6.1%}" if k != "windows" else f"{figures[k]:6.1f}" for k in keys]
        ratios = [f"({figures[k] / base[k]:.2f})" if base[k] else "(-)" for k in keys]
        out.append(
            f"    {judge:14}"
            + "".join(f" {c:>9} {r:>7}" for c, r in zip(cells, ratios, strict=True))
            + f" {figures['tolerated rollbacks']:20.1%}"
            + f" {figures['held good']:9.1%} {figures['held bad']:9.1%}"
        )
    for judge in ("sequential", "sequential+h"):
        ours, theirs = summary[judge], base
        better = (
            ours["false verdicts"] < theirs["false verdicts"]
            and ours["windows"] <= theirs["windows"]
        )
        out.append(
            f"  {judge}: fewer false verdicts than kayenta at the same time to verdict: "
            f"{'met' if better else 'NOT met'} (fewer false rollbacks: "
            f"{ours['false rollbacks'] < theirs['false rollbacks']}; fewer false promotions: "
            f"{ours['false promotions'] < theirs['false promotions']}; no slower: "
            f"{ours['windows'] <= theirs['windows']})"
        )
    return [*out, *limits(config, labelled_share)]


if __name__ == "__main__":
    main()
