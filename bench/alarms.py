"""Alarm figures: rule evaluation per window, and webhook delivery latency.

    python -m bench.alarms [--rounds 30] [--notifications 200]

evaluation - 1,000 rules x 100 models: one closed window per model (150 metric points each:
             20 features x 6 input metrics + drift per feature + model-level metrics),
             evaluated against all rules as the worker's hook does (pure evaluate + the
             alert book, then the same through AlarmService.evaluate_window, which adds
             routing and queueing). About 1 % of the (rule, model, feature) series breach, so
             alerts open, fire and resolve as rounds go on. Target: < 200 ms per 100 windows.
delivery   - from the hook call (the window is stored) to the webhook request arriving at a
             local receiver (http.server on 127.0.0.1), through the alarm thread, the delivery
             log (embedded chDB) and a per-subscription sender. Target: p99 < 2 s.
Seeded and self-contained: no broker, no server. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from alarms.routing import Subscription
from alarms.rules import Comparison, Rule, RuleIndex
from alarms.state import AlertBook, evaluate
from driftline.broker import free_port
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.store.embedded import EmbeddedBackend
from streams.alarms import AlarmService

MODELS = 100
RULES = 1000
FEATURES = 20
INPUT_METRICS = ("input.missing_rate", "input.mean", "input.std", "input.p05", "input.p50",
                 "input.p95")  # fmt: skip
MODEL_METRICS = ("traffic.count", "traffic.invalid", "latency.p50", "latency.p95", "latency.p99",
                 "output.null_rate", "output.mean", "output.std", "drift.share_drifted",
                 "drift.output.psi")  # fmt: skip
BASE = 1_700_000_000


def make_rules(rng: random.Random) -> list[Rule]:
    """900 per-model rules (9 per model, on input, latency and drift metrics) + 100 shared."""
    rules = []
    metrics = [*INPUT_METRICS, "latency.p99", "output.null_rate", "drift.psi"]
    for m in range(MODELS):
        for k, metric in enumerate(metrics):
            feature = f"f{rng.randrange(FEATURES)}" if metric.startswith(("input", "drift")) else ""
            rules.append(
                Rule(f"m{m}-{k}", f"R{k}", metric, Comparison.GT, 0.99, model=f"model-{m}",
                     feature=feature, for_windows=2, keep_firing_for=1)
            )  # fmt: skip
    shared = [*INPUT_METRICS, *MODEL_METRICS, "drift.psi"]
    for k in range(RULES - len(rules)):
        metric = shared[k % len(shared)]
        rules.append(
            Rule(f"shared-{k}", f"S{k}", metric, Comparison.GT, 0.99 + k / 1e4,
                 model="model-*" if k % 2 else "*", feature="*", segment="")
        )  # fmt: skip
    return rules


def make_window(rng: random.Random, model: str, start: int) -> list[MetricPoint]:
    """150 points; values uniform in [0, 1): a 0.99 threshold breaches about 1 % of them."""
    points = [
        MetricPoint(model, start, 10, metric, rng.random(), feature=f"f{f}")
        for f in range(FEATURES)
        for metric in (*INPUT_METRICS, "drift.psi")
    ]
    points += [MetricPoint(model, start, 10, m, rng.random()) for m in MODEL_METRICS]
    return points


def bench_evaluation(rounds: int, service: AlarmService | None) -> list[float]:
    """Milliseconds per round of 100 windows (one per model)."""
    rng = random.Random(7)
    rules = make_rules(rng)
    assert len(rules) == RULES
    index, book = RuleIndex(rules), AlertBook()
    windows = [
        [make_window(rng, f"model-{m}", BASE + 10 * r) for m in range(MODELS)]
        for r in range(rounds)
    ]
    timings = []
    for r, round_windows in enumerate(windows):
        start = BASE + 10 * r
        began = time.perf_counter()
        for m, points in enumerate(round_windows):
            model = f"model-{m}"
            if service is None:
                book.apply(evaluate(index, book.of_model(model), model, start, points, time.time()))
            else:
                service.evaluate_window(model, start, points)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[str, float] = {}  # alert id + event -> wall time
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.time()
                note = orjson.loads(body)
                receiver.arrivals[f"{note['alert']['id']}/{note['event']}"] = now
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def bench_delivery(notifications: int, interval_s: float) -> list[float]:
    """Seconds from the hook call to the webhook's arrival, one per notification."""
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        stores = Stores(Store(EmbeddedBackend(Path(tmp) / "chdb")))
        stores.store.init_schema()
        alarms = stores.alarms
        alarms.put_rule(Rule("r", "Hot", "latency.p99", Comparison.GT, 100.0))
        alarms.put_subscription(Subscription("s", f"http://127.0.0.1:{receiver.port}/", "k"))
        service = AlarmService(alarms, stores.jobs, Settings(default_rules=False)).start()
        called: dict[str, float] = {}  # alert id + event -> wall time of the hook call
        firing_id = ""
        try:
            for i in range(notifications):
                value = 500.0 if i % 2 == 0 else 1.0  # fire, resolve, fire, ...
                point = MetricPoint("m", BASE + 10 * i, 10, "latency.p99", value)
                at = time.time()
                service.evaluate_window("m", BASE + 10 * i, [point])
                if i % 2 == 0:
                    [alert] = service.open_alerts()
                    firing_id = alert.id
                    called[f"{firing_id}/firing"] = at
                else:
                    called[f"{firing_id}/resolved"] = at
                time.sleep(interval_s)
            deadline = time.monotonic() + 30
            while len(receiver.arrivals) < len(called) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            service.stop()
            stores.close()
            receiver.server.shutdown()
    return [receiver.arrivals[k] - at for k, at in called.items() if k in receiver.arrivals]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description="alarm evaluation and delivery figures")
    parser.add_argument("--rounds", type=int, default=30, help="rounds of 100 windows")
    parser.add_argument("--notifications", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between windows")
    args = parser.parse_args()

    pure = bench_evaluation(args.rounds, None)
    with tempfile.TemporaryDirectory() as tmp:
        stores = Stores(Store(EmbeddedBackend(Path(tmp) / "chdb")))
        stores.store.init_schema()
        for rule in make_rules(random.Random(7)):
            stores.alarms.put_rule(rule)
        service = AlarmService(stores.alarms, stores.jobs, Settings(default_rules=False)).start()
        hooked = bench_evaluation(args.rounds, service)
        open_alerts = len(service.open_alerts())
        service.stop()
        stores.close()
    print(f"evaluation: {RULES:,} rules x {MODELS} models, 150 points per window "
          f"({args.rounds} rounds of {MODELS} windows)")  # fmt: skip
    for name, timings in (("evaluate()", pure), ("AlarmService hook", hooked)):
        cold, warm = timings[0], timings[1:]
        print(
            f"  {name:18} median {statistics.median(warm):6.1f} ms, "
            f"p95 {percentile(warm, 0.95):6.1f} ms, max {max(warm):6.1f} ms per {MODELS} windows; "
            f"first round (cold caches) {cold:6.1f} ms (target < 200 ms)"
        )
    print(f"  open alerts at the end: {open_alerts}")

    latencies = bench_delivery(args.notifications, args.interval)
    print(f"delivery: window stored -> webhook received, {len(latencies)} notifications "
          f"(every {args.interval * 1000:.0f} ms, alternating firing / resolved)")  # fmt: skip
    print(
        f"  p50 {percentile(latencies, 0.5) * 1000:6.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms, "
        f"max {max(latencies) * 1000:6.1f} ms (target p99 < 2 s)"
    )


if __name__ == "__main__":
    main()
