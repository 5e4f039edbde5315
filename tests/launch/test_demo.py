"""`driftline demo` as a user runs it, one run for every story it tells, each checked through
the API (one run: the stories share its start-up and its minutes):

* window metrics and the injected data drift (quiet before it, the drifted features named);
* the drift fires an alert that a real local webhook receiver gets, signed, and a resolved one
  follows once the drift ends;
* concept drift (labels only) drops quality on the mobile slice, sets the concept-drift flag,
  fires the retrain rule; the retrainer trains, compares and promotes a new version, which
  serving code loads, and quality recovers. A challenger rejected on a channel (a real drop
  beyond chance on that channel's holdout rows) is retried a minute later with more labels,
  so the test accepts any later version (version 4 after two such rejections, 0.836 against
  0.872 and 0.830 against 0.854 on channel=web, in one local run of five);
* the dashboard draws it: the stored counts, the drift on the heat map;
* the ``spam`` release (``launch/demo_release.py``): version 2 in shadow, then a canary at
  5 % → 25 % → 100 % promoted by the judge; version 3, broken, rolled back within a few
  windows, the rollback alerted and shown on the dashboard;
* harm before labels (``launch/demo_loans.py``): the loans model's shift that hurts is paged
  by its estimated quality before the measured quality drop confirms it, and the fraud
  model's harmless drift alerts as a warning while its estimated quality holds.

The tests run in file order on one demo; the last one stops it and reads its log.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import get_json, wait_until
from helpers.browser import Browser, drawn, open_browser, screenshot
from helpers.webhook_receiver import WebhookReceiver

from driftline.broker import free_port

# a warning of the libraries under Driftline (kafka-python, aiokafka, Faust), as logged
LIBRARY_WARNING = re.compile(r"WARNING (kafka|aiokafka|faust|mode)[.:]")
WINDOW = 4
DRIFT_AFTER, DRIFT_FOR, CONCEPT_AFTER = 20, 20, 48
HARM_AFTER, HARM_FOR = 60, 24  # the loans model's shift that hurts


@dataclass
class Demo:
    api: str
    kafka_port: int
    log: Path
    data: Path
    process: subprocess.Popen[bytes]
    receiver: WebhookReceiver


def subscribe(api: str, url: str) -> bool:
    body = json.dumps({"url": url, "secret": "s3cret", "labels": {"feature": "age"}}).encode()
    request = urllib.request.Request(
        f"{api}/v1/subscriptions", body, {"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return bool(reply.status == 201)
    except OSError:
        return False


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("demo")
    api_port, kafka_port = free_port(), free_port()
    log = tmp / "demo.log"
    with WebhookReceiver() as receiver:
        process = subprocess.Popen(
            [sys.executable, "-m", "launch.cli", "demo",
             "--duration", "600", "--window-seconds", str(WINDOW),
             "--drift-after", str(DRIFT_AFTER), "--drift-duration", str(DRIFT_FOR),
             "--concept-after", str(CONCEPT_AFTER),
             "--harm-after", str(HARM_AFTER), "--harm-duration", str(HARM_FOR),
             "--api-port", str(api_port), "--kafka-port", str(kafka_port),
             "--data-dir", str(tmp / "data")],
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        api = f"http://127.0.0.1:{api_port}"
        try:
            # before the drift starts: the demo trains its first model, then serves
            wait_until(lambda: subscribe(api, receiver.url), timeout=30, what="a subscription")
            yield Demo(api, kafka_port, log, tmp / "data", process, receiver)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def series(api: str, model: str, name: str, cut: str = "") -> list[float]:
    body = get_json(f"{api}/v1/models/{model}/metrics?name={name}{cut}")
    if not body or not body["series"]:
        return []
    return [p["value"] for p in body["series"][0]["points"] if p["value"] is not None]


def test_window_metrics_and_the_injected_data_drift(demo: Demo) -> None:
    api = demo.api
    wait_until(lambda: len(series(api, "fraud", "traffic.count")) >= 2, timeout=60,
               what="two demo windows in the API")  # fmt: skip
    model = get_json(f"{api}/v1/models/fraud")
    assert {f["name"] for f in model["features"]} >= {"amount", "age", "country"}
    assert "input.missing_rate" in model["metrics"]

    def drifted_windows() -> list[list[str]]:
        body = get_json(f"{api}/v1/models/fraud/drift")
        return [w["drifted_features"] for w in body["windows"]] if body else []

    # the warm-up reference is learned from the first windows, before the drift starts
    wait_until(lambda: sum(1 for names in drifted_windows() if names) >= 2, timeout=90,
               what="drift in the API")  # fmt: skip
    windows = drifted_windows()
    first = next(i for i, names in enumerate(windows) if names)
    assert first >= 2 and not any(windows[:first])  # quiet before the injected drift
    assert {"items", "age", "country"} <= set(windows[first + 1])
    assert not {"channel", "amount", "account_days"} & set(windows[first + 1])


def test_the_drift_fires_and_resolves_a_signed_webhook(demo: Demo) -> None:
    receiver = demo.receiver
    wait_until(lambda: [e for e, _ in receiver.events()] == ["firing", "resolved"],
               timeout=120, what="the age alert firing, then resolved")  # fmt: skip
    firing, resolved = (r.json for r in receiver.received)
    assert firing["alert"]["rule_id"] == "default-missing-rate"
    assert firing["alert"]["feature"] == "age" and firing["alert"]["value"] > 0.1
    assert resolved["alert"]["id"] == firing["alert"]["id"]
    assert all(r.signed_by("s3cret") for r in receiver.received)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    yield from open_browser(tmp_path_factory)


def test_the_dashboard_draws_the_demo(demo: Demo, browser: Browser) -> None:
    api = demo.api

    def stored_counts() -> list[float]:
        return series(api, "fraud", "traffic.count")

    page = browser.page()
    page.goto(f"{api}/#/models/fraud?range=15m&refresh=3", timeout=90_000)
    # (under a loaded suite the page's first round of requests can take a while)
    page.wait_for_selector('[data-chart="traffic"] [data-series="traffic.count"]', timeout=90_000)
    drawn_counts = drawn(page, "traffic", "traffic.count")
    assert drawn_counts == stored_counts()[: len(drawn_counts)]
    assert all(math.isfinite(v) and v > 0 for v in drawn_counts)
    assert page.locator('[data-chart="latency"] [data-series="latency.p95"]').count() == 1
    # the injected drift shows up on the heat map by itself
    page.wait_for_selector('.cell[data-drifted="1"]', timeout=60_000)
    screenshot(page, "dashboard-demo.png")
    assert f"Dashboard  {api}/" in demo.log.read_text()  # the banner points people at it
    assert browser.errors == []
    page.close()


def test_the_spam_release_shadow_canary_promotion_and_rollback(
    demo: Demo, browser: Browser
) -> None:
    api = demo.api

    def deployments() -> list[dict[str, Any]]:
        return get_json(f"{api}/v1/models/spam/deployments") or []

    wait_until(lambda: [d["state"] for d in deployments()] == ["rolled_back", "promoted"],
               timeout=240, what="version 2 promoted, then version 3 rolled back")  # fmt: skip
    bad, good = deployments()
    # version 2: 5 % -> 25 % -> 100 %, each step promoted by the judge
    assert (good["baseline"], good["candidate"], good["by"]) == ("1", "2", "judge")
    assert good["steps"] == [5, 25, 100]
    verdicts = get_json(f"{api}/v1/models/spam/deployments/{good['id']}")["verdicts"]
    promoted = [(v["step"], v["share"]) for v in verdicts if v["decision"] == "promote"]
    assert promoted == [(0, 5), (1, 25), (2, 100)]
    assert "rollback" not in {v["decision"] for v in verdicts}
    # version 3, broken (a fifth of its answers missing, slower, less accurate): rolled back by
    # the judge within a few windows of its first, on whichever harm it proved first (a loaded
    # machine sends fewer requests a window: a few more windows of evidence)
    assert (bad["baseline"], bad["candidate"], bad["by"]) == ("2", "3", "judge")
    harms = ("output.null_rate", "latency.p95", "quality.error_rate")
    assert any(f"{m} is worse than tolerated" in bad["reason"] for m in harms), bad["reason"]
    judged = get_json(f"{api}/v1/models/spam/deployments/{bad['id']}")["verdicts"]
    assert judged[-1]["decision"] == "rollback" and len(judged) <= 8, judged
    assert judged[-1]["evidence"]["output.null_rate"]["candidate"] > 0.1
    # the rollback reached the alerts, on version 3
    alerts = get_json(f"{api}/v1/alerts?model=spam&version=3") or []
    assert "DeploymentRolledBack" in {a["rule_name"] for a in alerts}
    # the shadow phase: version 2 against version 1 on the same requests
    agreement = series(api, "spam", "shadow.agreement", "&shadow=true")
    assert agreement and min(agreement) > 0.8
    # every version monitored on its own; a tenth of the cases decided by people
    model = get_json(f"{api}/v1/models/spam")
    assert {t["version"] for t in model["traffic"]} >= {"1", "2", "3"}
    human = series(api, "spam", "traffic.human_share")
    assert human and 0.02 < sum(human) / len(human) < 0.3
    # the dashboard: the versions side by side, the last deployment's steps and verdicts
    page = browser.page()
    page.goto(f"{api}/#/models/spam?range=15m", timeout=90_000)
    page.wait_for_selector('#deployments tr[data-version="3"]', timeout=90_000)
    assert page.locator("#deployment tr.verdict").count() == len(judged)
    drawn_agreement = drawn(page, "shadow", "shadow.agreement")
    assert drawn_agreement and min(drawn_agreement) > 0.8
    assert "rolled back" in page.inner_text("#deployment").replace("_", " ")
    screenshot(page, "dashboard-release.png")
    assert browser.errors == []
    page.close()


def test_harm_is_paged_before_labels_and_harmless_drift_is_a_warning(demo: Demo) -> None:
    api = demo.api

    def alerts(model: str, rule: str) -> list[dict[str, Any]]:
        every = get_json(f"{api}/v1/alerts?model={model}") or []
        return [a for a in every if a["rule_id"] == rule and a["fired_at"]]

    # loans: applicants crowd the boundary. The estimate drops in the shifted windows and the
    # estimated-harm alert fires; the labels of those windows land 6 to 9 windows later, and
    # the measured quality drop (concept-drift rule) confirms it after. (A window before the
    # shift can fail the measured test by chance, a 5-point drop at 2.8 sigma: that alert is
    # about other windows, so the one compared is the first on the harm's windows)
    harm: Any = wait_until(lambda: alerts("loans", "default-estimated-harm"), timeout=150,
                           what="the estimated-harm alert on loans")  # fmt: skip
    first_harm = min(harm, key=lambda a: a["active_since"])
    assert first_harm["severity"] == "critical"

    def measured_on_the_shift() -> list[dict[str, Any]]:
        found = alerts("loans", "default-concept-drift")
        return [a for a in found if a["active_since"] >= first_harm["active_since"]]

    measured: Any = wait_until(measured_on_the_shift, timeout=90,
                               what="the measured quality drop on loans")  # fmt: skip
    assert first_harm["fired_at"] < min(a["fired_at"] for a in measured)
    estimated = series(api, "loans", "quality.estimated.accuracy")
    assert max(estimated) > 0.72 and min(estimated) < 0.65
    # fraud: the data drift does not hurt, the estimate holds, so its drift-share alert is a
    # ticket (warning), not a page
    share = alerts("fraud", "default-drift-share")
    assert share and all(a["severity"] == "warning" for a in share), share
    assert share[0]["labels"]["demoted"] == "estimated quality holds"
    assert not alerts("fraud", "default-estimated-harm")
    # (version 1's: a retrained version has its own reference, once its labels are in)
    body = get_json(f"{api}/v1/models/fraud/estimation?version=1")
    assert body["method"] == "cbpe" and body["status"] in ("estimating", "unreliable"), body


def test_concept_drift_is_retrained_and_promoted(demo: Demo, browser: Browser) -> None:
    api = demo.api
    jobs: Any = wait_until(
        lambda: [j for j in get_json(f"{api}/v1/retrain-jobs") or [] if j["state"] == "succeeded"],
        timeout=300,
        what="a succeeded retraining job",
    )
    job: dict[str, Any] = jobs[0]
    new = job["version"]
    assert job["reason"] == "alert" and job["alert_id"] and int(new) >= 2
    assert job["metrics"]["challenger"]["accuracy"] > job["metrics"]["champion"]["accuracy"]
    assert job["data_start"] < job["data_end"]
    # where the new version's error comes from: the concept drift is data mismatch (the
    # newest events differ from the training period's), not variance
    errors = job["metrics"]["errors"]
    assert {"avoidable_bias", "variance", "data_mismatch"} <= set(errors)
    assert errors["holdout"] == pytest.approx(1 - job["metrics"]["challenger"]["accuracy"])
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
    assert 0.0 < max(series(api, "fraud", "labels.coverage")) <= 1.0
    mobile = series(api, "fraud", "quality.accuracy", "&segment=channel%3Dmobile")
    assert max(mobile) > 0.75 and min(mobile) < 0.5
    assert 1.0 in series(api, "fraud", "drift.concept")
    drift = get_json(f"{api}/v1/models/fraud/drift")
    assert any(w["concept_drifted"] for w in drift["windows"])
    alerts = get_json(f"{api}/v1/alerts") or []
    concept = [a for a in alerts if a["rule_id"] == "demo-concept-retrain"]
    assert concept
    # the planted failing slice (mobile, where fraud moved) is the alert's top finding, found
    # in its labelled examples as it fired, and the dashboard's alerts table shows it
    first = concept[-1]
    top = first["findings"]["items"][0]
    # (the demo's segment repeats its channel feature: the search names the feature). When
    # the first breaching window still holds events from before the drift, the top finding can
    # be the high amounts the model now gets wrong on mobile (seen in one run of three): the
    # same planted drift, through the other feature it moved
    assert top["kind"] == "errors", first["findings"]
    planted = "channel=mobile" in top["slice"] or top["slice"].startswith("amount")
    assert planted, first["findings"]
    assert top["value"] > top["reference"] and top["q_value"] < 0.05
    assert "ALERT found    ConceptDriftRetrain 'fraud': top slice " in demo.log.read_text()
    page = browser.page()
    page.goto(f"{api}/#/models/fraud?range=15m", timeout=90_000)
    cell = page.wait_for_selector(
        f'#alerts .alert-row:has-text("ConceptDriftRetrain") .finding:has-text("{top["slice"]}")',
        timeout=90_000,
    )
    assert cell is not None and "error" in (cell.get_attribute("title") or "")
    screenshot(page, "dashboard-alert-finding.png")
    page.close()
    # error analysis on what came through the broker: the wrong examples, one tagged, the table
    wrong = get_json(
        f"{api}/v1/models/fraud/examples?errors=true&limit=20&segment=channel%3Dmobile"
    )
    assert wrong["rows"] and all(not r["correct"] for r in wrong["rows"])
    ids = [r["id"] for r in wrong["rows"][:10]]
    request = urllib.request.Request(
        f"{api}/v1/models/fraud/tags",
        json.dumps({"tag": "reviewed", "ids": ids}).encode(),
        {"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert json.load(reply)["count"] == 10
    # (the search over the newest labelled examples takes a few seconds on a loaded machine)
    with urllib.request.urlopen(
        f"{api}/v1/models/fraud/error-analysis?min_size=5", timeout=90
    ) as r:
        table = json.load(r)
    groups = {r["name"]: r for r in table["rows"] if r["kind"] != "slice"}
    assert groups["reviewed"]["size"] == 10 and groups["reviewed"]["error"] == 1.0
    assert groups["channel=mobile"]["error"] > groups["channel=web"]["error"]
    # serving code loaded the new version, its events are monitored as such, quality recovers
    wait_until(
        lambda: new in (get_json(f"{api}/v1/models/fraud") or {}).get("versions", []),
        timeout=30,
        what=f"events of version {new}",
    )
    wait_until(
        lambda: (
            series(api, "fraud", "quality.accuracy", "&segment=channel%3Dmobile")[-1]
            > min(mobile) + 0.2
        ),
        timeout=40,
        what=f"mobile accuracy recovering under version {new}",
    )
    demo.log.with_suffix(".version").write_text(new)


def test_the_demo_stops_cleanly_and_its_log_tells_every_story(demo: Demo) -> None:
    demo.process.terminate()
    assert demo.process.wait(timeout=60) == 0
    out = demo.log.read_text()
    assert f"API        {demo.api}" in out and f"bootstrap 127.0.0.1:{demo.kafka_port}" in out
    assert "stored window" in out and "injecting drift" in out and "DRIFT in" in out
    assert "ALERT firing   FeatureMissingRateHigh" in out and "drift ends now" in out
    assert "concept drift now" in out
    served = demo.log.with_suffix(".version")
    if served.exists():
        assert f"now serving version {served.read_text()}" in out
    for line in (
        "version 2 runs in shadow",
        "canary of 'spam' version 2 against 1: 5 % → 25 % → 100 %",
        "'spam' version 2 now takes 25 %",
        "'spam' version 2 promoted by the judge",
        "canary of 'spam' version 3 against 2",
        "'spam' version 3 rolled back by the judge",
        "DEPLOYMENT rolled_back",
        "'loans' applicants move to the model's boundary now",
        "ALERT firing   EstimatedQualityDrop (critical) 'loans'",
    ):
        assert line in out, line
    assert "driftline: stopped" in out
    # kafka-python's internal warnings go to the log file, not among the demo's lines
    assert not LIBRARY_WARNING.search(out), out
    assert LIBRARY_WARNING.search((demo.data / "driftline.log").read_text())
