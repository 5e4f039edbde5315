"""Alarm rules, alerts, subscriptions, silences and the delivery log, in ClickHouse.

Every table is a ReplacingMergeTree keyed by the row's id with the write time as version
(``driftline/store/schema.py``): an update is a new row, a delete a row with ``deleted = 1``,
reads use FINAL and filter non-key columns outside it. The default rules are written with the
oldest possible version, so seeding them again never undoes a user's edit or delete.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from alarms.findings import Finding, findings_document, findings_of
from alarms.routing import Matcher, MatchOp, Silence, Subscription
from alarms.rules import Comparison, Rule
from alarms.state import Alert, AlertState
from driftline.store.base import Backend
from driftline.store.versions import WriteVersions

RULE_COLUMNS = (
    "id",
    "name",
    "metric",
    "model",
    "feature",
    "segment",
    "category",
    "comparison",
    "threshold",
    "for_windows",
    "keep_firing_for",
    "severity",
    "labels",
    "actions",
    "description",
    "enabled",
    "origin",
    "created_at",
    "updated_at",
    "deleted",
    "written_at",
)
ALERT_COLUMNS = (
    "id",
    "rule_id",
    "rule_name",
    "model",
    "feature",
    "segment",
    "metric",
    "comparison",
    "threshold",
    "severity",
    "state",
    "value",
    "active_since",
    "last_window",
    "breaches",
    "clears",
    "labels",
    "actions",
    "description",
    "fired_at",
    "resolved_at",
    "notified_at",
    "updated_at",
    "written_at",
    "findings",
)
SUBSCRIPTION_COLUMNS = (
    "id",
    "url",
    "secret",
    "model",
    "severities",
    "labels",
    "description",
    "created_at",
    "deleted",
    "written_at",
    "kind",
)
SILENCE_COLUMNS = (
    "id",
    "matchers",
    "starts_at",
    "ends_at",
    "comment",
    "created_by",
    "created_at",
    "deleted",
    "written_at",
)
DELIVERY_COLUMNS = (
    "id",
    "subscription_id",
    "alert_id",
    "event",
    "status",
    "attempts",
    "response_code",
    "error",
    "payload",
    "created_at",
    "next_attempt_at",
    "finished_at",
    "written_at",
)

SEED_VERSION = 1  # older than any real write: an edited or deleted default rule stays so
UNFINISHED = ("pending", "retrying")


@dataclass(frozen=True)
class RuleRecord:
    rule: Rule
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Delivery:
    """One notification to one subscription, as the delivery log holds it.

    ``status``: pending → retrying … → delivered | failed; or silenced / cancelled.
    ``alert_id`` is empty for a re-send to an Alertmanager, which holds every firing alert
    the subscription selects (``streams/alarms.py``).
    """

    id: str
    subscription_id: str
    alert_id: str
    event: str  # firing | resolved
    payload: bytes
    created_at: float
    status: str = "pending"
    attempts: int = 0
    response_code: int = 0
    error: str = ""
    next_attempt_at: float | None = None
    finished_at: float | None = None


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def _findings(text: Any) -> dict[str, Any]:
    """An alert's stored findings; a value this version cannot read is left out, and says so
    (a store written by a newer Driftline)."""
    findings: tuple[Finding, ...] = ()
    note = ""
    if text:
        try:
            findings, note = findings_of(orjson.loads(text))
        except ValueError as exc:
            note = f"stored findings unreadable: {exc}"
    return {"findings": findings, "findings_note": note}


def _select(columns: Sequence[str], table: str, where: str = "1", order: str = "id") -> str:
    # Non-key filters go outside FINAL: inside it, a filter could see a superseded row.
    cols = ", ".join(columns)
    return f"SELECT {cols} FROM (SELECT {cols} FROM {table} FINAL) WHERE {where} ORDER BY {order}"


class AlarmStore:
    """The alarm tables over a :class:`driftline.store.base.Backend` (thread-safe)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._versions = WriteVersions()

    def _version(self) -> int:
        return self._versions.next()

    # -- rules ----------------------------------------------------------------------------
    def rules(self) -> list[RuleRecord]:
        rows = self.backend.execute(_select(RULE_COLUMNS, "alarm_rules", "deleted = 0"))
        return [self._rule(r) for r in rows]

    def rules_stamp(self) -> tuple[int, int]:
        """Changes whenever a rule is written: reload the rules only when it does."""
        [(rows, newest)] = self.backend.execute("SELECT count(), max(written_at) FROM alarm_rules")
        return int(rows), int(newest)

    def rule(self, rule_id: str) -> RuleRecord | None:
        rows = self.backend.execute(
            _select(RULE_COLUMNS, "alarm_rules", "id = %(id)s AND deleted = 0"), {"id": rule_id}
        )
        return self._rule(rows[0]) if rows else None

    def put_rule(self, rule: Rule, created_at: float | None = None) -> RuleRecord:
        now = time.time()
        record = RuleRecord(rule, created_at if created_at is not None else now, now)
        self._insert_rules([record], deleted=False, version=self._version())
        return record

    def delete_rule(self, rule_id: str) -> bool:
        record = self.rule(rule_id)
        if record is None:
            return False
        self._insert_rules([record], deleted=True, version=self._version())
        return True

    def seed_rules(self, rules: Iterable[Rule]) -> None:
        """Write the default rules unless a newer version (edit or delete) exists."""
        records = [RuleRecord(rule, 0.0, 0.0) for rule in rules]
        self._insert_rules(records, deleted=False, version=SEED_VERSION)

    def _insert_rules(self, records: Sequence[RuleRecord], deleted: bool, version: int) -> None:
        rows = [
            (
                r.rule.id,
                r.rule.name,
                r.rule.metric,
                r.rule.model,
                r.rule.feature,
                r.rule.segment,
                r.rule.category,
                str(r.rule.comparison),
                float(r.rule.threshold),
                r.rule.for_windows,
                r.rule.keep_firing_for,
                r.rule.severity,
                _json(dict(r.rule.labels)),
                list(r.rule.actions),
                r.rule.description,
                int(r.rule.enabled),
                r.rule.origin,
                r.created_at,
                r.updated_at,
                int(deleted),
                version,
            )
            for r in records
        ]
        if rows:
            self.backend.insert("alarm_rules", RULE_COLUMNS, rows)

    @staticmethod
    def _rule(row: Sequence[Any]) -> RuleRecord:
        rule = Rule(
            id=str(row[0]),
            name=str(row[1]),
            metric=str(row[2]),
            model=str(row[3]),
            feature=str(row[4]),
            segment=str(row[5]),
            category=str(row[6]),
            comparison=Comparison(row[7]),
            threshold=float(row[8]),
            for_windows=int(row[9]),
            keep_firing_for=int(row[10]),
            severity=str(row[11]),
            labels=orjson.loads(row[12]),
            actions=tuple(str(a) for a in row[13]),
            description=str(row[14]),
            enabled=bool(int(row[15])),
            origin=str(row[16]),
        )
        return RuleRecord(rule, float(row[17]), float(row[18]))

    # -- alerts ---------------------------------------------------------------------------
    def write_alerts(self, alerts: Iterable[Alert]) -> None:
        version = self._version()
        rows = [
            (
                a.id,
                a.rule_id,
                a.rule_name,
                a.model,
                a.feature,
                a.segment,
                a.metric,
                str(a.comparison),
                float(a.threshold),
                a.severity,
                str(a.state),
                a.value if a.value == a.value else None,  # NaN: no value seen
                a.active_since,
                a.last_window,
                a.breaches,
                a.clears,
                _json(dict(a.labels)),
                list(a.actions),
                a.description,
                a.fired_at,
                a.resolved_at,
                a.notified_at,
                a.updated_at,
                version,
                _json(findings_document(a.findings, a.findings_note)) if a.findings_note else "",
            )
            for a in alerts
        ]
        if rows:
            self.backend.insert("alarm_alerts", ALERT_COLUMNS, rows)

    def alerts(
        self,
        *,
        states: Sequence[str] = (),
        model: str | None = None,
        rule_id: str | None = None,
        segment: str | None = None,
        limit: int = 1000,
    ) -> list[Alert]:
        """Newest first (by last update). ``segment``: a cut label (a slice, or a version's
        ``@version=<v>``: ``driftline/cuts.py``)."""
        where = ["1"]
        params: dict[str, Any] = {"limit": int(limit)}
        if states:
            where.append("state IN %(states)s")
            params["states"] = tuple(states)
        if model is not None:
            where.append("model = %(model)s")
            params["model"] = model
        if rule_id is not None:
            where.append("rule_id = %(rule_id)s")
            params["rule_id"] = rule_id
        if segment is not None:
            where.append("segment = %(segment)s")
            params["segment"] = segment
        sql = _select(ALERT_COLUMNS, "alarm_alerts", " AND ".join(where), "updated_at DESC, id")
        return [self._alert(r) for r in self.backend.execute(sql + " LIMIT %(limit)s", params)]

    def open_alerts(self) -> list[Alert]:
        return self.alerts(states=("pending", "firing"), limit=1_000_000)

    def alert(self, alert_id: str) -> Alert | None:
        rows = self.backend.execute(
            _select(ALERT_COLUMNS, "alarm_alerts", "id = %(id)s"), {"id": alert_id}
        )
        return self._alert(rows[0]) if rows else None

    @staticmethod
    def _alert(row: Sequence[Any]) -> Alert:
        return Alert(
            id=str(row[0]),
            rule_id=str(row[1]),
            rule_name=str(row[2]),
            model=str(row[3]),
            feature=str(row[4]),
            segment=str(row[5]),
            metric=str(row[6]),
            comparison=Comparison(row[7]),
            threshold=float(row[8]),
            severity=str(row[9]),
            state=AlertState(row[10]),
            value=float("nan") if row[11] is None else float(row[11]),
            active_since=int(row[12]),
            last_window=int(row[13]),
            breaches=int(row[14]),
            clears=int(row[15]),
            labels=orjson.loads(row[16]),
            actions=tuple(str(a) for a in row[17]),
            description=str(row[18]),
            fired_at=_opt(row[19]),
            resolved_at=_opt(row[20]),
            notified_at=_opt(row[21]),
            updated_at=float(row[22]),
            **_findings(row[24]),
        )

    # -- subscriptions --------------------------------------------------------------------
    def subscriptions(self) -> list[Subscription]:
        sql = _select(SUBSCRIPTION_COLUMNS, "alarm_subscriptions", "deleted = 0", "created_at, id")
        return [self._subscription(r) for r in self.backend.execute(sql)]

    def subscription(self, subscription_id: str) -> Subscription | None:
        rows = self.backend.execute(
            _select(SUBSCRIPTION_COLUMNS, "alarm_subscriptions", "id = %(id)s AND deleted = 0"),
            {"id": subscription_id},
        )
        return self._subscription(rows[0]) if rows else None

    def put_subscription(self, subscription: Subscription) -> None:
        self._insert_subscription(subscription, deleted=False)

    def delete_subscription(self, subscription_id: str) -> bool:
        found = self.subscription(subscription_id)
        if found is None:
            return False
        self._insert_subscription(found, deleted=True)
        return True

    def _insert_subscription(self, s: Subscription, deleted: bool) -> None:
        row = (
            s.id,
            s.url,
            s.secret,
            s.model,
            list(s.severities),
            _json(dict(s.labels)),
            s.description,
            s.created_at,
            int(deleted),
            self._version(),
            s.kind,
        )
        self.backend.insert("alarm_subscriptions", SUBSCRIPTION_COLUMNS, [row])

    @staticmethod
    def _subscription(row: Sequence[Any]) -> Subscription:
        return Subscription(
            id=str(row[0]),
            url=str(row[1]),
            secret=str(row[2]),
            model=str(row[3]),
            severities=tuple(str(s) for s in row[4]),
            labels=orjson.loads(row[5]),
            description=str(row[6]),
            created_at=float(row[7]),
            kind="alertmanager" if row[10] == "alertmanager" else "webhook",
        )

    # -- silences -------------------------------------------------------------------------
    def silences(self, *, expired: bool = True) -> list[Silence]:
        """Silences not deleted; without ``expired``, only those not ended yet."""
        where = "deleted = 0" if expired else "deleted = 0 AND ends_at > %(now)s"
        sql = _select(SILENCE_COLUMNS, "alarm_silences", where, "starts_at, id")
        return [self._silence(r) for r in self.backend.execute(sql, {"now": time.time()})]

    def silence(self, silence_id: str) -> Silence | None:
        rows = self.backend.execute(
            _select(SILENCE_COLUMNS, "alarm_silences", "id = %(id)s AND deleted = 0"),
            {"id": silence_id},
        )
        return self._silence(rows[0]) if rows else None

    def put_silence(self, silence: Silence) -> None:
        self._insert_silence(silence, deleted=False)

    def delete_silence(self, silence_id: str) -> bool:
        found = self.silence(silence_id)
        if found is None:
            return False
        self._insert_silence(found, deleted=True)
        return True

    def _insert_silence(self, s: Silence, deleted: bool) -> None:
        matchers = [{"name": m.name, "value": m.value, "op": m.op} for m in s.matchers]
        row = (
            s.id,
            _json(matchers),
            s.starts_at,
            s.ends_at,
            s.comment,
            s.created_by,
            s.created_at,
            int(deleted),
            self._version(),
        )
        self.backend.insert("alarm_silences", SILENCE_COLUMNS, [row])

    @staticmethod
    def _silence(row: Sequence[Any]) -> Silence:
        matchers = tuple(
            Matcher(str(m["name"]), str(m["value"]), _op(m["op"])) for m in orjson.loads(row[1])
        )
        return Silence(
            id=str(row[0]),
            matchers=matchers,
            starts_at=float(row[2]),
            ends_at=float(row[3]),
            comment=str(row[4]),
            created_by=str(row[5]),
            created_at=float(row[6]),
        )

    # -- deliveries -----------------------------------------------------------------------
    def record_deliveries(self, deliveries: Iterable[Delivery]) -> None:
        version = self._version()
        rows = [
            (
                d.id,
                d.subscription_id,
                d.alert_id,
                d.event,
                d.status,
                d.attempts,
                d.response_code,
                d.error,
                d.payload.decode(),
                d.created_at,
                d.next_attempt_at,
                d.finished_at,
                version,
            )
            for d in deliveries
        ]
        if rows:
            self.backend.insert("alarm_deliveries", DELIVERY_COLUMNS, rows)

    def deliveries(
        self,
        subscription_id: str | None = None,
        *,
        statuses: Sequence[str] = (),
        limit: int = 100,
    ) -> list[Delivery]:
        """Newest first."""
        where = ["1"]
        params: dict[str, Any] = {"limit": int(limit)}
        if subscription_id is not None:
            where.append("subscription_id = %(subscription_id)s")
            params["subscription_id"] = subscription_id
        if statuses:
            where.append("status IN %(statuses)s")
            params["statuses"] = tuple(statuses)
        sql = _select(
            DELIVERY_COLUMNS, "alarm_deliveries", " AND ".join(where), "created_at DESC, id"
        )
        return [self._delivery(r) for r in self.backend.execute(sql + " LIMIT %(limit)s", params)]

    def unfinished_deliveries(self) -> list[Delivery]:
        """Deliveries still to attempt (after a restart), oldest first."""
        found = self.deliveries(statuses=UNFINISHED, limit=1_000_000)
        return sorted(found, key=lambda d: (d.created_at, d.id))

    @staticmethod
    def _delivery(row: Sequence[Any]) -> Delivery:
        return Delivery(
            id=str(row[0]),
            subscription_id=str(row[1]),
            alert_id=str(row[2]),
            event=str(row[3]),
            status=str(row[4]),
            attempts=int(row[5]),
            response_code=int(row[6]),
            error=str(row[7]),
            payload=str(row[8]).encode(),
            created_at=float(row[9]),
            next_attempt_at=_opt(row[10]),
            finished_at=_opt(row[11]),
        )


def _op(value: object) -> MatchOp:
    ops: dict[object, MatchOp] = {"=": "=", "!=": "!=", "=~": "=~", "!~": "!~"}
    return ops[value]
