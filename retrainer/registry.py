"""Model versions on disk: weights, metadata, and which version serves.

Layout: ``root/<model>/<version>/weights.pt`` (``torch.save`` of the state dict, loaded with
``weights_only=True``), ``root/<model>/<version>/meta.json``, and ``root/<model>/current.json``,
the pointer to the champion. Versions are "1", "2", ... in registration order.

Readers never see a partial file: a version is written into a hidden directory and renamed
into place whole, and every later change to ``meta.json`` or ``current.json`` is a temp file
plus ``os.replace``. That is enough for one writer (the retrainer) and any number of readers
(the API). The pointer is the truth about which version is champion; statuses in
``meta.json`` follow it (the pointer is written between promoting the new champion and
retiring the old one, so a crash there leaves an extra "champion" status, never a champion
without the pointer).

Statuses: "candidate" (registered), "champion", "retired" (was champion), "rejected".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from retrainer.data import FeatureSpec
from retrainer.train import TrainConfig, TrainedModel

# ':' lets a pipeline stage ("voice::asr", see driftline.units) have versions of its own
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_VERSION = re.compile(r"[1-9][0-9]{0,17}")
# what ``register`` accepts besides the trained model itself
METADATA_KEYS = frozenset(
    {"parent_version", "code_version", "evaluation", "errors", "notes", "trigger"}
)


class VersionNotFound(LookupError):
    """No such model or version in the registry."""


@dataclass(frozen=True)
class VersionInfo:
    """The contents of one ``meta.json``. ``metrics``: ``{"training": ..., "evaluation":
    Comparison.to_dict() or None}``; ``history``: status changes, oldest first."""

    model: str
    version: str
    status: str
    created_at: float
    parent_version: str | None
    data_start: float
    data_end: float
    n_examples: int
    config: Mapping[str, Any]
    metrics: Mapping[str, Any]
    code_version: str | None
    spec: Mapping[str, Any]
    warm_started: bool
    warm_start_skipped: str | None
    notes: str
    trigger: Mapping[str, Any] | None
    history: tuple[Mapping[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "history": list(self.history)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionInfo:
        known = {f.name for f in fields(cls)}  # keys a later format adds are ignored
        values = {k: v for k, v in data.items() if k in known}
        return cls(**{**values, "history": tuple(data["history"])})


class Registry:
    """Versions of every model under ``root``; ``clock`` stamps times (epoch seconds)."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.clock = clock

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _MODEL_NAME.fullmatch(p.name))

    def register(
        self, model: str, trained: TrainedModel, metadata: Mapping[str, Any] | None = None
    ) -> VersionInfo:
        """Store ``trained`` as the next version, a "candidate". ``metadata`` keys: see
        ``METADATA_KEYS`` (``evaluation`` is a ``Comparison.to_dict()``)."""
        metadata = dict(metadata or {})
        unknown = set(metadata) - METADATA_KEYS
        if unknown:
            raise ValueError(
                f"unknown metadata {sorted(unknown)}; use {sorted(METADATA_KEYS)} "
                "(free-form details go in 'notes' or 'trigger')"
            )
        folder = self._model_dir(model)
        folder.mkdir(parents=True, exist_ok=True)
        now = self.clock()
        incoming = folder / f".incoming-{uuid.uuid4().hex}"
        incoming.mkdir()
        try:
            torch.save(dict(trained.state_dict), incoming / "weights.pt")
            # another writer may take a number between listing and renaming: take the next one
            for _ in range(100):
                number = max((int(v) for v in self._version_names(model)), default=0) + 1
                info = _new_version(model, str(number), trained, metadata, now)
                _write_json(incoming / "meta.json", info.to_dict())
                try:
                    incoming.rename(folder / info.version)
                except OSError:
                    if not (folder / info.version).exists():
                        raise
                    continue
                return info
            raise RuntimeError(f"could not allocate a version number for {model!r}")
        finally:
            if incoming.exists():
                shutil.rmtree(incoming)

    def versions(self, model: str) -> list[VersionInfo]:
        """Every version, oldest first."""
        return [self.version(model, v) for v in self._version_names(model)]

    def version(self, model: str, version: str) -> VersionInfo:
        path = self._version_dir(model, version) / "meta.json"
        try:
            return VersionInfo.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise VersionNotFound(f"model {model!r} has no version {version!r}") from None

    def champion(self, model: str) -> VersionInfo | None:
        try:
            pointer = json.loads((self._model_dir(model) / "current.json").read_text())
        except FileNotFoundError:
            return None
        return self.version(model, pointer["version"])

    def promote(self, model: str, version: str, reason: str = "") -> VersionInfo:
        """Make ``version`` the champion; the previous one is "retired"."""
        return self._make_champion(model, version, "promoted", reason)

    def rollback(self, model: str, version: str, reason: str = "") -> VersionInfo:
        """Make an *earlier* version than the current champion serve again."""
        current = self.champion(model)
        if current is None:
            raise ValueError(f"model {model!r} has no champion to roll back from")
        self.version(model, version)  # exists?
        if int(version) >= int(current.version):
            raise ValueError(
                f"rollback goes to a version older than the champion {current.version}, "
                f"not {version}; use promote() to move forward"
            )
        return self._make_champion(model, version, "rolled_back", reason)

    def reject(self, model: str, version: str, reason: str) -> VersionInfo:
        """Mark a version as not to be served (it stays on disk for the record)."""
        current = self.champion(model)
        if current is not None and current.version == version:
            raise ValueError(
                f"version {version} of {model!r} is serving; roll back or promote another "
                "version before rejecting it"
            )
        return self._set_status(model, version, "rejected", "rejected", reason)

    def load(self, model: str, version: str) -> TrainedModel:
        info = self.version(model, version)
        weights = self._version_dir(model, version) / "weights.pt"
        state = torch.load(weights, map_location="cpu", weights_only=True)
        return TrainedModel(
            spec=FeatureSpec.from_dict(info.spec),
            state_dict=state,
            config=TrainConfig.from_dict(info.config),
            metrics=dict(info.metrics.get("training") or {}),
            n_examples=info.n_examples,
            warm_started=info.warm_started,
            data_start=info.data_start,
            data_end=info.data_end,
            warm_start_skipped=info.warm_start_skipped,
        )

    def _make_champion(self, model: str, version: str, event: str, reason: str) -> VersionInfo:
        previous = self.champion(model)
        if previous is not None and previous.version == version:
            return previous
        promoted = self._set_status(model, version, "champion", event, reason)
        pointer = {"version": version, "since": self.clock(), "event": event, "reason": reason}
        _write_json(self._model_dir(model) / "current.json", pointer)
        if previous is not None:
            self._set_status(model, previous.version, "retired", "retired", f"{event} {version}")
        return promoted

    def _set_status(
        self, model: str, version: str, status: str, event: str, reason: str
    ) -> VersionInfo:
        info = self.version(model, version)
        change = {"at": self.clock(), "status": status, "event": event, "reason": reason}
        data = {**info.to_dict(), "status": status, "history": [*info.history, change]}
        _write_json(self._version_dir(model, version) / "meta.json", data)
        return VersionInfo.from_dict(data)

    def _version_names(self, model: str) -> list[str]:
        folder = self._model_dir(model)
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if _VERSION.fullmatch(p.name)]
        return sorted(names, key=int)

    def _model_dir(self, model: str) -> Path:
        if not _MODEL_NAME.fullmatch(model):
            raise ValueError(
                f"model name {model!r} cannot name a directory: use 1-128 letters, digits, "
                "'.', '_', ':' or '-', starting with a letter or digit"
            )
        return self.root / model

    def _version_dir(self, model: str, version: str) -> Path:
        if not _VERSION.fullmatch(version):
            raise ValueError(f"version {version!r} is not a positive integer like '3'")
        return self._model_dir(model) / version


def _new_version(
    model: str, version: str, trained: TrainedModel, metadata: Mapping[str, Any], now: float
) -> VersionInfo:
    parent = metadata.get("parent_version")
    evaluation = metadata.get("evaluation")
    errors = metadata.get("errors")
    return VersionInfo(
        model=model,
        version=version,
        status="candidate",
        created_at=now,
        parent_version=None if parent is None else str(parent),
        data_start=trained.data_start,
        data_end=trained.data_end,
        n_examples=trained.n_examples,
        config=trained.config.to_dict(),
        metrics={
            "training": dict(trained.metrics),
            "evaluation": None if evaluation is None else dict(evaluation),
            # training, training-dev and holdout errors: bias, variance, data mismatch
            "errors": None if errors is None else dict(errors),
        },
        code_version=metadata.get("code_version"),
        spec=trained.spec.to_dict(),
        warm_started=trained.warm_started,
        warm_start_skipped=trained.warm_start_skipped,
        notes=str(metadata.get("notes", "")),
        trigger=metadata.get("trigger"),
        history=({"at": now, "status": "candidate", "event": "registered"},),
    )


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``path`` whole or not at all: readers see the old file or the new one."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
