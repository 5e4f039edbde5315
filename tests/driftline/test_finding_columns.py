"""The labelled examples' columns for the slice search (``driftline/findings.py``)."""

from __future__ import annotations

from driftline.findings import judged, slice_columns
from driftline.store.labels import Joined


def joined(i: int, features: dict[str, object], segment: dict[str, str], label: object) -> Joined:
    event = {"features": features, "segment": segment, "prediction": 0.9}
    return Joined(f"e{i}", 0.0, "1", event, 0, label, 1, 1)


def test_columns_are_features_then_segment_keys_without_repeats() -> None:
    rows = [
        joined(0, {"channel": "web", "amount": 3.0, "tags": [1]}, {"channel": "web"}, 1),
        joined(1, {"channel": "mobile", "amount": 5}, {"channel": "mobile", "shop": "a"}, 0),
    ]
    columns = slice_columns(rows)
    # the segment's channel repeats the feature: left out; a list counts as missing
    assert columns == {
        "amount": [3.0, 5],
        "channel": ["web", "mobile"],
        "tags": [None, None],
        "segment.shop": [None, "a"],
    }
    # a segment key whose values differ from the feature's is its own column
    rows.append(joined(2, {"channel": "web"}, {"channel": "partner"}, 1))
    assert slice_columns(rows)["segment.channel"] == ["web", "mobile", "partner"]


def test_judged_keeps_the_scorable_pairs_with_their_errors() -> None:
    rows = [joined(0, {}, {}, 1), joined(1, {}, {}, 0), joined(2, {}, {}, "spam")]
    examples = judged(rows)
    assert examples.task == "classification"
    assert [j.id for j in examples.rows] == ["e0", "e1"] and examples.errors == [0.0, 1.0]
