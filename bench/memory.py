"""`python -m bench.memory`: where the worker's memory goes in the 100 x 50 case, in process.

The events of ``bench.pipeline``'s wide case (100 models x 50 features, arrays of 500 events,
10 windows a model) go through the code the worker runs for them, without a broker or a
store: decode (``streams.pipeline.decode_batch``) -> ``WindowManager.add`` -> ``close_due`` ->
``window_rows`` with the drift analysis (``streams.drift``) -> the alarm evaluation of the
default rules (``AlarmService.evaluate_window``) -> ``mark_stored``. Models are interleaved 8
at a time, as the worker reads 8 partitions. What is written to a store is built (points,
drift rows, learned references as JSON-ready dicts) and dropped, as after a write.

Printed: the deep size in MB of each long-lived part at the end (every reference learned) and
of the largest group of results built at once (a transient), the RSS before the events, at
the end and its peak. ``--tracemalloc`` also prints the top allocation sites still live at
the end (slow). Figures are this process's; the worker adds Faust, the Kafka client and the
store client (``make bench`` measures all of it). Deep sizes are lower bounds for objects
without slots: CPython 3.11 keeps their attributes inline, out of ``sys.getsizeof``'s sight.
"""

from __future__ import annotations

import argparse
import gc
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import IO, Any

import numpy as np

from bench.pipeline import Case, model_events, model_messages
from driftline.settings import Settings
from streams.alarms import AlarmService
from streams.app import window_config
from streams.drift import DriftAnalyzer, drift_analyzer
from streams.pipeline import STORE_GROUP_WINDOWS, decode_batch
from streams.window_rows import WindowResult, window_rows
from streams.windowing import TP, WindowManager

PARTITIONS = 8
TOPIC = "driftline.predictions"
MB = 1 << 20


def status_mb(field: str) -> float:
    """A field of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


_SKIP = (type, ModuleType, FunctionType)


def deep_size(roots: Iterable[Any], seen: set[int]) -> int:
    """Bytes reachable from ``roots`` and not already in ``seen`` (which it extends): objects
    counted once across the parts, in the order they are measured."""
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIP):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)  # an ndarray's includes the data it owns
        if isinstance(obj, np.ndarray) and obj.base is not None:
            stack.append(obj.base)  # a view: the data is its base's
        stack.extend(gc.get_referents(obj))
    return total


@dataclass
class Harness:
    manager: WindowManager
    drift: DriftAnalyzer | None
    alarms: AlarmService | None
    settings: Settings
    largest_group_mb: float = 0.0
    windows: int = 0

    def feed(self, raw: list[tuple[TP, int, float, bytes | None]]) -> None:
        """One micro-batch, as ``WindowPipeline.process`` takes it, then the store pass."""
        limits = self.settings.event_limits()
        start = 0
        while start < len(raw):
            chunk = self.settings.batch_max_events
            messages, _dead, start = decode_batch(raw, limits, start, chunk)
            self.manager.add(messages, time.time())
            del messages
        if self.manager.close_due(time.time()):
            self.store_closed()

    def store_closed(self) -> None:
        windows = self.manager.unstored
        for first in range(0, len(windows), STORE_GROUP_WINDOWS):
            group = windows[first : first + STORE_GROUP_WINDOWS]
            results = [window_rows(w, self.drift) for w in group]
            size = deep_size(results, {id(w) for w in group}) / MB  # not the windows themselves
            self.largest_group_mb = max(self.largest_group_mb, size)
            self.manager.mark_stored(group)
            self.windows += len(group)
            for result in results:
                self.on_stored(result)

    def on_stored(self, result: WindowResult) -> None:
        if self.alarms is not None:
            self.alarms.on_window(result)
            jobs = self.alarms._jobs  # no alarm thread here: what it would store is dropped
            while not jobs.empty():
                jobs.get_nowait()


def build(settings: Settings) -> Harness:
    """The worker's parts as ``streams.app.create_app`` configures them from ``settings``."""
    manager = WindowManager(window_config(settings))
    drift = drift_analyzer(settings)
    alarms = None
    if settings.default_rules:
        from alarms.rules import DEFAULT_RULES, RuleIndex

        alarms = AlarmService(None, None, settings)  # type: ignore[arg-type]  # no store: evaluation only
        alarms._index = RuleIndex(DEFAULT_RULES)
    return Harness(manager, drift, alarms, settings)


def emit(case: Case, out: IO[bytes]) -> None:
    """Write the case's messages to ``out`` as (partition, length, value) records: 8 models
    at a time (one a partition), interleaved message by message as the worker reads them.
    Run in a child process, so that making the events costs the measured process nothing."""
    rng = np.random.default_rng(0)  # the models' events as bench.pipeline makes them
    for first in range(0, case.models, PARTITIONS):
        lanes = []
        for m in range(first, min(first + PARTITIONS, case.models)):
            values = [v for _, v in model_messages(case, f"model-{m}", model_events(case, m, rng))]
            lanes.append((m % PARTITIONS, values))
        for i in range(max(len(v) for _, v in lanes)):
            for partition, values in lanes:
                if i < len(values):
                    out.write(RECORD.pack(partition, len(values[i])) + values[i])
    out.flush()


RECORD = struct.Struct("<II")


def micro_batches(
    records: IO[bytes], batch_messages: int, batch_bytes: int
) -> Iterator[list[tuple[TP, int, float, bytes | None]]]:
    """The emitted messages, with offsets per partition, in micro-batches of at most
    ``batch_messages`` messages and ``batch_bytes`` bytes (``streams.batching``)."""
    offsets = [0] * PARTITIONS
    pending: list[tuple[TP, int, float, bytes | None]] = []
    held = 0
    while header := records.read(RECORD.size):
        partition, size = RECORD.unpack(header)
        if pending and held + size > batch_bytes:  # it would pass the bytes: the next batch's
            yield pending
            pending, held = [], 0
        pending.append(((TOPIC, partition), offsets[partition], 0.0, records.read(size)))
        offsets[partition] += 1
        held += size
        if len(pending) == batch_messages or held >= batch_bytes:
            yield pending
            pending, held = [], 0
    if pending:
        yield pending


def breakdown(harness: Harness) -> list[tuple[str, float]]:
    """Deep sizes of the long-lived parts, in MB (shared objects counted in the first)."""
    seen: set[int] = set()
    manager, drift, alarms = harness.manager, harness.drift, harness.alarms
    parts: list[tuple[str, list[Any]]] = []
    if drift is not None:
        book = drift.book
        parts += [
            ("references (learned, uploaded)", [book._learned, book._uploaded]),
            ("references warming (accumulators)", [book._warming]),
            ("references rolling", [book._rolling, book._rolling_ref]),
        ]
    parts += [
        ("open window profiles", [s.windows for s in manager.models.values()]),
        ("closed windows not stored", [manager._unstored]),
        ("model state (schema, categories, offsets)", [manager.models]),
        ("segment values", [manager.segments]),
    ]
    if alarms is not None:
        parts += [
            ("alarm rule index (series cache)", [alarms._index]),
            ("alarm state (open alerts, closed ids)", [alarms._book, alarms._closed]),
        ]
    return [(name, deep_size(roots, seen) / MB) for name, roots in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply event counts")
    parser.add_argument("--metrics-only", action="store_true", help="drift and alarms off")
    parser.add_argument("--tracemalloc", action="store_true", help="top live allocation sites")
    parser.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    case = Case("arrays of 500, 100 models x 50 features", int(400_000 * args.scale), 500, 100, 50)
    if args.emit:
        emit(case, sys.stdout.buffer)
        return
    # the bench's worker settings (bench.pipeline.worker_main)
    settings = Settings(window_seconds=10, allowed_lateness_s=1.0, idle_close_s=600.0)
    if args.metrics_only:
        settings = settings.model_copy(update={"drift_enabled": False, "default_rules": False})
    gc.collect()
    rss_start = status_mb("VmRSS")
    if args.tracemalloc:
        tracemalloc.start()
    harness = build(settings)
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.memory", "--emit", "--scale", str(args.scale)],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    started = time.perf_counter()
    for batch in micro_batches(child.stdout, settings.batch_max_messages, settings.batch_max_bytes):
        harness.feed(batch)
    seconds = time.perf_counter() - started
    if child.wait() != 0:
        raise SystemExit("the child that makes the events failed")
    gc.collect()
    rss_end = status_mb("VmRSS")
    work = "metrics" if args.metrics_only else "metrics+drift+alarms"
    print(f"{case.name}, {case.events:,} events, {work}: {harness.windows} windows stored "
          f"in {seconds:.1f} s")  # fmt: skip
    print(f"{'part':44} {'MB':>8}")
    parts = breakdown(harness)
    for name, mb in parts:
        print(f"{name:44} {mb:8.1f}")
    print(f"{'sum of the long-lived parts':44} {sum(mb for _, mb in parts):8.1f}")
    print(f"{'largest group of results (transient)':44} {harness.largest_group_mb:8.1f}")
    print(f"RSS before the events {rss_start:.0f} MB, at the end {rss_end:.0f} MB, "
          f"peak {status_mb('VmHWM'):.0f} MB")  # fmt: skip
    if args.tracemalloc:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        print("\nlive allocations by line (top 15):")
        for stat in snapshot.statistics("lineno")[:15]:
            frame = stat.traceback[0]
            print(f"{stat.size / MB:8.1f} MB {stat.count:9,} {frame.filename}:{frame.lineno}")


if __name__ == "__main__":
    main()
