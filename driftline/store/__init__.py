"""Storage of window metrics in ClickHouse: one SQL text, two backends (DESIGN.md)."""

from driftline.store.base import Backend, MetricPoint, OffsetMark, Store, open_store

__all__ = ["Backend", "MetricPoint", "OffsetMark", "Store", "open_store"]
