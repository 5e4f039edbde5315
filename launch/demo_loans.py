"""The ``loans`` model of ``driftline demo``: a covariate shift that *does* hurt, seen before
its labels land.

A credit model scores applications with the chance of default; it is calibrated (its score is
the true chance, give or take), and a loan's outcome is known only some windows later (here 6
to 9 windows: repaid or not). After ``shift_after_s``, for ``shift_for_s``, applicants move
to the model's boundary (debt ratios near the line where the chance of default is one half):
nothing about the world changes, but the model can no longer tell them apart, so its accuracy
falls. Driftline's estimated quality (CBPE, from the model's own probabilities) drops in the
first shifted window, and the estimated-harm alert (``EstimatedQualityDrop``) pages before a
single label of those windows has landed; the measured quality confirms it as labels come.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from driftline_sdk import Monitor

from launch.demo import TrafficThread

MODEL = "loans"
EVENTS_PER_WINDOW = 600
LABEL_DELAY_WINDOWS = (6.0, 9.0)


def default_chance(
    income: npt.NDArray[np.float64], debt_ratio: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The true chance of default: the world the model learned, and it stays so."""
    signal = 9.0 * (debt_ratio - 0.45) - 0.8 * (np.log(income) - 10.5)
    return np.asarray(1.0 / (1.0 + np.exp(-signal)), dtype=np.float64)


def applications(
    rng: np.random.Generator, n: int, shifted: bool
) -> tuple[list[dict[str, object]], npt.NDArray[np.float64]]:
    """``n`` applications (SDK keyword arguments, prediction included) and their true chance
    of default. Shifted: debt ratios crowd the boundary (0.45 ± 0.03, income at its median)."""
    income = rng.lognormal(10.5, 0.2 if shifted else 0.5, n)
    debt = rng.normal(0.45, 0.03, n) if shifted else rng.beta(2.0, 2.5, n)
    debt = np.clip(debt, 0.0, 1.0)
    term = rng.choice(["36", "60"], n, p=[0.7, 0.3])
    chance = default_chance(income, debt)
    # the model: calibrated, with a little noise of its own
    score = np.clip(chance + rng.normal(0.0, 0.02, n), 0.0, 1.0)
    events = [
        {
            "model": MODEL,
            "version": "1",
            "features": {
                "income": round(float(income[i]), 0),
                "debt_ratio": round(float(debt[i]), 4),
                "term": str(term[i]),
            },
            "prediction": round(float(score[i]), 4),
            "latency_ms": round(float(rng.gamma(3.0, 2.0)), 2),
        }
        for i in range(n)
    ]
    return events, chance


class LoansDemo(TrafficThread):
    """Sends ``loans``'s applications (``EVENTS_PER_WINDOW`` a window) and, for every one,
    its outcome 6 to 9 windows later."""

    def __init__(
        self,
        bootstrap: str,
        window_seconds: int,
        *,
        shift_after_s: float | None = 60.0,
        shift_for_s: float = 24.0,
        say: Callable[[str], None] = print,
        seed: int = 31,
    ) -> None:
        self.bootstrap = bootstrap
        self.w = window_seconds
        self.shift_after_s = shift_after_s
        self.shift_for_s = shift_for_s
        self.say = say
        self.rng = np.random.default_rng(seed)
        self._pending: list[tuple[float, str, int]] = []  # (due, id, outcome): a heap
        super().__init__("driftline-loans")

    def _run(self) -> None:
        monitor = Monitor(self.bootstrap, linger_s=0.1)
        started = time.monotonic()
        shifted = over = False
        per_tick = max(1, round(EVENTS_PER_WINDOW / self.w / 10))
        try:
            while not self._stop.is_set():
                tick = time.monotonic()
                elapsed = tick - started
                after = self.shift_after_s
                if after is not None and not shifted and not over and elapsed >= after:
                    shifted = True
                    self.say(
                        f"demo: {MODEL!r} applicants move to the model's boundary now (debt "
                        "ratios near 0.45): a shift that hurts; watch estimated quality drop "
                        "before the labels land"
                    )
                if shifted and after is not None and elapsed >= after + self.shift_for_s:
                    shifted, over = False, True
                    self.say(f"demo: {MODEL!r} applicants are back to normal")
                self._send(monitor, per_tick, shifted, tick)
                self._send_due_labels(monitor, tick)
                self._stop.wait(max(0.0, 0.1 - (time.monotonic() - tick)))
        finally:
            monitor.close(timeout=10)

    def _send(self, monitor: Monitor, n: int, shifted: bool, now: float) -> None:
        events, chance = applications(self.rng, n, shifted)
        defaulted = self.rng.random(n) < chance
        low, high = LABEL_DELAY_WINDOWS
        for event, outcome in zip(events, defaulted, strict=True):
            ident = monitor.log_prediction(**event)  # type: ignore[arg-type]
            due = now + float(self.rng.uniform(low, high)) * self.w
            heapq.heappush(self._pending, (due, ident, int(outcome)))

    def _send_due_labels(self, monitor: Monitor, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, ident, outcome = heapq.heappop(self._pending)
            monitor.log_label(MODEL, ident, outcome)
