"""The tables. This SQL runs unchanged on ClickHouse 18.16 (Debian) and current ClickHouse.

Writes are idempotent: every table is a ReplacingMergeTree whose sorting key is the row's
identity and whose version column is the write time, and reads use FINAL. A window that is
processed again after a crash replaces its rows instead of adding to them.
"""

METRICS = """
CREATE TABLE IF NOT EXISTS metrics (
    model String,
    stage String,
    segment String,
    window_start DateTime,
    window_seconds UInt32,
    metric String,
    feature String,
    category String,
    value Float64,
    version String,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model, metric, feature, category, segment, stage, window_start)
"""

# Per model and Kafka log (topic id + partition): every event of the model below next_offset
# is in a stored window. A restarted worker skips those events instead of folding them into a
# partial copy of a window that is already stored.
WORKER_OFFSETS = """
CREATE TABLE IF NOT EXISTS worker_offsets (
    model String,
    log_id String,
    partition UInt32,
    next_offset UInt64,
    window_start DateTime,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, log_id, partition)
"""

TABLES = (METRICS, WORKER_OFFSETS)

METRIC_COLUMNS = (
    "model",
    "stage",
    "segment",
    "window_start",
    "window_seconds",
    "metric",
    "feature",
    "category",
    "value",
    "version",
    "written_at",
)
OFFSET_COLUMNS = ("model", "log_id", "partition", "next_offset", "window_start", "written_at")
