"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

The API serves windows written through the real Store API into the embedded ClickHouse
engine (the dashboard of a real ``driftline demo`` process: tests/launch/test_demo.py).
Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from helpers import wait_until
from helpers.browser import Browser, drawn, open_browser, screenshot
from playwright.sync_api import Route
from pydantic import SecretStr

from alarms.rules import Comparison
from alarms.state import Alert, AlertState
from api.main import create_app
from driftline.broker import free_port
from driftline.settings import Settings
from driftline.store import DriftRow, MetricPoint, Store, Stores
from driftline.store.alarms import AlarmStore
from driftline.store.deployments import StepVerdict
from driftline.store.embedded import EmbeddedBackend
from driftline.store.labels import LabelRow, LabelStore, PredictionRow
from launch.services import ApiThread

STEP = 60
WINDOWS = 40
DRIFT_FROM = 30  # windows from this index on have drifted 'amount' and 'age'
CLICKED_FROM = 10  # the outcome 'clicked' comes with labels from this window on


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    yield from open_browser(tmp_path_factory)


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- a store with known windows ------------------------------------------------------------
def traffic(i: int) -> float:
    return 1000.0 + 10 * i


def p95(i: int) -> float:
    return 20.0 + i / 2


def estimated(i: int) -> float:
    return 0.72 if i >= DRIFT_FROM else 0.88


def slice_accuracy(segment: str, i: int) -> float:
    """Mobile's accuracy falls with the drift, web's does not."""
    return 0.5 if segment == "channel=mobile" and i >= DRIFT_FROM else 0.9


def ctr(i: int, stat: str = "mean") -> float:
    """The custom metric 'ctr' sent with predictions: its stored stats per window."""
    return {"mean": 0.02, "p50": 0.015, "p95": 0.05, "count": 100.0}[stat] + (
        i if stat == "count" else i / 1000
    )


def clicked(i: int, stat: str = "mean") -> float:
    """The outcome 'clicked' sent with labels, from window CLICKED_FROM on."""
    if stat == "count":
        return 20.0 + i
    return 0.25 if i >= DRIFT_FROM else 0.4


def slice_ctr(segment: str, i: int) -> float:
    return ctr(i) * (2 if segment == "channel=web" else 0.5)


def drift_row(
    model: str, t: int, feature: str, test: str, drifted: bool, effect: float
) -> DriftRow:
    return DriftRow(
        model=model,
        window_start=t,
        window_seconds=STEP,
        feature=feature,
        test=test,
        statistic=effect,
        p_value=1e-12 if drifted else 0.4,
        adjusted_p_value=3e-12 if drifted else 0.9,
        effect_size=effect,
        min_effect=0.1,
        drifted=drifted,
        in_decision=True,
        drift_when="p_value_below_alpha_and_effect_at_least_min",
        n_reference=5000,
        n_current=1000,
        reference="warmup",
    )


def seed(store: Store, now: int) -> list[int]:
    """40 one-minute windows of 'fraud' up to now (drift from window 30), 5 of 'churn'."""
    last = now // STEP * STEP - STEP
    starts = [last - STEP * (WINDOWS - 1 - i) for i in range(WINDOWS)]
    for i, t in enumerate(starts):
        drifted = i >= DRIFT_FROM

        def point(
            metric: str, value: float, feature: str = "", category: str = "", t: int = t
        ) -> MetricPoint:
            return MetricPoint("fraud", t, STEP, metric, value, feature, category, version="1")

        points = [
            point("traffic.count", traffic(i)),
            point("traffic.invalid", float(i % 3)),
            point("traffic.late", 0.0),
            point("latency.p50", 10.0),
            point("latency.p95", p95(i)),
            point("latency.p99", 40.0),
            point("input.missing_rate", 0.01, "amount"),
            point("input.missing_rate", 0.2 if drifted else 0.02, "age"),
            point("input.missing_rate", 0.0, "country"),
            point("input.mean", 60.0 if drifted else 33.0, "amount"),
            point("input.p05", 8.0, "amount"),
            point("input.p50", 45.0 if drifted else 25.0, "amount"),
            point("input.p95", 190.0 if drifted else 110.0, "amount"),
            point("input.mean", 40.0, "age"),
            point("input.category_freq", 0.6, "country", "FR"),
            point("input.category_freq", 0.2 if drifted else 0.4, "country", "DE"),
            point("output.mean", 0.3, ""),
            point("output.p05", 0.05),
            point("output.p50", 0.25),
            point("output.p95", 0.8),
            point("output.null_rate", 0.0),
            point("drift.share_drifted", 2 / 3 if drifted else 0.0),
            point("drift.max_effect", 0.45 if drifted else 0.05),
            point("drift.drifted", float(drifted), "amount"),
            point("drift.drifted", float(drifted), "age"),
            point("drift.drifted", 0.0, "country"),
        ]
        points.append(point("quality.accuracy", 0.7 if drifted else 0.9))
        # the estimate (no labels needed) and its band, the verdict, and its error
        points += [
            point("quality.estimated.accuracy", estimated(i)),
            point("quality.estimated.accuracy.lower", estimated(i) - 0.03),
            point("quality.estimated.accuracy.upper", estimated(i) + 0.03),
            point("quality.estimated.accuracy.error", 0.01),
            point("quality.estimated.available", 1.0),
        ]
        points += [point(f"custom.ctr.{stat}", ctr(i, stat)) for stat in ("mean", "p50", "p95")]
        points.append(point("custom.ctr.count", ctr(i, "count")))
        if i >= CLICKED_FROM:
            points += [
                point(f"labels.custom.clicked.{s}", clicked(i, s)) for s in ("mean", "count")
            ]
        for segment in ("channel=mobile", "channel=web"):
            points += [
                MetricPoint("fraud", t, STEP, "traffic.count", traffic(i) / 2, segment=segment,
                            version="1"),
                MetricPoint("fraud", t, STEP, "quality.accuracy", slice_accuracy(segment, i),
                            segment=segment, version="1"),
                MetricPoint("fraud", t, STEP, "custom.ctr.mean", slice_ctr(segment, i),
                            segment=segment, version="1"),
            ]  # fmt: skip
        rows = [
            drift_row("fraud", t, "amount", "ks", drifted, 0.45 if drifted else 0.05),
            drift_row("fraud", t, "age", "missing_rate", drifted, 0.18 if drifted else 0.01),
            drift_row("fraud", t, "country", "chi_square", False, 0.04),
        ]
        store.write_window(points, [], drift_rows=rows)
    for i in range(5):
        t = last - STEP * (4 - i)
        store.write_window([MetricPoint("churn", t, STEP, "traffic.count", 50.0, version="7")], [])
    alert = Alert(
        id="a-drift", rule_id="drift-share", rule_name="features drifting", model="fraud",
        feature="", segment="", metric="drift.share_drifted", comparison=Comparison.GT,
        threshold=0.3, severity="critical", state=AlertState.FIRING, value=2 / 3,
        active_since=starts[DRIFT_FROM], last_window=starts[-1], fired_at=now - 300,
        updated_at=now,
    )  # fmt: skip
    resolved = Alert(
        id="a-latency", rule_id="slow", rule_name="slow predictions", model="fraud",
        feature="", segment="", metric="latency.p95", comparison=Comparison.GT, threshold=21.0,
        severity="warning", state=AlertState.RESOLVED, value=20.5, active_since=starts[1],
        last_window=starts[4], fired_at=starts[3] + 70, resolved_at=starts[4] + 70,
        updated_at=starts[4] + 70,
    )  # fmt: skip
    AlarmStore(store.backend).write_alerts([alert, resolved])
    seed_versions(store, starts, now)
    return starts


# 'ranker': version 1 alone for two windows, then a canary of version 2 at 5, 25 and 50 %
RANKER_V2 = [0, 0, 50, 50, 250, 250, 500, 500]  # version 2's events per window (of 1000)
RANKER_STEPS = [5.0, 25.0, 50.0, 100.0]
RANKER_VERDICTS = [  # (window index, step, decision, reason) of the newest deployment
    (2, 0, "wait", "too few events yet"),
    (3, 0, "promote", "step 1 passed: no harm after 2 windows"),
    (4, 1, "hold", "latency p95 not proven worse yet"),
    (5, 1, "promote", "step 2 passed: no harm after 2 windows"),
    (6, 2, "hold", "error rate within tolerance so far"),
]


def ranker(version: str, metric: str, i: int) -> float:
    """A per-version figure of 'ranker' in window i: version 2 is a little slower."""
    slower = version == "2"
    return {
        "quality.error_rate": 0.12 if slower else 0.10,
        "latency.p95": (24.0 if slower else 20.0) + i,
        "output.null_rate": 0.01 if slower else 0.0,
    }[metric]


def seed_versions(store: Store, starts: list[int], now: int) -> None:
    """8 windows of 'ranker' (versions 1 and 2, each window's whole rows and its version cuts
    where it had both), a rolled-back deployment and an active canary with its verdicts."""
    windows = starts[-len(RANKER_V2) :]
    for i, (t, v2) in enumerate(zip(windows, RANKER_V2, strict=True)):
        counts = {"1": 1000.0 - v2, "2": float(v2)}
        points = [MetricPoint("ranker", t, STEP, "traffic.count", 1000.0, version="1")]
        points += [
            MetricPoint("ranker", t, STEP, m, ranker("1", m, i), version="1")
            for m in ("quality.error_rate", "latency.p95", "output.null_rate")
        ]
        if v2:  # a window of several versions stores a cut per version
            for version, count in counts.items():
                cut = f"@version={version}"
                points.append(MetricPoint("ranker", t, STEP, "traffic.count", count,
                                          segment=cut, version=version))  # fmt: skip
                points += [
                    MetricPoint("ranker", t, STEP, m, ranker(version, m, i), segment=cut,
                                version=version)
                    for m in ("quality.error_rate", "latency.p95", "output.null_rate")
                ]  # fmt: skip
        store.write_window(points, [])
    deployments = Stores(store).deployments
    old = deployments.create("ranker", "blue_green", "1", "2", [100.0], 1, {}, starts[0],
                             now=now - 3000)  # fmt: skip
    deployments.update(old, state="rolled_back", by="alice", reason="p95 latency up 30 %")
    canary = deployments.create("ranker", "canary", "1", "2", RANKER_STEPS, 2, {}, windows[2],
                                now=now - 600)  # fmt: skip
    for index, step, decision, reason in RANKER_VERDICTS:
        deployments.record_verdict(
            StepVerdict(canary.id, "ranker", windows[index], step, RANKER_STEPS[step],
                        decision, reason, {"events": 1000 - RANKER_V2[index]})
        )  # fmt: skip
    deployments.update(canary, step=2, step_started=windows[6], reason="step 2 passed")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store, list[int]]]:
    store = Store(EmbeddedBackend(tmp_path_factory.mktemp("dashboard") / "chdb"))
    store.init_schema()
    starts = seed(store, int(time.time()))
    port = free_port()
    api = ApiThread(
        create_app(Settings(kafka_bootstrap="127.0.0.1:9"), Stores(store)), "127.0.0.1", port
    )
    api.start()
    try:
        yield f"http://127.0.0.1:{port}", store, starts
    finally:
        api.stop()
        store.close()


def test_overview_shows_models_with_health_and_opens_a_model(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    url, _, _ = dashboard
    page = browser.page()
    page.goto(f"{url}/")
    page.wait_for_selector('[data-model="fraud"] svg.spark')
    assert page.locator("[data-model]").count() == 3  # fraud, churn and ranker
    assert page.get_attribute('[data-model="fraud"] [data-health]', "data-health") == "firing"
    assert page.get_attribute('[data-model="churn"] [data-health]', "data-health") == "healthy"
    spark = page.get_attribute('[data-model="fraud"] svg.spark', "data-values")
    assert spark is not None
    assert [float(v) for v in spark.split(",")] == [traffic(i) for i in range(WINDOWS)]
    assert "67%" in page.inner_text('[data-model="fraud"]')  # the drift share, at a glance
    assert "features drifting" in page.inner_text("main")  # the firing alerts, above the cards
    screenshot(page, "dashboard-overview.png")

    page.click('[data-model="fraud"]')
    page.wait_for_selector('[data-chart="traffic"]')
    assert page.evaluate("location.hash").startswith("#/models/fraud?")
    assert page.inner_text("main h1") == "fraud"
    page.click("#crumbs a")  # back to the list
    page.wait_for_selector('[data-model="churn"]')
    assert browser.errors == []
    page.close()


def test_model_page_charts_show_the_stored_values(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    url, _, starts = dashboard
    page = browser.page()
    page.goto(f"{url}/#/models/fraud?range=1h&refresh=0")
    page.wait_for_selector('[data-chart="drift-heatmap"] .cell')

    assert drawn(page, "traffic", "traffic.count") == [traffic(i) for i in range(WINDOWS)]
    assert drawn(page, "latency", "latency.p95") == [p95(i) for i in range(WINDOWS)]
    missing_age = drawn(page, "missing", "age")
    assert missing_age == [0.2 if i >= DRIFT_FROM else 0.02 for i in range(WINDOWS)]
    share = drawn(page, "share", "features drifted")
    assert [round(v, 3) for v in share] == [
        0.667 if i >= DRIFT_FROM else 0.0 for i in range(WINDOWS)
    ]

    # the heat map: one cell per feature and window, drifted exactly where the store says
    cells = page.eval_on_selector_all(
        '[data-chart="drift-heatmap"] .cell',
        "cells => cells.map(c => [c.dataset.feature, c.dataset.window, c.dataset.drifted])",
    )
    assert len(cells) == 3 * WINDOWS
    expected = {
        (feature, iso(t), "1" if i >= DRIFT_FROM and feature != "country" else "0")
        for i, t in enumerate(starts)
        for feature in ("amount", "age", "country")
    }
    assert {tuple(c) for c in cells} == expected
    rows = page.eval_on_selector_all(
        '[data-chart="drift-heatmap"] .row-label', "rows => rows.map(r => r.textContent)"
    )
    assert rows[:2] == ["age", "amount"] and rows[2] == "country"  # drifted features first

    # the firing alert: a banner, the alerts table, a marker where its breach began
    assert "features drifting" in page.inner_text("#firing-banner")
    states = page.eval_on_selector_all(
        "#alerts [data-alert-state]", "r => r.map(x => x.dataset.alertState)"
    )
    assert states == ["firing", "resolved"]
    assert "slow predictions" in page.inner_text("#alerts")
    marker = page.locator(
        '[data-chart="drift-heatmap"] [data-marker^="critical: features drifting"]'
    )
    assert marker.count() == 1
    heat_box = page.locator('[data-chart="drift-heatmap"] .cell[data-feature="age"]').nth(
        DRIFT_FROM
    )
    marker_box, cell_box = marker.bounding_box(), heat_box.bounding_box()
    assert marker_box is not None and cell_box is not None
    assert abs(marker_box["x"] + marker_box["width"] / 2 - cell_box["x"]) < 3  # at drift onset

    # hovering a drifted cell names the test and its effect size
    page.hover(f'.cell[data-feature="amount"][data-window="{iso(starts[-1])}"]')
    tip = page.inner_text("#tooltip")
    assert "amount" in tip and "ks" in tip and "0.45 / 0.1" in tip and "drift" in tip

    # hovering the traffic chart shows the value of the window under the pointer
    box = page.locator('[data-chart="traffic"] .overlay').bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    assert f"{traffic(WINDOWS - 1):.0f}" in page.inner_text("#tooltip")

    # the feature panel follows the most drifted feature, and the picker switches it
    assert page.input_value("#feature") == "age"
    page.select_option("#feature", "amount")
    page.wait_for_function("location.hash.includes('feature=amount')")
    page.wait_for_selector('[data-chart="feature"] [data-series="amount p50"]')
    assert drawn(page, "feature", "amount p50")[-1] == 45.0
    assert "No retraining jobs yet" in page.inner_text("#retraining")

    # by slice: one line per segment value, quality first; the picker switches the metric
    for segment in ("channel=mobile", "channel=web"):
        accuracy = drawn(page, "slices", segment)
        assert accuracy == [slice_accuracy(segment, i) for i in range(WINDOWS)]
    page.select_option("#slice-metric", "traffic.count")
    page.wait_for_function("location.hash.includes('slice=traffic.count')")
    page.wait_for_selector('#slices option[value="traffic.count"][selected]', state="attached")
    assert drawn(page, "slices", "channel=web") == [traffic(i) / 2 for i in range(WINDOWS)]
    screenshot(page, "dashboard-model.png")
    assert browser.errors == []
    page.close()


def test_model_page_charts_custom_metrics_by_name(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    url, _, starts = dashboard
    page = browser.page()
    page.goto(f"{url}/#/models/fraud?range=1h&refresh=0")
    page.wait_for_selector('#custom-metrics [data-chart="labels.custom.clicked"]')

    # one chart per name found in the data: sent with predictions first, then outcomes
    blocks = page.eval_on_selector_all(
        "#custom-metrics [data-custom-metric]",
        "bs => bs.map(b => [b.dataset.customMetric, b.querySelector('.custom-name').textContent,"
        " Number(b.dataset.latestCount)])",
    )
    assert blocks == [
        ["custom.ctr", "ctr", ctr(WINDOWS - 1, "count")],
        ["labels.custom.clicked", "clicked", clicked(WINDOWS - 1, "count")],
    ]
    assert f"latest count {ctr(WINDOWS - 1, 'count'):.0f}" in page.inner_text(
        '[data-custom-metric="custom.ctr"] h3'
    )
    assert "outcome" in page.inner_text('[data-custom-metric="labels.custom.clicked"] h3')

    # the mean over time, with p50 and p95 where they were stored
    for stat in ("mean", "p50", "p95"):
        assert drawn(page, "custom.ctr", f"custom.ctr.{stat}") == [
            ctr(i, stat) for i in range(WINDOWS)
        ]
    assert drawn(page, "labels.custom.clicked", "labels.custom.clicked.mean") == [
        clicked(i) for i in range(CLICKED_FROM, WINDOWS)
    ]
    assert page.locator('[data-chart="labels.custom.clicked"] [data-series]').count() == 1
    # outcome metrics are not drawn a second time among the quality lines
    assert page.locator('[data-chart="quality"] [data-series*="custom"]').count() == 0
    # estimated quality: the headline and its band beside the measured accuracy, not a line
    # per estimated figure
    estimates = drawn(page, "quality", "quality.estimated.accuracy")
    assert estimates == [estimated(i) for i in range(WINDOWS)]
    assert page.locator('[data-chart="quality"] [data-band="estimated 95 %"]').count() == 1
    assert page.locator('[data-chart="quality"] [data-series^="quality.estimated."]').count() == 1

    # the custom charts follow the page's time range like the others
    page.goto(f"{url}/#/models/fraud?range=custom&from={starts[5]}&to={starts[15]}&refresh=0")
    in_range = [ctr(i) for i in range(5, 15)]
    wait_until(lambda: drawn(page, "custom.ctr", "custom.ctr.mean") == in_range, timeout=10,
               what="the custom range on the custom metric chart")  # fmt: skip
    assert drawn(page, "labels.custom.clicked", "labels.custom.clicked.mean") == [
        clicked(i) for i in range(CLICKED_FROM, 15)
    ]

    # and a custom metric's mean can be compared across slices
    page.goto(f"{url}/#/models/fraud?range=1h&refresh=0&slice=custom.ctr.mean")
    page.wait_for_selector('#slices option[value="custom.ctr.mean"][selected]', state="attached")
    for segment in ("channel=mobile", "channel=web"):
        expected = [slice_ctr(segment, i) for i in range(WINDOWS)]

        def drawn_slice(segment: str = segment, expected: list[float] = expected) -> bool:
            return drawn(page, "slices", segment) == expected

        wait_until(drawn_slice, timeout=10, what=f"custom.ctr.mean of {segment}")
    screenshot(page, "dashboard-custom-metrics.png")

    # a model without custom metrics has no such section
    page.goto(f"{url}/#/models/churn?range=1h&refresh=0")
    page.wait_for_selector('main h1:text-is("churn")')
    page.wait_for_selector('[data-chart="traffic"]')
    assert page.locator("#custom-metrics").count() == 0
    assert browser.errors == []
    page.close()


def test_model_page_shows_versions_and_deployments(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    url, _, _ = dashboard
    page = browser.page()
    page.goto(f"{url}/#/models/ranker?range=1h&refresh=0")
    page.wait_for_selector('#deployments [data-chart="version-share"]')

    # the versions side by side: share of the last hour's events, and each one's latest figures
    rows = page.eval_on_selector_all(
        "#deployments tr[data-version]",
        "rs => rs.map(r => [r.dataset.version, Number(r.dataset.share),"
        " r.querySelector('.share').textContent])",
    )
    v2 = sum(RANKER_V2)
    total = 1000 * len(RANKER_V2)
    assert [r[0] for r in rows] == ["1", "2"]
    assert [round(r[1], 6) for r in rows] == [round((total - v2) / total, 6), round(v2 / total, 6)]
    assert [r[2] for r in rows] == ["80%", "20%"]
    headers = page.eval_on_selector_all(
        "#deployments table.versions th", "hs => hs.map(h => h.textContent)"
    )
    # only the figures stored: 'ranker' has no drift results
    assert headers[4:] == ["quality.error_rate", "latency.p95", "output.null_rate"]
    last = len(RANKER_V2) - 1
    for version in ("1", "2"):
        cells = page.eval_on_selector_all(
            f'#deployments tr[data-version="{version}"] td[data-metric]',
            "cs => Object.fromEntries(cs.map(c => [c.dataset.metric, c.textContent]))",
        )
        assert cells == {
            "quality.error_rate": "12%" if version == "2" else "10%",
            "latency.p95": f"{ranker(version, 'latency.p95', last):.0f} ms",
            "output.null_rate": "1.0%" if version == "2" else "0%",
        }
    assert "baseline" in page.inner_text('#deployments tr[data-version="1"]')
    assert "candidate" in page.inner_text('#deployments tr[data-version="2"]')

    # each version's share of the traffic, window by window (version 1 alone at first)
    shares = drawn(page, "version-share", "version 2")
    assert [round(v, 6) for v in shares] == [n / 1000 for n in RANKER_V2 if n]
    assert drawn(page, "version-share", "version 1") == [(1000 - n) / 1000 for n in RANKER_V2]

    # the newest deployment: an active canary at its third step (50 %)
    block = page.locator("#deployment")
    assert block.get_attribute("data-state") == "active"
    assert "Canary 1 → 2" in block.inner_text() and "active" in block.inner_text()
    assert "candidate share now 50%" in block.inner_text()
    steps = page.eval_on_selector_all(
        "#deployment .step",
        "s => s.map(x => [x.querySelector('b').textContent, x.dataset.stepState])",
    )
    assert steps == [["5%", "done"], ["25%", "done"], ["50%", "current"], ["100%", "pending"]]
    assert page.get_attribute("#deployment .step[aria-current]", "data-step") == "2"

    # its verdicts, newest window first, each decision in its colour, with its reason
    verdicts = page.eval_on_selector_all(
        "#deployment tr.verdict",
        "rs => rs.map(r => [r.dataset.window, r.dataset.decision,"
        " r.cells[2].textContent, r.cells[4].textContent])",
    )
    windows = starts_of_ranker(dashboard[2])
    assert verdicts == [
        [iso(windows[index]), decision, f"{RANKER_STEPS[step]:.0f}%", reason]
        for index, step, decision, reason in reversed(RANKER_VERDICTS)
    ]
    colour = "el => getComputedStyle(el).backgroundColor"
    promote = page.eval_on_selector("#deployment .pill.decision.promote", colour)
    hold = page.eval_on_selector("#deployment .pill.decision.hold", colour)
    wait = page.eval_on_selector("#deployment .pill.decision.wait", colour)
    assert promote == "rgb(220, 252, 231)"  # green
    assert hold == wait == "rgb(226, 232, 240)"  # grey

    # the earlier deployment, compactly: rolled back by alice, and why
    older = page.inner_text("#deployments table.deployments-older tbody")
    assert "blue_green" in older and "1 → 2" in older and "rolled back" in older
    assert "alice" in older and "p95 latency up 30 %" in older
    rolled = page.eval_on_selector("table.deployments-older .pill.rolled_back", colour)
    assert rolled == "rgb(254, 226, 226)"  # red
    screenshot(page, "dashboard-deployments.png")

    # a model of one version and no deployment has no such section
    page.goto(f"{url}/#/models/churn?range=1h&refresh=0")
    page.wait_for_selector('main h1:text-is("churn")')
    page.wait_for_selector('[data-chart="traffic"]')
    assert page.locator("#deployments").count() == 0
    assert browser.errors == []
    page.close()


def starts_of_ranker(starts: list[int]) -> list[int]:
    return starts[-len(RANKER_V2) :]


def test_time_range_picker_and_auto_refresh(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    url, store, starts = dashboard
    page = browser.page()
    page.goto(f"{url}/#/models/fraud?range=1h&refresh=0")
    page.wait_for_selector('[data-chart="traffic"]')
    everything = [traffic(i) for i in range(WINDOWS)]

    page.select_option("#range", "15m")
    page.wait_for_function("location.hash.includes('range=15m')")
    wait_until(lambda: len(drawn(page, "traffic", "traffic.count")) < WINDOWS, timeout=10,
               what="the 15-minute range to be drawn")  # fmt: skip
    last15 = drawn(page, "traffic", "traffic.count")
    # the page drew the windows that start within 15 minutes of when it asked: count them now,
    # give or take the one that may have aged out meanwhile (a loaded machine is slow)
    in_range = sum(1 for t in starts if t >= time.time() - 900)
    assert in_range <= len(last15) <= in_range + 1
    assert last15 == everything[-len(last15) :]

    # dragging across a chart zooms every chart to that stretch
    page.select_option("#range", "1h")
    wait_until(lambda: len(drawn(page, "traffic", "traffic.count")) == WINDOWS, timeout=10,
               what="the hour to be drawn again")  # fmt: skip
    box = page.locator('[data-chart="traffic"] .overlay').bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 20, steps=5)
    page.mouse.up()
    page.wait_for_function("location.hash.includes('range=custom')")
    wait_until(lambda: 8 <= len(drawn(page, "traffic", "traffic.count")) <= 12, timeout=10,
               what="the dragged stretch to be drawn")  # fmt: skip
    zoomed = drawn(page, "traffic", "traffic.count")
    assert zoomed == everything[everything.index(zoomed[0]) :][: len(zoomed)]
    assert drawn(page, "latency", "latency.p95")[0] == p95(everything.index(zoomed[0]))

    # a custom range: windows 10 to 19 exactly
    page.select_option("#range", "custom")
    page.fill("#from", datetime.fromtimestamp(starts[10], UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    page.fill("#to", datetime.fromtimestamp(starts[20], UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    page.click("#apply")
    wait_until(lambda: drawn(page, "traffic", "traffic.count") == everything[10:20], timeout=10,
               what="the custom range to be drawn")  # fmt: skip
    assert f"from={starts[10]}" in page.evaluate("location.hash")

    # auto-refresh: a window stored now appears without reloading the page
    page.select_option("#range", "1h")
    page.select_option("#refresh", "5")
    new_start = starts[-1] + STEP
    store.write_window([MetricPoint("fraud", new_start, STEP, "traffic.count", 4242.0)], [])
    wait_until(lambda: drawn(page, "traffic", "traffic.count")[-1] == 4242.0, timeout=15,
               what="auto-refresh to draw the new window")  # fmt: skip
    assert browser.errors == []
    page.close()


def test_an_api_slower_than_the_refresh_interval_still_gets_drawn(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    """At 3 a.m. the store is slow: a page whose round of requests takes longer than its
    refresh interval must still draw, and must not send a new round on top of the last."""
    url, store, _ = dashboard
    page = browser.page()
    asked: list[str] = []

    def slow(route: Route) -> None:
        if "name=traffic.count" in route.request.url:
            asked.append(route.request.url)
        time.sleep(0.25)  # the handlers run one at a time: a round takes seconds
        route.continue_()

    page.route("**/v1/**", slow)
    started = time.monotonic()
    page.goto(f"{url}/#/models/fraud?range=1h&refresh=1")
    page.wait_for_selector('[data-chart="traffic"] [data-series="traffic.count"]', timeout=60_000)
    elapsed, rounds = time.monotonic() - started, len(asked)
    # (what the store holds: an earlier test of this module may have added a window)
    stored = [p.value for p in store.metrics("fraud", name="traffic.count")]
    assert drawn(page, "traffic", "traffic.count") == stored
    # a tick while a round is still out is skipped: far fewer rounds than the one a second
    # that ticks alone would send (a round takes seconds here)
    assert elapsed > 3 and rounds < elapsed / 2, (elapsed, rounds)
    page.unroute("**/v1/**")
    assert browser.errors == []
    page.close()


def test_with_an_api_key_the_dashboard_asks_for_it_then_shows_the_data(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    _, store, _ = dashboard
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9",
        api_key=SecretStr("admin-key"),
        api_read_key=SecretStr("read-key"),
    )
    port = free_port()
    api = ApiThread(create_app(settings, Stores(store)), "127.0.0.1", port)
    api.start()
    try:
        url = f"http://127.0.0.1:{port}"
        page = browser.page()
        page.goto(f"{url}/")
        page.wait_for_selector("#key-form")  # the API answered 401: the page asks
        assert page.locator("[data-model]").count() == 0
        assert "needs an API key" in page.inner_text("main")
        screenshot(page, "dashboard-key-form.png")

        page.fill("#api-key", "not-the-key")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector(".key-refused")  # refused, asked again
        assert page.evaluate("sessionStorage.getItem('driftline.apiKey')") is None

        page.fill("#api-key", "read-key")  # the read-only key is enough to look
        page.click("#key-form button[type=submit]")
        page.wait_for_selector('[data-model="fraud"] svg.spark')
        assert page.locator("[data-model]").count() == 3
        assert page.evaluate("sessionStorage.getItem('driftline.apiKey')") == "read-key"
        screenshot(page, "dashboard-key.png")

        page.goto(f"{url}/#/models/fraud?range=1h&refresh=0")  # the key goes with every request
        page.wait_for_selector('[data-chart="drift-heatmap"] .cell')
        counts = drawn(page, "traffic", "traffic.count")  # (an earlier test added 4242)
        assert len(counts) >= WINDOWS - 1
        assert set(counts) <= {traffic(i) for i in range(WINDOWS)} | {4242.0}
        page.click("#forget-key")
        page.wait_for_selector("#key-form")
        # the browser logs each 401 it got; nothing else went wrong
        assert [e for e in browser.errors if "401" not in e] == []
        page.close()
    finally:
        browser.errors.clear()  # the 401s logged here are no other test's problem
        api.stop()


def test_assets_come_from_the_package() -> None:
    from api.routes.dashboard import STATIC

    html = (STATIC / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    for asset in ("dashboard.js", "charts.js", "dashboard.css", "favicon.svg"):
        assert (STATIC / asset).is_file()
        assert "//cdn" not in (STATIC / asset).read_text()


def test_error_analysis_shows_where_the_errors_are_and_tags_an_example(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    """The error-analysis panel: the segment table ranked by potential gain, the newest wrong
    examples, and tagging one from the page (the tag then shows on it)."""
    url, store, starts = dashboard
    labels = LabelStore(store.backend)
    now = starts[-1]
    rows = []
    for i in range(200):
        channel = "mobile" if i % 4 == 0 else "web"
        wrong = i % 8 == 0 or i % 20 == 1  # mobile (i % 4 == 0): half wrong; web: a few
        y = i % 2
        p = 1 - y if wrong else y
        rows.append((f"ea{i}", channel, 0.9 if p else 0.1, y))
    labels.write_predictions(
        PredictionRow("credit", "", ident, now + 1, now, "1",
                      {"model": "credit", "id": ident, "features": {"x": 1.0},
                       "prediction": score, "segment": {"channel": channel}})
        for ident, channel, score, _ in rows
    )  # fmt: skip
    labels.write_labels([LabelRow("credit", "", r[0], r[3], (now + 5) * 1000) for r in rows])
    store.write_window(
        [
            MetricPoint("credit", now, STEP, "traffic.count", 200.0),
            MetricPoint("credit", now, STEP, "labels.count", 200.0),
        ],
        [],
    )
    page = browser.page()
    page.goto(f"{url}/#/models/credit?range=1h&refresh=0")
    page.wait_for_selector('#error-analysis tr[data-group="channel=mobile"]')
    groups = page.eval_on_selector_all(
        "#error-analysis tr[data-group]", "rows => rows.map(r => r.dataset.group)"
    )
    assert groups[0] == "channel=mobile"  # the most to gain
    assert page.locator("#error-analysis tr[data-example]").count() == 10
    first = page.get_attribute("#error-analysis tr[data-example]", "data-example")
    page.fill(f'#error-analysis tr[data-example="{first}"] input', "mislabelled")
    page.click(f'#error-analysis tr[data-example="{first}"] button')
    wait_until(
        lambda: (
            "mislabelled" in page.inner_text(f'#error-analysis tr[data-example="{first}"] td.tags')
        ),
        timeout=15,
        what="the tag on the example",
    )
    # label counts are not drawn on the quality chart (a share's): only the coverage would be
    assert page.locator('[data-chart="quality"] [data-series="labels.count"]').count() == 0
    screenshot(page, "dashboard-error-analysis.png")
    assert browser.errors == []
    page.close()


def test_long_ranges_read_the_hourly_rollups(
    browser: Browser, dashboard: tuple[str, Store, list[int]]
) -> None:
    """Past 6 hours the page asks for the store's rollups (``step=3600``): traffic summed per
    hour, the heat map from the hourly share of windows each feature drifted in, not every
    window's tests."""
    url, store, starts = dashboard
    page = browser.page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{url}/#/models/fraud?range=24h&refresh=0")
    page.wait_for_selector('[data-chart="drift-heatmap"] .cell')
    hours = sorted({t // 3600 * 3600 for t in starts})
    # what the store holds of the whole model (other tests of this module add windows)
    stored = store.metrics("fraud", name="traffic.count", start=hours[0])
    summed = [sum(p.value for p in stored if p.window_start // 3600 * 3600 == h) for h in hours]
    assert drawn(page, "traffic", "traffic.count") == summed
    assert any("name=traffic.count" in u and "step=3600" in u and "agg=sum" in u for u in requests)
    assert not [u for u in requests if "/drift?" in u or u.endswith("/drift")]
    cells = page.eval_on_selector_all(
        '[data-chart="drift-heatmap"] .cell',
        "cells => cells.map(c => [c.dataset.feature, c.dataset.window, c.dataset.drifted])",
    )
    drifted_hours = {t // 3600 * 3600 for i, t in enumerate(starts) if i >= DRIFT_FROM}
    expected = {
        (feature, iso(h), "1" if h in drifted_hours and feature != "country" else "0")
        for h in hours
        for feature in ("amount", "age", "country")
    }
    assert {tuple(c) for c in cells} == expected
    assert browser.errors == []
    page.close()
