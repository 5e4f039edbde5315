"""`driftline demo` closes the loop, as a user sees it through the API: the injected concept
drift (labels only) drops quality on the mobile slice, sets the concept-drift flag, fires the
retrain rule; the retrainer trains, compares and promotes a new version, which serving code
loads, and quality recovers. A challenger rejected on a channel (a real drop beyond chance on
that channel's holdout rows: a few percent of runs) is retried a minute later with more labels,
so the test accepts version 2 or 3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import get_json, wait_until

from driftline.broker import free_port


def series(api: str, name: str, segment: str = "") -> list[float]:
    body = get_json(f"{api}/v1/models/fraud/metrics?name={name}&segment={segment}")
    if not body or not body["series"]:
        return []
    return [p["value"] for p in body["series"][0]["points"] if p["value"] is not None]


def test_demo_concept_drift_is_retrained_and_promoted(tmp_path: Path) -> None:
    api_port, kafka_port = free_port(), free_port()
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "launch.cli", "demo",
         "--duration", "300", "--window-seconds", "4",
         "--drift-after", "10000", "--concept-after", "40",
         "--api-port", str(api_port), "--kafka-port", str(kafka_port),
         "--data-dir", str(tmp_path / "data")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    try:
        jobs: Any = wait_until(
            lambda: [
                j for j in get_json(f"{api}/v1/retrain-jobs") or [] if j["state"] == "succeeded"
            ],
            timeout=250,
            what="a succeeded retraining job",
        )
        job: dict[str, Any] = jobs[0]
        new = job["version"]
        assert job["reason"] == "alert" and job["alert_id"] and new in ("2", "3")
        assert job["metrics"]["challenger"]["accuracy"] > job["metrics"]["champion"]["accuracy"]
        assert job["data_start"] < job["data_end"]
        every = get_json(f"{api}/v1/retrain-jobs")
        assert [j["state"] for j in every] == ["succeeded"] + ["rejected"] * (int(new) - 2)
        # retried until promoted: by the same alert, or by a new one if the first resolved
        assert all(j["reason"] == "alert" and j["alert_id"] for j in every)
        versions = get_json(f"{api}/v1/models/fraud/versions")
        assert versions["champion"] == new
        statuses = [v["status"] for v in versions["versions"]]
        assert statuses == ["retired"] + ["rejected"] * (int(new) - 2) + ["champion"]
        assert versions["versions"][-1]["warm_started"] is True
        # the story, through the API: coverage, the mobile slice's quality drop, the flag
        assert 0.0 < max(series(api, "labels.coverage")) <= 1.0
        mobile = series(api, "quality.accuracy", "channel%3Dmobile")
        assert max(mobile) > 0.75 and min(mobile) < 0.5
        assert 1.0 in series(api, "drift.concept")
        drift = get_json(f"{api}/v1/models/fraud/drift")
        assert any(w["concept_drifted"] for w in drift["windows"])
        alerts = get_json(f"{api}/v1/alerts") or []
        assert any(a["rule_id"] == "demo-concept-retrain" for a in alerts)
        # serving code loaded the new version, its events are monitored as such, quality
        # recovers
        wait_until(
            lambda: new in (get_json(f"{api}/v1/models/fraud") or {}).get("versions", []),
            timeout=30,
            what=f"events of version {new}",
        )
        wait_until(
            lambda: series(api, "quality.accuracy", "channel%3Dmobile")[-1] > min(mobile) + 0.2,
            timeout=40,
            what=f"mobile accuracy recovering under version {new}",
        )
    finally:
        demo.terminate()
        demo.wait(timeout=60)
    out = log.read_text()
    assert "concept drift now" in out and f"now serving version {new}" in out
