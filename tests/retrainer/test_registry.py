"""The registry on a real directory: versions, the champion pointer, and what readers see."""

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers.retrainer_synthetic import binary, examples, table

from driftline.messages import PROMOTED, ROLLED_BACK, ModelUpdate
from retrainer.evaluate import compare
from retrainer.registry import Registry, VersionNotFound
from retrainer.train import TrainConfig, TrainedModel, predict, train
from retrainer.worker import follow_deployment

SMALL = TrainConfig(epochs=2, hidden=(8,))


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    data = table(200, seed=200)
    return train(examples(data, binary(data.x1 > 0), start=1_700_000_000.0), SMALL)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    ticks = iter(range(1_000, 10_000))
    yield Registry(tmp_path / "models", clock=lambda: float(next(ticks)))
    # nothing half-written is ever left behind
    assert not [p for p in (tmp_path / "models").rglob(".*")]


def test_register_writes_weights_and_metadata(registry: Registry, trained: TrainedModel) -> None:
    holdout_data = table(100, seed=201)
    evaluation = compare(None, trained, examples(holdout_data, binary(holdout_data.x1 > 0)))
    info = registry.register(
        "fraud",
        trained,
        {"code_version": "abc123", "evaluation": evaluation.to_dict(), "notes": "first"},
    )
    assert (info.model, info.version, info.status) == ("fraud", "1", "candidate")
    folder = registry.root / "fraud" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "weights.pt"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["code_version"] == "abc123" and meta["notes"] == "first"
    assert (meta["data_start"], meta["data_end"]) == (1_700_000_000.0, 1_700_000_199.0)
    assert meta["n_examples"] == 200 and meta["warm_started"] is False
    assert meta["config"]["hidden"] == [8]
    assert meta["metrics"]["evaluation"]["promote"] == evaluation.promote
    assert meta["metrics"]["training"]["n_train"] == 160
    assert meta["spec"] == trained.spec.to_dict()
    assert registry.register("fraud", trained, {"parent_version": 1}).version == "2"
    assert [v.version for v in registry.versions("fraud")] == ["1", "2"]
    assert registry.version("fraud", "2").parent_version == "1"
    assert registry.register("voice::asr", trained).version == "1"  # a pipeline stage
    assert registry.models() == ["fraud", "voice::asr"]


def test_load_gives_back_the_same_model(registry: Registry, trained: TrainedModel) -> None:
    registry.register("fraud", trained)
    loaded = registry.load("fraud", "1")
    assert loaded.spec == trained.spec and loaded.config == trained.config
    assert loaded.metrics == trained.metrics
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in trained.state_dict.items())
    rows = examples(table(20, seed=202), [0] * 20)
    assert predict(loaded, rows) == predict(trained, rows)


def test_promote_rollback_and_reject(registry: Registry, trained: TrainedModel) -> None:
    for _ in range(3):
        registry.register("fraud", trained)
    assert registry.champion("fraud") is None
    registry.promote("fraud", "1")
    promoted = registry.promote("fraud", "2", reason="better on holdout")
    assert promoted.status == "champion"
    assert promoted.history[-1]["reason"] == "better on holdout"
    assert registry.version("fraud", "1").status == "retired"
    pointer = json.loads((registry.root / "fraud" / "current.json").read_text())
    assert pointer["version"] == "2" and pointer["event"] == "promoted"

    back = registry.rollback("fraud", "1", reason="complaints from eu")
    assert back.status == "champion" and back.history[-1]["event"] == "rolled_back"
    current = registry.champion("fraud")
    assert current is not None and current.version == "1"
    assert registry.version("fraud", "2").status == "retired"
    assert [h["status"] for h in back.history] == ["candidate", "champion", "retired", "champion"]
    with pytest.raises(ValueError, match="use promote\\(\\) to move forward"):
        registry.rollback("fraud", "3")

    rejected = registry.reject("fraud", "3", "worse on region=us")
    assert rejected.status == "rejected" and rejected.history[-1]["reason"] == "worse on region=us"
    with pytest.raises(ValueError, match="is serving"):
        registry.reject("fraud", "1", "oops")
    assert [v.status for v in registry.versions("fraud")] == ["champion", "retired", "rejected"]


def test_rollback_needs_a_champion(registry: Registry, trained: TrainedModel) -> None:
    registry.register("fraud", trained)
    with pytest.raises(ValueError, match="no champion to roll back from"):
        registry.rollback("fraud", "1")


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "..", "x\\y", "a" * 129])
def test_model_names_cannot_escape_the_root(
    registry: Registry, trained: TrainedModel, name: str
) -> None:
    with pytest.raises(ValueError, match="cannot name a directory"):
        registry.register(name, trained)
    with pytest.raises(ValueError, match="cannot name a directory"):
        registry.versions(name)
    assert list(registry.root.parent.iterdir()) == []  # nothing created, inside or out


def test_bad_versions_and_metadata_are_refused(registry: Registry, trained: TrainedModel) -> None:
    with pytest.raises(ValueError, match="not a positive integer"):
        registry.version("fraud", "../1")
    with pytest.raises(VersionNotFound, match="no version '7'"):
        registry.version("fraud", "7")
    with pytest.raises(ValueError, match="unknown metadata \\['owner'\\]"):
        registry.register("fraud", trained, {"owner": "risk"})
    assert registry.versions("fraud") == []


def test_a_failed_pointer_write_leaves_the_old_pointer(
    registry: Registry, trained: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("fraud", trained)
    registry.register("fraud", trained)
    registry.promote("fraud", "1")
    replace = os.replace

    def full_disk_for_the_pointer(src: str, dst: str) -> None:
        if str(dst).endswith("current.json"):
            raise OSError("disk full")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk_for_the_pointer)
    with pytest.raises(OSError, match="disk full"):
        registry.promote("fraud", "2")
    monkeypatch.undo()
    current = registry.champion("fraud")  # the pointer is the truth, whatever meta.json says
    assert current is not None and current.version == "1"
    pointer = json.loads((registry.root / "fraud" / "current.json").read_text())
    assert pointer["version"] == "1"


def test_readers_never_see_a_partial_pointer(registry: Registry, trained: TrainedModel) -> None:
    registry.register("fraud", trained)
    registry.register("fraud", trained)
    registry.promote("fraud", "1")
    seen: list[str | None] = []
    errors: list[Exception] = []
    done = threading.Event()

    def read() -> None:
        reader = Registry(registry.root)
        while not done.is_set():
            try:
                current = reader.champion("fraud")  # a torn file would not parse
            except Exception as exc:
                errors.append(exc)
                return
            seen.append(current.version if current else None)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(60):
            registry.promote("fraud", "2" if i % 2 == 0 else "1")
    finally:
        done.set()
        thread.join()
    assert errors == []
    assert set(seen) <= {"1", "2"} and seen


def test_the_registry_follows_a_deployment_that_ended_promoted(
    registry: Registry, trained: TrainedModel
) -> None:
    for _ in range(3):
        registry.register("fraud", trained, {})
    registry.promote("fraud", "1")

    def update(
        version: str, previous: str, event: str = PROMOTED, model: str = "fraud"
    ) -> ModelUpdate:
        split = {version: 100.0}
        return ModelUpdate(model, version, event, "no metric worse", 1.0, previous, split=split)

    # the retrainer's own promotions (no split) change nothing here, nor does the rollback of
    # an active deployment (its baseline, the champion, serves on)
    assert follow_deployment(registry, replace(update("2", "1"), split=None)) is None
    assert follow_deployment(registry, update("1", "2", ROLLED_BACK)) is None
    info = follow_deployment(registry, update("2", "1"))
    assert info is not None and info.status == "champion"
    champion = registry.champion("fraud")
    assert champion is not None and champion.version == "2"
    assert champion.history[-1]["reason"] == "deployment: no metric worse"
    assert registry.version("fraud", "1").status == "retired"
    # a replayed old announcement (its baseline is no longer the champion), an unknown
    # version or model: nothing
    assert follow_deployment(registry, update("3", "1")) is None
    assert follow_deployment(registry, update("9", "2")) is None
    assert follow_deployment(registry, update("2", "1", model="other")) is None
    assert [v.status for v in registry.versions("fraud")] == ["retired", "champion", "candidate"]
    # the promoted deployment undone (its rollback names the candidate as previous): version
    # 1 serves again
    info = follow_deployment(registry, update("1", "2", ROLLED_BACK))
    assert info is not None and registry.champion("fraud").version == "1"  # type: ignore[union-attr]
    assert registry.champion("fraud").history[-1]["event"] == "rolled_back"  # type: ignore[union-attr]
