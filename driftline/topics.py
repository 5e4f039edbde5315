"""Kafka topic names (the contract's, from the SDK) and the partitions the platform makes."""

from driftline_sdk.topics import (
    ALERTS,
    DEADLETTER,
    LABELS,
    MODEL_UPDATES,
    PREDICTIONS,
    RETRAIN_JOBS,
)

__all__ = [
    "ALERTS",
    "DEADLETTER",
    "LABELS",
    "MODEL_UPDATES",
    "PREDICTIONS",
    "RETRAIN_JOBS",
    "topic_partitions",
]


def topic_partitions(predictions: int, labels: int) -> dict[str, int]:
    """Final partition counts: Tansu cannot add partitions later, so create them once."""
    return {
        PREDICTIONS: predictions,
        LABELS: labels,
        DEADLETTER: 1,
        ALERTS: 1,
        RETRAIN_JOBS: 1,
        MODEL_UPDATES: 1,
    }
