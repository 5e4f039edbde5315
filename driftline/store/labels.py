"""Raw prediction events and labels: the two sides of the label join, and training data.

Both tables are written by the worker (``streams/raw_predictions.py`` buffers predictions with an
``id``; ``streams/labels.py`` writes labels) and read by the quality pass
(``streams/quality.py``) and the retrainer. The join itself is done here, per window, in
Python over two keyed reads: it is the same on ClickHouse 18.16 and chDB and needs no JOIN
dialect. Everything is keyed by (model, stage, id), so replays rewrite the same rows.

Shadow predictions (``"shadow": true``) share their live twin's id, so they are kept in a table
of their own, ``shadow_predictions``, with the same columns: only the quality pass's shadow
comparison reads it (``window_joined(..., shadow=True)``), and the live side (quality figures,
examples, training data) never counts a shadow row. Both join the same labels by id.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from driftline.store import schema
from driftline.store.base import INSERT_BLOCK_ROWS, Backend


class PredictionRow(NamedTuple):
    model: str
    stage: str
    id: str
    ts: float
    window_start: int
    version: str
    event: Mapping[str, Any]  # the validated event
    shadow: bool = False  # a shadow prediction: a row of ``shadow_predictions``


@dataclass
class PredictionBatch:
    """Raw predictions column by column, as the worker buffers them: a list per column, and
    the events as JSON arrays (one per chunk added, in row order). Nothing per event but the
    list entries is kept, and the write hands ClickHouse these arrays as they are. Shadow
    predictions taken with them are a batch of their own, ``shadows`` (rows of the
    ``shadow_predictions`` table), written with them."""

    models: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    window_starts: list[int] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)  # JSON arrays of events
    shadows: PredictionBatch | None = None  # the shadow predictions, made on first use

    def __len__(self) -> int:
        """The rows, live and shadow."""
        return len(self.ids) + (len(self.shadows) if self.shadows is not None else 0)

    @classmethod
    def of(cls, rows: Iterable[PredictionRow]) -> PredictionBatch:
        rows = list(rows)
        batch = cls._of([r for r in rows if not r.shadow])
        if any(r.shadow for r in rows):
            batch.shadows = cls._of([r for r in rows if r.shadow])
        return batch

    @classmethod
    def _of(cls, rows: Sequence[PredictionRow]) -> PredictionBatch:
        if not rows:
            return cls()
        # every field but the last, ``shadow``: the columns of the table
        columns = [list(column) for column in zip(*(r[:-1] for r in rows), strict=True)]
        models, stages, ids, ts, window_starts, versions, events = columns
        return cls(models, stages, ids, ts, window_starts, versions, [orjson.dumps(events)])

    def shadow_batch(self) -> PredictionBatch:
        """The batch of the shadow predictions taken with these."""
        if self.shadows is None:
            self.shadows = PredictionBatch()
        return self.shadows

    def extend(self, other: PredictionBatch) -> None:
        for mine, theirs in zip(self._columns(), other._columns(), strict=True):
            mine.extend(theirs)
        self.events.extend(other.events)
        if other.shadows is not None:
            self.shadow_batch().extend(other.shadows)

    def json_columns(self, stored_ms: int) -> list[bytes]:
        """The ``predictions`` columns (``schema.PREDICTION_COLUMNS`` order), JSON arrays."""
        events = b"[" + b",".join(e[1:-1] for e in self.events if len(e) > 2) + b"]"
        dumps = orjson.dumps
        return [
            *(dumps(column) for column in self._columns()),
            events,
            dumps([stored_ms] * len(self.ids)),
        ]

    def _columns(self) -> tuple[list[Any], ...]:
        return (self.models, self.stages, self.ids, self.ts, self.window_starts, self.versions)


@dataclass(frozen=True)
class LabelRow:
    model: str
    stage: str
    id: str
    label: Any  # a JSON scalar; None for an outcome event (custom metrics alone)
    label_ms: int
    metrics: Mapping[str, float] | None = None  # the event's custom metrics


@dataclass(frozen=True)
class Joined:
    """One stored prediction of a window and its latest label (if any)."""

    id: str
    ts: float
    version: str
    event: dict[str, Any]
    stored_ms: int
    label: Any  # None: no label yet
    label_ms: int  # 0 when unlabelled
    label_stored_ms: int
    # the custom metrics of the latest label event that had some (outcomes such as a click)
    outcomes: Mapping[str, float] | None = None
    # how many different labels the id has had (more than one: a conflict; the latest counts)
    distinct_labels: int = 0


Unit = tuple[str, str]  # (model, stage)
# live predictions, and shadow ones kept apart (a shadow shares its live twin's id)
PREDICTION_TABLES = ("predictions", "shadow_predictions")
WindowKey = tuple[str, str, int]  # (model, stage, window start)
# the latest label of each id and, apart, the latest custom metrics: an outcome event (metrics,
# no label) neither hides the label nor counts as one; different labels for one id (a
# relabelling, a disagreement) are counted, not hidden. Followed by the ids' subquery.
LATEST_LABELS = (
    "SELECT id, argMaxIf(label, label_ms, label != 'null'), "
    "maxIf(label_ms, label != 'null'), maxIf(stored_ms, label != 'null'), "
    "argMaxIf(metrics, label_ms, metrics != ''), uniqExactIf(label, label != 'null') "
    "FROM labels WHERE model = %(model)s AND stage = %(stage)s AND id IN "
)
# the most candidate rows one read of labelled examples takes (``LabelStore.examples``)
EXAMPLES_MAX_ROWS = 100_000


class LabelStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # -- writes ---------------------------------------------------------------------------
    def write_predictions(self, rows: PredictionBatch | Iterable[PredictionRow]) -> None:
        """One block per table (the worker's batches are a few tens of thousands of rows):
        live predictions to ``predictions``, shadow ones to ``shadow_predictions``."""
        batch = rows if isinstance(rows, PredictionBatch) else PredictionBatch.of(rows)
        stored_ms = time.time_ns() // 1_000_000
        for table, part in (("predictions", batch), ("shadow_predictions", batch.shadows)):
            if part is not None and part.ids:
                self.backend.insert_json_columns(
                    table, schema.PREDICTION_COLUMNS, part.json_columns(stored_ms)
                )

    def write_labels(self, rows: Sequence[LabelRow]) -> None:
        stored_ms = time.time_ns() // 1_000_000
        it = (
            (
                r.model,
                r.stage,
                r.id,
                orjson.dumps(r.label).decode(),
                r.label_ms,
                stored_ms,
                orjson.dumps(r.metrics).decode() if r.metrics else "",
            )
            for r in rows
        )
        while block := list(itertools.islice(it, INSERT_BLOCK_ROWS)):
            self.backend.insert("labels", schema.LABEL_COLUMNS, block)

    # -- what changed ---------------------------------------------------------------------
    def labelled_units(self) -> set[Unit]:
        rows = self.backend.execute("SELECT DISTINCT model, stage FROM labels")
        return {(str(r[0]), str(r[1])) for r in rows}

    def shadow_units(self) -> set[Unit]:
        """Units with shadow predictions stored."""
        rows = self.backend.execute("SELECT DISTINCT model, stage FROM shadow_predictions")
        return {(str(r[0]), str(r[1])) for r in rows}

    def windows_with_new_predictions(self, since_ms: int) -> set[WindowKey]:
        """Windows of labelled units that got predictions (live or shadow) stored after
        ``since_ms``."""
        return self._windows(
            "WHERE stored_ms > %(since)s "
            "AND (model, stage) IN (SELECT DISTINCT model, stage FROM labels)",
            {"since": int(since_ms)},
        )

    def windows_with_new_labels(self, since_ms: int) -> set[WindowKey]:
        """Windows holding the predictions (live or shadow) that labels stored after
        ``since_ms`` belong to."""
        return self._windows(
            "WHERE (model, stage, id) IN "
            "(SELECT model, stage, id FROM labels WHERE stored_ms > %(since)s)",
            {"since": int(since_ms)},
        )

    def _windows(self, where: str, params: dict[str, Any]) -> set[WindowKey]:
        """The windows of the live and the shadow predictions matching ``where``."""
        found: set[WindowKey] = set()
        for table in PREDICTION_TABLES:
            rows = self.backend.execute(
                f"SELECT DISTINCT model, stage, toUInt32(window_start) FROM {table} {where}",
                params,
            )
            found.update((str(r[0]), str(r[1]), int(r[2])) for r in rows)
        return found

    def labelled_windows_between(self, start: int, end: int) -> set[WindowKey]:
        """Windows of labelled units starting in [start, end): those whose horizon just ended."""
        rows = self.backend.execute(
            "SELECT DISTINCT model, stage, toUInt32(window_start) FROM predictions "
            "WHERE window_start >= toDateTime(%(start)s) AND window_start < toDateTime(%(end)s) "
            "AND (model, stage) IN (SELECT DISTINCT model, stage FROM labels)",
            {"start": int(start), "end": int(end)},
        )
        return {(str(r[0]), str(r[1]), int(r[2])) for r in rows}

    def label_buckets_since(self, since_ms: int, seconds: int) -> set[WindowKey]:
        """Arrival buckets (``seconds`` long) of labels stored after ``since_ms``."""
        rows = self.backend.execute(
            "SELECT DISTINCT model, stage, "
            "toUInt32(intDiv(intDiv(label_ms, 1000), %(w)s) * %(w)s) "
            "FROM labels WHERE stored_ms > %(since)s",
            {"since": int(since_ms), "w": int(seconds)},
        )
        return {(str(r[0]), str(r[1]), int(r[2])) for r in rows}

    # -- the join -------------------------------------------------------------------------
    def _join(
        self,
        where: str,
        params: dict[str, Any],
        *,
        labelled_only: bool,
        limit: str = "",
        table: str = "predictions",
    ) -> list[Joined]:
        """Predictions of one unit matching ``where`` (oldest first), each with its latest
        label: two keyed reads joined here, the same on ClickHouse 18.16 and chDB. ``table``:
        ``shadow_predictions`` for the shadow ones."""
        only = (
            " AND id IN (SELECT id FROM labels WHERE model = %(model)s AND stage = %(stage)s)"
            if labelled_only
            else ""
        )
        predictions = self.backend.execute(
            f"SELECT id, any(ts), any(version), any(event), max(stored_ms) FROM {table} "
            f"WHERE {where}{only} GROUP BY id ORDER BY any(ts), id{limit}",
            params,
        )
        labels = self.backend.execute(
            f"{LATEST_LABELS}(SELECT id FROM {table} WHERE {where}) GROUP BY id", params
        )
        return _joined(predictions, labels)

    def window_joined(
        self, model: str, stage: str, window_start: int, *, shadow: bool = False
    ) -> list[Joined]:
        """Every stored prediction of one window with its latest label; ``shadow``: the
        window's shadow predictions instead, each with the label of its id (its live twin's)."""
        return self._join(
            "model = %(model)s AND stage = %(stage)s AND window_start = toDateTime(%(start)s)",
            {"model": model, "stage": stage, "start": int(window_start)},
            labelled_only=False,
            table="shadow_predictions" if shadow else "predictions",
        )

    def label_bucket_counts(
        self, model: str, stage: str, start: int, seconds: int
    ) -> tuple[int, int]:
        """(labels received, of which no prediction is stored) in one arrival bucket."""
        params = {
            "model": model,
            "stage": stage,
            "lo": int(start) * 1000,
            "hi": (int(start) + int(seconds)) * 1000,
        }
        rows = self.backend.execute(
            "SELECT uniqExact(id), uniqExactIf(id, id NOT IN "
            "(SELECT id FROM predictions WHERE model = %(model)s AND stage = %(stage)s "
            "AND id IN (SELECT id FROM labels WHERE model = %(model)s AND stage = %(stage)s "
            "AND label_ms >= %(lo)s AND label_ms < %(hi)s))) "
            "FROM labels WHERE model = %(model)s AND stage = %(stage)s "
            "AND label_ms >= %(lo)s AND label_ms < %(hi)s",
            params,
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    # -- examples, for error analysis -----------------------------------------------------
    def has_labels(self, model: str, stage: str = "") -> bool:
        """Whether the unit has a label stored (an outcome event alone is none)."""
        rows = self.backend.execute(
            "SELECT count() FROM (SELECT id FROM labels WHERE model = %(model)s "
            "AND stage = %(stage)s AND label != 'null' LIMIT 1)",
            {"model": model, "stage": stage},
        )
        return bool(rows and int(rows[0][0]))

    def examples(
        self,
        model: str,
        stage: str = "",
        *,
        start: float | None = None,
        end: float | None = None,
        version: str | None = None,
        segment: tuple[str, str] | None = None,
        limit: int = EXAMPLES_MAX_ROWS,
    ) -> list[Joined]:
        """Labelled live predictions of a unit, newest first (event time, then id, both
        descending), at most ``limit`` (capped at ``EXAMPLES_MAX_ROWS``), each with its latest
        label: event time in [start, end), of one ``version``, and with ``segment`` (key,
        value) the events whose text holds ``"key":"value"`` (stored events are compact JSON;
        a feature of that name and value matches too: the caller checks the decoded
        ``segment``). Both reads are bounded: the labels are those of the ids returned."""
        where = [
            "model = %(model)s",
            "stage = %(stage)s",
            "id IN (SELECT id FROM labels WHERE model = %(model)s AND stage = %(stage)s "
            "AND label != 'null')",
        ]
        params: dict[str, Any] = {
            "model": model,
            "stage": stage,
            "limit": max(0, min(int(limit), EXAMPLES_MAX_ROWS)),
        }
        if start is not None:
            where.append("ts >= %(start)s")
            params["start"] = float(start)
        if end is not None:
            where.append("ts < %(end)s")
            params["end"] = float(end)
        if version is not None:
            where.append("version = %(version)s")
            params["version"] = version
        if segment is not None:
            where.append("position(event, %(needle)s) > 0")
            params["needle"] = (orjson.dumps(segment[0]) + b":" + orjson.dumps(segment[1])).decode()
        chosen = (
            f"FROM predictions WHERE {' AND '.join(where)} GROUP BY id "
            "ORDER BY any(ts) DESC, id DESC LIMIT %(limit)s"
        )
        predictions = self.backend.execute(
            f"SELECT id, any(ts), any(version), any(event), max(stored_ms) {chosen}", params
        )
        if not predictions:
            return []
        labels = self.backend.execute(f"{LATEST_LABELS}(SELECT id {chosen}) GROUP BY id", params)
        return _joined(predictions, labels)

    # -- training data --------------------------------------------------------------------
    def labelled_events(
        self,
        model: str,
        stage: str = "",
        *,
        start: float | None = None,
        end: float | None = None,
        horizon_s: float | None = None,
        limit: int = 200_000,
    ) -> list[Joined]:
        """Labelled predictions of a unit with event time in [start, end), oldest first."""
        where = ["model = %(model)s", "stage = %(stage)s"]
        params: dict[str, Any] = {"model": model, "stage": stage, "limit": int(limit)}
        if start is not None:
            where.append("ts >= %(start)s")
            params["start"] = float(start)
        if end is not None:
            where.append("ts < %(end)s")
            params["end"] = float(end)
        rows = self._join(" AND ".join(where), params, labelled_only=True, limit=" LIMIT %(limit)s")
        return [
            r
            for r in rows
            if r.label is not None and (horizon_s is None or r.label_ms / 1000 - r.ts <= horizon_s)
        ]

    # -- retention ------------------------------------------------------------------------
    def drop_expired(self, keep_days: int, now: float | None = None) -> list[str]:
        """Drop whole partitions older than ``keep_days``; returns the partitions dropped."""
        cutoff = time.gmtime((now or time.time()) - keep_days * 86400)
        day = int(time.strftime("%Y%m%d", cutoff))
        month = day // 100
        dropped = []
        for table, newest_gone in (*((t, day) for t in PREDICTION_TABLES), ("labels", month)):
            rows = self.backend.execute(
                "SELECT DISTINCT partition FROM system.parts "
                "WHERE database = currentDatabase() AND table = %(table)s AND active",
                {"table": table},
            )
            for (partition,) in rows:
                text = str(partition).strip("'")
                if text.isdigit() and int(text) < newest_gone:
                    self.backend.execute(f"ALTER TABLE {table} DROP PARTITION {int(text)}")
                    dropped.append(f"{table}:{text}")
        return dropped


def _joined(predictions: Sequence[Sequence[Any]], labels: Sequence[Sequence[Any]]) -> list[Joined]:
    """The rows of a prediction read (id, ts, version, event, stored_ms) and of a label read
    (id, label, label_ms, label stored_ms, metrics, distinct labels) joined by id, in the
    predictions' order."""
    by_id = {
        str(r[0]): (
            orjson.loads(r[1]) if r[1] else None,
            int(r[2]),
            int(r[3]),
            orjson.loads(r[4]) if r[4] else None,
            int(r[5]),
        )
        for r in labels
    }
    joined = []
    for r in predictions:
        label, label_ms, label_stored, outcomes, distinct = by_id.get(
            str(r[0]), (None, 0, 0, None, 0)
        )
        joined.append(
            Joined(
                str(r[0]),
                float(r[1]),
                str(r[2]),
                orjson.loads(r[3]),
                int(r[4]),
                label,
                label_ms,
                label_stored,
                outcomes,
                distinct,
            )
        )
    return joined
