"""POST /v1/models/{model}/retrain through the API, with the retrainer deciding: real broker,
real ClickHouse server, two API replicas over it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import wait_until
from helpers.retrainer_synthetic import binary, examples, table

from api.main import create_app
from driftline import topics
from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.messages import PROMOTED, ModelUpdate
from driftline.settings import Settings
from driftline.store import Store, Stores
from driftline.store.jobs import ACTIVE, JobStore
from driftline.store.server import ServerBackend
from driftline.topics import topic_partitions
from retrainer.train import TrainConfig, train
from retrainer.worker import registry_of, run_retrainer


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
    # no labels for the model: an admitted job waits for them (active) until the stop. A
    # short session: Tansu takes about half of it to admit the retrainer to its group
    return Settings(
        kafka_bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        retrain_label_wait_s=300,
        consumer_session_timeout_s=6,
    )


@pytest.fixture
def stores(clickhouse_url: str) -> Iterator[list[Store]]:
    """Three connections to one database: two API replicas and the retrainer."""
    opened = [Store(ServerBackend(clickhouse_url)) for _ in range(3)]
    opened[0].init_schema()
    yield opened
    for store in opened:
        store.close()


class RetrainerRunning:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run_retrainer, args=(settings, Stores(store), self.stop), daemon=True
        )

    def __enter__(self) -> RetrainerRunning:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the retrainer did not stop"


async def post_all(apps: list[FastAPI], n: int) -> list[httpx.Response]:
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        for app in apps
    ]
    try:
        # the retrainer may still be joining its group: wait up to 30 s for the decisions
        posts = [
            clients[i % len(clients)].post("/v1/models/m/retrain?wait=30", timeout=60)
            for i in range(n)
        ]
        return await asyncio.gather(*posts)
    finally:
        for client in clients:
            await client.aclose()


def test_concurrent_requests_on_two_replicas_admit_one_job(
    settings: Settings, stores: list[Store]
) -> None:
    apps = [create_app(settings, Stores(store)) for store in stores[:2]]
    try:
        with RetrainerRunning(settings, stores[2]):
            replies = asyncio.run(post_all(apps, 20))
            admitted = [r.json() for r in replies if r.status_code == 202]
            refused = [r.json()["detail"] for r in replies if r.status_code == 409]
            assert len(admitted) == 1 and len(refused) == 19, [r.text for r in replies]
            [job] = admitted
            assert job["state"] in ACTIVE and job["reason"] == "manual"
            # the others are duplicates of that job
            assert all(d.startswith(f"not queued: job {job['id']} is already") for d in refused)
            active = [j for j in JobStore(stores[0].backend).jobs("m") if j.state in ACTIVE]
            assert [j.id for j in active] == [job["id"]]
    finally:
        for app in apps:
            app.state.ingest.close()


def test_a_request_the_retrainer_has_not_decided_yet_is_followed_by_its_id(
    settings: Settings, stores: list[Store]
) -> None:
    registry = registry_of(settings)
    data = table(100, seed=3)
    trained = train(examples(data, binary(data.x1 > 0), start=1.0), TrainConfig(epochs=1))
    for _ in range(2):  # the registry holds versions 1 (the champion) and 2
        registry.register("m", trained, {})
    registry.promote("m", "1")
    app = create_app(settings, Stores(stores[0]))
    try:
        with TestClient(app) as client:
            reply = client.post("/v1/models/m/retrain", params={"wait": 0.5})
            assert reply.status_code == 202, reply.text
            job = reply.json()
            assert job["state"] == "requested" and "not decided" in job["log"][-1]
            assert client.get(f"/v1/retrain-jobs/{job['id']}").status_code == 404
            with RetrainerRunning(settings, stores[1]):
                decided = wait_until(
                    lambda: client.get(f"/v1/retrain-jobs/{job['id']}").status_code == 200,
                    timeout=30,
                    what="the retrainer's decision",
                )
                assert decided
                stored = client.get(f"/v1/retrain-jobs/{job['id']}").json()
                assert stored["state"] in ACTIVE and stored["requested_at"] == job["requested_at"]
                again = client.post("/v1/models/m/retrain")
                assert again.status_code == 409 and "already" in again.json()["detail"]
                # a deployment that ended promoted, on the wire: the registry follows it
                registry = registry_of(settings)
                follows = ModelUpdate("m", "2", PROMOTED, "judged", 1.0, "1", split={"2": 100.0})
                app.state.ingest.publish(topics.MODEL_UPDATES, follows.key, follows.to_bytes())
                wait_until(
                    lambda: getattr(registry.champion("m"), "version", None) == "2",
                    timeout=30,
                    what="the registry following the deployment",
                )
    finally:
        app.state.ingest.close()
