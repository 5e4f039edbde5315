"""Driftline: event-driven monitoring for machine-learning models in production."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline_sdk import Monitor

__all__ = ["Monitor"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import driftline` stays cheap and free of Kafka imports until Monitor is used.
    if name == "Monitor":
        from driftline_sdk import Monitor

        return Monitor
    raise AttributeError(name)
