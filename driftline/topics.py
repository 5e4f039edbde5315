"""Kafka topic names: part of the public contract (DESIGN.md)."""

PREDICTIONS = "driftline.predictions"
LABELS = "driftline.labels"
DEADLETTER = "driftline.deadletter"
ALERTS = "driftline.alerts"
RETRAIN_JOBS = "driftline.retrain-jobs"
MODEL_UPDATES = "driftline.model-updates"


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
