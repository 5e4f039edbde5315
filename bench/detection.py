"""`make bench-detection`: how well drift is detected, through the real pipeline.

Streams with known change points (30 features: 24 numeric, 6 categorical; windows of 1,000
events) go through a real broker (Tansu) into a real worker process (Faust agent, window tests
against the warm-up reference, chDB store). For each case and seed the benchmark reads back which
windows raised a model-level drift flag (``drift.share_drifted > 0``, or
``drift.prediction_drifted`` for prediction drift) and reports: detection rate (flagged within
``--horizon`` windows of the change), delay in windows (0 = the first full window after the
change), false alarms per 1,000 windows before the change, and for stationary streams. River's
ADWIN, KSWIN and PageHinkley run on the same streams, per feature, in this process; a model-level
alarm is any feature's detector firing in the window. KSWIN re-runs a KS test on every update
(~0.3 ms), so it sees a 1-in-``--kswin-every`` subsample of each feature, and river runs on
the first ``--river-seeds`` seeds of each case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.pipeline import produce, run_worker_process
from detectors.streaming import StreamingDetector, StreamingSpec
from driftline import topics
from driftline.broker import EmbeddedBroker, ensure_topics

BASE_TS = 1_700_000_000
WINDOW_S = 10  # the worker's window (bench.pipeline.worker_main)
WARMUP = 5  # windows the warm-up reference is learned from (the worker's default)
N_NUMERIC, N_CATEGORICAL = 24, 6
CATEGORIES = ["a", "b", "c", "d", "e"]
BASE_P = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
SHIFTED_P = np.array([0.2, 0.25, 0.2, 0.2, 0.15])  # total variation 0.15
RIVER = ("adwin", "kswin", "page_hinkley")


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # what changes at the change window
    size: float = 0.0
    windows: int = 15  # including the warm-up
    change: int | None = 10  # window index of the change; None: stationary
    events_per_window: int = 1000
    seeds: int = 20


CASES = [
    Case("mean shift 0.25 sd", "mean", 0.25),
    Case("mean shift 0.5 sd", "mean", 0.5),
    Case("mean shift 1 sd", "mean", 1.0),
    Case("variance x1.5", "variance", 1.5),
    Case("categorical shift TV 0.15", "categorical"),
    Case("missing rate 2% -> 15%", "missing", 0.15),
    Case("prediction drift 0.5 sd", "prediction", 0.5),
    Case("stationary", "none", windows=55, change=None),
    Case(
        "mean shift 0.02 sd, 100k windows",
        "mean",
        0.02,
        windows=6,
        change=5,
        events_per_window=100_000,
        seeds=1,
    ),
]


def stream(case: Case, seed: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(window index, events) of one model's stream."""
    rng = np.random.default_rng(seed)
    model = f"{case.name}#{seed}"
    n = case.events_per_window
    for w in range(case.windows):
        changed = case.change is not None and w >= case.change
        numeric = rng.normal(0.0, 1.0, (n, N_NUMERIC))
        if changed and case.kind == "mean":
            numeric[:, 0] += case.size
        if changed and case.kind == "variance":
            numeric[:, 0] *= case.size
        missing = rng.random(n) < (case.size if changed and case.kind == "missing" else 0.02)
        p = SHIFTED_P if changed and case.kind == "categorical" else BASE_P
        cats = [rng.choice(CATEGORIES, n, p=p if j == 0 else BASE_P) for j in range(N_CATEGORICAL)]
        logit = numeric[:, :3].sum(axis=1) / 2 + (
            case.size if changed and case.kind == "prediction" else 0.0
        )
        prediction = 1 / (1 + np.exp(-logit))
        ts = BASE_TS + WINDOW_S * w + np.arange(n) * (WINDOW_S / n)
        events = []
        for i in range(n):
            features: dict[str, Any] = {f"n{j}": float(numeric[i, j]) for j in range(N_NUMERIC)}
            if missing[i]:
                features["n1"] = None
            features.update({f"c{j}": str(cats[j][i]) for j in range(N_CATEGORICAL)})
            events.append(
                {
                    "model": model,
                    "features": features,
                    "prediction": float(prediction[i]),
                    "ts": float(ts[i]),
                }
            )
        yield w, events


def closer(case: Case, seed: int) -> dict[str, Any]:
    """One event far enough ahead to close every window of the stream."""
    return {
        "model": f"{case.name}#{seed}",
        "features": {"n0": 0.0},
        "prediction": 0.5,
        "ts": float(BASE_TS + WINDOW_S * (case.windows + 3)),
    }


def river_alarms(
    windows: list[tuple[int, list[dict[str, Any]]]], kswin_every: int
) -> dict[str, set[int]]:
    """Windows in which each river detector fired on any numeric feature or the output."""
    fired: dict[str, set[int]] = {name: set() for name in RIVER}
    columns = [f"n{j}" for j in range(N_NUMERIC)]
    detectors = {
        (name, c): StreamingDetector(StreamingSpec.of(name))
        for name in RIVER
        for c in [*columns, "prediction"]
    }
    for w, events in windows:
        values = {
            c: np.array([np.nan if (v := e["features"].get(c)) is None else v for e in events])
            for c in columns
        }
        values["prediction"] = np.array([e["prediction"] for e in events])
        for (name, c), detector in detectors.items():
            data = values[c][::kswin_every] if name == "kswin" else values[c]
            if detector.update_many(data):
                fired[name].add(w)
    return fired


@dataclass
class Tally:
    detected: int = 0
    streams: int = 0
    delays: list[int] = field(default_factory=list)
    false_alarms: int = 0
    quiet_windows: int = 0

    def add(self, case: Case, alarms: set[int], horizon: int) -> None:
        self.streams += 1
        first_tested = WARMUP
        end = case.change if case.change is not None else case.windows
        before = [w for w in range(first_tested, end)]
        self.quiet_windows += len(before)
        self.false_alarms += sum(1 for w in before if w in alarms)
        if case.change is not None:
            after = sorted(w for w in alarms if case.change <= w < case.change + horizon)
            if after:
                self.detected += 1
                self.delays.append(after[0] - case.change)

    def row(self, case: Case) -> dict[str, Any]:
        rate = self.detected / self.streams if case.change is not None and self.streams else None
        delays = self.delays
        return {
            "detection_rate": rate,
            "median_delay": float(np.median(delays)) if delays else None,
            "first_window_rate": (sum(1 for d in delays if d == 0) / self.streams)
            if case.change is not None and self.streams
            else None,
            "false_alarms_per_1000": 1000 * self.false_alarms / self.quiet_windows
            if self.quiet_windows
            else None,
            "quiet_windows": self.quiet_windows,
        }


def read_alarms(data_dir: Path) -> dict[str, dict[str, set[int]]]:
    """Per model: windows with drift.share_drifted > 0 and with drift.prediction_drifted."""
    from driftline.store import Store
    from driftline.store.embedded import EmbeddedBackend

    store = Store(EmbeddedBackend(data_dir / "clickhouse"))
    rows = store.backend.execute(
        "SELECT model, metric, toUInt32(window_start) FROM metrics FINAL "
        "WHERE metric IN ('drift.share_drifted', 'drift.prediction_drifted') AND value > 0"
    )
    store.close()
    out: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for model, metric, start in rows:
        out[str(model)][str(metric)].add((int(start) - BASE_TS) // WINDOW_S)
    return out


def fmt(value: Any, pattern: str) -> str:
    width = int("".join(ch for ch in pattern.split(".")[0] if ch.isdigit()) or 0)
    return "-".rjust(width) if value is None else format(value, pattern)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, help="seeds per case (default 20)")
    parser.add_argument("--horizon", type=int, default=3, help="windows after the change")
    parser.add_argument("--kswin-every", type=int, default=50)
    parser.add_argument("--river-seeds", type=int, default=5, help="seeds river runs on")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    cases = [
        Case(**{**c.__dict__, "seeds": min(c.seeds, args.seeds)}) if args.seeds else c
        for c in CASES
    ]

    started = time.monotonic()
    messages: list[tuple[bytes, bytes]] = []
    river: dict[tuple[str, int], dict[str, set[int]]] = {}
    expected = 0
    for case in cases:
        for seed in range(case.seeds):
            windows = list(stream(case, seed))
            key = f"{case.name}#{seed}".encode()
            for _, events in windows:
                expected += len(events)
                messages += [
                    (key, orjson.dumps(events[i : i + 500])) for i in range(0, len(events), 500)
                ]
            messages.append((key, orjson.dumps(closer(case, seed))))
            if seed < args.river_seeds and case.events_per_window <= 1000:
                river[(case.name, seed)] = river_alarms(windows, args.kswin_every)
    print(
        f"generated {expected:,} events; river ran in {time.monotonic() - started:.0f}s", flush=True
    )

    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        ensure_topics(broker.bootstrap, topics.topic_partitions(8, 8))
        asyncio.run(produce(broker.bootstrap, messages))
        del messages
        figures = run_worker_process(broker.bootstrap, expected, tmp, "embedded")
        alarms = read_alarms(Path(tmp))
    print(f"pipeline: {figures['events']:,} events at {figures['events_per_s']:,.0f}/s", flush=True)

    results = []
    print(
        f"{'case':34} {'detector':13} {'detected':>9} {'1st window':>10} {'delay':>6} "
        f"{'FA/1000':>8}"
    )
    for case in cases:
        metric = "drift.prediction_drifted" if case.kind == "prediction" else "drift.share_drifted"
        tallies: dict[str, Tally] = {"driftline": Tally(), **{name: Tally() for name in RIVER}}
        for seed in range(case.seeds):
            tallies["driftline"].add(case, alarms[f"{case.name}#{seed}"][metric], args.horizon)
            if (case.name, seed) in river:
                for name in RIVER:
                    tallies[name].add(case, river[(case.name, seed)][name], args.horizon)
        for name, tally in tallies.items():
            if not tally.streams:
                continue
            row = {"case": case.name, "detector": name, "seeds": tally.streams, **tally.row(case)}
            results.append(row)
            print(
                f"{case.name:34} {name:13} {fmt(row['detection_rate'], '9.0%')} "
                f"{fmt(row['first_window_rate'], '10.0%')} {fmt(row['median_delay'], '6.1f')} "
                f"{fmt(row['false_alarms_per_1000'], '8.1f')}",
                flush=True,
            )
    print(drift_cost())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def drift_cost(events: int = 10_000, repeats: int = 5) -> str:
    """The window tests' cost per feature at 10,000 events per window (all default tests)."""
    from detectors.columns import ModelSchema, build_batch
    from detectors.drift.window import ModelReference, compare_window
    from detectors.profile import ProfileConfig, WindowProfile

    case = CASES[1]
    reference_events = [
        e for _, es in stream(Case(**{**case.__dict__, "windows": 5}), 0) for e in es
    ]
    reference = ModelReference.from_rows(reference_events, "1")
    current = next(
        e
        for w, e in stream(Case(**{**case.__dict__, "events_per_window": events, "windows": 1}), 1)
    )
    profile = WindowProfile(0, WINDOW_S, ProfileConfig())
    profile.add(build_batch(current, np.zeros(len(current)), ModelSchema(features={})))
    timings = []
    for _ in range(repeats):
        t = time.perf_counter()
        compare_window(reference, profile)
        timings.append(time.perf_counter() - t)
    per_feature = float(np.median(timings)) / (N_NUMERIC + N_CATEGORICAL + 1) * 1000
    return (
        f"drift computation: {per_feature:.2f} ms per feature per window "
        f"({events:,} events, {N_NUMERIC} numeric + {N_CATEGORICAL} categorical + output)"
    )


if __name__ == "__main__":
    main()
