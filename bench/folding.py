"""`make bench-folding`: what folding one event into its window profile costs, per event, the
columnar path against the per-value path it replaced (issue 16), timed in the same run.

A window of 10,000 events, sent as Kafka messages of 500-event JSON arrays (what the SDK
sends; fewer at 100 features, where 500 are over the 1 MiB message limit), at 10, 50 and 100
features, four in five numeric (floats) and the rest text of four levels, a float prediction,
an ``id``, a ``ts`` and a latency, as the SDK's events carry. The model's schema is known (it
has sent events before), as it is in a running worker past a model's first batch.

  fold     ``build_batch`` + ``WindowProfile.add`` per 500 events, now (columnar) and before
           (``detectors/fold_reference.py``: per value and per column, with the concatenating
           sample of then; the same profile to the bit, tests/detectors/test_fold_reference.py)
  decode   ``decode_message`` of the window's messages (the msgspec array decoder and the
           contract's checks), which both paths share
  worker   what the worker runs per chunk of messages, in process: ``decode_batch`` (decode,
           checks, event times) and ``WindowManager.add`` (windowing and the fold) on chunks of
           5,000 events, as the pipeline takes them; before: the same with the per-value
           functions swapped in

Each figure is the median over ``--repeat`` windows of CPU µs per event (CPU time, so that
other work on a shared machine moves it less), the calls timed in turn; the ratio is before /
now. The issue's target is 6 µs per event at 50 features, folding in the worker; the line
after the table says where fold and the whole worker path stand against it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
import orjson

from detectors.columns import ModelSchema, build_batch
from detectors.fold_reference import add_per_column, build_batch_per_value
from detectors.profile import ProfileConfig, WindowProfile
from driftline.events import EventLimits, decode_message
from streams import windowing
from streams.pipeline import decode_batch
from streams.windowing import Message, WindowConfig, WindowManager

WINDOW_EVENTS, MESSAGE_EVENTS, CHUNK_EVENTS = 10_000, 500, 5_000
TARGET_US = 6.0  # issue 16: per event at 50 features, in the worker
LEVELS = ["a", "b", "c", "d"]
WINDOW_START = 1_800_000_000  # event times in one 60 s window; "now" is its last second
TP = ("driftline.predictions", 0)


def window_events(rng: np.random.Generator, features: int) -> list[dict[str, Any]]:
    numeric = features * 4 // 5
    values = rng.normal(size=(WINDOW_EVENTS, numeric))
    picks = rng.integers(0, len(LEVELS), (WINDOW_EVENTS, features - numeric))
    return [
        {
            "model": "m",
            "id": f"e{i}",
            "ts": WINDOW_START + i * 50 / WINDOW_EVENTS,
            "features": {
                **{f"x{j}": float(values[i, j]) for j in range(numeric)},
                **{f"c{j}": LEVELS[picks[i, j]] for j in range(features - numeric)},
            },
            "prediction": float(values[i, 0] > 0),
            "latency_ms": 3.0,
            "version": "v1",
        }
        for i in range(WINDOW_EVENTS)
    ]


def messages(events: list[dict[str, Any]], limits: EventLimits) -> list[bytes]:
    """Arrays of 500 events, as the SDK sends them, halved until they fit in a message (at
    100 features, 500 events of full-precision floats are over the 1 MiB limit)."""
    out: list[bytes] = []
    size = MESSAGE_EVENTS
    while not out or max(map(len, out)) > limits.max_message_bytes:
        out = [orjson.dumps(events[i : i + size]) for i in range(0, len(events), size)]
        size //= 2
    return out


def batches_of(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [events[i : i + MESSAGE_EVENTS] for i in range(0, len(events), MESSAGE_EVENTS)]


def decoded(raw: list[bytes], limits: EventLimits) -> list[dict[str, Any]]:
    return [event for value in raw for event in decode_message(value, limits).events]


def known_schema(batches: list[list[dict[str, Any]]]) -> ModelSchema:
    schema = ModelSchema(features={})
    build_batch(batches[0], np.zeros(len(batches[0])), schema)
    return schema


def copy_of(schema: ModelSchema) -> ModelSchema:
    return ModelSchema(dict(schema.features), schema.prediction, schema.prediction_width)


def fold_now(batches: list[list[dict[str, Any]]], schema: ModelSchema) -> WindowProfile:
    profile = WindowProfile(WINDOW_START, 60, ProfileConfig())
    for events in batches:
        profile.add(build_batch(events, np.zeros(len(events)), schema))
    return profile


def fold_before(batches: list[list[dict[str, Any]]], schema: ModelSchema) -> WindowProfile:
    profile = WindowProfile(WINDOW_START, 60, ProfileConfig())
    for events in batches:
        add_per_column(profile, build_batch_per_value(events, np.zeros(len(events)), schema))
    return profile


def primed(raw: list[bytes], limits: EventLimits) -> WindowManager:
    """A window manager that has seen the model's events in the window before (its schema
    known, as in a running worker)."""
    manager = WindowManager(WindowConfig())
    events = decode_message(raw[0], limits).events
    earlier = [{**e, "ts": e["ts"] - 60} for e in events]
    manager.add([Message(TP, 0, float(WINDOW_START - 60), earlier)], float(WINDOW_START - 1))
    return manager


def worker(raw: list[bytes], limits: EventLimits, manager: WindowManager) -> None:
    """What the worker does with a window's messages: decode a chunk, fold it, and on."""
    tuples = [(TP, i + 1, float(WINDOW_START), v) for i, v in enumerate(raw)]
    start, now = 0, float(WINDOW_START + 59)
    while start < len(tuples):
        chunk, _, start = decode_batch(tuples, limits, start, CHUNK_EVENTS, now)
        manager.add(chunk, now)


def worker_before(raw: list[bytes], limits: EventLimits, manager: WindowManager) -> None:
    """The worker with the per-value functions in place of the columnar ones."""
    with (
        mock.patch.object(windowing, "build_batch", build_batch_per_value),
        mock.patch.object(WindowProfile, "add", add_per_column),
    ):
        worker(raw, limits, manager)


def timed(calls: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median CPU seconds of each call, the calls timed in turn (what noise is left hits all
    of them alike)."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for call, out in zip(calls, times, strict=True):
            start = time.process_time()
            call()
            out.append(time.process_time() - start)
    return [statistics.median(t) for t in times]


@dataclass(frozen=True)
class Figures:
    """µs per event."""

    features: int
    fold_before: float
    fold_now: float
    decode: float
    worker_before: float
    worker_now: float

    def line(self) -> str:
        return (
            f"{self.features:>8}  {self.fold_before:>11.2f}  {self.fold_now:>8.2f}"
            f"  {self.fold_before / self.fold_now:>5.1f}x  {self.decode:>6.2f}"
            f"  {self.worker_before:>13.2f}  {self.worker_now:>10.2f}"
            f"  {self.worker_before / self.worker_now:>5.1f}x"
        )


HEADER = "features  fold before  fold now  ratio  decode  worker before  worker now  ratio"


def run(features: int, repeat: int, seed: int) -> Figures:
    rng = np.random.default_rng([seed, features])
    limits = EventLimits()
    raw = messages(window_events(rng, features), limits)
    batches = batches_of(decoded(raw, limits))  # the events as the worker decodes them
    schema = known_schema(batches)
    managers = iter([primed(raw, limits) for _ in range(2 * repeat)])  # made before timing
    seconds = timed(
        [
            lambda: fold_before(batches, copy_of(schema)),
            lambda: fold_now(batches, copy_of(schema)),
            lambda: decoded(raw, limits),
            lambda: worker_before(raw, limits, next(managers)),
            lambda: worker(raw, limits, next(managers)),
        ],
        repeat,
    )
    return Figures(features, *(s * 1e6 / WINDOW_EVENTS for s in seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--features", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--repeat", type=int, default=9, help="timed windows per figure")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"CPU µs per event, median of {args.repeat} windows of {WINDOW_EVENTS:,} events; "
        f"fold: build_batch + WindowProfile.add per {MESSAGE_EVENTS} events; worker: "
        f"decode_batch + WindowManager.add per {CHUNK_EVENTS:,} (decode included)"
    )
    print(HEADER)
    at: dict[int, Figures] = {}
    for features in args.features:
        at[features] = run(features, args.repeat, args.seed)
        print(at[features].line(), flush=True)
    if 50 in at:
        fifty = at[50]
        print(f"target: ≤ {TARGET_US:g} µs per event at 50 features")
        for what, value in (
            ("fold (build_batch + WindowProfile.add)", fifty.fold_now),
            (f"worker, decode included (decode alone {fifty.decode:.2f})", fifty.worker_now),
        ):
            print(f"  {what}: {value:.2f} µs, {'met' if value <= TARGET_US else 'NOT met'}")


if __name__ == "__main__":
    main()
