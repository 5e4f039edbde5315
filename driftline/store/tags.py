"""Tags on a unit's labelled examples, for error analysis: example tags and rule tags.

An example tag names prediction ids (``example_tags``: a row per (model, stage, tag, id)); a
rule tag holds a condition over an example (``tag_rules``: a row per (model, stage, tag)),
which the examples read evaluates on every row (``detectors/conditions.py``), so it covers
stored and future examples alike. Both tables are ReplacingMergeTrees keyed by the row's
identity with the write time as version (``driftline/store/schema.py``): a change is a new row,
a delete a row with ``deleted = 1``, reads use FINAL with the key filters inside and
``deleted`` outside. Nothing here checks that an id has a stored prediction: a tag may name
ids whose predictions come later.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from driftline.store import schema
from driftline.store.base import INSERT_BLOCK_ROWS, Backend
from driftline.store.versions import WriteVersions

# the text of ids one ``id IN (...)`` read holds at most (ClickHouse's max_query_size is 256 KiB)
IDS_PER_READ_CHARS = 64 * 1024


@dataclass(frozen=True)
class RuleTag:
    tag: str
    condition: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class ExampleTag:
    tag: str
    count: int  # ids carrying it
    created_at: float  # its oldest id's
    updated_at: float  # its newest id's


def _unit(model: str, stage: str, **more: Any) -> dict[str, Any]:
    return {"model": model, "stage": stage, **more}


UNIT = "model = %(model)s AND stage = %(stage)s"


class TagStore:
    """The tag tables over a :class:`driftline.store.base.Backend` (thread-safe)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._versions = WriteVersions()

    def _version(self) -> int:
        return self._versions.next()

    # -- rule tags ------------------------------------------------------------------------
    def rule_tags(self, model: str, stage: str = "") -> list[RuleTag]:
        """The unit's rule tags, by name."""
        rows = self.backend.execute(
            "SELECT tag, condition, created_at, updated_at FROM (SELECT tag, condition, "
            f"created_at, updated_at, deleted FROM tag_rules FINAL WHERE {UNIT}) "
            "WHERE deleted = 0 ORDER BY tag",
            _unit(model, stage),
        )
        return [RuleTag(str(r[0]), str(r[1]), float(r[2]), float(r[3])) for r in rows]

    def rule_tag(self, model: str, stage: str, tag: str) -> RuleTag | None:
        return next((r for r in self.rule_tags(model, stage) if r.tag == tag), None)

    def put_rule_tag(self, model: str, stage: str, tag: str, condition: str) -> RuleTag:
        """Create or replace a rule tag (its creation time kept)."""
        now = time.time()
        old = self.rule_tag(model, stage, tag)
        record = RuleTag(tag, condition, old.created_at if old else now, now)
        self._insert_rule(model, stage, record, deleted=False)
        return record

    def delete_rule_tag(self, model: str, stage: str, tag: str) -> bool:
        old = self.rule_tag(model, stage, tag)
        if old is None:
            return False
        self._insert_rule(model, stage, old, deleted=True)
        return True

    def _insert_rule(self, model: str, stage: str, r: RuleTag, *, deleted: bool) -> None:
        row = (model, stage, r.tag, r.condition, r.created_at, r.updated_at, int(deleted))
        self.backend.insert("tag_rules", schema.TAG_RULE_COLUMNS, [(*row, self._version())])

    # -- example tags ---------------------------------------------------------------------
    def _live(self, where: str, columns: str = "tag, id, created_at") -> str:
        return (
            f"SELECT {columns} FROM (SELECT tag, id, created_at, deleted FROM example_tags "
            f"FINAL WHERE {UNIT}{where}) WHERE deleted = 0"
        )

    def example_tags(self, model: str, stage: str = "") -> list[ExampleTag]:
        """The unit's example tags with how many ids each carries, by name."""
        rows = self.backend.execute(
            self._live("", "tag, count(), min(created_at), max(created_at)")
            + " GROUP BY tag ORDER BY tag",
            _unit(model, stage),
        )
        return [ExampleTag(str(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in rows]

    def example_tag(self, model: str, stage: str, tag: str) -> ExampleTag | None:
        rows = self.backend.execute(
            self._live(" AND tag = %(tag)s", "count(), min(created_at), max(created_at)"),
            _unit(model, stage, tag=tag),
        )
        if not rows or not int(rows[0][0]):
            return None
        return ExampleTag(tag, int(rows[0][0]), float(rows[0][1]), float(rows[0][2]))

    def ids_with(self, model: str, stage: str, tag: str) -> set[str]:
        """The ids an example tag names (empty: no such tag)."""
        rows = self.backend.execute(
            self._live(" AND tag = %(tag)s", "id"), _unit(model, stage, tag=tag)
        )
        return {str(r[0]) for r in rows}

    def tags_of(self, model: str, stage: str, ids: Iterable[str]) -> dict[str, set[str]]:
        """The example tags of each of ``ids`` that has some (reads of bounded size)."""
        found: dict[str, set[str]] = {}
        for chunk in _chunks(sorted(set(ids))):
            rows = self.backend.execute(
                self._live(" AND id IN %(ids)s", "id, tag"), _unit(model, stage, ids=chunk)
            )
            for r in rows:
                found.setdefault(str(r[0]), set()).add(str(r[1]))
        return found

    def add_ids(self, model: str, stage: str, tag: str, ids: Sequence[str]) -> int:
        """Tag ``ids`` (those already tagged keep their time); returns how many were new."""
        fresh = sorted(set(ids) - self.ids_with(model, stage, tag))
        self._insert_ids(model, stage, tag, ((i, time.time()) for i in fresh), deleted=False)
        return len(fresh)

    def remove_ids(self, model: str, stage: str, tag: str, ids: Sequence[str] | None) -> int:
        """Untag ``ids`` (every id of the tag: None); returns how many carried it."""
        rows = self.backend.execute(
            self._live(" AND tag = %(tag)s", "id, created_at"), _unit(model, stage, tag=tag)
        )
        wanted = None if ids is None else set(ids)
        gone = [(str(r[0]), float(r[1])) for r in rows if wanted is None or str(r[0]) in wanted]
        self._insert_ids(model, stage, tag, gone, deleted=True)
        return len(gone)

    def _insert_ids(
        self,
        model: str,
        stage: str,
        tag: str,
        ids: Iterable[tuple[str, float]],
        *,
        deleted: bool,
    ) -> None:
        version = self._version()
        rows = ((model, stage, tag, i, t, int(deleted), version) for i, t in ids)
        while block := list(itertools.islice(rows, INSERT_BLOCK_ROWS)):
            self.backend.insert("example_tags", schema.EXAMPLE_TAG_COLUMNS, block)


def _chunks(ids: Sequence[str]) -> Iterable[tuple[str, ...]]:
    chunk: list[str] = []
    size = 0
    for i in ids:
        if chunk and size + len(i) > IDS_PER_READ_CHARS:
            yield tuple(chunk)
            chunk, size = [], 0
        chunk.append(i)
        size += len(i) + 4
    if chunk:
        yield tuple(chunk)
