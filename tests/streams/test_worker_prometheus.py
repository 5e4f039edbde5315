"""A real Prometheus scrapes a running `driftline worker` and the series come back by query."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson
from helpers import wait_until
from helpers.prometheus import LocalPrometheus
from kafka import KafkaProducer

from driftline import topics
from driftline.broker import EmbeddedBroker, free_port
from driftline.store import Store

BASE = 1_700_000_000
ROOT = Path(__file__).resolve().parents[2]
StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]


def health_dashboard_queries() -> list[str]:
    """The expressions of deploy/grafana/dashboards/driftline-health.json, with Grafana's
    ``$__rate_interval`` set for a 1 s scrape."""
    board = json.loads((ROOT / "deploy/grafana/dashboards/driftline-health.json").read_text())
    return [
        target["expr"].replace("$__rate_interval", "10s")
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def test_prometheus_scrapes_the_worker_and_queries_its_counts(
    broker: EmbeddedBroker,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    port = free_port()
    start_worker({**worker_env, "DRIFTLINE_WORKER_METRICS_PORT": str(port)})
    with LocalPrometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus:
        raw = KafkaProducer(bootstrap_servers=broker.bootstrap)
        events = [
            {"model": "fraud", "features": {"x": float(i)}, "prediction": 0.5, "ts": BASE + 1}
            for i in range(40)
        ]
        raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(events))
        raw.send(topics.PREDICTIONS, key=b"fraud", value=b"{broken")
        closer = {"model": "fraud", "features": {"x": 1.0}, "prediction": 0.5, "ts": BASE + 25}
        raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(closer))
        raw.flush()
        raw.close()

        def scraped(expression: str, expected: float) -> bool:
            return prometheus.query(expression) == expected

        wait_until(
            lambda: scraped('driftline_worker_events_total{topic="predictions"}', 41),
            timeout=120,
            what="the worker's event count in Prometheus",
        )
        assert prometheus.query('driftline_worker_messages_total{topic="predictions"}') == 3
        wait_until(
            lambda: scraped(
                'driftline_worker_dead_letters_total{topic="predictions",reason="invalid_json"}', 1
            ),
            timeout=60,
            what="the dead letter by reason in Prometheus",
        )
        wait_until(
            lambda: scraped("driftline_worker_windows_stored_total", 1),
            timeout=60,
            what="the stored window in Prometheus",
        )
        assert prometheus.query('up{job="driftline"}') == 1
        # every query of the Grafana health dashboard is PromQL this Prometheus runs, and
        # those on the worker's series find them
        # (a rate over 10 s needs two scrapes in it: under load one can come late, so wait)
        for expression in health_dashboard_queries():
            if "driftline_worker_" in expression:
                wait_until(
                    partial(prometheus.series, expression),
                    timeout=30,
                    what=f"a series for the dashboard's {expression}",
                )
            else:
                prometheus.series(expression)  # runs: this Prometheus takes the PromQL


def test_a_worker_whose_metrics_port_is_taken_says_so_and_works_on(
    broker: EmbeddedBroker,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    server_store: Store,
    tmp_path: Path,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        worker = start_worker({**worker_env, "DRIFTLINE_WORKER_METRICS_PORT": str(port)})
        raw = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for ts in (BASE + 1, BASE + 25):  # the second closes the first's window
            event = {"model": "fraud", "features": {"x": 1.0}, "prediction": 0.5, "ts": ts}
            raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(event))
        raw.flush()
        raw.close()
        wait_until(
            lambda: server_store.metrics("fraud", name="traffic.count", start=BASE, end=BASE + 1),
            timeout=120,
            what="the window stored by the worker without /metrics",
        )
        assert worker.poll() is None
    log = (tmp_path / "worker-0.log").read_text()
    assert f"the worker runs without /metrics: cannot serve /metrics on 127.0.0.1:{port}" in log
