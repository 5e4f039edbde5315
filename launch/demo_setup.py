"""What ``driftline demo`` sets up on top of ``driftline up``: its settings and its alarm rule.

The demo's traffic is :mod:`launch.demo`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.store.alarms import AlarmStore

#: short windows so the demo shows something within a minute
DEMO_WINDOW_SECONDS = 10


def demo_settings(window_seconds: int | None) -> dict[str, Any]:
    """The demo's settings updates; ``window_seconds`` is the user's ``--window-seconds``."""
    updates: dict[str, Any] = {}
    if window_seconds is None:
        updates.update(window_seconds=DEMO_WINDOW_SECONDS, allowed_lateness_s=2.0)
    window = DEMO_WINDOW_SECONDS if window_seconds is None else window_seconds
    updates.update(
        idle_close_s=10.0,
        quality_interval_s=min(5.0, float(window)),
        retrain_default_policy="auto",  # the demo closes the loop without a human
        keep_events="all",  # its labels follow from the start: join them from the start
        # a challenger that is not promoted is retried while the alert fires, a minute on
        retrain_cooldown_s=60.0,
        # enough recent labels that the holdout judges every channel fairly
        retrain_min_examples=2000,
        # the demo's labels land within 5 windows: a window's labels are complete after 12,
        # and its estimated quality is checked against the measured (the estimation error)
        label_horizon_s=12.0 * window,
        # estimated quality from the fourth labelled window on (the demo's drift starts early)
        estimation_reference_windows=3,
        estimation_reference_pairs=1500,
    )
    return updates


def seed_demo_rules(alarms: AlarmStore) -> None:
    """The demo's closed loop: two windows of concept drift on the fraud model retrain it."""
    from alarms.rules import Comparison, Rule

    alarms.seed_rules(
        [
            Rule(
                "demo-concept-retrain",
                "ConceptDriftRetrain",
                "drift.concept",
                Comparison.GE,
                1.0,
                model="fraud",
                segment="",
                for_windows=2,
                keep_firing_for=3,
                severity="critical",
                actions=("notify", "retrain"),
                description="the fraud model's quality dropped: retrain it on recent labels",
                origin="demo",
            )
        ]
    )
