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

__all__ = [
    "Backend",
    "DriftRow",
    "MetricPoint",
    "OffsetMark",
    "SetAsideWindow",
    "Store",
    "StoredReference",
    "open_store",
]
