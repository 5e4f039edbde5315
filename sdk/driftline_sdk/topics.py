"""Kafka topic names: part of the public contract (DESIGN.md)."""

PREDICTIONS = "driftline.predictions"
LABELS = "driftline.labels"
DEADLETTER = "driftline.deadletter"
ALERTS = "driftline.alerts"
RETRAIN_JOBS = "driftline.retrain-jobs"
MODEL_UPDATES = "driftline.model-updates"
