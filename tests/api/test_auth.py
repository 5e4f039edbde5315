"""API keys: with one configured, every route but the open ones needs a key; the read-only key
reads (GET) and is refused (403) for a change; the admin key does everything.

The routes are the app's own, so a route added later is covered without editing this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from api.main import create_app
from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.store.embedded import EmbeddedBackend
from driftline.topics import topic_partitions

ADMIN, READ = "admin-s3cret", "read-s3cret"
OPEN = {("GET", "/health")}
READS = {"GET", "HEAD", "OPTIONS"}
# path parameters: an existing model, ids of nothing (404 once past the key)
FILL = {"model": "fraud", "version": "1", "name": "dashboard.js"}
# POST .../retrain waits for a retrainer's decision; none runs here
QUERY = {"/v1/models/{model}/retrain": {"wait": "0"}}
# the model here has windows but no labels: its examples and its error analysis are a 404 that
# says to send some; it has no tags either ("nope" is none)
ANSWERS = {
    "/v1/models/{model}/examples": 404,
    "/v1/models/{model}/error-analysis": 404,
    "/v1/models/{model}/tags/{tag}": 404,
}


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every operation of the app, from its OpenAPI document (the dashboard's
    routes are not in it: they are checked below). Building the app reads no settings and opens
    nothing: the store is only kept, the Kafka producer connects on first use."""
    spec = create_app(Settings(), cast(Stores, None)).openapi()
    return sorted((m.upper(), path) for path, ops in spec["paths"].items() for m in ops)


ROUTES = _routes()
PROTECTED = [r for r in ROUTES if r not in OPEN]
MUTATING = [r for r in PROTECTED if r[0] not in READS]
READING = [r for r in PROTECTED if r[0] in READS]


def url(path: str) -> str:
    return path.format(**{k: FILL.get(k, "nope") for k in _names(path)})


def _names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    root = tmp_path_factory.mktemp("auth")
    store = Store(EmbeddedBackend(root / "chdb"))
    store.init_schema()
    store.write_window([MetricPoint("fraud", 1_700_000_000, 60, "traffic.count", 5.0)], [])
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            data_dir=Path(root),
            api_key=SecretStr(ADMIN),
            api_read_key=SecretStr(READ),
        )
        application = create_app(settings, Stores(store))
        yield application
        application.state.ingest.close()
    store.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def call(client: TestClient, method: str, path: str, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.request(method, url(path), headers=headers, params=QUERY.get(path))


def needs_a_key(client: TestClient, method: str, path: str) -> None:
    for key in (None, "wrong", ADMIN + "x"):
        reply = call(client, method, path, key)
        assert reply.status_code == 401, (method, path, key, reply.text)
        assert reply.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in reply.json()["detail"]
    no_scheme = client.request(method, url(path), headers={"Authorization": ADMIN})
    assert no_scheme.status_code == 401


@pytest.mark.parametrize(("method", "path"), READING)
def test_every_read_needs_a_key(client: TestClient, method: str, path: str) -> None:
    needs_a_key(client, method, path)


@pytest.mark.parametrize(("method", "path"), READING)
def test_reads_take_the_read_key_and_the_admin_key(
    client: TestClient, method: str, path: str
) -> None:
    expected = 404 if any(n.endswith("_id") for n in _names(path)) else ANSWERS.get(path, 200)
    assert call(client, method, path, None).status_code == 401
    for key in (READ, ADMIN):
        reply = call(client, method, path, key)
        assert reply.status_code == expected, (method, path, key, reply.text)


@pytest.mark.parametrize(("method", "path"), MUTATING)
def test_changes_refuse_the_read_key_and_take_the_admin_key(
    client: TestClient, method: str, path: str
) -> None:
    needs_a_key(client, method, path)
    refused = call(client, method, path, READ)
    assert refused.status_code == 403, (method, path, refused.text)
    assert "read-only key" in refused.json()["detail"]
    assert "DRIFTLINE_API_KEY" in refused.json()["detail"]
    # past the key: whatever the (empty) request deserves, never 401 or 403
    allowed = call(client, method, path, ADMIN)
    assert allowed.status_code not in (401, 403), (method, path, allowed.text)


def test_the_admin_key_changes_and_the_read_key_sees_it(client: TestClient) -> None:
    rule = {"name": "R", "metric": "input.mean", "comparison": ">", "threshold": 1}
    admin, read = ({"Authorization": f"Bearer {k}"} for k in (ADMIN, READ))
    created = client.post("/v1/rules", json=rule, headers=admin)
    assert created.status_code == 201
    rule_id = created.json()["id"]
    assert client.get(f"/v1/rules/{rule_id}", headers=read).json()["name"] == "R"
    assert client.delete(f"/v1/rules/{rule_id}", headers=read).status_code == 403
    assert client.delete(f"/v1/rules/{rule_id}", headers=admin).status_code == 204


@pytest.mark.parametrize("path", ["/health", "/", "/static/dashboard.js", "/openapi.json", "/docs"])
def test_health_the_dashboard_and_the_docs_stay_open(client: TestClient, path: str) -> None:
    assert client.get("/v1/models").status_code == 401  # while a key is configured
    assert client.get(path).status_code == 200


def test_the_openapi_documents_the_key(client: TestClient) -> None:
    assert ("GET", "/v1/models") in PROTECTED and ("POST", "/v1/rules") in MUTATING
    assert len(PROTECTED) > 25  # the parametrised tests above see the app's routes
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for method, path in PROTECTED:
        operation = spec["paths"][path][method.lower()]
        assert operation["security"] == [{"HTTPBearer": []}], (method, path)
        assert "401" in operation["responses"], (method, path)
        assert ("403" in operation["responses"]) == (method not in READS), (method, path)
    for method, path in OPEN:
        assert "security" not in spec["paths"].get(path, {}).get(method.lower(), {})


def test_without_a_key_configured_everything_is_open(app: FastAPI, client: TestClient) -> None:
    keyed = app.state.settings
    assert client.get("/v1/models").status_code == 401
    app.state.settings = keyed.model_copy(update={"api_key": None, "api_read_key": None})
    try:
        assert client.get("/v1/models").status_code == 200
        rule = {"name": "R", "metric": "input.mean", "comparison": ">", "threshold": 1}
        assert client.post("/v1/rules", json=rule).status_code == 201
    finally:
        app.state.settings = keyed


def test_a_read_key_needs_an_admin_key() -> None:
    with pytest.raises(ValidationError, match="needs DRIFTLINE_API_KEY"):
        Settings(api_read_key=SecretStr(READ))
    with pytest.raises(ValidationError, match="must differ"):
        Settings(api_key=SecretStr(READ), api_read_key=SecretStr(READ))


def test_an_empty_key_is_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose passes DRIFTLINE_API_KEY empty when it is unset."""
    monkeypatch.setenv("DRIFTLINE_API_KEY", "")
    monkeypatch.setenv("DRIFTLINE_API_READ_KEY", " ")
    settings = Settings()
    assert settings.api_key is None and settings.api_read_key is None
