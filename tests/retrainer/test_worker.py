"""The retrainer's I/O on both store backends: job life cycle, cooldown, duplicates, failures,
champion/challenger, promotion and rollback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest

from driftline import topics
from driftline.messages import RetrainRequest
from driftline.settings import Settings
from driftline.store import Store, Stores
from driftline.store.jobs import JobStore, RetrainJob
from driftline.store.labels import LabelRow, LabelStore, PredictionRow
from retrainer.registry import Registry
from retrainer.worker import Retrainer, promote_version

Published = list[tuple[str, bytes, bytes]]


def load_events(
    store: Store,
    n: int = 600,
    *,
    model: str = "m",
    flip: bool = False,
    single_class: bool = False,
    noise: bool = False,
    seed: int = 0,
    span: tuple[float, float] = (600.0, 0.0),
) -> None:
    """Labelled predictions of ``model`` from ``span[0]`` to ``span[1]`` seconds ago: label =
    x > 0 (or the reverse, or a coin flip), channel web/mobile."""
    rng = np.random.default_rng(seed)
    labels = LabelStore(store.backend)
    now = time.time()
    predictions, label_rows = [], []
    for i in range(n):
        x = float(rng.normal())
        ts = now - span[0] + i * (span[0] - span[1]) / n
        channel = "mobile" if i % 2 else "web"
        event = {
            "model": model,
            "id": f"{model}{seed}-{i}",
            "features": {"x": x, "channel": channel},
            "prediction": 0.5,
            "segment": {"channel": channel},
        }
        window = int(ts // 60) * 60
        ident = f"{model}{seed}-{i}"
        predictions.append(PredictionRow(model, "", ident, ts, window, "1", event))
        label = 1 if single_class else int((x > 0) != flip)
        if noise:
            label = int(rng.random() < 0.5)
        label_rows.append(LabelRow(model, "", ident, label, int(ts * 1000) + 5000))
    labels.write_predictions(predictions)
    labels.write_labels(label_rows)


@pytest.fixture
def retrainer(store: Store, tmp_path: Path) -> Iterator[tuple[Retrainer, Published]]:
    settings = Settings(
        data_dir=tmp_path,
        retrain_default_policy="auto",
        retrain_cooldown_s=3600,
        retrain_epochs=15,
        retrain_label_wait_s=0,
    )
    published: Published = []
    yield (
        Retrainer(
            settings,
            Stores(store),
            Registry(tmp_path / "models"),
            lambda t, k, v: published.append((t, k, v)),
        ),
        published,
    )


def queue(r: Retrainer, model: str = "m") -> RetrainJob:
    admission = r.decide(RetrainRequest.new(model, "manual"))
    assert admission.job is not None, admission.why
    return admission.job


def test_a_job_trains_registers_and_promotes(
    store: Store, retrainer: tuple[Retrainer, Published]
) -> None:
    r, published = retrainer
    load_events(store)
    request = RetrainRequest.new("m", "manual")
    job = r.decide(request).job
    assert job is not None
    done = r.take(job.id)
    assert done is not None and done.state == "succeeded", done and done.log
    assert done.version == "1" and done.data_start is not None
    assert done.metrics["challenger"]["accuracy"] > 0.85
    assert [j.state for j in JobStore(store.backend).jobs("m")] == ["succeeded"]
    champion = r.registry.champion("m")
    assert champion is not None and champion.version == "1"
    assert champion.metrics["evaluation"]["promote"] is True
    assert champion.code_version
    # where the error comes from: training, training-dev (a random tenth of the training
    # period), the production holdout; no human level set: the avoidable bias is the training
    # error
    errors = done.metrics["errors"]
    assert errors == champion.metrics["errors"] and errors["metric"] == "error_rate"
    assert errors["human"] is None and errors["avoidable_bias"] == errors["training"]
    assert errors["variance"] == pytest.approx(errors["training_dev"] - errors["training"])
    assert errors["data_mismatch"] == pytest.approx(errors["holdout"] - errors["training_dev"])
    assert errors["holdout"] == pytest.approx(1 - done.metrics["challenger"]["accuracy"])
    assert done.metrics["n_training_dev"] > 0
    [(topic, key, value)] = published
    assert topic == topics.MODEL_UPDATES and key == b"m"
    assert orjson.loads(value)["version"] == "1"
    # the new version's reference profile, for drift tests of its events
    assert [ref.source for ref in store.references("m") if ref.version == "1"] == ["uploaded"]
    # the same message again (a replay after a crash) does not train twice
    assert r.handle(request) is None


def test_one_active_job_per_model_and_a_cooldown(
    store: Store, retrainer: tuple[Retrainer, Published]
) -> None:
    r, _ = retrainer
    load_events(store)
    first = queue(r)
    refused = r.jobs.decide(RetrainRequest.new("m", "alert"), 3600)
    assert refused.job is None and "already queued" in refused.why
    assert r.jobs.decide(RetrainRequest.new("other", "manual"), 3600).job is not None
    r.take(first.id)
    cooling = r.jobs.decide(RetrainRequest.new("m", "manual"), 3600)
    assert cooling.job is None and cooling.why.startswith("cooldown")
    assert r.jobs.decide(RetrainRequest.new("m", "manual"), 0).job is not None
    # a job that ran and whose challenger was rejected starts a cooldown too; one refused
    # as a duplicate (rejected without starting) does not
    ran = r.jobs.write(replace(RetrainJob.new("x", "alert"), state="rejected", started_at=1.0))
    assert r.jobs.decide(RetrainRequest.new("x", "manual"), 3600).why.startswith("cooldown")
    assert ran.started_at == 1.0
    r.jobs.write(replace(RetrainJob.new("y", "alert"), state="rejected"))
    assert r.jobs.decide(RetrainRequest.new("y", "manual"), 3600).job is not None
    # a request from outside (no job id) is admitted by the same rules: refused here
    assert r.handle(RetrainRequest.from_bytes(b'{"model": "m", "reason": "external"}')) is None


def test_a_request_is_decided_once_and_a_refusal_is_kept_with_its_reason(
    store: Store, retrainer: tuple[Retrainer, Published]
) -> None:
    r, _ = retrainer
    request = RetrainRequest.new("m", "manual")
    first = r.decide(request)
    assert first.job is not None and first.job.id == request.job_id
    assert r.decide(request).decision == first.decision  # a replayed request: decided already
    refusals = [RetrainRequest.new("m", "alert", alert_id=f"a{i}") for i in range(4)]
    for refusal in refusals:
        assert r.decide(refusal).job is None
    [*refused, queued] = r.jobs.jobs("m")
    assert queued.id == request.job_id and queued.state == "queued"
    assert {j.id for j in refused} == {q.job_id for q in refusals}
    assert all(
        j.refused and j.log[-1].endswith("is already queued for this model") for j in refused
    )
    assert refused[0].log[-1].split(" ", 1)[1].startswith("not queued: job ")
    # admission reads the model's standing jobs: no number of refusals crowds out the
    # active one (the filter runs after grouping, right on both engines)
    assert [j.id for j in r.jobs.standing("m", limit=1)] == [request.job_id]


def test_retrain_requests_on_the_wire() -> None:
    request = RetrainRequest.new("fraud", "alert", alert_id="a1", rule_id="r1")
    assert RetrainRequest.from_bytes(request.to_bytes()) == request
    assert request.key == b"fraud"
    # any Kafka client may ask with just a model
    other = RetrainRequest.from_bytes(b'{"model": "fraud"}')
    assert other.reason == "external" and len(other.job_id) == 32
    for bad, why in [
        (b"[1]", "JSON object"),
        (b'{"model": ""}', '"model"'),
        (b'{"model": "m", "job_id": 3}', '"job_id"'),
        (b'{"model": "m", "requested_at": "soon"}', '"requested_at"'),
        (b"{", "unexpected"),
    ]:
        with pytest.raises(ValueError, match=why):
            RetrainRequest.from_bytes(bad)


def test_failures_say_why(store: Store, retrainer: tuple[Retrainer, Published]) -> None:
    r, _ = retrainer
    no_labels = r.take(queue(r, "ghost").id)
    assert no_labels is not None and no_labels.state == "failed"
    assert "0 labelled events" in no_labels.log[-1] and "at least 200" in no_labels.log[-1]
    load_events(store, single_class=True)
    one_class = r.take(queue(r).id)
    assert one_class is not None and one_class.state == "failed"
    assert "class" in one_class.log[-1]
    assert r.registry.champion("m") is None


def test_a_worse_challenger_is_rejected_and_rollback_is_one_call(
    store: Store, retrainer: tuple[Retrainer, Published]
) -> None:
    r, published = retrainer
    load_events(store, n=600, span=(1200.0, 600.0))
    assert r.take(queue(r).id).state == "succeeded"  # type: ignore[union-attr]
    # the world flips (concept drift) from then on: a new job learns it and wins on recent data
    load_events(store, n=900, flip=True, seed=1)
    r.settings.retrain_cooldown_s = 0
    second = r.take(queue(r).id)
    assert second is not None and second.state == "succeeded", second and second.log
    assert second.metrics["warm_started"] is True
    assert r.registry.champion("m").version == "2"  # type: ignore[union-attr]
    # rollback: one call, announced to serving code
    info = promote_version(r.registry, r.stores, r.publish, "m", "1", "v2 misbehaves in production")
    assert info.status == "champion" and r.registry.champion("m").version == "1"  # type: ignore[union-attr]
    assert orjson.loads(published[-1][2])["event"] == "rolled_back"


def test_a_challenger_worse_than_the_champion_is_rejected(
    store: Store, retrainer: tuple[Retrainer, Published]
) -> None:
    r, published = retrainer
    r.settings.retrain_cooldown_s = 0
    load_events(store, 600, model="n", span=(3000, 2400))
    assert r.take(queue(r, "n").id).state == "succeeded"  # type: ignore[union-attr]
    # newer data: the training part has coin-flip labels, the newest (holdout) part the rule
    load_events(store, 800, model="n", noise=True, seed=1, span=(2400, 300))
    load_events(store, 200, model="n", seed=2, span=(300, 0))
    job = r.take(queue(r, "n").id)
    assert job is not None and job.state == "rejected", job and job.log
    assert "not promoted" in job.log[-1]
    assert r.registry.version("n", job.version).status == "rejected"
    assert r.registry.champion("n").version == "1"  # type: ignore[union-attr]
    assert len(published) == 1  # only the first promotion was announced


def test_promote_through_the_api_answers_503_when_kafka_does_not_take_the_update(
    store: Store, retrainer: tuple[Retrainer, Published], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from driftline.broker import free_port
    from driftline.ingest import Ingest

    r, _ = retrainer
    load_events(store, n=600)
    assert r.take(queue(r).id).state == "succeeded"  # type: ignore[union-attr]
    down = Ingest(f"127.0.0.1:{free_port()}", r.settings.event_limits(), timeout_s=1.0)
    app = create_app(Settings(data_dir=tmp_path), r.stores, down)
    with TestClient(app) as client:
        reply = client.post("/v1/models/m/versions/1/promote")
    down.close()
    assert reply.status_code == 503, reply.text
    assert "has not been told" in reply.json()["detail"]
