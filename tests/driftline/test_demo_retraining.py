"""`driftline demo` closes the loop, as a user sees it through the API: the injected concept
drift (labels only) drops quality on the mobile slice, sets the concept-drift flag, fires the
retrain rule; the retrainer trains, compares and promotes version 2, which serving code loads,
and quality recovers."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from conftest import wait_until

from driftline.broker import free_port


def get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())
    except OSError:
        return None


def series(api: str, name: str, segment: str = "") -> list[float]:
    body = get(f"{api}/v1/models/fraud/metrics?name={name}&segment={segment}")
    if not body or not body["series"]:
        return []
    return [p["value"] for p in body["series"][0]["points"] if p["value"] is not None]


def test_demo_concept_drift_is_retrained_and_promoted(tmp_path: Path) -> None:
    api_port, kafka_port = free_port(), free_port()
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "driftline.cli", "demo",
         "--duration", "170", "--window-seconds", "4",
         "--drift-after", "10000", "--concept-after", "40",
         "--api-port", str(api_port), "--kafka-port", str(kafka_port),
         "--data-dir", str(tmp_path / "data")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    try:
        jobs: Any = wait_until(
            lambda: [j for j in get(f"{api}/v1/retrain-jobs") or [] if j["state"] == "succeeded"],
            timeout=150,
            what="a succeeded retraining job",
        )
        job: dict[str, Any] = jobs[0]
        assert job["reason"] == "alert" and job["alert_id"] and job["version"] == "2"
        assert job["metrics"]["challenger"]["accuracy"] > job["metrics"]["champion"]["accuracy"]
        assert job["data_start"] < job["data_end"]
        versions = get(f"{api}/v1/models/fraud/versions")
        assert versions["champion"] == "2"
        assert [v["status"] for v in versions["versions"]] == ["retired", "champion"]
        assert versions["versions"][1]["warm_started"] is True
        # the story, through the API: coverage, the mobile slice's quality drop, the flag
        assert 0.0 < max(series(api, "labels.coverage")) <= 1.0
        mobile = series(api, "quality.accuracy", "channel%3Dmobile")
        assert max(mobile) > 0.75 and min(mobile) < 0.5
        assert 1.0 in series(api, "drift.concept")
        drift = get(f"{api}/v1/models/fraud/drift")
        assert any(w["concept_drifted"] for w in drift["windows"])
        alerts = get(f"{api}/v1/alerts") or []
        assert any(a["rule_id"] == "demo-concept-retrain" for a in alerts)
        # serving code loaded version 2, its events are monitored as such, quality recovers
        wait_until(
            lambda: "2" in (get(f"{api}/v1/models/fraud") or {}).get("versions", []),
            timeout=30,
            what="events of version 2",
        )
        wait_until(
            lambda: series(api, "quality.accuracy", "channel%3Dmobile")[-1] > min(mobile) + 0.2,
            timeout=40,
            what="mobile accuracy recovering under version 2",
        )
    finally:
        demo.terminate()
        demo.wait(timeout=60)
    out = log.read_text()
    assert "concept drift now" in out and "now serving version 2" in out
