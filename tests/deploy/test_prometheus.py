"""Driftline's own health: the compose Prometheus scrapes every Driftline service where it
serves /metrics, and the Grafana health dashboard reads that Prometheus. The dashboard's
queries are run on a real Prometheus in tests/streams/test_worker_prometheus.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
HEALTH = ROOT / "deploy" / "grafana" / "dashboards" / "driftline-health.json"
DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def health_panels() -> list[dict[str, Any]]:
    board: dict[str, Any] = json.loads(HEALTH.read_text())
    return [p for p in board["panels"] if p["type"] != "row"]


def metrics_port(service: dict[str, Any], setting: str) -> int:
    env = {**service["environment"]}
    assert env["DRIFTLINE_METRICS_HOST"] == "0.0.0.0"  # reachable from the prometheus container
    port = int(env[setting])
    Settings.model_validate({setting.removeprefix("DRIFTLINE_").lower(): port})  # in bounds
    return port


def test_compose_prometheus_scrapes_each_service_on_its_metrics_port() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    mounted = {v.split(":")[1]: ROOT / v.split(":")[0] for v in prometheus["volumes"]}
    assert mounted["/etc/prometheus/prometheus.yml"] == ROOT / "deploy/prometheus/prometheus.yml"
    config = yaml.safe_load(CONFIG.read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    worker_port = metrics_port(services["worker"], "DRIFTLINE_WORKER_METRICS_PORT")
    retrainer_port = metrics_port(services["retrainer"], "DRIFTLINE_RETRAINER_METRICS_PORT")
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    assert targets == {
        "driftline-worker": f"worker:{worker_port}",
        "driftline-retrainer": f"retrainer:{retrainer_port}",
        "driftline-api": f"api:{api_port}",
    }
    assert "prometheus" in services["grafana"]["depends_on"]


def test_the_scrape_config_is_valid_for_prometheus() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("no promtool: install Debian's prometheus package (make system-deps)")
    checked = subprocess.run(
        [promtool, "check", "config", str(CONFIG)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_health_dashboard_reads_the_provisioned_prometheus() -> None:
    [source] = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    ref = {"type": "prometheus", "uid": source["uid"]}
    panels = health_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    assert {
        "Events consumed",
        "Dead letters by reason",
        "Window close delay",
        "Store write latency",
        "Windows",
        "Memory",
        "Open alerts",
        "Webhook deliveries",
        "Retraining jobs",
    } <= {p["title"] for p in panels}
    for panel in panels:
        assert panel["datasource"] == ref and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ref and target["expr"].strip()
