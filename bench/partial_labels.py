"""How often the quality-drop test flags a window while its labels are still landing.

The quality pass tests a window again each time it runs (every ``--pass-s`` seconds) once the
window has ``min_labels`` labels, so one window is looked at several times before its labels
are complete. This simulates windows of ``--events`` predictions whose labels land uniformly
6 to 9 windows late, tests each look with ``quality_drop_test`` as the worker does, and
counts the windows flagged at least once: on stationary data (the false-alarm rate) and after
a real rise in error (the power), for

* ``complete``: one test of the complete window (the rate a single test has);
* ``every look``: each look at the full alpha (the worker before ``partial_window_p_value``);
* ``spent``: each look at its share of alpha (``partial_window_p_value``, the worker now).

    python -m bench.partial_labels [--events 312] [--windows 20000]
"""

from __future__ import annotations

import argparse

import numpy as np

from detectors.quality import QualityStats, partial_window_p_value, quality_drop_test

ALPHA = 0.05
MIN_LABELS = 30
REFERENCE_LABELS = 1300  # five windows of the demo's loans model, labelled
BASE_ERROR = 0.2


def _stats(errors: np.ndarray) -> QualityStats:
    total = float(errors.sum())
    return QualityStats("classification", int(errors.size), total, total)


def flagged(
    rng: np.random.Generator, error: float, events: int, window_s: float, pass_s: float
) -> tuple[float, float, float]:
    """The share of one window's labels in when it is first flagged (NaN: never): by its
    complete test (1), at any look, at any spent look."""
    reference = _stats(rng.random(REFERENCE_LABELS) < BASE_ERROR)
    wrong = rng.random(events) < error
    due = rng.uniform(0, window_s, events) + rng.uniform(6, 9, events) * window_s
    order = np.argsort(due)
    due, wrong = due[order], wrong[order]
    never = float("nan")
    complete = 1.0 if quality_drop_test(reference, _stats(wrong)).is_drift(ALPHA) else never
    any_look = any_spent = never
    for look in np.arange(rng.uniform(0, pass_s), due[-1] + pass_s, pass_s):
        n = int(np.searchsorted(due, look))
        if n < MIN_LABELS:
            continue
        test = quality_drop_test(reference, _stats(wrong[:n]))
        assert test.p_value is not None
        share = n / events
        if np.isnan(any_look) and test.is_drift(ALPHA):
            any_look = share
        spent = partial_window_p_value(test.p_value, share, 1.0)
        if np.isnan(any_spent) and test.is_drift(ALPHA, p_value=spent):
            any_spent = share
    return complete, any_look, any_spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=312, help="predictions a window")
    parser.add_argument("--windows", type=int, default=20_000, help="windows simulated")
    parser.add_argument("--window-s", type=float, default=4.0)
    parser.add_argument("--pass-s", type=float, default=10.0, help="between quality passes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.events} events a window, labels 6-9 windows late, a pass every {args.pass_s} s")
    print("windows flagged (median share of their labels in when first flagged)")
    print(f"{'error rate':>10}  {'complete':>14}  {'every look':>14}  {'spent':>14}")
    for error in (BASE_ERROR, BASE_ERROR + 0.08, BASE_ERROR + 0.12, BASE_ERROR + 0.25):
        shares = np.array(
            [
                flagged(rng, error, args.events, args.window_s, args.pass_s)
                for _ in range(args.windows)
            ]
        )
        cells = []
        for column in shares.T:
            hit = column[~np.isnan(column)]
            median = f"({np.median(hit):.2f})" if hit.size else "(-)"
            cells.append(f"{hit.size / args.windows:>7.2%} {median:>6}")
        print(f"{error:>10.2f}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
