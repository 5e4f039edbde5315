"""Which reference each window is compared with, and how warm-up and rolling ones are learned.

Per model version, in order: an uploaded reference for that version, an uploaded one for any
version (``*``), then the policy's own: *warm-up* (the version's first ``windows`` windows with
at least ``min_events`` events, learned once and persisted) or *rolling* (the previous
``windows`` windows that did not drift, rebuilt as it moves). No reference yet: no drift test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from detectors.drift.window import ModelReference, ProfileAccumulator
from detectors.profile import WindowProfile

ANY_VERSION = "*"


@dataclass(frozen=True)
class ReferencePolicy:
    mode: Literal["warmup", "rolling"] = "warmup"
    windows: int = 5
    min_events: int = 1000


class ReferenceBook:
    def __init__(self, policy: ReferencePolicy) -> None:
        self.policy = policy
        self._uploaded: dict[tuple[str, str], ModelReference] = {}
        self._learned: dict[tuple[str, str], ModelReference] = {}
        self._warming: dict[tuple[str, str], ProfileAccumulator] = {}
        self._rolling: dict[str, deque[WindowProfile]] = {}
        self._rolling_ref: dict[str, tuple[int, ModelReference]] = {}

    def load(self, references: Iterable[tuple[str, ModelReference]]) -> None:
        """References from the store: uploaded ones replace, learned ones are kept."""
        for model, reference in references:
            key = (model, reference.version)
            if reference.source == "uploaded":
                self._uploaded[key] = reference
                self._warming.pop(key, None)
            else:
                self._learned.setdefault(key, reference)

    def reference_for(self, model: str, version: str) -> ModelReference | None:
        uploaded = self._uploaded.get((model, version)) or self._uploaded.get((model, ANY_VERSION))
        if uploaded is not None:
            return uploaded
        if self.policy.mode == "rolling":
            return self._rolling_reference(model, version)
        return self._learned.get((model, version))

    def _rolling_reference(self, model: str, version: str) -> ModelReference | None:
        window = self._rolling.get(model)
        if not window or len(window) < self.policy.windows:
            return None
        stamp = id(window[-1])
        cached = self._rolling_ref.get(model)
        if cached is None or cached[0] != stamp:  # rebuilt once per new window, not per test
            cached = (stamp, ModelReference.from_profiles(list(window), version, "rolling"))
            self._rolling_ref[model] = cached
        return cached[1]

    def observe(
        self, model: str, version: str, profile: WindowProfile, drifted: bool
    ) -> ModelReference | None:
        """Feed a tested window to the policy; returns a newly learned reference to persist."""
        if self.policy.mode == "rolling":
            if not drifted:  # windows that raised drift never become the reference
                queue = self._rolling.setdefault(model, deque(maxlen=self.policy.windows))
                queue.append(profile)
            return None
        key = (model, version)
        if key in self._learned or key in self._uploaded or (model, ANY_VERSION) in self._uploaded:
            return None
        warming = self._warming.setdefault(key, ProfileAccumulator())
        warming.add(profile)  # merged as it comes: memory of one window, not of all of them
        if warming.windows < self.policy.windows or warming.events < self.policy.min_events:
            return None
        reference = warming.reference(version, "warmup")
        self._learned[key] = reference
        del self._warming[key]
        return reference
