"""Runtime configuration: one pydantic-settings class, read from ``DRIFTLINE_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline.events import EventLimits

KeepEvents = Literal["labelled", "all", "none"]  # which raw predictions the worker stores


class Settings(BaseSettings):
    """Every knob of a Driftline process; the CLI flags of ``up``/``demo`` override these."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", env_file=".env", extra="ignore")

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    consumer_group: str = "driftline-worker"
    # Faust/aiokafka session timeout. A group join takes about half of it, so small values make
    # starts quick on one machine; production brokers with many workers want the default 30 s.
    consumer_session_timeout_s: float = 30.0
    predictions_partitions: int = 8
    labels_partitions: int = 8

    # Store
    store: Literal["embedded", "server"] = "embedded"
    data_dir: Path = Path("driftline-data")
    clickhouse_url: str = "clickhouse://default:@127.0.0.1:9000/default"

    # Windows
    window_seconds: int = Field(60, ge=1, le=7 * 86400)
    allowed_lateness_s: float = Field(10.0, ge=0)
    # A model with no new events for this long (wall clock) has its open windows closed, so the
    # last window of a stream that stopped is stored rather than held forever.
    idle_close_s: float = Field(30.0, gt=0)

    # Worker limits (memory stays bounded however long the worker runs)
    sample_size: int = Field(2048, ge=16, description="values kept per feature per window")
    max_categories: int = Field(200, ge=1, description="distinct values counted per feature")
    max_message_bytes: int = Field(1_048_576, ge=1024)
    max_features: int = Field(1000, ge=1)
    max_string_length: int = Field(1024, ge=1)
    max_name_length: int = Field(256, ge=1, le=65_536, description="model, version, ids, names")
    max_segment_keys: int = Field(16, ge=1, le=1000, description="segment keys in one event")
    # custom metrics (an event's ``metrics``): names per event and a name's length; a window
    # summarises at most max_window_custom_metrics names (later ones: custom.names_over_cap)
    max_custom_metrics: int = Field(64, ge=1, le=1000, description="custom metric names per event")
    max_custom_metric_name_length: int = Field(64, ge=1, le=256)
    max_window_custom_metrics: int = Field(100, ge=1, le=10_000)
    # an event time further from the time it is received than these is dead-lettered (a clock
    # or a unit gone wrong: milliseconds sent as seconds); replaying old data needs a larger age
    max_event_age_s: float = Field(10 * 365 * 86400.0, gt=0, le=50 * 365 * 86400.0)
    max_event_future_s: float = Field(86400.0, ge=0, le=365 * 86400.0)
    max_deadletter_raw_bytes: int = Field(
        65_536, ge=0, le=4 * 1_048_576, description="bytes of the original kept in a dead letter"
    )
    # Memory is bounded by messages buffered in Faust and by events decoded at once: a 500-event
    # array of 50 features is ~600 KB of JSON and several MB as Python objects.
    stream_buffer_messages: int = Field(128, ge=1, description="Faust's per-stream buffer")
    batch_max_messages: int = Field(256, ge=1, description="messages taken per micro-batch")
    # ... and at most this many bytes of them (streams/batching.py): 256 arrays of 500 events
    # with 50 features are ~100 MB of JSON, 256 single events a few hundred KB
    batch_max_bytes: int = Field(
        32 << 20, ge=1, le=4 << 30, description="bytes of raw messages taken per micro-batch"
    )
    # events decoded (and folded into windows) at once; the worker yields to the consumer between
    # chunks, so smaller chunks overlap fetching with work: 5,000 measured faster than 10,000
    # and 2,500, and lower in peak memory (make bench)
    batch_max_events: int = Field(5_000, ge=1, description="events decoded at once")
    batch_within_s: float = Field(0.05, gt=0)

    # Drift: window tests against a reference (detectors/drift)
    drift_enabled: bool = True
    # Without an uploaded reference, a model version is compared with its first windows
    # ("warmup", learned once and stored) or with its previous non-drifted windows ("rolling").
    reference_mode: Literal["warmup", "rolling"] = "warmup"
    reference_windows: int = Field(5, ge=1)
    reference_min_events: int = Field(1000, ge=1)
    drift_alpha: float = Field(0.05, gt=0, lt=1)
    drift_correction: Literal["bh", "bonferroni"] = "bh"
    drift_numeric_tests: tuple[str, ...] = ("ks", "wasserstein", "psi", "jensen_shannon")
    drift_categorical_tests: tuple[str, ...] = (
        "chi_square",
        "psi",
        "jensen_shannon",
        "total_variation",
    )
    # a segment slice runs the tests its drift decision rests on (KS or chi-square, and the
    # missing rate) unless "all": each of a model's slices repeats its tests, and the
    # descriptive ones (wasserstein, psi, …) would multiply its rows (issue 16)
    slice_drift_tests: Literal["decision", "all"] = "decision"
    # river detectors per model, e.g. {"fraud": ["adwin"], "*": ["page_hinkley"]} (JSON in env)
    streaming_detectors: dict[str, list[str]] = Field(default_factory=dict)

    # Slices: each event's segment values get their own window profile and metrics
    max_segment_values: int = Field(20, ge=1, description="per segment key and model")
    segment_sample_size: int = Field(256, ge=16, description="values kept per slice feature")

    # Labels (streams/labels.py, streams/quality.py): predictions with an `id` are kept in the
    # store and joined with labels from driftline.labels by (model, stage, id). "labelled":
    # only of models (and stages) that have sent labels, "all": every one, "none": no join.
    keep_events: KeepEvents = "labelled"

    @field_validator("keep_events", mode="before")
    @classmethod
    def _keep_events_switch(cls, value: object) -> object:
        """The former on/off switch: true keeps all, false none."""
        if isinstance(value, bool) or str(value).lower() in ("true", "false", "1", "0"):
            return "all" if str(value).lower() in ("true", "1") else "none"
        return value

    label_horizon_s: float = Field(7 * 86400.0, gt=0, description="labels later than this count")
    event_retention_days: int = Field(14, ge=1, description="raw predictions and labels kept")
    quality_interval_s: float = Field(10.0, gt=0, description="how often quality is recomputed")
    quality_reference_windows: int = Field(5, ge=1, description="first labelled windows")
    quality_min_labels: int = Field(30, ge=1, description="labels a window needs to be tested")
    # estimated quality before labels (streams/estimation.py): CBPE for classifiers that send
    # probabilities, DLE for regressors, fitted on each version's first labelled windows
    estimation_enabled: bool = True
    estimation_reference_windows: int = Field(
        5, ge=1, description="labelled windows the estimators are fitted on (at least)"
    )
    estimation_reference_pairs: int = Field(
        2000, ge=200, description="labelled pairs the estimators are fitted on (at least)"
    )
    concept_detectors: tuple[str, ...] = ("ddm", "eddm", "hddm_a", "hddm_w", "adwin")
    # which of them raise drift.concept (with the quality-drop test): DDM and EDDM at river's
    # defaults fire on most stationary streams, so they are stored but do not flag by default
    concept_flag_detectors: tuple[str, ...] = ("hddm_a", "adwin")

    # Retraining (retrainer/): jobs from alarms with the `retrain` action or the API
    retrain_cooldown_s: float = Field(3600.0, ge=0, description="between two jobs of a model")
    retrain_lookback_s: float = Field(6 * 3600.0, gt=0, description="labelled data trained on")
    retrain_policy: dict[str, Literal["auto", "manual"]] = Field(default_factory=dict)
    retrain_default_policy: Literal["auto", "manual"] = "manual"
    retrain_min_examples: int = Field(200, ge=20, description="labelled events to train on")
    # per model: the error a person reaches (error rate, or MAE for a regressor): the floor of
    # a retraining job's avoidable bias (its errors: training, training-dev, holdout)
    retrain_human_error: dict[str, float] = Field(default_factory=dict)
    retrain_label_wait_s: float = Field(120.0, ge=0, description="wait this long for them")
    retrain_seed: int = 0
    # a classifier's promotion metric: accuracy, f1_macro, or recall:<class> (the recall of
    # one class, e.g. recall:1 for the fraud class); every class's recall also vetoes
    retrain_primary_metric: str = Field(
        "accuracy", pattern=r"^(accuracy|f1_macro|recall:.+)$", max_length=300
    )
    retrain_epochs: int = Field(30, ge=1)

    # Alarms (alarms/, streams/alarms.py, driftline/notify.py)
    default_rules: bool = True  # ship and evaluate alarms.rules.DEFAULT_RULES for every model
    # page on harm, not on drift: a critical data-drift alert (drift.*) fires as a warning
    # while the model's estimated quality holds (its latest estimated window shows no harm)
    demote_drift_while_quality_holds: bool = True
    alarm_refresh_s: float = Field(5.0, gt=0, description="reload rules, subscriptions, silences")
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_max_attempts: int = Field(10, ge=1)
    webhook_backoff_s: float = Field(1.0, gt=0, description="first retry delay, then doubled")
    webhook_backoff_max_s: float = Field(300.0, gt=0)
    repeat_interval_s: float = Field(4 * 3600.0, gt=0, description="re-notify a firing alert")
    # `alertmanager` subscriptions: firing alerts are sent again this often (checked on the
    # alarm_refresh_s tick), each with endsAt 4 intervals ahead, so Alertmanager keeps them
    alertmanager_resend_s: float = Field(60.0, ge=1, le=3600, description="re-send firing alerts")
    # where people open the dashboard: the generatorURL of alerts sent to Alertmanager
    dashboard_url: str = Field("http://127.0.0.1:8000", max_length=2048, pattern=r"^https?://")
    max_config_request_bytes: int = Field(65_536, ge=1024, description="rules, subscriptions…")

    # /metrics (Prometheus) of the worker and the retrainer, each on a port of its own (0: off);
    # the API serves it on its own port. `up` and `demo` run all three in one process: one
    # registry, on the API's /metrics (and on the worker's port too when that is set).
    metrics_host: str = Field("127.0.0.1", min_length=1, max_length=255)
    worker_metrics_port: int = Field(0, ge=0, le=65_535)
    retrainer_metrics_port: int = Field(0, ge=0, le=65_535)

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # With a key set, every endpoint but /health, the dashboard's page and static files and the
    # OpenAPI docs needs 'Authorization: Bearer <key>': the admin key for everything, the
    # read-only key (dashboards, Grafana, scripts) for GET requests only.
    api_key: SecretStr | None = Field(None, description="admin key: every endpoint")
    api_read_key: SecretStr | None = Field(None, description="read-only key: GET endpoints")

    @field_validator("api_key", "api_read_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: object) -> object:
        """DRIFTLINE_API_KEY= (docker-compose passes it empty when unset) means no key."""
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            return None
        return value

    @model_validator(mode="after")
    def _read_key_needs_an_admin_key(self) -> Settings:
        """A read-only key alone would leave every change open to anyone."""
        read, admin = self.api_read_key, self.api_key
        if read is not None and admin is None:
            raise ValueError("DRIFTLINE_API_READ_KEY needs DRIFTLINE_API_KEY (the admin key) too")
        if (
            read is not None
            and admin is not None
            and read.get_secret_value() == admin.get_secret_value()
        ):
            raise ValueError("DRIFTLINE_API_READ_KEY must differ from DRIFTLINE_API_KEY")
        return self

    max_request_bytes: int = Field(5 * 1_048_576, ge=1024)
    max_reference_bytes: int = Field(200 * 1_048_576, ge=1024)

    def event_limits(self) -> EventLimits:
        """The event contract's limits, as every process that decodes events applies them."""
        return EventLimits(
            max_message_bytes=self.max_message_bytes,
            max_features=self.max_features,
            max_string_length=self.max_string_length,
            max_name_length=self.max_name_length,
            max_segment_keys=self.max_segment_keys,
            max_custom_metrics=self.max_custom_metrics,
            max_custom_metric_name_length=self.max_custom_metric_name_length,
            max_age_s=self.max_event_age_s,
            max_future_s=self.max_event_future_s,
            max_deadletter_raw_bytes=self.max_deadletter_raw_bytes,
        )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once; tests clear the cache to override."""
    return Settings()
