"""docker-compose.yml: no Docker engine runs here, so check its structure against the code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.settings import Settings
from launch.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_production_services_are_present() -> None:
    services = compose()["services"]
    assert {"kafka", "clickhouse", "worker", "api", "retrainer"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")


def test_each_driftline_service_runs_a_real_subcommand_with_known_settings() -> None:
    fields = {f"DRIFTLINE_{name.upper()}" for name in Settings.model_fields}
    built = [s for s in compose()["services"].values() if s.get("build")]
    assert len(built) >= 2
    for service in built:
        assert service["command"][0] in subcommands()
        build_parser().parse_args(service["command"])  # the arguments parse too
        env = service["environment"]
        assert env["DRIFTLINE_STORE"] == "server"
        assert set(env) <= fields, f"unknown settings: {set(env) - fields}"


def test_the_image_installs_the_project_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["driftline"]' in dockerfile
    for package in ("driftline", "launch", "streams", "detectors", "alarms", "api", "retrainer"):
        assert f"COPY {package} {package}" in dockerfile
    # the platform depends on the thin SDK, which is not a folder of the platform's own
    assert "COPY sdk sdk" in dockerfile and " ./sdk ." in dockerfile


def test_alertmanager_service_has_a_config_alertmanager_accepts() -> None:
    """The compose Alertmanager, and its config checked by Debian's amtool (system-deps)."""
    service = compose()["services"]["alertmanager"]
    assert service["image"].startswith("prom/alertmanager:")
    mounted = {v.split(":")[0] for v in service["volumes"]}
    assert "./deploy/alertmanager" in mounted
    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    assert "model" in yaml.safe_load(config.read_text())["route"]["group_by"]
    amtool = shutil.which("amtool") or shutil.which("amtool", path="/usr/bin")
    if amtool is None:
        pytest.fail("amtool (Debian's prometheus-alertmanager) is not installed: make system-deps")
    checked = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
