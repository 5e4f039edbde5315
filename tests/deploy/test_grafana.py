"""Grafana provisioning (deploy/grafana): the files parse, fit docker-compose.yml, and every
panel's SQL runs on both stores (chDB and ClickHouse 18.16) once Grafana's macros and
variables are replaced with concrete values, the way the ClickHouse plugin expands them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.store import MetricPoint, Store

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
PLUGIN = "grafana-clickhouse-datasource"
T0 = 1_700_000_040  # a minute boundary
STEP = 60


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "driftline.json").read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    flat = []
    for panel in dashboard()["panels"]:
        flat.append(panel)
        flat.extend(panel.get("panels", []))  # panels folded into a row
    return [p for p in flat if p.get("type") != "row"]


def grafana_service() -> dict[str, Any]:
    service: dict[str, Any] = load_yaml(ROOT / "docker-compose.yml")["services"]["grafana"]
    return service


def mounts() -> dict[str, Path]:
    """Container path -> host path of the grafana service's bind mounts."""
    found = {}
    for volume in grafana_service()["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def expand(sql: str, variables: dict[str, str], start: int, end: int) -> str:
    """What the plugin sends to ClickHouse: Grafana variables, then the plugin's macros."""
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}}}", value).replace(f"${name}", value)
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m[1]} >= toDateTime({start}) AND {m[1]} <= toDateTime({end})",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({start})")
    sql = sql.replace("$__toTime", f"toDateTime({end})")
    sql = sql.replace("$__interval_s", str(STEP))
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


def seed(store: Store) -> None:
    for i in range(6):
        t = T0 + STEP * i
        drifted = float(i >= 3)
        store.write_window(
            [
                MetricPoint("fraud", t, STEP, "traffic.count", 600.0 + i),
                MetricPoint("fraud", t, STEP, "traffic.invalid", 1.0),
                MetricPoint("fraud", t, STEP, "traffic.late", 0.0),
                MetricPoint("fraud", t, STEP, "latency.p50", 10.0),
                MetricPoint("fraud", t, STEP, "latency.p95", 25.0),
                MetricPoint("fraud", t, STEP, "latency.p99", 40.0),
                MetricPoint("fraud", t, STEP, "input.missing_rate", 0.02, "amount"),
                MetricPoint("fraud", t, STEP, "input.missing_rate", 0.2 * drifted, "age"),
                MetricPoint("fraud", t, STEP, "input.mean", 30.0, "amount"),
                MetricPoint("fraud", t, STEP, "input.p05", 5.0, "amount"),
                MetricPoint("fraud", t, STEP, "input.p50", 25.0, "amount"),
                MetricPoint("fraud", t, STEP, "input.p95", 90.0, "amount"),
                MetricPoint("fraud", t, STEP, "input.category_freq", 0.7, "country", "FR"),
                MetricPoint("fraud", t, STEP, "input.category_freq", 0.3, "country", "DE"),
                MetricPoint("fraud", t, STEP, "input.new_category_rate", 0.0, "country"),
                MetricPoint("fraud", t, STEP, "output.mean", 0.3),
                MetricPoint("fraud", t, STEP, "output.p05", 0.05),
                MetricPoint("fraud", t, STEP, "output.p50", 0.25),
                MetricPoint("fraud", t, STEP, "output.p95", 0.8),
                MetricPoint("fraud", t, STEP, "output.class_freq", 0.9, category="legit"),
                MetricPoint("fraud", t, STEP, "output.class_freq", 0.1, category="fraud"),
                MetricPoint("fraud", t, STEP, "drift.share_drifted", 0.5 * drifted),
                MetricPoint("fraud", t, STEP, "drift.max_effect", 0.3 * drifted + 0.02),
                MetricPoint("fraud", t, STEP, "drift.drifted", drifted, "amount"),
                MetricPoint("fraud", t, STEP, "drift.drifted", 0.0, "country"),
                MetricPoint("fraud", t, STEP, "quality.accuracy", 0.93),
                MetricPoint("fraud", t, STEP, "labels.coverage", 0.4),
                # a slice: the dashboard shows the whole model, never a segment's rows
                MetricPoint("fraud", t, STEP, "traffic.count", 1.0, segment="channel=web"),
            ],
            [],
        )


def test_datasource_is_the_compose_clickhouse_through_the_plugin() -> None:
    [source] = load_yaml(GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml")[
        "datasources"
    ]
    assert source["type"] == PLUGIN
    compose = load_yaml(ROOT / "docker-compose.yml")
    assert source["jsonData"]["host"] in compose["services"]  # the compose service name
    assert source["jsonData"]["protocol"] == "native" and source["jsonData"]["port"] == 9000
    # the same database the Driftline services write to
    env = compose["services"]["api"]["environment"]
    assert env["DRIFTLINE_CLICKHOUSE_URL"].endswith("/" + source["jsonData"]["defaultDatabase"])
    every_ref = [p["datasource"] for p in panels()] + [
        t["datasource"] for p in panels() for t in p["targets"]
    ] + [v["datasource"] for v in dashboard()["templating"]["list"]]  # fmt: skip
    assert every_ref and all(ref == {"type": PLUGIN, "uid": source["uid"]} for ref in every_ref)


def test_compose_runs_grafana_with_the_plugin_and_the_provisioning() -> None:
    service = grafana_service()
    assert service["image"].startswith("grafana/grafana:")
    assert PLUGIN in service["environment"]["GF_INSTALL_PLUGINS"].split(",")
    assert "clickhouse" in service["depends_on"]
    provisioning = mounts()["/etc/grafana/provisioning"]
    assert (provisioning / "datasources" / "clickhouse.yaml").is_file()
    [provider] = load_yaml(provisioning / "dashboards" / "driftline.yaml")["providers"]
    dashboards_dir = mounts()[provider["options"]["path"]]  # the provider reads a mounted dir
    assert (dashboards_dir / "driftline.json").is_file()
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/driftline.json"


def test_dashboard_has_the_key_panels() -> None:
    board = dashboard()
    titles = {p["title"] for p in panels()}
    assert {
        "Drift by feature and window",
        "Share of features drifted",
        "Traffic",
        "Latency",
        "Missing values by feature",
        "Output distribution",
        "Quality and label coverage",
    } <= titles
    assert len({p["id"] for p in panels()}) == len(panels())
    assert [v["name"] for v in board["templating"]["list"]] == ["model", "feature"]
    for panel in panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["editorType"] == "sql" and target["rawSql"].strip()
            assert "FINAL" in target["rawSql"], f"{panel['title']}: read metrics with FINAL"


def test_every_panel_query_runs_on_the_store(store: Store) -> None:
    seed(store)
    start, end = T0, T0 + 6 * STEP
    variables = {"model": "fraud"}
    # the variable queries first: they must offer the seeded model and feature
    [model_query, feature_query] = [v["query"] for v in dashboard()["templating"]["list"]]
    models = store.backend.execute(expand(model_query, variables, start, end))
    assert [r[0] for r in models] == ["fraud"]
    features = store.backend.execute(expand(feature_query, variables, start, end))
    assert [r[0] for r in features] == ["age", "amount", "country"]

    results: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for panel in panels():
        for target in panel["targets"]:
            for feature in ("amount", "country"):  # a numeric and a categorical feature
                sql = expand(target["rawSql"], {"model": "fraud", "feature": feature}, start, end)
                rows = store.backend.execute(sql)
                results[panel["title"], feature] = rows
                if rows:  # Grafana plots against the first DateTime column
                    [(kind,)] = store.backend.execute(
                        f"SELECT toTypeName(time) FROM ({sql}) LIMIT 1"
                    )
                    assert kind == "DateTime", panel["title"]
        assert results[panel["title"], "amount"] or results[panel["title"], "country"], (
            f"panel {panel['title']!r} returned no rows"
        )

    traffic = [r for r in results["Traffic", "amount"] if r[1] == "traffic.count"]
    assert [r[2] for r in traffic] == [600.0 + i for i in range(6)]  # no segment rows mixed in
    drift = [r[2] for r in results["Drift by feature and window", "amount"] if r[1] == "amount"]
    assert drift == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert [r[1] for r in results["Share of features drifted", "amount"]][:2] == [
        "drift.max_effect", "drift.share_drifted",
    ]  # fmt: skip
    # the feature variable narrows the feature panels
    assert {r[1] for r in results["Feature ${feature}", "amount"]} == {
        "input.mean", "input.p05", "input.p50", "input.p95",
    }  # fmt: skip
    assert results["Feature ${feature}", "country"] == []
    categories = results["Categories of ${feature}", "country"]
    assert len(categories) == 6 * 3
    assert {r[1] for r in categories} == {"FR", "DE", "new categories"}
    assert results["Categories of ${feature}", "amount"] == []


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(GRAFANA).as_posix() for p in GRAFANA.rglob("*.y*ml"))
)
def test_provisioning_files_are_grafana_provisioning(path: str) -> None:
    loaded = load_yaml(GRAFANA / path)
    assert loaded["apiVersion"] == 1
    assert {"datasources", "providers"} & set(loaded)
