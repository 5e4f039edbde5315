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

# What the catalogue reads list, kept as windows are written (``Store.write_window``), one row
# per name: a unit's metric names, features (``detail``: "categorical" for a categorical one),
# categories (``name`` the feature, ``detail`` the value), slices and versions. The lists the
# API and the dashboard ask for every few seconds never scan the metrics history.
CATALOGUE = """
CREATE TABLE IF NOT EXISTS catalogue (
    model String,
    stage String,
    kind String,
    name String,
    detail String,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, stage, kind, name, detail)
"""

# One row per stored window of a unit, with its events: the models list, from a table a window
# adds one row to rather than thousands.
WINDOW_INDEX = """
CREATE TABLE IF NOT EXISTS window_index (
    model String,
    stage String,
    window_start DateTime,
    events Float64,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, stage, window_start)
"""

# One row per version and stored window it had traffic in, with its events: from the window's
# version cut where it had several versions, else from its whole row. Each version's traffic
# (the model page, canaries) reads these rather than the metrics history (112 of 199 ms of the
# model page at 100 million metric rows).
VERSION_INDEX = """
CREATE TABLE IF NOT EXISTS version_index (
    model String,
    stage String,
    version String,
    window_start DateTime,
    events Float64,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, stage, version, window_start)
"""
VERSION_INDEX_COLUMNS = ("model", "stage", "version", "window_start", "events", "written_at")
# a store from before the index: its rows from the metrics, once (params: prefix, cut)
VERSION_INDEX_BACKFILL = (
    "INSERT INTO version_index (model, stage, version, window_start, events, written_at) "
    "SELECT model, stage, if(segment = '', version, substring(segment, %(cut)s)) AS v, "
    "window_start, argMax(value, written_at), max(written_at) FROM metrics "
    "WHERE metric = 'traffic.count' AND (segment LIKE %(prefix)s OR (segment = '' AND "
    "(model, stage, window_start) NOT IN (SELECT model, stage, window_start FROM metrics "
    "WHERE metric = 'traffic.count' AND segment LIKE %(prefix)s))) "
    "GROUP BY model, stage, v, window_start"
)

# Rollups: per series (model, stage, cut, metric, feature, category) and hour (day), the
# stored windows' figures pooled: how many windows, their sum, min, max, and the value and
# model version of the newest window. A long range reads one row a bucket instead of one a
# window (``Store.metric_buckets``). A write only marks the (unit, metric, hour) it touched
# (``ROLLUP_DIRTY``); a read computes those hours again from the metrics first, each window
# counted once with its newest value (a rewritten window replaces its figures, never adds to
# them), then their days from the hours. A row's version is the newest write it pooled, so
# the newer recomputation wins. Writing stays one small insert; an hour is recomputed once a
# read needs it, not once per window written into it.
METRICS_HOURLY = """
CREATE TABLE IF NOT EXISTS metrics_hourly (
    model String,
    stage String,
    segment String,
    bucket DateTime,
    metric String,
    feature String,
    category String,
    windows UInt32,
    total Float64,
    low Float64,
    high Float64,
    last Float64,
    version String,
    window_seconds UInt32,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (model, metric, feature, category, segment, stage, bucket)
"""
METRICS_DAILY = METRICS_HOURLY.replace("metrics_hourly (", "metrics_daily (", 1).replace(
    "PARTITION BY toYYYYMM(bucket)", "PARTITION BY toYear(bucket)", 1
)
# Per unit, metric and hour: the newest write into it (``rollup_dirty``) and the write up to
# which its rollups were computed (``rollup_done``); an hour is stale while the first is newer.
ROLLUP_DIRTY = """
CREATE TABLE IF NOT EXISTS rollup_dirty (
    model String,
    stage String,
    metric String,
    hour DateTime,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, stage, metric, hour)
"""
ROLLUP_DONE = ROLLUP_DIRTY.replace("rollup_dirty (", "rollup_done (", 1)
ROLLUP_MARK_COLUMNS = ("model", "stage", "metric", "hour", "written_at")
# bucket length (s) → its table; a day's row is pooled from its hours' rows
ROLLUPS = {3600: "metrics_hourly", 86400: "metrics_daily"}
ROLLUP_COLUMNS = (
    "model",
    "stage",
    "segment",
    "bucket",
    "metric",
    "feature",
    "category",
    "windows",
    "total",
    "low",
    "high",
    "last",
    "version",
    "window_seconds",
    "written_at",
)
_SERIES = "model, stage, segment, metric, feature, category"


def hourly_rollup(where: str) -> str:
    """The hours of the metrics rows ``where`` selects (whole hours: ``where`` bounds
    ``window_start`` at hour boundaries), each window once with its newest write."""
    return (
        f"INSERT INTO metrics_hourly ({', '.join(ROLLUP_COLUMNS)}) "
        "SELECT model, stage, segment, toDateTime(intDiv(toUInt32(window_start), 3600) * 3600) "
        "AS hour, metric, feature, category, count(), sum(v), min(v), max(v), "
        "argMax(v, window_start), argMax(ver, window_start), max(secs), max(w) FROM ("
        f"SELECT {_SERIES}, window_start, argMax(value, written_at) AS v, "
        "argMax(version, written_at) AS ver, argMax(window_seconds, written_at) AS secs, "
        f"max(written_at) AS w FROM metrics WHERE {where} GROUP BY {_SERIES}, window_start"
        f") GROUP BY {_SERIES}, hour"
    )


def daily_rollup(where: str) -> str:
    """The days of the hourly rows ``where`` selects (whole days, UTC)."""
    return (
        f"INSERT INTO metrics_daily ({', '.join(ROLLUP_COLUMNS)}) "
        "SELECT model, stage, segment, toDateTime(intDiv(toUInt32(bucket), 86400) * 86400) "
        "AS day, metric, feature, category, sum(windows), sum(total), min(low), max(high), "
        "argMax(last, bucket), argMax(version, bucket), max(window_seconds), max(written_at) "
        f"FROM metrics_hourly FINAL WHERE {where} GROUP BY {_SERIES}, day"
    )


# A store from before the rollups gets them from its metrics once, at start (FINAL keeps
# each window's newest row; grouping by hour alone holds one state per series and hour), its
# hours marked written and done.
ROLLUP_BACKFILL = (
    "INSERT INTO rollup_dirty (model, stage, metric, hour, written_at) "
    "SELECT model, stage, metric, toDateTime(intDiv(toUInt32(window_start), 3600) * 3600) AS h, "
    "max(written_at) FROM metrics GROUP BY model, stage, metric, h",
    f"INSERT INTO metrics_hourly ({', '.join(ROLLUP_COLUMNS)}) "
    "SELECT model, stage, segment, toDateTime(intDiv(toUInt32(window_start), 3600) * 3600) "
    "AS hour, metric, feature, category, count(), sum(value), min(value), max(value), "
    "argMax(value, window_start), argMax(version, window_start), max(window_seconds), "
    f"max(written_at) FROM metrics FINAL GROUP BY {_SERIES}, hour",
    daily_rollup("1"),
    "INSERT INTO rollup_done SELECT * FROM rollup_dirty",
)

# A store made before the catalogue gets it from its metrics once, at start (one scan).
CATALOGUE_BACKFILL = (
    "INSERT INTO catalogue (model, stage, kind, name, detail, written_at) "
    "SELECT DISTINCT model, stage, 'metric', metric, '', toUInt64(0) FROM metrics",
    "INSERT INTO catalogue (model, stage, kind, name, detail, written_at) "
    "SELECT DISTINCT model, stage, 'feature', feature, "
    "if(metric = 'input.category_freq', 'categorical', ''), toUInt64(0) FROM metrics "
    "WHERE feature != '' AND metric LIKE 'input.%'",
    "INSERT INTO catalogue (model, stage, kind, name, detail, written_at) "
    "SELECT DISTINCT model, stage, 'category', feature, category, toUInt64(0) FROM metrics "
    "WHERE metric = 'input.category_freq'",
    "INSERT INTO catalogue (model, stage, kind, name, detail, written_at) "
    "SELECT DISTINCT model, stage, 'segment', segment, '', toUInt64(0) FROM metrics "
    "WHERE metric = 'traffic.count' AND segment != '' AND substring(segment, 1, 1) != '@'",
    "INSERT INTO catalogue (model, stage, kind, name, detail, written_at) "
    "SELECT DISTINCT model, stage, 'version', version, '', toUInt64(0) FROM metrics "
    "WHERE metric = 'traffic.count'",
    "INSERT INTO window_index (model, stage, window_start, events, written_at) "
    "SELECT model, stage, window_start, argMax(value, written_at), max(written_at) "
    "FROM metrics WHERE metric = 'traffic.count' AND segment = '' "
    "GROUP BY model, stage, window_start",
)
CATALOGUE_COLUMNS = ("model", "stage", "kind", "name", "detail", "written_at")
WINDOW_INDEX_COLUMNS = ("model", "stage", "window_start", "events", "written_at")

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
    written_at UInt64,
    seen_below UInt64 DEFAULT 0
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, log_id, partition)
"""

# Columns added after a table was first released: (table, column, type). A store created by an
# older version gets them at start (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS).
ADDED_COLUMNS = (
    # every event of the model below it had been read when the window closed (streams/windowing)
    ("worker_offsets", "seen_below", "UInt64 DEFAULT 0"),
    # webhook | alertmanager (alarms.routing.Subscription.kind)
    ("alarm_subscriptions", "kind", "String DEFAULT 'webhook'"),
    # a label event's custom metrics (JSON object, '' for none): outcomes joined by id
    ("labels", "metrics", "String DEFAULT ''"),
    # where an alert's trouble is (JSON: alarms.findings.findings_document, '' for none)
    ("alarm_alerts", "findings", "String DEFAULT ''"),
)

# Windows the store rejected for a reason a retry cannot fix, set aside so that every other
# window goes on (streams/pipeline.py). ``window_start`` is Int64: the start itself may be what
# a DateTime cannot hold.
WINDOWS_SET_ASIDE = """
CREATE TABLE IF NOT EXISTS windows_set_aside (
    model String,
    stage String,
    window_start Int64,
    window_seconds UInt32,
    events UInt64,
    reason String,
    set_aside_at UInt64,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, stage, window_start)
"""
SET_ASIDE_COLUMNS = (
    "model",
    "stage",
    "window_start",
    "window_seconds",
    "events",
    "reason",
    "set_aside_at",
    "written_at",
)

# One row per reference (model, version, source): the profile JSON of every feature.
REFERENCES = """
CREATE TABLE IF NOT EXISTS model_references (
    model String,
    version String,
    source String,
    profile String,
    created_at DateTime,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, version, source)
"""

# Every drift test of every window: (model, slice, window, feature, test).
DRIFT_RESULTS = """
CREATE TABLE IF NOT EXISTS drift_results (
    model String,
    stage String,
    segment String,
    window_start DateTime,
    window_seconds UInt32,
    feature String,
    test String,
    statistic Float64,
    p_value Nullable(Float64),
    adjusted_p_value Nullable(Float64),
    effect_size Float64,
    min_effect Float64,
    drifted UInt8,
    in_decision UInt8,
    drift_when String,
    n_reference UInt64,
    n_current UInt64,
    reference String,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model, segment, stage, window_start, feature, test)
"""

# Alarms (driftline/store/alarms.py). Configuration tables are soft-deleted (deleted = 1):
# no mutations. Wall-clock times are epoch seconds (Float64); window starts are UInt32.
ALARM_RULES = """
CREATE TABLE IF NOT EXISTS alarm_rules (
    id String,
    name String,
    metric String,
    model String,
    feature String,
    segment String,
    category String,
    comparison String,
    threshold Float64,
    for_windows UInt32,
    keep_firing_for UInt32,
    severity String,
    labels String,
    actions Array(String),
    description String,
    enabled UInt8,
    origin String,
    created_at Float64,
    updated_at Float64,
    deleted UInt8,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY id
"""

ALARM_ALERTS = """
CREATE TABLE IF NOT EXISTS alarm_alerts (
    id String,
    rule_id String,
    rule_name String,
    model String,
    feature String,
    segment String,
    metric String,
    comparison String,
    threshold Float64,
    severity String,
    state String,
    value Nullable(Float64),
    active_since UInt32,
    last_window UInt32,
    breaches UInt32,
    clears UInt32,
    labels String,
    actions Array(String),
    description String,
    fired_at Nullable(Float64),
    resolved_at Nullable(Float64),
    notified_at Nullable(Float64),
    updated_at Float64,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY id
"""

ALARM_SUBSCRIPTIONS = """
CREATE TABLE IF NOT EXISTS alarm_subscriptions (
    id String,
    url String,
    secret String,
    model String,
    severities Array(String),
    labels String,
    description String,
    created_at Float64,
    deleted UInt8,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY id
"""

ALARM_SILENCES = """
CREATE TABLE IF NOT EXISTS alarm_silences (
    id String,
    matchers String,
    starts_at Float64,
    ends_at Float64,
    comment String,
    created_by String,
    created_at Float64,
    deleted UInt8,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY id
"""

# The delivery log: one row per (subscription, notification), replaced as attempts go on.
ALARM_DELIVERIES = """
CREATE TABLE IF NOT EXISTS alarm_deliveries (
    id String,
    subscription_id String,
    alert_id String,
    event String,
    status String,
    attempts UInt32,
    response_code UInt32,
    error String,
    payload String,
    created_at Float64,
    next_attempt_at Nullable(Float64),
    finished_at Nullable(Float64),
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (subscription_id, id)
"""

# Raw prediction events that carry an ``id``: the prediction side of the label join and the
# retrainer's training data. One partition per day, so retention drops whole days cheaply
# (``ALTER TABLE … DROP PARTITION``; ClickHouse 18.16 has no TTL). A replayed event has the same
# key and window, so it lands in the same partition and replaces its first copy.
PREDICTIONS = """
CREATE TABLE IF NOT EXISTS predictions (
    model String,
    stage String,
    id String,
    ts Float64,
    window_start DateTime,
    version String,
    event String,
    stored_ms UInt64
) ENGINE = ReplacingMergeTree(stored_ms)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (model, stage, window_start, id)
"""

# Shadow predictions (``"shadow": true``) that carry an ``id``: the same rows as ``predictions``,
# kept apart because a shadow shares its live twin's id and would replace it there. Only the
# quality pass's shadow comparison reads them (``LabelStore.window_shadow_joined``): nothing that
# reads ``predictions`` (quality, examples, training data) ever sees a shadow row.
SHADOW_PREDICTIONS = PREDICTIONS.replace("predictions (", "shadow_predictions (", 1)

# Labels as they arrive (``label_ms``: the label's ts, else its broker time). A duplicate label
# for the same id is kept; reads take the latest (argMax by label_ms). An outcome event (custom
# ``metrics`` without a label) has label 'null'; reads take the latest label and, apart, the
# latest metrics (the ``metrics`` column, added through ADDED_COLUMNS). Partitioned by month of
# arrival for retention.
LABELS = """
CREATE TABLE IF NOT EXISTS labels (
    model String,
    stage String,
    id String,
    label String,
    label_ms UInt64,
    stored_ms UInt64
) ENGINE = ReplacingMergeTree(stored_ms)
PARTITION BY toYYYYMM(toDateTime(intDiv(label_ms, 1000)))
ORDER BY (model, stage, id, label_ms)
"""

# Retraining jobs (driftline/store/jobs.py): one row per state change, latest wins.
RETRAIN_JOBS = """
CREATE TABLE IF NOT EXISTS retrain_jobs (
    id String,
    model String,
    state String,
    reason String,
    alert_id String,
    rule_id String,
    requested_at Float64,
    started_at Nullable(Float64),
    finished_at Nullable(Float64),
    data_start Nullable(Float64),
    data_end Nullable(Float64),
    version String,
    metrics String,
    log String,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY id
"""

ALARM_TABLES = (ALARM_RULES, ALARM_ALERTS, ALARM_SUBSCRIPTIONS, ALARM_SILENCES, ALARM_DELIVERIES)

# Deployments of a candidate version (driftline/store/deployments.py): a row per change.
DEPLOYMENTS = """
CREATE TABLE IF NOT EXISTS deployments (
    id String,
    model String,
    strategy String,
    baseline String,
    candidate String,
    steps String,
    step_windows UInt32,
    gates String,
    state String,
    step UInt32,
    step_started Int64,
    reason String,
    by String,
    created_at Float64,
    updated_at Float64,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, id)
"""

# The judge's verdict per deployment and window.
DEPLOYMENT_VERDICTS = """
CREATE TABLE IF NOT EXISTS deployment_verdicts (
    deployment_id String,
    model String,
    window_start Int64,
    step UInt32,
    share Float64,
    decision String,
    reason String,
    evidence String,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (deployment_id, window_start)
"""

# Tags for error analysis (driftline/store/tags.py), per unit (model, stage), soft-deleted
# (deleted = 1) like the alarm configuration: example tags name stored (or future) prediction
# ids, one row per (tag, id); rule tags hold a condition (detectors/conditions.py) that the
# examples read evaluates on every row.
EXAMPLE_TAGS = """
CREATE TABLE IF NOT EXISTS example_tags (
    model String,
    stage String,
    tag String,
    id String,
    created_at Float64,
    deleted UInt8,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, stage, tag, id)
"""

TAG_RULES = """
CREATE TABLE IF NOT EXISTS tag_rules (
    model String,
    stage String,
    tag String,
    condition String,
    created_at Float64,
    updated_at Float64,
    deleted UInt8,
    written_at UInt64
) ENGINE = ReplacingMergeTree(written_at)
ORDER BY (model, stage, tag)
"""

TABLES = (
    METRICS,
    CATALOGUE,
    WINDOW_INDEX,
    VERSION_INDEX,
    METRICS_HOURLY,
    METRICS_DAILY,
    ROLLUP_DIRTY,
    ROLLUP_DONE,
    WORKER_OFFSETS,
    WINDOWS_SET_ASIDE,
    REFERENCES,
    DRIFT_RESULTS,
    PREDICTIONS,
    SHADOW_PREDICTIONS,
    LABELS,
    RETRAIN_JOBS,
    DEPLOYMENTS,
    DEPLOYMENT_VERDICTS,
    EXAMPLE_TAGS,
    TAG_RULES,
    *ALARM_TABLES,
)

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
OFFSET_COLUMNS = (
    "model",
    "log_id",
    "partition",
    "next_offset",
    "window_start",
    "written_at",
    "seen_below",
)
REFERENCE_COLUMNS = ("model", "version", "source", "profile", "created_at", "written_at")
DRIFT_COLUMNS = (
    "model",
    "stage",
    "segment",
    "window_start",
    "window_seconds",
    "feature",
    "test",
    "statistic",
    "p_value",
    "adjusted_p_value",
    "effect_size",
    "min_effect",
    "drifted",
    "in_decision",
    "drift_when",
    "n_reference",
    "n_current",
    "reference",
    "written_at",
)
PREDICTION_COLUMNS = ("model", "stage", "id", "ts", "window_start", "version", "event", "stored_ms")
LABEL_COLUMNS = ("model", "stage", "id", "label", "label_ms", "stored_ms", "metrics")
EXAMPLE_TAG_COLUMNS = ("model", "stage", "tag", "id", "created_at", "deleted", "written_at")
TAG_RULE_COLUMNS = (
    "model",
    "stage",
    "tag",
    "condition",
    "created_at",
    "updated_at",
    "deleted",
    "written_at",
)
