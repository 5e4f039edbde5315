"""Custom metrics end to end, as a service sends them: the SDK → real Tansu broker →
`driftline worker` → real ClickHouse server; rules on them fire, and the API serves them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import wait_until

from alarms.rules import Comparison, Rule
from api.main import create_app
from driftline import Monitor
from driftline.broker import EmbeddedBroker
from driftline.settings import Settings
from driftline.store import Store, Stores
from driftline.store.alarms import AlarmStore
from driftline.store.server import ServerBackend

StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]
WINDOW = 10  # worker_env's windows


def test_custom_metrics_and_outcomes_reach_rules_and_the_api(
    broker: EmbeddedBroker,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    clickhouse_url: str,
) -> None:
    store = Store(ServerBackend(clickhouse_url))
    store.init_schema()
    alarms = AlarmStore(store.backend)
    alarms.put_rule(Rule("ctr", "CtrLow", "custom.ctr.mean", Comparison.LT, 0.2, segment=""))
    alarms.put_rule(
        Rule("clicks", "ClicksLow", "labels.custom.clicked.mean", Comparison.LT, 0.5, segment="")
    )
    start_worker(
        {
            **worker_env,
            "DRIFTLINE_DEFAULT_RULES": "false",
            "DRIFTLINE_ALARM_REFRESH_S": "0.5",
            "DRIFTLINE_KEEP_EVENTS": "all",
            "DRIFTLINE_QUALITY_INTERVAL_S": "1",
        }
    )
    start = int(time.time() // WINDOW) * WINDOW - 6 * WINDOW
    with Monitor(broker.bootstrap) as monitor:
        ids = [
            monitor.log_prediction(
                "search",
                {"query_len": float(i % 7)},
                prediction=i % 3,
                ts=start + 1,
                segment={"channel": "web" if i % 2 else "app"},
                metrics={"ctr": int(i % 10 == 0), "gpu_mem_mb": 5000 + i},
            )
            for i in range(100)
        ]
        # a bad value costs the event nothing else: it is sent, and counted, without it
        not_a_number: dict[str, Any] = {"ctr": "n/a"}
        monitor.log_prediction("search", {"query_len": 1.0}, 0, ts=start + 2, metrics=not_a_number)
        monitor.log_prediction("search", {"query_len": 1.0}, 0, ts=start + 3 * WINDOW)  # closes
        for i, event_id in enumerate(ids):  # outcomes known later, without a label
            monitor.log_label("search", event_id, metrics={"clicked": int(i % 4 == 0)})
    assert monitor.stats.metrics_dropped == 1 and monitor.stats.failed == 0

    def stored(metric: str) -> float | None:
        points = store.metrics("search", name=metric, feature="", start=start, end=start + 1)
        return points[0].value if points else None

    wait_until(lambda: stored("custom.ctr.mean") is not None, timeout=60, what="custom metrics")
    assert stored("traffic.count") == 101
    assert stored("custom.ctr.count") == 100 and stored("custom.ctr.mean") == pytest.approx(0.1)
    assert stored("custom.gpu_mem_mb.sum") == sum(range(5000, 5100))
    wait_until(lambda: alarms.alerts(states=("firing",)), timeout=30, what="CtrLow firing")

    wait_until(lambda: stored("labels.custom.clicked.count") == 100, timeout=60, what="outcomes")
    assert stored("labels.custom.clicked.mean") == pytest.approx(0.25)
    wait_until(
        lambda: {a.rule_id for a in alarms.alerts(states=("firing",))} == {"ctr", "clicks"},
        timeout=30,
        what="ClicksLow firing on outcomes that came without labels",
    )

    settings = Settings(store="server", clickhouse_url=clickhouse_url)
    with TestClient(create_app(settings, Stores(store))) as client:
        reply = client.get(
            "/v1/models/search/metrics",
            params={"name": "custom.ctr.mean", "segment": "channel=app"},
        )
        assert reply.status_code == 200, reply.text
        [series] = reply.json()["series"]
        assert series["metric"] == "custom.ctr.mean"
        assert series["points"][0]["value"] == pytest.approx(0.2)  # i = 0, 10, ... are even
    store.close()
