"""GET /metrics of the API: its requests, bounded by route template, behind the read key."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from api.main import create_app
from driftline.metrics import new_registry
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.store.embedded import EmbeddedBackend


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_requests_by_route_template_and_need_the_read_key(tmp_path: Path) -> None:
    store = Store(EmbeddedBackend(tmp_path / "chdb"))
    store.init_schema()
    store.write_window([MetricPoint("fraud", 1_700_000_000, 60, "traffic.count", 5.0)], [])
    settings = Settings(
        data_dir=tmp_path, api_key=SecretStr("admin-key"), api_read_key=SecretStr("read-key")
    )
    registry = new_registry()
    app = create_app(settings, Stores(store), registry=registry)
    try:
        with TestClient(app) as client:
            read = {"Authorization": "Bearer read-key"}
            assert client.get("/metrics").status_code == 401
            for model in ("fraud", "other", "third"):
                client.get(f"/v1/models/{model}/metrics?name=traffic.count", headers=read)
            client.get("/no/such/path", headers=read)
            reply = client.get("/metrics", headers=read)
    finally:
        app.state.ingest.close()
        store.close()
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(reply.text)
    requests = "driftline_api_requests_total"
    route = "/v1/models/{model}/metrics"
    assert found[(requests, (("method", "GET"), ("route", route), ("status", "2xx")))] == 3
    assert found[(requests, (("method", "GET"), ("route", "/metrics"), ("status", "4xx")))] == 1
    assert found[(requests, (("method", "GET"), ("route", "unmatched"), ("status", "4xx")))] == 1
    # one series per route template, not per model
    assert not [k for k in found if k[0] == requests and "fraud" in str(k[1])]
    assert found[("driftline_api_request_seconds_count", ())] == 5
    assert found[("process_resident_memory_bytes", ())] > 0
