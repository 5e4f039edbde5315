"""Slices of labelled examples where a model fails: shared by the error-analysis table
(``api/routes/error_analysis.py``) and by the worker, which names them on a quality or
concept-drift alert as it fires (``streams/alarms.py``; ``alarms/findings.py`` has the
finding's shape).

The examples are the stored predictions joined with their latest labels
(``LabelStore.examples``), judged as the quality pass judges them
(``detectors.quality.pair_errors``); the search is ``detectors.slices.find_slices`` over the
features and the segment keys (``segment.<key>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alarms.findings import Finding
from alarms.state import Alert
from detectors.quality import Task, pair_errors
from detectors.slices import MIN_SLICE_ROWS, Slice, find_slices
from driftline.cuts import cut_version, is_reserved
from driftline.store.labels import Joined, LabelStore

MAX_SEARCHED_FEATURES = 50  # the most frequent features of the examples are searched
ALERT_MAX_EXAMPLES = 20_000  # the newest labelled examples of an alert's windows searched
ALERT_SLICES = 3  # findings kept on an alert


@dataclass(frozen=True)
class Judged:
    """Labelled examples that can be scored, with their errors (0/1, or absolute)."""

    task: Task | None
    rows: list[Joined]
    errors: list[float]


def judged(read: Sequence[Joined]) -> Judged:
    task, errors = pair_errors([j.event.get("prediction") for j in read], [j.label for j in read])
    kept = [(j, e) for j, e in zip(read, errors, strict=True) if e is not None]
    return Judged(task, [j for j, _ in kept], [e for _, e in kept])


def slice_columns(rows: Sequence[Joined]) -> dict[str, list[object]]:
    """The examples' features and segment keys (``segment.<key>``) as columns for the slice
    search; a value that is not a number, text or bool (a list) counts as missing. A segment
    key that only repeats a feature of the same name (a model segmented by its ``channel``
    feature) is left out: it would find every slice twice."""
    seen: dict[str, int] = {}
    for j in rows:
        for name in j.event.get("features") or {}:
            seen[name] = seen.get(name, 0) + 1
    names = sorted(seen, key=lambda n: (-seen[n], n))[:MAX_SEARCHED_FEATURES]
    columns: dict[str, list[object]] = {}
    for name in names:
        values = [(j.event.get("features") or {}).get(name) for j in rows]
        columns[name] = [v if isinstance(v, int | float | str) else None for v in values]
    keys = sorted({k for j in rows for k in (j.event.get("segment") or {})})
    for key in keys:
        values = [(j.event.get("segment") or {}).get(key) for j in rows]
        if columns.get(key) != values:
            columns[f"segment.{key}"] = values
    return columns


def failing_slices(examples: Judged, k: int) -> list[Slice]:
    """The ``k`` best significant slices where the errors are higher ([] under
    ``MIN_SLICE_ROWS`` examples)."""
    if len(examples.rows) < MIN_SLICE_ROWS:
        return []
    return find_slices(slice_columns(examples.rows), examples.errors, k=k)


def alert_error_slices(
    labels: LabelStore, alert: Alert, window_seconds: int, k: int = ALERT_SLICES
) -> tuple[tuple[Finding, ...], str]:
    """The findings of a quality or concept-drift alert, and a note of what was searched: the
    newest ``ALERT_MAX_EXAMPLES`` labelled examples of its breaching windows (from
    ``active_since`` to the end of ``last_window``), of its version or slice when the alert is
    on one."""
    model, _, stage = alert.model.partition("::")
    version, segment = None, None
    if alert.segment:
        version = cut_version(alert.segment)
        if version is None:
            if is_reserved(alert.segment):
                return (), f"not searched: the alert is on the {alert.segment} cut"
            key, _, value = alert.segment.partition("=")
            segment = (key, value)
    read = labels.examples(
        model,
        stage,
        start=alert.active_since,
        end=alert.last_window + window_seconds,
        version=version,
        segment=segment,
        limit=ALERT_MAX_EXAMPLES,
    )
    if segment is not None:  # the text match may also have found a feature of that name
        read = [j for j in read if (j.event.get("segment") or {}).get(segment[0]) == segment[1]]
    examples = judged(read)
    n = len(examples.rows)
    where = "its windows" + (f" ({alert.segment})" if alert.segment else "")
    if n < MIN_SLICE_ROWS:
        return (), f"not searched: {n} labelled examples in {where}, fewer than {MIN_SLICE_ROWS}"
    found = failing_slices(examples, k)
    note = f"searched {n} labelled examples of {where}" + (
        f" (the newest {ALERT_MAX_EXAMPLES})" if len(read) >= ALERT_MAX_EXAMPLES else ""
    )
    if not found:
        return (), note + ": no slice is significantly worse than the rest"
    findings = tuple(
        Finding("errors", s.describe(), s.size, s.error_rate, s.rest_error_rate, s.q_value)
        for s in found
    )
    return findings, note
