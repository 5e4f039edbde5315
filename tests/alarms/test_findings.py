"""An alert's findings (``alarms/findings.py``): which slices shifted most, which alerts
search their error slices, and the document senders and readers share."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from alarms.alertmanager import alertmanager_alert
from alarms.findings import (
    MAX_NOTE,
    MAX_SLICE_TEXT,
    Finding,
    findings_document,
    findings_of,
    shifted_slices,
    wants_error_slices,
)
from alarms.rules import Comparison
from alarms.state import Alert, AlertState
from driftline.messages import AlertEvent
from driftline.store import MetricPoint

W = 1_700_000_000


def p(metric: str, value: float, segment: str = "", feature: str = "") -> MetricPoint:
    return MetricPoint("fraud", W, 60, metric, value, feature, segment=segment)


def test_a_feature_alert_ranks_slices_by_that_feature_s_largest_effect() -> None:
    points = [
        p("drift.ks.effect", 0.1, "", "amount"),
        p("drift.ks.effect", 0.05, "channel=web", "amount"),
        # the missing rate moved most on mobile: its effect counts too
        p("drift.ks.effect", 0.02, "channel=mobile", "amount"),
        p("drift.missing_rate.effect", 0.3, "channel=mobile", "amount"),
        # other features, other tests on the same scale or not, and cuts that are not slices
        p("drift.ks.effect", 0.9, "channel=tablet", "age"),
        p("drift.psi.effect", 5.0, "channel=tablet", "amount"),
        p("drift.ks.effect", 0.8, "@version=2", "amount"),
        p("drift.ks.effect", 0.8, "@shadow=true", "amount"),
        p("drift.ks.effect", 0.0, "country=FR", "amount"),  # no shift: not a finding
        p("drift.ks.effect", math.nan, "country=DE", "amount"),
    ]
    found = shifted_slices("drift.drifted", "amount", points)
    assert [(f.slice, f.value, f.reference) for f in found] == [
        ("channel=mobile", 0.3, 0.1),
        ("channel=web", 0.05, 0.1),
    ]
    assert shifted_slices("drift.drifted", "amount", points, k=1)[0].slice == "channel=mobile"


def test_a_prediction_drift_alert_ranks_by_the_output_s_decision_test() -> None:
    points = [
        p("drift.prediction.ks.effect", 0.2),
        p("drift.prediction.ks.effect", 0.5, "channel=web"),
        p("drift.prediction.wasserstein.effect", 9.0, "channel=mobile"),
        p("drift.max_effect", 0.9, "channel=mobile"),  # the inputs, not the output
    ]
    [found] = shifted_slices("drift.prediction_drifted", "", points)
    assert (found.slice, found.value, found.reference) == ("channel=web", 0.5, 0.2)
    assert math.isnan(shifted_slices("drift.prediction_drifted", "", points[1:])[0].reference)


def test_which_alerts_search_their_error_slices() -> None:
    assert wants_error_slices("drift.concept") and wants_error_slices("quality.accuracy")
    assert not wants_error_slices("quality.estimated.accuracy")  # no labels yet
    assert not wants_error_slices("labels.coverage") and not wants_error_slices("drift.harm")
    assert not wants_error_slices("drift.share_drifted")


FOUND = (
    Finding("errors", "segment.channel=mobile ∧ amount<20.5", 140, 0.62, 0.11, 1e-9),
    Finding("errors", "country=BR", 90, 0.4, math.nan, None),
)


def test_long_slices_are_cut_so_that_they_read_back_and_notes_are_bounded() -> None:
    long = " ∧ ".join(f"{'f' * 200}{i}=value" for i in range(3))
    found = Finding("errors", long, 40, 0.5, 0.1, 0.01)
    assert len(found.slice) == MAX_SLICE_TEXT and found.slice.endswith("…")
    [back], note = findings_of(findings_document([found], "n" * 5000))
    assert back == found and len(note) == MAX_NOTE


def test_findings_round_trip_and_bad_documents_say_what_is_wrong() -> None:
    document = findings_document(FOUND, "searched 2000 labelled examples of its windows")
    assert document["items"][1]["reference"] is None  # NaN is no JSON number
    found, note = findings_of(document)
    assert found[0] == FOUND[0] and found[1].slice == "country=BR"
    assert math.isnan(found[1].reference) and note.startswith("searched")
    assert findings_of(None) == ((), "") and findings_of("") == ((), "")
    bad: list[tuple[Any, str]] = [
        ([], "must be an object"),
        ({"items": {}}, "must be a list"),
        ({"items": [], "note": 3}, "must be text"),
        ({"items": [{**document["items"][0], "kind": "hunch"}]}, "must be errors or shift"),
        ({"items": [{**document["items"][0], "slice": ""}]}, '"slice" must be text'),
        ({"items": [{**document["items"][0], "size": -1}]}, '"size" must be a whole number'),
        ({"items": [{**document["items"][0], "size": True}]}, '"size" must be a whole number'),
        ({"items": [{**document["items"][0], "value": "0.6"}]}, '"value" must be a number'),
    ]
    for data, why in bad:
        with pytest.raises(ValueError, match=why):
            findings_of(data)


ALERT = Alert(
    "a1", "r1", "ConceptDrift", "fraud", "", "", "drift.concept", Comparison.GE, 1.0,
    "critical", AlertState.FIRING, 1.0, W, W + 60, fired_at=W + 70.0,
    labels={"alertname": "ConceptDrift", "model": "fraud"},
)  # fmt: skip


def test_the_top_slice_goes_to_alertmanager_and_findings_travel_in_alert_events() -> None:
    found = replace(ALERT, findings=FOUND, findings_note="searched 2000 labelled examples")
    doc = alertmanager_alert(found, ends_at=W + 600, dashboard_url="http://dl/")
    assert doc["annotations"]["top_slice"] == (
        "segment.channel=mobile ∧ amount<20.5 (error 0.62 against 0.11 elsewhere, "
        "140 examples, q 1e-09)"
    )
    assert "top_slice" not in alertmanager_alert(ALERT, ends_at=W, dashboard_url="")["annotations"]
    decoded = AlertEvent.from_bytes(AlertEvent(found, "firing", W + 70.0).to_bytes()).alert
    assert decoded.findings[0] == FOUND[0] and decoded.findings_note == found.findings_note
