"""`make bench`: the pipeline's throughput against a raw consumer, measured in one run.

Cases, each on a fresh embedded broker (Tansu) with the embedded store (chDB):
  arrays  - Kafka messages are JSON arrays of 500 events (what the SDK sends)
  single  - one event per Kafka message (what an arbitrary Kafka client may send)
  wide    - arrays, 100 models x 50 features: peak worker memory
  slices  - the wide case with 3 segment keys x 10 values per event (30 slices a model), and
            1,000 models x 50 features with the same slices in 60 s windows
Every event carries an ``id`` as the SDK's do; two runs also store every raw prediction for
the label join (``DRIFTLINE_KEEP_EVENTS=all``, as for models that send labels).
For each: baseline = raw aiokafka consume + orjson decode of the same messages; pipeline =
`driftline worker` code path (Faust agent -> window profiles -> metrics stored in ClickHouse),
timed from its first message to the last window stored, in a separate process whose peak RSS
and CPU time (every thread of the worker process; a ClickHouse server's own CPU is not in it)
are reported, the CPU also per window period (the events span 10 windows). Figures are
events/s and the ratio to the baseline of the same run (this machine is noisy: compare
ratios, not absolute numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftline import topics
from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.store.local_server import LocalClickHouseServer

WINDOW_S = 10
BASE_TS = 1_700_000_000


@dataclass(frozen=True)
class Case:
    name: str
    events: int
    per_message: int
    models: int
    features: int
    segment_keys: int = 0  # each event carries this many segment keys ...
    segment_values: int = 10  # ... of this many values each
    window_s: int = WINDOW_S


def model_events(case: Case, m: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """One model's events: 4 of every 5 features numeric (some null), the rest short strings,
    spread over 10 windows, then one event that closes them all."""
    per_model = case.events // case.models
    n_cat = max(1, case.features // 5)
    n_num = case.features - n_cat
    model = f"model-{m}"
    numeric = rng.normal(0, 1, (per_model, n_num)).round(4)
    nulls = rng.random((per_model, n_num)) < 0.05
    cats = rng.integers(0, 8, (per_model, n_cat))
    values = rng.integers(0, case.segment_values, (per_model, case.segment_keys))
    ts = BASE_TS + np.sort(rng.random(per_model)) * case.window_s * 10
    rows = []
    for i in range(per_model):
        features: dict[str, Any] = {
            f"n{j}": None if nulls[i, j] else float(numeric[i, j]) for j in range(n_num)
        }
        features.update({f"c{j}": f"cat-{cats[i, j]}" for j in range(n_cat)})
        row = {
            "model": model,
            "id": f"{m:04d}-{i:09d}",  # the SDK gives every prediction an id
            "features": features,
            "prediction": float(numeric[i, 0] > 0),
            "latency_ms": 5.0,
            "ts": float(ts[i]),
        }
        if case.segment_keys:
            row["segment"] = {f"s{k}": f"v{values[i, k]}" for k in range(case.segment_keys)}
        rows.append(row)
    closer = {**rows[-1], "ts": float(BASE_TS + case.window_s * 12)}
    return [*rows, closer]


def make_events(case: Case, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    return {f"model-{m}": model_events(case, m, rng) for m in range(case.models)}


def model_messages(case: Case, model: str, rows: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    key = model.encode()
    body, closer = rows[:-1], rows[-1]
    if case.per_message == 1:
        out = [(key, orjson.dumps(r)) for r in body]
    else:
        out = [
            (key, orjson.dumps(body[i : i + case.per_message]))
            for i in range(0, len(body), case.per_message)
        ]
    out.append((key, orjson.dumps(closer)))
    return out


def messages(case: Case, events: dict[str, list[dict[str, Any]]]) -> list[tuple[bytes, bytes]]:
    return [m for model, rows in events.items() for m in model_messages(case, model, rows)]


def case_messages(case: Case, seed: int = 0) -> tuple[list[tuple[bytes, bytes]], int]:
    """The case's messages and its event count (closers left out), made model by model so
    that only the encoded messages are held (a thousand models' dicts would not fit)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[bytes, bytes]] = []
    events = 0
    for m in range(case.models):
        rows = model_events(case, m, rng)
        events += len(rows) - 1
        out.extend(model_messages(case, f"model-{m}", rows))
    return out, events


async def produce(bootstrap: str, msgs: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, max_request_size=8 << 20
    )
    await producer.start()
    try:
        futures = [await producer.send(topics.PREDICTIONS, value=v, key=k) for k, v in msgs]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def baseline(bootstrap: str, expected_messages: int) -> tuple[float, int]:
    """Raw aiokafka consume + orjson decode of every message: events per second."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topics.PREDICTIONS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    seen = events = 0
    started = None
    try:
        while seen < expected_messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                if started is None:
                    started = time.perf_counter()
                for record in records:
                    payload = orjson.loads(record.value)
                    events += len(payload) if isinstance(payload, list) else 1
                seen += sum(len(r) for r in batch.values())
    finally:
        await consumer.stop()
    assert started is not None
    return events / (time.perf_counter() - started), events


METRICS_ONLY = {"DRIFTLINE_DRIFT_ENABLED": "false", "DRIFTLINE_DEFAULT_RULES": "false"}


def run_worker_process(
    bootstrap: str,
    expected_events: int,
    data_dir: str,
    store: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The pipeline in its own process (so its RSS is its own); returns its figures.

    ``store``: "embedded" (chDB in the worker process) or a ClickHouse server URL.
    """
    args = ["--worker", bootstrap, str(expected_events), data_dir, store]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bench.pipeline", *args],
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired as exc:  # a stalled worker: what it logged is the clue
        err = exc.stderr or b""
        logged = err if isinstance(err, str) else err.decode(errors="replace")
        raise RuntimeError(f"worker stalled (killed after {exc.timeout} s):\n{logged}") from None
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed:\n{result.stdout}\n{result.stderr}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent across fork and exec, and the parent holds the generated events."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_main(bootstrap: str, expected_events: int, data_dir: str, store_url: str) -> None:
    from driftline.settings import Settings
    from driftline.store import open_stores
    from launch.services import prepare_topics, run_worker

    settings = Settings(
        kafka_bootstrap=bootstrap,
        data_dir=Path(data_dir),
        consumer_session_timeout_s=6.0,
        window_seconds=int(os.environ.get("BENCH_WINDOW_S", WINDOW_S)),
        allowed_lateness_s=1.0,
        idle_close_s=600.0,
        store="embedded" if store_url == "embedded" else "server",
        clickhouse_url=store_url if store_url != "embedded" else Settings().clickhouse_url,
    )
    stores = open_stores(settings)
    stored = {"events": 0, "done_at": 0.0, "cpu_at_done": 0.0, "cpu_at_ready": 0.0}
    state: dict[str, Any] = {}

    def on_ready(worker: Any) -> None:
        state["worker"] = worker
        stored["cpu_at_ready"] = time.process_time()

        def count(result: Any) -> None:
            stored["events"] += result.window.profile.count
            if stored["events"] >= expected_events and not stored["done_at"]:
                stored["done_at"] = time.time()
                stored["cpu_at_done"] = time.process_time()
                os.kill(os.getpid(), signal.SIGTERM)

        worker.on_stored.append(count)

    # warnings (rebalances, stale batches dropped) reach the error a failed or stalled run prints
    run_worker(settings, stores, prepare_topics(settings), on_ready=on_ready, loglevel="warning")
    stores.close()
    worker = state["worker"]
    elapsed = stored["done_at"] - worker.stats.first_message_at
    print(
        json.dumps(
            {
                "cpu_s": stored["cpu_at_done"] - stored["cpu_at_ready"],
                "events_per_s": stored["events"] / elapsed,
                "events": stored["events"],
                "seconds": elapsed,
                "peak_rss_mb": peak_rss_mb(),
                "windows": worker.stats.windows_stored,
            }
        )
    )


KEEP_ALL = {"DRIFTLINE_KEEP_EVENTS": "all"}


def run_case(
    case: Case, store: str = "embedded", full: bool = False, keep: bool = False
) -> dict[str, Any]:
    """One case; ``full``: drift tests and the default alarm rules on (the product's
    defaults), else window metrics only (the foundation's pipeline). ``keep``: every raw
    prediction is also stored for the label join (as for a model that sends labels)."""
    msgs, expected_events = case_messages(case)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        ensure_topics(broker.bootstrap, topics.topic_partitions(8, 8))
        asyncio.run(produce(broker.bootstrap, msgs))
        base_rate, _ = asyncio.run(baseline(broker.bootstrap, len(msgs)))
        env = {
            **({} if full else METRICS_ONLY),
            **(KEEP_ALL if keep else {}),
            "BENCH_WINDOW_S": str(case.window_s),
        }
        figures = run_worker_process(broker.bootstrap, expected_events, tmp, store, env)
    work = "metrics+drift+alarms" if full else "metrics"
    return {
        "case": case.name,
        "store": "chDB in-process" if store == "embedded" else "ClickHouse server",
        "work": work + ("+raw events" if keep else ""),
        "messages": len(msgs),
        "events": figures["events"],
        "baseline_events_per_s": base_rate,
        "pipeline_events_per_s": figures["events_per_s"],
        "ratio": figures["events_per_s"] / base_rate,
        "peak_rss_mb": figures["peak_rss_mb"],
        "cpu_s": figures["cpu_s"],
        "cpu_s_per_window_period": figures["cpu_s"] / 10,  # the events span 10 windows
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=4, metavar=("BOOTSTRAP", "EVENTS", "DATA_DIR", "STORE"))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply event counts")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--only", type=int, nargs="+", metavar="N", help="run only these cases (1 = the first)"
    )
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker[0], int(args.worker[1]), args.worker[2], args.worker[3])
        return
    s = args.scale
    wide = Case("arrays of 500, 100 models x 50 features", int(400_000 * s), 500, 100, 50)
    arrays = Case("arrays of 500, 10 models x 20 features", int(1_000_000 * s), 500, 10, 20)
    runs = [
        (arrays, "", False, False),
        (Case("one event per message, 10 x 20", int(150_000 * s), 1, 10, 20), "", False, False),
        (wide, "server", False, False),
        (arrays, "", True, False),
        (wide, "server", True, False),
        (arrays, "", False, True),
        (arrays, "server", False, True),
        # 3 segment keys x 10 values: the cost of slices against case 5
        (replace(wide, name="100 x 50, 3 segment keys x 10 values", segment_keys=3), "server",
         True, False),
        (Case("1,000 models x 50, 3 x 10 slices, 60 s windows", int(400_000 * s), 100, 1000, 50,
              segment_keys=3, window_s=60), "server", True, False),
    ]  # fmt: skip
    if args.only:
        runs = [run for i, run in enumerate(runs, 1) if i in args.only]
    results = []
    print(
        f"{'case':42} {'store':18} {'work':20} {'baseline ev/s':>14} {'pipeline ev/s':>14} "
        f"{'ratio':>6} "
        f"{'peak RSS':>9} {'CPU s/window':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        server_url: str | None = None
        for case, store, full, keep in runs:
            url = "embedded"
            if store == "server":
                if server_url is None:  # one server for every run that needs one
                    try:
                        server = LocalClickHouseServer(Path(tmp) / "clickhouse").start()
                    except FileNotFoundError as exc:
                        print(f"(skipping the ClickHouse-server runs: {exc})")
                        server_url = ""
                    else:
                        stack.callback(server.stop)
                        server_url = server.url()
                if not server_url:
                    continue
                url = server_url
            r = run_case(case, url, full, keep)
            results.append(r)
            print(
                f"{r['case']:42} {r['store']:18} {r['work']:20} "
                f"{r['baseline_events_per_s']:14,.0f} "
                f"{r['pipeline_events_per_s']:14,.0f} {r['ratio']:6.2f} "
                f"{r['peak_rss_mb']:7.0f}MB {r['cpu_s_per_window_period']:12.2f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
