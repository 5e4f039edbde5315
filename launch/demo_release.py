"""The demo's second model, ``spam``: a release told end to end, as serving code does it (600
requests a window).

Window by window (``W``: the window length):

1. **Shadow.** Version 1 serves. Version 2 scores every request too, sent with the live one's
   ``id`` and ``shadow=True``: monitored (``@shadow=true``: agreement, output shift), not acted
   on. For ``shadow_windows`` windows.
2. **Canary.** The demo asks the API for a canary of version 2 (``POST
   /v1/models/spam/deployments``: 5 % → 25 % → 100 %, ``step_windows`` windows a step). From
   then on every request goes to the version :class:`driftline_sdk.TrafficSplit` picks for its
   user, following the split the worker's judge announces on ``driftline.model-updates``.
   Version 2 is as good as version 1: the judge promotes it step by step.
3. **A bad release.** Once version 2 is promoted, a canary of version 3: it answers nothing
   for one request in five (a serialisation bug), is slower and less accurate. The judge rolls
   it back within a few windows; subscribers get a ``DeploymentRolledBack`` alert.

The scorers are small logistic rules, not trained networks: this story is about releasing, and
``fraud`` (``launch/demo.py``) tells the retraining one. Uncertain cases (a score between 0.4
and 0.6) go to a human reviewer: ``decided_by="human"``, ``traffic.human_share`` per window.
Labels follow 1 to 3 windows later, for 80 % of the requests.
"""

from __future__ import annotations

import heapq
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from driftline_sdk import Monitor, TrafficSplit

from launch.demo import TrafficThread

MODEL = "spam"
STEPS = (5.0, 25.0, 100.0)
# The demo's gates, on top of the judge's defaults (detectors/canary.py): labels come 1 to 3
# windows late, so the error rate does not hold a step back waiting for them (min_labelled 0:
# its harm test still runs on the labels that have come); and the p95 of the 30 requests a
# 5 % step gets per window is noisy, so a step rules out a 50 % slowdown, not the default 20 %
# (which takes about ten such windows). The harm tests keep their tolerances: 10 % on p95.
GATES = {"min_labelled": 0, "latency_margin": 0.5}
REQUESTS_PER_WINDOW = 600  # the 5 % step: 30 a window, enough for a verdict in a few
WEIGHTS = np.array([1.8, 1.2, 5.0, -0.008])  # links, log length, caps ratio, sender age (days)
BIAS = -6.6


def spam_features(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Columns: links, log message length, share of capitals, sender age in days."""
    return np.column_stack(
        [
            rng.poisson(1.2, n),
            rng.normal(5.0, 0.8, n),
            rng.beta(1.5, 8.0, n),
            rng.exponential(300.0, n),
        ]
    ).astype(np.float64)


def true_probability(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1 / (1 + np.exp(-(x @ WEIGHTS + BIAS))), dtype=np.float64)


class Scorer:
    """One version: the true rule with a fixed error of its own (``noise`` on the weights),
    ``null_rate`` answers missing, latencies scaled by ``slower``."""

    def __init__(self, seed: int, noise: float, null_rate: float = 0.0, slower: float = 1.0):
        rng = np.random.default_rng(seed)
        self.weights = WEIGHTS * (1 + rng.normal(0, noise, WEIGHTS.size))
        self.null_rate = null_rate
        self.slower = slower

    def score(self, x: npt.NDArray[np.float64], rng: np.random.Generator) -> list[float | None]:
        p = 1 / (1 + np.exp(-(x @ self.weights + BIAS)))
        missing = rng.random(len(p)) < self.null_rate
        return [None if m else round(float(v), 4) for v, m in zip(p, missing, strict=True)]


VERSIONS = {
    "1": Scorer(11, 0.05),
    "2": Scorer(12, 0.05),
    "3": Scorer(13, 0.3, null_rate=0.2, slower=1.6),  # the bad release
}


class ReleaseDemo(TrafficThread):
    """Sends ``spam``'s traffic (600 requests a window) and walks its release through the
    API."""

    def __init__(
        self,
        bootstrap: str,
        api: str,
        window_seconds: int,
        *,
        rate: float | None = None,  # requests per second; None: REQUESTS_PER_WINDOW a window
        shadow_windows: int = 4,
        step_windows: int = 2,
        api_key: str | None = None,
        say: Callable[[str], None] = print,
        seed: int = 21,
    ) -> None:
        self.bootstrap = bootstrap
        self.api = api.rstrip("/")
        self.w = window_seconds
        self.rate = REQUESTS_PER_WINDOW / window_seconds if rate is None else rate
        self.shadow_windows = shadow_windows
        self.step_windows = step_windows
        self.api_key = api_key
        self.say = say
        self.rng = np.random.default_rng(seed)
        self.phase = "shadow"  # shadow | canary-2 | canary-3 | done
        self.deployment: dict[str, Any] | None = None
        self._pending: list[tuple[float, str, int]] = []  # (due, id, label): a heap
        super().__init__("driftline-release")

    # -- the story ------------------------------------------------------------------------
    def _run(self) -> None:
        monitor = Monitor(self.bootstrap, linger_s=0.1)
        split = TrafficSplit(MODEL, default="1", bootstrap=self.bootstrap)
        started = time.monotonic()
        next_check = started
        self.say(
            f"demo: {MODEL!r} version 1 serves; version 2 runs in shadow on every request for "
            f"{self.shadow_windows} windows (shadow=True, same id)"
        )
        try:
            while not self._stop.is_set():
                tick = time.monotonic()
                if tick >= next_check:
                    next_check = tick + 1.0
                    self._advance(tick - started)
                self._send(monitor, split, tick)
                self._send_due_labels(monitor, tick)
                self._stop.wait(max(0.0, 0.1 - (time.monotonic() - tick)))
        finally:
            split.close()
            monitor.close(timeout=10)

    def _advance(self, elapsed: float) -> None:
        """Start the next deployment when its time has come; tell each change of the current
        one (the judge's verdicts, read back through the API)."""
        try:
            if self.phase == "shadow" and elapsed >= self.shadow_windows * self.w:
                self._deploy("1", "2")
                self.phase = "canary-2"
            elif self.phase in ("canary-2", "canary-3") and self.deployment is not None:
                self._follow()
        except (OSError, ValueError) as exc:  # the API is busy or down: try again in a second
            self.say(f"demo: {MODEL!r} release: the API did not answer ({exc}); retrying")

    def _deploy(self, baseline: str, candidate: str) -> None:
        plan = {
            "strategy": "canary",
            "baseline": baseline,
            "candidate": candidate,
            "steps": list(STEPS),
            "step_windows": self.step_windows,
            "gates": GATES,
        }
        self.deployment = self._call("POST", f"/v1/models/{MODEL}/deployments", plan)
        steps = " → ".join(f"{s:g} %" for s in STEPS)
        self.say(
            f"demo: canary of {MODEL!r} version {candidate} against {baseline}: {steps}, "
            f"{self.step_windows} windows a step (deployment {self.deployment['id']}: "
            f"POST /v1/models/{MODEL}/deployments)"
        )

    def _follow(self) -> None:
        assert self.deployment is not None
        path = f"/v1/models/{MODEL}/deployments/{self.deployment['id']}"
        now = self._call("GET", path)
        before, self.deployment = self.deployment, now
        candidate = now["candidate"]
        if now["state"] == "active" and now["share"] != before["share"]:
            self.say(f"demo: {MODEL!r} version {candidate} now takes {now['share']:g} % of the "
                     f"traffic (judge: {now['reason']})")  # fmt: skip
        elif now["state"] == "promoted":
            self.say(f"demo: {MODEL!r} version {candidate} promoted by the {now['by']}: it "
                     "serves all traffic")  # fmt: skip
            self._deploy(candidate, "3")
            self.phase = "canary-3"
        elif now["state"] == "rolled_back":
            self.say(f"demo: {MODEL!r} version {candidate} rolled back by the {now['by']}: "
                     f"{now['reason']}")  # fmt: skip
            self.phase, self.deployment = "done", None

    def _call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(self.api + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                answer: dict[str, Any] = orjson.loads(reply.read())
                return answer
        except urllib.error.HTTPError as exc:
            raise ValueError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None

    # -- the traffic ----------------------------------------------------------------------
    def _send(self, monitor: Monitor, split: TrafficSplit, now: float) -> None:
        n = max(1, int(self.rate / 10))
        x = spam_features(self.rng, n)
        labels = self.rng.random(n) < true_probability(x)
        users = self.rng.integers(0, 100_000, n)
        shadow = self.phase == "shadow"
        served: dict[str, list[int]] = {}
        for i, user in enumerate(users):
            version = "1" if shadow else split.pick(f"user-{user}")
            served.setdefault(version, []).append(i)
        for version, rows in served.items():
            shadow_of = "2" if shadow else None
            self._log(monitor, version, x[rows], labels[rows], now, shadow_of)

    def _log(
        self,
        monitor: Monitor,
        version: str,
        x: npt.NDArray[np.float64],
        labels: npt.NDArray[np.bool_],
        now: float,
        shadow_of: str | None,
    ) -> None:
        scorer = VERSIONS[version]
        scores = scorer.score(x, self.rng)
        shadows = VERSIONS[shadow_of].score(x, self.rng) if shadow_of else None
        latency = self.rng.gamma(4.0, 3.0, len(x)) * scorer.slower
        low, high = self.w, 3 * self.w
        for i, score in enumerate(scores):
            features = {
                "links": int(x[i, 0]),
                "log_length": round(float(x[i, 1]), 3),
                "caps_ratio": round(float(x[i, 2]), 4),
                "sender_age_days": round(float(x[i, 3]), 1),
            }
            human = score is not None and 0.4 <= score <= 0.6
            ident = uuid.uuid4().hex
            monitor.log_prediction(
                MODEL, features, score, version=version, id=ident,
                latency_ms=round(float(latency[i]), 2),
                decided_by="human" if human else "model",
            )  # fmt: skip
            if shadows is not None and shadow_of is not None:
                monitor.log_prediction(MODEL, features, shadows[i], version=shadow_of,
                                       id=ident, shadow=True)  # fmt: skip
            if self.rng.random() < 0.8:
                due = now + float(self.rng.uniform(low, high))
                heapq.heappush(self._pending, (due, ident, int(labels[i])))

    def _send_due_labels(self, monitor: Monitor, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, ident, label = heapq.heappop(self._pending)
            monitor.log_label(MODEL, ident, label)
