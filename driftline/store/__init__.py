"""Storage of window metrics in ClickHouse: one SQL text, two backends (DESIGN.md)."""

from driftline.store.base import (
    Backend,
    DriftRow,
    MetricPoint,
    OffsetMark,
    SetAsideWindow,
    Store,
    StoredReference,
    open_store,
)
from driftline.store.stores import Stores, open_stores

__all__ = [
    "Backend",
    "DriftRow",
    "MetricPoint",
    "OffsetMark",
    "SetAsideWindow",
    "Store",
    "StoredReference",
    "Stores",
    "open_store",
    "open_stores",
]
