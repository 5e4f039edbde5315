"""Lists that one bad stored row cannot break.

The request models bound every field, so the API stores nothing it cannot show; but rows
written before those bounds (or by another writer) may still hold, say, a time no date can
represent. Such a row is left out of the list and logged with its id, so the list keeps
answering and the row can be found and deleted; the rest is shown as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

log = logging.getLogger(__name__)
Stored = TypeVar("Stored")
Shown = TypeVar("Shown")
# what rendering a stored value raises: a date out of range (ValueError, OverflowError,
# OSError), a value of the wrong type (TypeError, pydantic's ValidationError is a ValueError)
UNRENDERABLE = (ValueError, OverflowError, OSError, TypeError)


def render_each(
    rows: Iterable[Stored],
    render: Callable[[Stored], Shown],
    what: str,
    ident: Callable[[Stored], str],
) -> list[Shown]:
    """``render`` every row; one that raises is logged with ``ident(row)`` and left out."""
    shown = []
    for row in rows:
        try:
            shown.append(render(row))
        except UNRENDERABLE as exc:
            log.warning("%s %s left out of the list, it cannot be shown: %s", what, ident(row), exc)
    return shown
