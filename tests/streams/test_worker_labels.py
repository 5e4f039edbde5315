"""Labels end to end: real Tansu broker → `driftline worker` → real ClickHouse server.

The join in every order (label before prediction, after it, twice, for nobody), the horizon,
a kill -9 between a prediction and its label, quality per window and per slice, and pipeline
stages monitored like models.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import store_and_broker_state, wait_until, worker_task_dump

from driftline import Monitor
from driftline.broker import EmbeddedBroker
from driftline.store import Store

BASE = 1_700_000_000  # window starts are multiples of 10 s
StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]


@pytest.fixture
def label_env(worker_env: dict[str, str]) -> dict[str, str]:
    return {
        **worker_env,
        "DRIFTLINE_QUALITY_INTERVAL_S": "1",
        "DRIFTLINE_LABEL_HORIZON_S": "60",
        "DRIFTLINE_QUALITY_MIN_LABELS": "5",
        "DRIFTLINE_QUALITY_REFERENCE_WINDOWS": "1",
        "DRIFTLINE_DEFAULT_RULES": "false",
        "DRIFTLINE_EVENT_RETENTION_DAYS": "36500",  # the test's windows are in 2023
        "DRIFTLINE_KEEP_EVENTS": "all",  # labels may be read before or after their predictions
    }


def value(
    store: Store,
    metric: str,
    start: int,
    *,
    model: str = "churn",
    segment: str = "",
    stage: str = "",
) -> float | None:
    points = store.metrics(
        model, name=metric, start=start, end=start + 1, segment=segment, stage=stage
    )
    return points[0].value if points else None


def test_labels_join_in_any_order_and_survive_a_restart(
    broker: EmbeddedBroker,
    label_env: dict[str, str],
    start_worker: StartWorker,
    server_store: Store,
    tmp_path: Path,
) -> None:
    worker = start_worker(label_env)
    with Monitor(broker.bootstrap) as monitor:
        # 1. a label that comes before its prediction
        monitor.log_label("churn", "early", 1, ts=BASE + 30)
        # window BASE: 20 predictions of class 1, channel web or mobile
        for i in range(20):
            channel = "mobile" if i < 10 else "web"
            monitor.log_prediction(
                "churn",
                {"x": float(i)},
                prediction=1,
                id=f"a{i}",
                ts=BASE + 1,
                segment={"channel": channel},
            )
        monitor.log_prediction("churn", {"x": 0.0}, prediction=1, id="early", ts=BASE + 2)
        monitor.log_prediction("churn", {"x": 0.0}, prediction=0, ts=BASE + 25)  # closes BASE
        # 2. labels after their predictions; mobile is always wrong, web always right
        for i in range(16):
            monitor.log_label("churn", f"a{i}", 0 if i < 10 else 1, ts=BASE + 40)
        monitor.log_label("churn", "a15", 0, ts=BASE + 41)  # a duplicate: the later one wins
        monitor.log_label("churn", "nobody", 1, ts=BASE + 42)  # no such prediction
        monitor.log_label("churn", "a16", 1, ts=BASE + 500)  # past the 60 s horizon
    # early: 1 right; a0-a9 (mobile): wrong; a10-a14 right; a15: wrong (corrected label). The
    # two labels of a15 may be taken in different batches, with a quality pass in between that
    # scores the first; the next pass scores the correction: wait for that one.
    wait_until(
        lambda: (
            value(server_store, "labels.count", BASE) == 17
            and value(server_store, "quality.accuracy", BASE) == pytest.approx(6 / 17)
        ),
        what="17 joined labels, a15's corrected",
    )
    assert value(server_store, "labels.coverage", BASE) == pytest.approx(17 / 21)
    assert value(server_store, "labels.count", BASE, segment="channel=mobile") == 10
    assert value(server_store, "quality.accuracy", BASE, segment="channel=mobile") == 0.0
    assert value(server_store, "quality.accuracy", BASE, segment="channel=web") == pytest.approx(
        5 / 6
    )
    # windows of 2023 are long past the horizon: what never got a label is counted as such
    assert value(server_store, "labels.unlabelled", BASE) == 4.0
    wait_until(lambda: value(server_store, "labels.unmatched", BASE + 40), what="unmatched")
    assert value(server_store, "labels.received", BASE + 40) == 17.0  # a0..a15 and nobody
    assert value(server_store, "labels.unmatched", BASE + 40) == 1.0

    # 3. kill -9 with predictions pending; their labels arrive while the worker is down
    with Monitor(broker.bootstrap) as monitor:
        for i in range(10):
            monitor.log_prediction("churn", {"x": 1.0}, prediction=1, id=f"b{i}", ts=BASE + 61)
    # the ids are named one by one: a prediction sent without an id (BASE + 25 above) gets a
    # random hex one, and "id LIKE 'b%'" matched it 1 time in 16: this wait's old flake (11
    # rows, never 10). On a timeout the worker's tasks, the rows in the store and the messages
    # on the broker are shown
    pending = "id IN (" + ", ".join(f"'b{i}'" for i in range(10)) + ")"
    try:
        wait_until(
            lambda: (
                server_store.backend.execute(
                    f"SELECT count() FROM predictions FINAL WHERE {pending}"
                )[0][0]
                == 10
            ),
            what=f"pending predictions stored (the SDK's delivery: {monitor.stats})",
        )
    except pytest.fail.Exception:
        print("the worker's tasks:\n" + worker_task_dump(worker, tmp_path / "worker-0.log"))
        print(
            store_and_broker_state(
                server_store,
                "predictions",
                pending,
                broker.bootstrap,
                "driftline-worker",
                ["driftline.predictions", "driftline.labels"],
            )
        )
        raise
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with Monitor(broker.bootstrap) as monitor:
        for i in range(10):
            monitor.log_label("churn", f"b{i}", 1, ts=BASE + 70)
    start_worker(label_env)
    wait_until(
        lambda: value(server_store, "labels.count", BASE + 60) == 10, what="joins after restart"
    )
    assert value(server_store, "quality.accuracy", BASE + 60) == 1.0
    assert value(server_store, "labels.coverage", BASE + 60) == 1.0


def test_quality_drop_is_concept_drift_and_stages_are_monitored_like_models(
    broker: EmbeddedBroker,
    label_env: dict[str, str],
    start_worker: StartWorker,
    server_store: Store,
) -> None:
    start_worker(label_env)
    with Monitor(broker.bootstrap) as monitor:
        for window, wrong_every in ((0, 10), (10, 10), (20, 1)):  # the third window: all wrong
            for i in range(40):
                ident = f"w{window}-{i}"
                monitor.log_prediction(
                    "voice", {"snr": float(i)}, prediction=1, id=ident, ts=BASE + window + 1
                )
                monitor.log_prediction(
                    "voice",
                    {"words": float(i)},
                    prediction=0.5,
                    id=ident,
                    ts=BASE + window + 1,
                    stage="asr",
                )
                label = 0 if i % wrong_every == 0 else 1
                monitor.log_label("voice", ident, label, ts=BASE + window + 5)
        monitor.log_prediction("voice", {"snr": 0.0}, prediction=1, ts=BASE + 45)
        monitor.log_prediction("voice", {"words": 0.0}, prediction=1, ts=BASE + 45, stage="asr")
    wait_until(lambda: value(server_store, "drift.concept", BASE + 20, model="voice") is not None)
    assert value(server_store, "quality.accuracy", BASE, model="voice") == pytest.approx(0.9)
    assert value(server_store, "drift.concept", BASE + 10, model="voice") == 0.0
    assert value(server_store, "drift.concept", BASE + 20, model="voice") == 1.0
    # the quality-drop row is a separate insert from the metric points: it may land a moment
    # after them on a loaded machine
    wait_until(
        lambda: any(
            r.test == "quality_drop" and r.drifted
            for r in server_store.drift_results("voice", start=BASE + 20, end=BASE + 21)
        ),
        timeout=30,
        what="the quality_drop drift row",
    )

    # the asr stage: its own windows and metrics, listed under the model
    wait_until(lambda: value(server_store, "traffic.count", BASE, model="voice", stage="asr"))
    assert value(server_store, "traffic.count", BASE, model="voice", stage="asr") == 40
    [row] = [r for r in server_store.models() if r["model"] == "voice"]
    assert row["stages"] == ["asr"]
    assert {f for f, _ in server_store.model_features("voice", "asr")} == {"words"}
    assert {f for f, _ in server_store.model_features("voice")} == {"snr"}


def test_by_default_predictions_are_kept_once_their_model_has_labels(
    broker: EmbeddedBroker,
    label_env: dict[str, str],
    start_worker: StartWorker,
    server_store: Store,
) -> None:
    start_worker({**label_env, "DRIFTLINE_KEEP_EVENTS": "labelled"})

    def kept(prefix: str) -> int:
        rows = server_store.backend.execute(
            f"SELECT count() FROM predictions WHERE model = 'fresh' AND id LIKE '{prefix}%'"
        )
        return int(rows[0][0])

    with Monitor(broker.bootstrap) as monitor:  # a model that has never sent a label
        for i in range(10):
            monitor.log_prediction("fresh", {"x": 1.0}, prediction=1, id=f"before{i}", ts=BASE + 1)
        monitor.log_prediction("fresh", {"x": 1.0}, prediction=1, ts=BASE + 25)
    wait_until(
        lambda: value(server_store, "traffic.count", BASE, model="fresh") == 10, what="a window"
    )
    with Monitor(broker.bootstrap) as monitor:
        monitor.log_label("fresh", "before0", 1, ts=BASE + 30)
    wait_until(
        lambda: server_store.backend.execute("SELECT count() FROM labels WHERE model = 'fresh'")[0][
            0
        ],
        what="the model's first label stored",
    )
    with Monitor(broker.bootstrap) as monitor:
        for i in range(10):
            monitor.log_prediction("fresh", {"x": 1.0}, prediction=1, id=f"after{i}", ts=BASE + 31)
        for i in range(10):
            monitor.log_label("fresh", f"after{i}", 1, ts=BASE + 40)
        monitor.log_prediction("fresh", {"x": 1.0}, prediction=1, ts=BASE + 55)
    wait_until(
        lambda: value(server_store, "labels.count", BASE + 30, model="fresh") == 10,
        what="the predictions after the first label joined",
    )
    assert kept("before") == 0 and kept("after") == 10
    assert value(server_store, "quality.accuracy", BASE + 30, model="fresh") == 1.0
    # the first label's prediction came before the model was known to send labels
    wait_until(
        lambda: value(server_store, "labels.unmatched", BASE + 30, model="fresh") == 1.0,
        what="the first label counted as unmatched",
    )


def test_quality_is_estimated_before_labels_and_a_shift_that_hurts_is_harm(
    broker: EmbeddedBroker,
    label_env: dict[str, str],
    start_worker: StartWorker,
    server_store: Store,
) -> None:
    """Estimated quality end to end: two labelled windows of a calibrated classifier are the
    reference; the next two have no label at all, and are estimated from the model's
    probabilities, the second (scores crowding 0.5) as harm."""
    start_worker(
        {
            **label_env,
            "DRIFTLINE_ESTIMATION_REFERENCE_PAIRS": "200",
            "DRIFTLINE_ESTIMATION_REFERENCE_WINDOWS": "1",
        }
    )
    rng = np.random.default_rng(4)
    with Monitor(broker.bootstrap) as monitor:
        for window in (0, 10, 20, 30):
            scores = rng.beta(6.0, 6.0, 150) if window == 30 else rng.beta(0.4, 0.4, 150)
            for i, score in enumerate(scores):
                ident = f"e{window}-{i}"
                monitor.log_prediction(
                    "credit", {"x": float(i)}, prediction=round(float(score), 4), id=ident,
                    ts=BASE + window + 1,
                )  # fmt: skip
                if window < 20:
                    label = int(rng.random() < score)
                    monitor.log_label("credit", ident, label, ts=BASE + window + 5)
        monitor.log_prediction("credit", {"x": 0.0}, prediction=0.5, ts=BASE + 55)

    def harm(start: int) -> float | None:
        return value(server_store, "drift.harm", start, model="credit")

    wait_until(lambda: harm(BASE + 30) is not None, timeout=60, what="the estimated windows")
    assert value(server_store, "quality.accuracy", BASE + 20, model="credit") is None  # no labels
    stationary = value(server_store, "quality.estimated.accuracy", BASE + 20, model="credit")
    shifted = value(server_store, "quality.estimated.accuracy", BASE + 30, model="credit")
    assert stationary is not None and shifted is not None and stationary > shifted + 0.2
    assert harm(BASE + 20) == 0.0 and harm(BASE + 30) == 1.0
