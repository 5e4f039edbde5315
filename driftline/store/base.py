"""The store interface the worker and the API use, over a small backend protocol."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypedDict, Unpack

import orjson

from driftline.cuts import VERSION_PREFIX, cut_version
from driftline.settings import Settings
from driftline.store import schema

INSERT_BLOCK_ROWS = 20_000


class Backend(Protocol):
    """What a ClickHouse connection must do; both backends run the same SQL text."""

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a statement with client-side ``%(name)s`` parameters; return rows."""
        ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows as one block (atomic per partition in ClickHouse)."""
        ...

    def insert_json_columns(
        self, table: str, columns: Sequence[str], arrays: Sequence[bytes]
    ) -> None:
        """Insert one block given column by column: ``arrays[i]`` is a JSON array holding
        ``columns[i]``'s value for every row. A JSON object in a String column is stored as its
        JSON text. (The worker's raw predictions: no Python object per value on the way.)"""
        ...

    def close(self) -> None: ...

    def rejects_data(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from a write) says the rows themselves cannot be stored, so that
        writing them again cannot succeed; else the failure may pass (retry)."""
        ...


# slots: a group of windows holds one of each per stored value until it is written (a
# thousand a window with drift on): a point takes 112 bytes instead of 160. Not frozen, though
# nothing changes a point once made: a frozen dataclass sets each field through
# object.__setattr__, 3.0 us a point against 0.5 (the 100 x 50 bench makes 680,000 of them)
@dataclass(slots=True)
class MetricPoint:
    """One stored value: a metric of one window of one model (and feature / category)."""

    model: str
    window_start: int
    window_seconds: int
    metric: str
    value: float
    feature: str = ""
    category: str = ""
    segment: str = ""
    stage: str = ""
    version: str = ""


@dataclass(frozen=True)
class OffsetMark:
    model: str
    log_id: str
    partition: int
    next_offset: int
    window_start: int
    seen_below: int = 0  # every event of the model below it had been read (see windowing)


@dataclass(frozen=True)
class SetAsideWindow:
    """A window the store rejected for a reason a retry cannot fix (``windows_set_aside``)."""

    model: str
    stage: str
    window_start: int
    window_seconds: int
    events: int
    reason: str
    set_aside_at: float


class DriftQuery(TypedDict, total=False):
    """What ``Store.drift_tests`` and ``Store.drift_results`` read: windows from ``start``
    to ``end`` (epoch s), of one cut and stage, at most ``limit`` tests."""

    start: int | None
    end: int | None
    segment: str
    stage: str
    limit: int


class DriftTests(NamedTuple):
    """``Store.drift_tests``: its rows, and whether rows in range were left out."""

    rows: list[tuple[Any, ...]]
    truncated: bool


# what Store.drift_tests reads of each row of drift_results, in this order
DRIFT_TEST_COLUMNS = (
    "toUInt32(window_start)", "window_seconds", "feature", "test", "statistic", "p_value",
    "adjusted_p_value", "effect_size", "min_effect", "drifted", "in_decision", "drift_when",
    "n_reference", "n_current", "reference",
)  # fmt: skip


@dataclass(slots=True)  # not frozen, as MetricPoint
class DriftRow:
    """One drift test of one feature in one window (``drift_results``)."""

    model: str
    window_start: int
    window_seconds: int
    feature: str
    test: str
    statistic: float
    p_value: float | None
    adjusted_p_value: float | None
    effect_size: float
    min_effect: float
    drifted: bool
    in_decision: bool
    drift_when: str
    n_reference: int
    n_current: int
    reference: str
    segment: str = ""
    stage: str = ""


@dataclass(frozen=True)
class StoredReference:
    model: str
    version: str
    source: str
    profile: dict[str, Any]  # detectors.drift.window.ModelReference.to_dict()
    created_at: int


class Store:
    """Reads and writes Driftline's tables through one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        # catalogue rows this store has written (or found): each is written once per process
        self._catalogued: set[tuple[str, str, str, str, str]] = set()

    def init_schema(self) -> None:
        for ddl in schema.TABLES:
            self.backend.execute(ddl)
        (listed,) = self.backend.execute("SELECT count() FROM window_index")[0]
        if not listed and self.backend.execute("SELECT count() FROM metrics")[0][0]:
            # a store from before the catalogue: built from its metrics, once
            for sql in schema.CATALOGUE_BACKFILL:
                self.backend.execute(sql)
        (versions,) = self.backend.execute("SELECT count() FROM version_index")[0]
        if (
            not versions
            and self.backend.execute("SELECT count() FROM metrics WHERE metric = 'traffic.count'")[
                0
            ][0]
        ):
            # a store from before the version index: built from its metrics, once
            self.backend.execute(schema.VERSION_INDEX_BACKFILL, _VERSION_CUT_PARAMS)
        (marked,) = self.backend.execute("SELECT count() FROM rollup_dirty")[0]
        if not marked and self.backend.execute("SELECT count() FROM metrics")[0][0]:
            # a store from before the rollups: built from its metrics, once
            for sql in schema.ROLLUP_BACKFILL:
                self.backend.execute(sql)
        for table, column, kind in schema.ADDED_COLUMNS:
            present = self.backend.execute(
                "SELECT count() FROM system.columns WHERE database = currentDatabase() "
                "AND table = %(table)s AND name = %(column)s",
                {"table": table, "column": column},
            )
            if not present[0][0]:
                self.backend.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self.backend.close()

    # -- writes ---------------------------------------------------------------------------
    def write_window(
        self,
        points: Iterable[MetricPoint],
        marks: Sequence[OffsetMark],
        drift_rows: Sequence[DriftRow] = (),
        references: Iterable[StoredReference] = (),
    ) -> None:
        """Store closed windows' metrics, drift results and learned references, then the
        offsets they cover.

        The offsets go last, and metrics in blocks of ``INSERT_BLOCK_ROWS`` (memory stays flat
        when many windows close at once): a crash before the offsets are written replays the
        windows, which rewrites the same rows (idempotent). Values that are not finite carry
        no information and are not stored.
        """
        written_at = time.time_ns()
        catalogue: set[tuple[str, str, str, str, str]] = set()
        windows: dict[tuple[str, str, int], tuple[float, str]] = {}  # -> (events, version)
        cuts: dict[tuple[str, str, int], dict[str, float]] = {}  # -> version -> events
        touched: set[tuple[str, str, str, int]] = set()  # (model, stage, metric, hour)
        rows = (
            (
                p.model,
                p.stage,
                p.segment,
                p.window_start,
                p.window_seconds,
                p.metric,
                p.feature,
                p.category,
                p.value,
                p.version,
                written_at,
            )
            for p in points
            if math.isfinite(p.value) and _catalogue(p, catalogue, windows, cuts, touched)
        )
        while block := list(itertools.islice(rows, INSERT_BLOCK_ROWS)):
            self.backend.insert("metrics", schema.METRIC_COLUMNS, block)
        if touched:
            self.backend.insert(
                "rollup_dirty",
                schema.ROLLUP_MARK_COLUMNS,
                [(*key, written_at) for key in sorted(touched)],
            )
        new = catalogue - self._catalogued
        if new:
            self.backend.insert(
                "catalogue", schema.CATALOGUE_COLUMNS, [(*k, written_at) for k in sorted(new)]
            )
            if len(self._catalogued) + len(new) > CATALOGUE_REMEMBERED:
                # only a cache of what needs no second write: forgetting costs a rewrite
                # (the table keeps one row per name), never a wrong read
                self._catalogued.clear()
            self._catalogued |= new
        if windows:
            self.backend.insert(
                "window_index",
                schema.WINDOW_INDEX_COLUMNS,
                [(m, s, w, n, written_at) for (m, s, w), (n, _) in windows.items()],
            )
        # a window's versions: its version cuts where it had several, else its whole row's
        by_version = {key: {v: n} for key, (n, v) in windows.items()} | cuts
        if by_version:
            self.backend.insert(
                "version_index",
                schema.VERSION_INDEX_COLUMNS,
                [
                    (m, s, v, w, n, written_at)
                    for (m, s, w), events in by_version.items()
                    for v, n in events.items()
                ],
            )
        if drift_rows:
            self.backend.insert(
                "drift_results",
                schema.DRIFT_COLUMNS,
                [
                    (
                        r.model,
                        r.stage,
                        r.segment,
                        r.window_start,
                        r.window_seconds,
                        r.feature,
                        r.test,
                        r.statistic,
                        r.p_value,
                        r.adjusted_p_value,
                        r.effect_size,
                        r.min_effect,
                        int(r.drifted),
                        int(r.in_decision),
                        r.drift_when,
                        r.n_reference,
                        r.n_current,
                        r.reference,
                        written_at,
                    )
                    for r in drift_rows
                    if math.isfinite(r.statistic) and math.isfinite(r.effect_size)
                ],
            )
        for reference in references:
            self.save_reference(reference, written_at)
        if marks:
            self.backend.insert(
                "worker_offsets",
                schema.OFFSET_COLUMNS,
                [
                    (
                        m.model,
                        m.log_id,
                        m.partition,
                        m.next_offset,
                        m.window_start,
                        written_at,
                        m.seen_below,
                    )
                    for m in marks
                ],
            )

    def _roll_up(
        self, model: str, stage: str, name: str | None, lo: int | None, hi: int | None
    ) -> None:
        """Bring the unit's rollups of [lo, hi) (hours; None: unbounded) up to date: compute
        again, from the metrics, every hour written since it was last computed
        (``schema.ROLLUP_DIRTY``), then the days holding them. Each (metric, hour) is marked
        done with the write time it was found dirty at: a write landing meanwhile leaves it
        dirty for the next read."""
        where = ["model = %(model)s", "stage = %(stage)s"]
        params: dict[str, Any] = {"model": model, "stage": stage}
        if name is not None:
            where.append("metric = %(name)s")
            params["name"] = name
        _window_range(where, params, lo, hi, column="hour")
        clause = " AND ".join(where)
        written = self.backend.execute(
            f"SELECT metric, toUInt32(hour), written_at FROM rollup_dirty FINAL WHERE {clause}",
            params,
        )
        if not written:
            return
        done = {
            (str(r[0]), int(r[1])): int(r[2])
            for r in self.backend.execute(
                f"SELECT metric, toUInt32(hour), written_at FROM rollup_done FINAL WHERE {clause}",
                params,
            )
        }
        stale = sorted(
            (int(r[1]), str(r[0]), int(r[2]))
            for r in written
            if done.get((str(r[0]), int(r[1])), -1) < int(r[2])
        )
        if not stale:
            return
        runs: list[tuple[int, int, set[str]]] = []  # consecutive hours with the same metrics
        by_hour: dict[int, set[str]] = {}
        for hour, metric, _ in stale:
            by_hour.setdefault(hour, set()).add(metric)
        for hour, metrics in sorted(by_hour.items()):
            if runs and runs[-1][1] == hour and runs[-1][2] == metrics:
                runs[-1] = (runs[-1][0], hour + 3600, metrics)
            else:
                runs.append((hour, hour + 3600, metrics))
        days: dict[int, set[str]] = {}
        for start, end, metrics in runs:
            self._recompute(schema.hourly_rollup, "window_start", model, stage, metrics, start, end)
            for hour in range(start, end, 3600):
                days.setdefault(hour - hour % 86_400, set()).update(metrics)
        for day, metrics in sorted(days.items()):
            self._recompute(schema.daily_rollup, "bucket", model, stage, metrics, day, day + 86_400)
        self.backend.insert(
            "rollup_done",
            schema.ROLLUP_MARK_COLUMNS,
            [(model, stage, metric, hour, w) for hour, metric, w in stale],
        )

    def _recompute(
        self,
        rollup: Callable[[str], str],
        column: str,
        model: str,
        stage: str,
        metrics: set[str],
        lo: int,
        hi: int,
    ) -> None:
        self.backend.execute(
            rollup(
                "model = %(model)s AND stage = %(stage)s AND metric IN %(metrics)s "
                f"AND {column} >= toDateTime(%(lo)s) AND {column} < toDateTime(%(hi)s)"
            ),
            {"model": model, "stage": stage, "metrics": tuple(sorted(metrics)), "lo": lo, "hi": hi},
        )

    def ping(self) -> None:
        """Raises unless the store answers a query."""
        self.backend.execute("SELECT 1")

    def set_aside(self, window: SetAsideWindow) -> None:
        self.backend.insert(
            "windows_set_aside",
            schema.SET_ASIDE_COLUMNS,
            [
                (
                    window.model,
                    window.stage,
                    window.window_start,
                    window.window_seconds,
                    window.events,
                    window.reason,
                    int(window.set_aside_at),
                    time.time_ns(),
                )
            ],
        )

    def windows_set_aside(self, model: str | None = None, limit: int = 100) -> list[SetAsideWindow]:
        """Newest first."""
        rows = self.backend.execute(
            "SELECT model, stage, window_start, window_seconds, events, reason, set_aside_at "
            "FROM windows_set_aside FINAL WHERE %(model)s = '' OR model = %(model)s "
            "ORDER BY set_aside_at DESC, model, window_start LIMIT %(limit)s",
            {"model": model or "", "limit": limit},
        )
        return [
            SetAsideWindow(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), str(r[5]), r[6])
            for r in rows
        ]

    def save_reference(self, reference: StoredReference, written_at: int | None = None) -> None:
        self.backend.insert(
            "model_references",
            schema.REFERENCE_COLUMNS,
            [
                (
                    reference.model,
                    reference.version,
                    reference.source,
                    orjson.dumps(reference.profile).decode(),
                    reference.created_at,
                    written_at or time.time_ns(),
                )
            ],
        )

    # -- reads ----------------------------------------------------------------------------
    def references(
        self,
        model: str | None = None,
        *,
        uploaded_since: int | None = None,
    ) -> list[StoredReference]:
        """Stored references; ``uploaded_since``: only uploaded ones written after that
        ``references_stamp()`` (the worker's incremental reload)."""
        return list(self.iter_references(model, uploaded_since=uploaded_since))

    def iter_references(
        self,
        model: str | None = None,
        *,
        uploaded_since: int | None = None,
    ) -> Iterator[StoredReference]:
        """``references()``, each decoded from its JSON as it is taken: a decoded profile
        holds a Python float per sample value, four times its text, so a reader that keeps
        something smaller (the worker's packed references) holds one at a time."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if model:
            where.append("model = %(model)s")
            params["model"] = model
        if uploaded_since is not None:
            where.append("source = 'uploaded' AND written_at > %(since)s")
            params["since"] = int(uploaded_since)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.backend.execute(
            "SELECT model, version, source, profile, toUInt32(created_at) "
            f"FROM model_references FINAL {clause} ORDER BY model, version, source",
            params or None,
        )
        for r in rows:
            yield StoredReference(str(r[0]), str(r[1]), str(r[2]), orjson.loads(r[3]), int(r[4]))

    def references_stamp(self) -> int:
        """The newest upload (written_at, ns; 0 when none): the worker polls it. Learned
        references are left out, so the worker's own writes never look like an upload."""
        rows = self.backend.execute(
            "SELECT max(written_at) FROM model_references WHERE source = 'uploaded'"
        )
        return int(rows[0][0] or 0) if rows else 0

    def drift_results(self, model: str, **query: Unpack[DriftQuery]) -> list[DriftRow]:
        """Drift tests of the windows in range, as ``drift_tests`` reads them."""
        segment, stage = query.get("segment", ""), query.get("stage", "")
        return [
            DriftRow(
                model=model,
                window_start=int(r[0]),
                window_seconds=int(r[1]),
                feature=str(r[2]),
                test=str(r[3]),
                statistic=float(r[4]),
                p_value=None if r[5] is None else float(r[5]),
                adjusted_p_value=None if r[6] is None else float(r[6]),
                effect_size=float(r[7]),
                min_effect=float(r[8]),
                drifted=bool(int(r[9])),
                in_decision=bool(int(r[10])),
                drift_when=str(r[11]),
                n_reference=int(r[12]),
                n_current=int(r[13]),
                reference=str(r[14]),
                segment=segment,
                stage=stage,
            )
            for r in self.drift_tests(model, **query).rows
        ]

    def drift_tests(self, model: str, **query: Unpack[DriftQuery]) -> DriftTests:
        """The rows of ``drift_results`` as read, columns as ``DRIFT_TEST_COLUMNS`` (for a
        reader that renders tens of thousands at once: a ``DriftRow`` each took half of such
        an API request). Oldest window first, by feature then test within one. When more
        than ``limit`` rows match, the newest windows are kept whole, and the oldest window
        read, which may be cut, is left out (unless it is the only one: then its first
        ``limit`` rows); ``truncated`` says so."""
        segment, stage = query.get("segment", ""), query.get("stage", "")
        limit = int(query.get("limit", 50_000))
        where = ["model = %(model)s", _cut_clause(segment), "stage = %(stage)s"]
        params: dict[str, Any] = {
            "model": model,
            "segment": segment,
            "stage": stage,
            "limit": limit + 1,  # one more than answered: whether anything was left out
            "version": cut_version(segment) or "",
        }
        _window_range(where, params, query.get("start"), query.get("end"))
        rows = self.backend.execute(
            f"SELECT {', '.join(DRIFT_TEST_COLUMNS)} FROM drift_results FINAL WHERE "
            + " AND ".join(where)
            + " ORDER BY window_start DESC, feature, test LIMIT %(limit)s",
            params,
        )
        truncated = len(rows) > limit
        if truncated:
            oldest = rows[-1][0]
            whole = [r for r in rows if r[0] != oldest]
            rows = whole if whole else rows[:limit]
        rows.sort(key=lambda r: r[0])  # stable: feature and test order kept within a window
        return DriftTests(rows, truncated)

    def offset_marks(self, log_ids: Sequence[str]) -> list[OffsetMark]:
        if not log_ids:
            return []
        rows = self.backend.execute(
            "SELECT model, log_id, partition, next_offset, toUInt32(window_start), seen_below "
            "FROM worker_offsets FINAL WHERE log_id IN %(log_ids)s",
            {"log_ids": tuple(log_ids)},  # a tuple renders as (a, b): an IN list
        )
        return [
            OffsetMark(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
            for r in rows
        ]

    def stored_through(self) -> dict[str, int]:
        """Per unit, the start of its newest window with an offset mark, whatever Kafka log
        the mark is for (a new embedded broker has new topic ids: its marks match no log)."""
        rows = self.backend.execute(
            "SELECT model, max(toUInt32(window_start)) FROM worker_offsets FINAL GROUP BY model"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def models(self, model: str | None = None) -> list[dict[str, Any]]:
        """Every model with a stored window, its own or one of its pipeline stages' (``model``:
        that one alone, read from its own rows of the index). ``events``: the model's own
        events, or (a pipeline without them) its stages' total. From the window index (a row
        per stored window), not the metrics history."""
        where = "" if model is None else "WHERE model = %(model)s "
        rows = self.backend.execute(
            "SELECT model, toUInt32(min(window_start)), toUInt32(max(window_start)), "
            "sumIf(events, stage = ''), sum(events), uniqExact(window_start), "
            "groupUniqArray(stage) "
            f"FROM window_index FINAL {where}GROUP BY model ORDER BY model",
            None if model is None else {"model": model},
        )
        return [
            {
                "model": str(r[0]),
                "first_window": int(r[1]),
                "last_window": int(r[2]),
                "events": int(float(r[3]) or float(r[4])),
                "windows": int(r[5]),
                "stages": sorted(str(s) for s in r[6] if s),
            }
            for r in rows
        ]

    def model_features(self, model: str, stage: str = "") -> list[tuple[str, str]]:
        """(feature, kind) pairs; the kind is read off which metrics the feature has."""
        rows = self.backend.execute(
            "SELECT name, max(detail = 'categorical') FROM catalogue FINAL "
            "WHERE model = %(model)s AND stage = %(stage)s AND kind = 'feature' "
            "GROUP BY name ORDER BY name",
            {"model": model, "stage": stage},
        )
        return [(str(r[0]), "categorical" if int(r[1]) else "numeric") for r in rows]

    def known_categories(self, model: str, stage: str = "") -> dict[str, set[str]]:
        """Per categorical feature, every value a stored window has counted."""
        rows = self.backend.execute(
            "SELECT DISTINCT name, detail FROM catalogue FINAL "
            "WHERE model = %(model)s AND stage = %(stage)s AND kind = 'category'",
            {"model": model, "stage": stage},
        )
        known: dict[str, set[str]] = {}
        for feature, category in rows:
            known.setdefault(str(feature), set()).add(str(category))
        return known

    def model_versions(self, model: str) -> list[str]:
        rows = self.backend.execute(
            "SELECT DISTINCT name FROM catalogue FINAL "
            "WHERE model = %(model)s AND kind = 'version' ORDER BY name",
            {"model": model},
        )
        return [str(r[0]) for r in rows]

    def version_traffic(self, model: str, stage: str = "", since: int = 0) -> list[dict[str, Any]]:
        """Per version of the unit: events, windows and the newest window with traffic, over
        the windows starting at ``since`` or later; from its cuts in windows of several
        versions and from the whole of the windows it had to itself (``version_index``, kept
        as windows are written)."""
        rows = self.backend.execute(
            "SELECT version, sum(events), uniqExact(window_start), toUInt32(max(window_start)) "
            "FROM version_index FINAL WHERE model = %(model)s AND stage = %(stage)s "
            "AND window_start >= toDateTime(%(since)s) GROUP BY version ORDER BY version",
            {"model": model, "stage": stage, "since": int(since)},
        )
        return [
            {
                "version": str(r[0]),
                "events": int(float(r[1])),
                "windows": int(r[2]),
                "last_window": int(r[3]),
            }
            for r in rows
        ]

    def metric_names(self, model: str) -> list[str]:
        rows = self.backend.execute(
            "SELECT DISTINCT name FROM catalogue FINAL "
            "WHERE model = %(model)s AND kind = 'metric' ORDER BY name",
            {"model": model},
        )
        return [str(r[0]) for r in rows]

    def segments(self, model: str, stage: str = "") -> list[str]:
        """The slices ("key=value") the model's metrics are broken down by (not the cuts
        Driftline makes itself, such as versions: ``driftline/cuts.py``)."""
        rows = self.backend.execute(
            "SELECT DISTINCT name FROM catalogue FINAL WHERE model = %(model)s "
            "AND stage = %(stage)s AND kind = 'segment' ORDER BY name",
            {"model": model, "stage": stage},
        )
        return [str(r[0]) for r in rows]

    def quality_history(
        self, model: str, stage: str = ""
    ) -> dict[tuple[str, str], dict[int, dict[str, float]]]:
        """Per (segment, model version) and window: the stored label count and error figures
        (the quality pass pools a version's first windows into its reference quality)."""
        rows = self.backend.execute(
            "SELECT segment, version, toUInt32(window_start), metric, value FROM metrics FINAL "
            "WHERE model = %(model)s AND stage = %(stage)s AND metric IN "
            "('labels.count', 'labels.coverage', 'quality.error_rate', 'quality.mae', "
            "'quality.rmse') "
            "AND category = ''",
            {"model": model, "stage": stage},
        )
        out: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
        for segment, version, start, metric, value in rows:
            key = (str(segment), str(version))
            out.setdefault(key, {}).setdefault(int(start), {})[str(metric)] = float(value)
        return out

    def metrics(
        self,
        model: str,
        *,
        name: str | None = None,
        feature: str | None = None,
        start: int | None = None,
        end: int | None = None,
        segment: str = "",
        stage: str = "",
        limit: int = 10_000,
    ) -> list[MetricPoint]:
        """Stored points of one model, oldest window first, filtered as given. ``segment``: a
        cut label: ``''`` (the whole), a slice, or a version's (``@version=<v>``), which also
        reads the whole rows of the windows that version had to itself."""
        where = ["model = %(model)s", _cut_clause(segment), "stage = %(stage)s"]
        params: dict[str, Any] = {
            "model": model,
            "segment": segment,
            "stage": stage,
            "version": cut_version(segment) or "",
        }
        if name is not None:
            where.append("metric = %(name)s")
            params["name"] = name
        if feature is not None:
            where.append("feature = %(feature)s")
            params["feature"] = feature
        _window_range(where, params, start, end)
        params["limit"] = int(limit)
        rows = self.backend.execute(
            "SELECT toUInt32(window_start), window_seconds, metric, feature, category, value, "
            "version FROM metrics FINAL WHERE "
            + " AND ".join(where)
            + " ORDER BY window_start, metric, feature, category LIMIT %(limit)s",
            params,
        )
        return [
            MetricPoint(
                model=model,
                window_start=int(r[0]),
                window_seconds=int(r[1]),
                metric=str(r[2]),
                feature=str(r[3]),
                category=str(r[4]),
                value=_float(r[5]),
                segment=segment,
                stage=stage,
                version=str(r[6]),
            )
            for r in rows
        ]

    def metric_buckets(
        self,
        model: str,
        step: int,
        *,
        agg: str = "mean",
        name: str | None = None,
        feature: str | None = None,
        start: int | None = None,
        end: int | None = None,
        segment: str = "",
        stage: str = "",
        limit: int = 10_000,
        from_rollups: bool = True,
    ) -> list[MetricPoint]:
        """Like :meth:`metrics`, one point per bucket of ``step`` seconds (``schema.ROLLUPS``:
        an hour or a day, UTC) instead of one per window: ``agg`` (``BUCKET_AGGREGATES``) of
        the values of the bucket's windows, with the newest window's model version. Buckets are
        whole: every bucket holding a window start of [start, end). Read from the rollups; a
        version's cut (which pools whole-model rows of the windows the version had to itself)
        and ``from_rollups=False`` pool the stored windows instead (the same figures)."""
        if step not in schema.ROLLUPS or agg not in BUCKET_AGGREGATES:
            raise ValueError(f"no rollup of step {step!r} and aggregate {agg!r}")
        where = ["model = %(model)s", "stage = %(stage)s"]
        params: dict[str, Any] = {
            "model": model,
            "segment": segment,
            "stage": stage,
            "version": cut_version(segment) or "",
            "limit": int(limit),
        }
        if name is not None:
            where.append("metric = %(name)s")
            params["name"] = name
        if feature is not None:
            where.append("feature = %(feature)s")
            params["feature"] = feature
        lo = None if start is None else int(start) - int(start) % step
        # (a DateTime holds up to 2**32 - 1: the last bucket's end may lie beyond)
        hi = None if end is None else min(-(-int(end) // step) * step, MAX_DATETIME)
        if from_rollups and cut_version(segment) is None:
            self._roll_up(model, stage, name, lo, hi)
            _window_range(where, params, lo, hi, column="bucket")
            source = (
                "SELECT toUInt32(bucket) AS b, metric, feature, category, windows, total, low, "
                f"high, last, version FROM {schema.ROLLUPS[step]} FINAL "
                f"WHERE segment = %(segment)s AND {' AND '.join(where)}"
            )
        else:
            _window_range(where, params, lo, hi)
            source = (
                f"SELECT toUInt32(intDiv(toUInt32(window_start), {step}) * {step}) AS b, metric, "
                "feature, category, count(), sum(value), min(value), max(value), "
                "argMax(value, window_start), argMax(version, window_start) FROM metrics FINAL "
                f"WHERE {_cut_clause(segment)} AND {' AND '.join(where)} "
                "GROUP BY b, metric, feature, category"
            )
        rows = self.backend.execute(
            f"{source} ORDER BY b, metric, feature, category LIMIT %(limit)s", params
        )
        pick = BUCKET_AGGREGATES[agg]
        return [
            MetricPoint(
                model=model,
                window_start=int(r[0]),
                window_seconds=step,
                metric=str(r[1]),
                feature=str(r[2]),
                category=str(r[3]),
                value=pick(int(r[4]), float(r[5]), float(r[6]), float(r[7]), float(r[8])),
                segment=segment,
                stage=stage,
                version=str(r[9]),
            )
            for r in rows
        ]


MAX_DATETIME = 2**32 - 1
# what a bucket's point is, from its (windows, sum, min, max, newest value)
BUCKET_AGGREGATES: dict[str, Callable[[int, float, float, float, float], float]] = {
    "mean": lambda n, total, low, high, last: total / n,
    "sum": lambda n, total, low, high, last: total,
    "min": lambda n, total, low, high, last: low,
    "max": lambda n, total, low, high, last: high,
    "last": lambda n, total, low, high, last: last,
}

# the windows of the unit (%(model)s, %(stage)s) that have version cuts: several versions
CATALOGUE_REMEMBERED = 200_000  # catalogue rows a store remembers writing (a bounded cache)


_VERSION_CUT_PARAMS = {"prefix": VERSION_PREFIX + "%", "cut": len(VERSION_PREFIX) + 1}


def _catalogue(
    p: MetricPoint,
    into: set[tuple[str, str, str, str, str]],
    windows: dict[tuple[str, str, int], tuple[float, str]],
    cuts: dict[tuple[str, str, int], dict[str, float]],
    touched: set[tuple[str, str, str, int]],
) -> bool:
    """Note what a stored point adds to the catalogue (``schema.CATALOGUE``), to the hours
    whose rollups it changes and, for a window's ``traffic.count``, to the window index (its
    whole row) and the version index (its version cuts, which replace the whole row's single
    version: a window's points are written together); always True (a filter's side)."""
    metric = p.metric
    touched.add((p.model, p.stage, metric, p.window_start - p.window_start % 3600))
    into.add((p.model, p.stage, "metric", metric, ""))
    if metric == "traffic.count":
        into.add((p.model, p.stage, "version", p.version, ""))
        if not p.segment:
            windows[(p.model, p.stage, p.window_start)] = (p.value, p.version)
        elif (version := cut_version(p.segment)) is not None:
            cuts.setdefault((p.model, p.stage, p.window_start), {})[version] = p.value
        elif not p.segment.startswith("@"):
            into.add((p.model, p.stage, "segment", p.segment, ""))
    elif p.feature and metric.startswith("input."):
        categorical = metric == "input.category_freq"
        into.add((p.model, p.stage, "feature", p.feature, "categorical" if categorical else ""))
        if categorical:
            into.add((p.model, p.stage, "category", p.feature, p.category))
    return True


def _cut_clause(segment: str) -> str:
    """The rows of one cut (params: segment, version, model, stage). A version's cut is its
    cut rows where the window had several versions, and the whole rows of the windows it had to
    itself (which store no cut: ``streams/window_rows.py``)."""
    if cut_version(segment) is None:
        return "segment = %(segment)s"
    single = (
        "SELECT window_start FROM metrics FINAL WHERE model = %(model)s AND stage = %(stage)s "
        "AND metric = 'traffic.count' AND segment = '' AND version = %(version)s "
        "AND window_start NOT IN (SELECT window_start FROM metrics WHERE model = %(model)s "
        "AND stage = %(stage)s AND metric = 'traffic.count' AND substring(segment, 1, 9) = "
        f"'{VERSION_PREFIX}')"
    )
    return f"(segment = %(segment)s OR (segment = '' AND window_start IN ({single})))"


def _window_range(
    where: list[str],
    params: dict[str, Any],
    start: int | None,
    end: int | None,
    column: str = "window_start",
) -> None:
    """Filter on window start (or ``column``): from ``start`` (inclusive) to ``end``
    (exclusive)."""
    if start is not None:
        where.append(f"{column} >= toDateTime(%(start)s)")
        params["start"] = int(start)
    if end is not None:
        where.append(f"{column} < toDateTime(%(end)s)")
        params["end"] = int(end)


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def open_store(settings: Settings) -> Store:
    """The store the settings name, with its tables created."""
    backend: Backend
    if settings.store == "server":
        from driftline.store.server import ServerBackend

        backend = ServerBackend(settings.clickhouse_url)
    else:
        from driftline.store.embedded import EmbeddedBackend

        backend = EmbeddedBackend(settings.data_dir / "clickhouse")
    store = Store(backend)
    store.init_schema()
    return store
