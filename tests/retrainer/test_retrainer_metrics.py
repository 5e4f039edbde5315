"""`driftline retrainer` serves /metrics on its port: retraining jobs by state."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path

from helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families

from driftline.broker import EmbeddedBroker, ensure_topics, free_port
from driftline.store import Store
from driftline.store.jobs import JobStore, RetrainJob
from driftline.topics import topic_partitions


def jobs_by_state(port: int) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    return {
        s.labels["state"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "driftline_retrain_jobs"
    }


def test_the_retrainer_counts_jobs_by_state_on_its_metrics_port(
    broker: EmbeddedBroker, clickhouse_url: str, server_store: Store, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
    jobs = JobStore(server_store.backend)
    left = jobs.write(replace(RetrainJob.new("fraud", "drift"), state="running", started_at=1.0))
    port = free_port()
    env = {
        "DRIFTLINE_KAFKA_BOOTSTRAP": broker.bootstrap,
        "DRIFTLINE_STORE": "server",
        "DRIFTLINE_CLICKHOUSE_URL": clickhouse_url,
        "DRIFTLINE_DATA_DIR": str(tmp_path / "data"),
        "DRIFTLINE_CONSUMER_SESSION_TIMEOUT_S": "6",
        "DRIFTLINE_RETRAINER_METRICS_PORT": str(port),
    }
    log = (tmp_path / "retrainer.log").open("wb")
    retrainer = subprocess.Popen(
        [sys.executable, "-m", "launch.cli", "retrainer"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # a job left running by a retrainer that died is failed at start, and counted so
        wait_until(
            lambda: jobs_by_state(port) == {
                "queued": 0, "running": 0, "succeeded": 0, "failed": 1, "rejected": 0,
            },
            timeout=90,
            what="the retrainer's /metrics to count the recovered job as failed",
        )  # fmt: skip
        failed = jobs.job(left.id)
        assert failed is not None and failed.state == "failed"
    finally:
        retrainer.terminate()
        retrainer.wait(timeout=60)
