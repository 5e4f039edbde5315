"""`make bench-promotion`: how often champion/challenger promotes a fair retraining.

The demo's world (``launch/demo.py``): version 1 learns fraud from 4,000 events before any
change; then, on the mobile channel only, fraud moves to small amounts (concept drift). Each
run draws ``--examples`` labelled events after the change, fine-tunes version 1 on the oldest
80 % as the retrainer does, and compares the two on the newest 20 % (``retrainer/evaluate``),
once with the full rule (tolerance *and* a paired test, p < ``--significance``) and once with
the tolerance alone. The challenger's true accuracy on the unchanged web channel is measured
on ``--fresh`` new events, so a veto can be told apart from sampling noise.

Prints, per rule, how many challengers were promoted, and the true web accuracy gap
(challenger minus champion) over the runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from launch.demo import Drift, draw_labels, fraud_events, training_examples
from retrainer.data import Example
from retrainer.evaluate import compare
from retrainer.train import TrainConfig, TrainedModel, predict_classes, train


def after_the_change(rng: np.random.Generator, n: int, start: float) -> list[Example]:
    events = fraud_events(rng, n, True, Drift())
    labels = draw_labels(rng, events, concept_drifted=True)
    return [
        Example(e["features"], int(y), e["segment"], start + i * 0.01)
        for i, (e, y) in enumerate(zip(events, labels, strict=True))
    ]


def accuracy(model: TrainedModel, rows: list[Example]) -> float:
    predicted = predict_classes(model, rows)
    return float(np.mean([p == str(e.label) for p, e in zip(predicted, rows, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=48)
    parser.add_argument("--examples", type=int, default=2000, help="labelled events per job")
    parser.add_argument("--fresh", type=int, default=30_000, help="events to score web on")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--significance", type=float, default=0.05)
    args = parser.parse_args()

    started = time.monotonic()
    champion = train(training_examples(np.random.default_rng(1), 4000), TrainConfig(epochs=15))
    fresh = after_the_change(np.random.default_rng(999), args.fresh, 1e6)
    web = [e for e in fresh if e.segment["channel"] == "web"]
    champion_web = accuracy(champion, web)
    promoted = {"tolerance and paired test": 0, "tolerance alone": 0}
    gaps = []
    for run in range(args.runs):
        rows = after_the_change(np.random.default_rng(100 + run), args.examples, 1000.0)
        cut = int(len(rows) * 0.8)
        challenger = train(rows[:cut], TrainConfig(), warm_start=champion)
        for rule, significance in (
            ("tolerance and paired test", args.significance),
            ("tolerance alone", 1.01),  # every p-value passes: the tolerance decides alone
        ):
            result = compare(
                champion,
                challenger,
                rows[cut:],
                tolerance=args.tolerance,
                significance=significance,
            )
            promoted[rule] += result.promote
        gaps.append(accuracy(challenger, web) - champion_web)
    print(
        f"{args.runs} retrainings on {args.examples:,} labelled events after concept drift on "
        f"channel=mobile; tolerance {args.tolerance:g}"
    )
    for rule, count in promoted.items():
        print(f"  {rule:<28} promoted {count:>3} of {args.runs}")
    print(
        f"  true web accuracy gap (challenger - champion, on {len(web):,} fresh web events): "
        f"mean {np.mean(gaps):+.3f}, min {min(gaps):+.3f}, max {max(gaps):+.3f} "
        f"(champion {champion_web:.3f})"
    )
    print(f"  ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
