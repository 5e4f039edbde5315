"""Deployments judged as windows are stored (issue 15, points 3 and 4): the worker's judge
promotes a sound canary step by step, rolls a broken one back, says why in a stored verdict
per window, and announces each split on driftline.model-updates; the API creates, lists and
rolls back, refusing bad plans; the SDK's TrafficSplit follows the announcements. On the real
broker and both store backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import orjson
from driftline_sdk import TrafficSplit
from fastapi.testclient import TestClient
from helpers import consume, in_process_worker, wait_until

from alarms.rules import Comparison, Rule
from api.main import create_app
from detectors.drift.window import DriftConfig
from driftline import topics
from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.messages import ModelUpdate
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.topics import topic_partitions
from streams.alarms import AlarmService
from streams.deployments import DeploymentService
from streams.drift import DriftAnalyzer
from streams.references import ReferenceBook, ReferencePolicy

WINDOW = 10  # in_process_worker's windows
TP = (topics.PREDICTIONS, 0)


def traffic(start: int, version: str, n: int, null_rate: float, rng: np.random.Generator,
            shift: float = 0.0) -> Any:  # fmt: skip
    return [
        {"model": "ads", "ts": start + 1, "version": version, "features": {"x": float(x)},
         "prediction": None if rng.random() < null_rate else 0.5, "latency_ms": 10.0}
        for x in rng.normal(shift, 1, n)
    ]  # fmt: skip


def run_windows(store: Store, service: DeploymentService, plan: list[tuple[int, float]],
                start: int, shift: float = 0.0) -> list[str]:  # fmt: skip
    """Windows of 1,000 events; per window (candidate share %, candidate null rate). Returns
    the judge's decision after each window."""
    rng = np.random.default_rng(3)
    # drift analysis on: a window of two versions compares them (the versus.* rows)
    drift = DriftAnalyzer(ReferenceBook(ReferencePolicy("warmup", 2, 50)), DriftConfig())
    worker = in_process_worker(store, log_ids={topics.PREDICTIONS: f"deploy-{start}"}, drift=drift)
    decisions = []

    async def scenario() -> None:
        for i, (share, nulls) in enumerate(plan):
            at = start + i * WINDOW
            n = int(1000 * share / 100)
            batch = traffic(at, "1", 1000 - n, 0.01, rng) + traffic(at, "2", n, nulls, rng, shift)
            await worker.process([(TP, i, at + 1.0, orjson.dumps(batch))])
            worker.manager.close_due(time.time() + 7200)
            await worker.pipeline.store_closed()
            verdict = service.judge("ads", at)
            decisions.append(verdict.decision if verdict else "none")

    asyncio.run(scenario())
    worker.close()
    return decisions


def test_a_sound_canary_is_promoted_step_by_step_and_a_broken_one_rolled_back(
    store: Store,
) -> None:
    stores = Stores(store)
    start = int(time.time() // WINDOW) * WINDOW - 40 * WINDOW
    announced: list[ModelUpdate] = []
    service = DeploymentService(stores.deployments, store, WINDOW, publish=announced.append,
                                refresh_s=0)  # fmt: skip
    told: list[tuple[str, float, str]] = []  # what alert subscribers are told
    service.notify = lambda d, change, reason: told.append((change, d.share, d.by))
    gates = {"min_labelled": 0, "min_events": 50}  # no labels in this test
    sound = stores.deployments.create("ads", "canary", "1", "2", [10, 50, 100], 2, gates, start)
    # the serving side follows the split: 10 % for two windows, 50 % for two, then all
    decisions = run_windows(
        store, service, [(10, 0.01)] * 2 + [(50, 0.01)] * 2 + [(100, 0.01)] * 2, start
    )
    assert decisions == ["hold", "promote", "hold", "promote", "hold", "promote"]
    done = stores.deployments.deployment(sound.id)
    assert done is not None and (done.state, done.by) == ("promoted", "judge")
    assert [(u.event, u.split) for u in announced] == [
        ("canary_step", {"2": 50.0, "1": 50.0}),
        ("canary_step", {"2": 100.0}),
        ("promoted", {"2": 100.0}),
    ]
    assert told == [("step", 50.0, ""), ("step", 100.0, ""), ("promoted", 100.0, "judge")]
    # undone after its promotion (through the API): the worker that promoted it tells
    stores.deployments.update(done, state="rolled_back", by="bob", reason="p95 up after all")
    assert service.judge("ads", start + 6 * WINDOW) is None
    assert told[-1] == ("rolled_back", 0.0, "bob")
    verdicts = stores.deployments.verdicts(sound.id)
    assert [(v.step, v.share, v.decision) for v in verdicts][:2] == [
        (0, 10, "hold"),
        (0, 10, "promote"),
    ]
    assert "output.null_rate" in verdicts[0].evidence

    # a candidate whose outputs are broken for a third of its traffic: rolled back at once
    later = start + 20 * WINDOW
    broken = stores.deployments.create("ads", "canary", "1", "2", [10, 100], 3, gates, later)
    announced.clear()
    decisions = run_windows(store, service, [(10, 0.3)] * 2, later)
    assert decisions[0] == "rollback"
    ended = stores.deployments.deployment(broken.id)
    assert ended is not None and ended.state == "rolled_back" and ended.by == "judge"
    assert "output.null_rate" in ended.reason
    assert [(u.event, u.version, u.split) for u in announced] == [
        ("rolled_back", "1", {"1": 100.0})
    ]
    assert told[-1] == ("rolled_back", 0.0, "judge")
    assert stores.deployments.active("ads") is None

    # a candidate that gets other inputs than the baseline on the same traffic (requests routed
    # by something that matters, or its own feature code): rolled back on the mismatch
    routed = stores.deployments.create("ads", "canary", "1", "2", [25, 100], 5, gates, later + 30)
    decisions = run_windows(store, service, [(25, 0.01)] * 2, later + 30, shift=1.0)
    assert "rollback" in decisions
    ended = stores.deployments.deployment(routed.id)
    assert ended is not None and "versus.inputs" in ended.reason, ended
    assert "routing or feature bug" in ended.reason
    verdicts = stores.deployments.verdicts(routed.id)
    assert verdicts[-1].evidence["versus.inputs"]["p_value"] < 0.0005

    # a rollback made elsewhere (the API) is told by the worker that judges the model
    third = stores.deployments.create("ads", "canary", "1", "2", [10, 100], 3, gates, later + 80)
    assert service.judge("ads", later) is None  # before its first step: loaded, not judged
    stores.deployments.update(third, state="rolled_back", by="alice", reason="paged")
    service.judge("ads", later + 90)
    assert told[-1] == ("rolled_back", 0.0, "alice")


def test_a_rule_with_the_rollback_action_rolls_the_candidate_back(stores: Stores) -> None:
    asked: list[tuple[str, str, str]] = []
    rule = Rule("canary-nulls", "CanaryNulls", "output.null_rate", Comparison.GT, 0.1,
                version="2", actions=("notify", "rollback"))  # fmt: skip
    stores.alarms.put_rule(rule)
    settings = Settings(default_rules=False)
    service = AlarmService(stores.alarms, stores.jobs, settings, publish=None,
                           rollback=lambda *args: asked.append(args)).start()  # fmt: skip
    try:
        service.reload()
        point = MetricPoint("ads", 0, 10, "output.null_rate", 0.4, segment="@version=2",
                            version="2")  # fmt: skip
        service.evaluate_window("ads", 0, [point])
        wait_until(lambda: asked, timeout=10, what="the rollback asked for")
    finally:
        service.stop()
    [(model, reason, by)] = asked
    assert (model, by) == ("ads", "rule:canary-nulls") and "CanaryNulls" in reason


def test_the_api_plans_lists_and_rolls_back_and_traffic_split_follows(
    broker: EmbeddedBroker, store: Store, tmp_path: Any
) -> None:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
    start = int(time.time() // WINDOW) * WINDOW - 5 * WINDOW
    store.write_window([MetricPoint("ads", start, WINDOW, "traffic.count", 100, version="1")], [])
    settings = Settings(kafka_bootstrap=broker.bootstrap, data_dir=tmp_path, window_seconds=WINDOW)
    with (
        TrafficSplit("ads", default="1", bootstrap=broker.bootstrap) as split,
        TestClient(create_app(settings, Stores(store))) as client,
    ):
        assert split.pick("user-1") == "1"
        plan = {"strategy": "canary", "baseline": "1", "candidate": "2", "steps": [5, 25, 100]}
        bad = [
            ({**plan, "steps": [5, 50]}, "steps must end at 100"),
            ({**plan, "steps": [50, 25, 100]}, "steps must rise strictly"),
            ({**plan, "candidate": "1"}, "another version than the baseline"),
            ({**plan, "baseline": "9"}, "baseline '9' has no stored windows"),
            ({**plan, "gates": {"speed": 1}}, "unknown gates"),
            ({**plan, "gates": {"alpha": 2}}, "alpha must be in (0, 1)"),
            ({**plan, "gates": {"latency_tolerance": -0.1}}, "bad gates"),
            ({**plan, "step_windows": 0}, "greater than or equal to 1"),
        ]
        for body, why in bad:
            reply = client.post("/v1/models/ads/deployments", json=body)
            assert reply.status_code == 422 and why in reply.text, reply.text
        created = client.post("/v1/models/ads/deployments", json=plan)
        assert created.status_code == 201, created.text
        deployment = created.json()
        assert (deployment["state"], deployment["share"]) == ("active", 5)
        assert deployment["split"] == {"2": 5.0, "1": 95.0}
        again = client.post("/v1/models/ads/deployments", json=plan)
        assert again.status_code == 409 and "already has an active deployment" in again.text
        # the SDK's helper follows the announced split: 5 % of keys, stably, to version 2
        wait_until(lambda: split.split == {"2": 5.0, "1": 95.0}, timeout=30, what="the split")
        picks = [split.pick(f"user-{i}") for i in range(4000)]
        assert 0.03 < picks.count("2") / len(picks) < 0.07
        assert picks == [split.pick(f"user-{i}") for i in range(4000)]
        listed = client.get("/v1/models/ads/deployments").json()
        assert [d["id"] for d in listed] == [deployment["id"]]
        rolled = client.post(
            f"/v1/models/ads/deployments/{deployment['id']}/rollback",
            json={"by": "alice", "reason": "the pager went off"},
        )
        assert rolled.status_code == 200, rolled.text
        assert (rolled.json()["state"], rolled.json()["by"]) == ("rolled_back", "alice")
        wait_until(lambda: split.split == {"1": 100.0}, timeout=30, what="the rollback split")
        twice = client.post(f"/v1/models/ads/deployments/{deployment['id']}/rollback")
        assert twice.status_code == 409
        one = client.get(f"/v1/models/ads/deployments/{deployment['id']}").json()
        assert one["reason"] == "the pager went off" and one["verdicts"] == []
        # a blue-green switch, promoted by the judge, switched back in one call
        switch = client.post("/v1/models/ads/deployments", json={
            "strategy": "blue_green", "baseline": "1", "candidate": "2"}).json()  # fmt: skip
        assert switch["steps"] == [100] and switch["split"] == {"2": 100.0}
        stores = Stores(store)
        stored = stores.deployments.deployment(switch["id"])
        assert stored is not None
        stores.deployments.update(stored, state="promoted", by="judge")
        back = client.post(f"/v1/models/ads/deployments/{switch['id']}/rollback",
                           json={"by": "carol", "reason": "errors up"})  # fmt: skip
        assert back.status_code == 200, back.text
        assert (back.json()["state"], back.json()["by"], back.json()["split"]) == (
            "rolled_back", "carol", {"1": 100.0})  # fmt: skip
        wait_until(lambda: split.split == {"1": 100.0}, timeout=30, what="the switch back")
        # an older one cannot be: the model's latest, promoted, only
        older = client.post(f"/v1/models/ads/deployments/{deployment['id']}/rollback")
        assert older.status_code == 409 and "only the model's latest" in older.text
    updates = [ModelUpdate.from_bytes(orjson.dumps(e)) for _, m in
               consume(broker.bootstrap, topics.MODEL_UPDATES, 4) for e in [m]]  # fmt: skip
    assert [(u.event, u.split) for u in updates] == [
        ("canary_step", {"2": 5.0, "1": 95.0}),
        ("rolled_back", {"1": 100.0}),
        ("canary_step", {"2": 100.0}),
        ("rolled_back", {"1": 100.0}),
    ]
    assert (updates[-1].version, updates[-1].previous_version) == ("1", "2")
