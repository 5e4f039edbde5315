"""A segment slice runs the drift tests its decision rests on (``slice_drift_tests``): KS or
chi-square and the missing rate, while the whole window, versions and shadow run every
configured test; ``all`` runs every one on slices too. The decisions are the same either
way: the descriptive tests never decide."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from faust.types import TP

from detectors.drift.window import DriftConfig
from detectors.profile import ProfileConfig
from streams.drift import DriftAnalyzer
from streams.references import ReferenceBook, ReferencePolicy
from streams.window_rows import WindowResult, window_rows
from streams.windowing import Message, WindowConfig, WindowManager

START = 1_700_000_040


def events(start: int, n: int, shift: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    return [
        {"model": "m", "ts": start + 1.0, "version": "1", "prediction": float(x > 0),
         "features": {"x": float(x), "c": "ab"[i // 2 % 2]},
         "segment": {"channel": "mobile" if i % 2 else "web"}}
        for i, x in enumerate(rng.normal(shift, 1.0, n))
    ]  # fmt: skip


def run(decision_only: bool) -> list[WindowResult]:
    rng = np.random.default_rng(3)
    manager = WindowManager(
        WindowConfig(
            window_seconds=60, allowed_lateness_s=1.0, idle_close_s=10.0,
            profile=ProfileConfig(), slice_profile=ProfileConfig(256, 50),
        )
    )  # fmt: skip
    drift = DriftAnalyzer(
        ReferenceBook(ReferencePolicy("warmup", 1, 50)),
        DriftConfig(),
        slices_decision_only=decision_only,
    )
    results = []
    for i, shift in enumerate((0.0, 1.0)):
        start = START + 60 * i
        manager.add([Message(TP("p", 0), i, start, events(start, 400, shift, rng))], now=start)
        for window in manager.close_due(now=start + 3600):
            results.append(window_rows(window, drift))
    return results


@pytest.mark.parametrize("decision_only", [True, False])
def test_slices_run_the_decision_tests_unless_told_all(decision_only: bool) -> None:
    _, tested = run(decision_only)
    by_cut: dict[str, set[tuple[str, str]]] = {}
    for row in tested.drift_rows:
        by_cut.setdefault(row.segment, set()).add((row.feature, row.test))
    every = {("x", t) for t in ("ks", "wasserstein", "psi", "jensen_shannon", "missing_rate")}
    every |= {("c", t) for t in ("chi_square", "psi", "jensen_shannon", "total_variation")}
    every.add(("c", "missing_rate"))
    assert every <= by_cut[""]
    decision = {("x", "ks"), ("x", "missing_rate"), ("c", "chi_square"), ("c", "missing_rate")}
    for cut in ("channel=mobile", "channel=web"):
        features = {r for r in by_cut[cut] if r[0] in ("x", "c")}  # (the output's aside)
        assert features == (decision if decision_only else every), cut
    # the same decisions either way: the slices drifted (x moved by a standard deviation)
    drifted = {p.segment: p.value for p in tested.points if p.metric == "drift.share_drifted"}
    assert drifted == {"": 0.5, "channel=mobile": 0.5, "channel=web": 0.5}
