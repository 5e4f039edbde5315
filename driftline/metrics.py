"""Driftline's own health in the Prometheus format: shared pieces of every process's ``/metrics``.

The processes keep plain counters (``PipelineStats``, ``LabelStats``, ``DeliveryStats``…) and a
collector per process reads them at scrape time, so the event path pays nothing per event.
Series names start with ``driftline_``; labels take only bounded values (a reason class, an
alert state, a job state), never a model, feature or segment value.

- :func:`reason_class`: the bounded class of a dead letter's free-text reason;
- :class:`Timings`: a histogram kept as plain numbers (one per store write or window, never per
  event), exposed by :func:`histogram`;
- :func:`new_registry`: a registry with the process's CPU and memory (``process_*``);
- :class:`MetricsServer`: ``/metrics`` on a port of its own (worker, retrainer), stopped with
  the process; a busy port is an error that says so (:class:`MetricsPortError`).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from driftline.store.jobs import JobStore

log = logging.getLogger(__name__)

# first match wins; what matches nothing is "other" (a reason class is a label: keep it short)
REASON_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("internal_error", ("internal error",)),
    ("empty_message", ("empty message",)),
    ("message_too_large", ("bytes, over the limit",)),
    ("invalid_json", ("not valid json", "must be a json object")),
    ("event_time", ("'ts'", "broker timestamp", "in the past", "in the future", "store holds")),
    ("missing_field", ("is required",)),
    # an event kept without its bad custom metrics (the dead letter says "dropped": "metrics")
    ("custom_metrics", ("custom metric", "'metrics'")),
    ("features", ("feature",)),
    ("prediction", ("'prediction'",)),
    ("label", ("'label'",)),
    ("segment", ("'segment'",)),
    ("deployment", ("'shadow'", "'decided_by'")),
    ("name", ("'model'", "'id'", "'version'", "'stage'", "must be a string")),
)
REASON_CLASS_NAMES = (*(name for name, _ in REASON_CLASSES), "other")


def reason_class(reason: str) -> str:
    """The class of a dead letter's reason, one of :data:`REASON_CLASS_NAMES`.

    >>> reason_class("not valid JSON: unexpected character: line 1 column 1 (char 0)")
    'invalid_json'
    >>> reason_class("'features' is required (an object; use {} when the model has no inputs)")
    'missing_field'
    >>> reason_class("something nobody wrote yet")
    'other'
    """
    text = reason.lower()
    for name, needles in REASON_CLASSES:
        if any(needle in text for needle in needles):
            return name
    return "other"


# seconds: from a 1 ms store write to an hour-late window
DEFAULT_BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


@dataclass
class Timings:
    """Observations in fixed buckets: the numbers of a Prometheus histogram, nothing more."""

    bounds: Sequence[float] = DEFAULT_BOUNDS
    counts: list[int] = field(default_factory=list)  # per bound, then +Inf; not cumulative
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1


def histogram(name: str, documentation: str, timings: Timings) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound, count in zip([*map(str, timings.bounds), "+Inf"], timings.counts, strict=True):
        cumulative += count
        buckets.append((bound, float(cumulative)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=timings.total)


def new_registry() -> CollectorRegistry:
    """A registry of its own (not the library's global one), with ``process_*`` series."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry


class MetricsPortError(RuntimeError):
    """``/metrics`` could not listen on the port asked for."""


class MetricsServer:
    """``GET /metrics`` of ``registry`` on ``host:port``, served by a daemon thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        try:
            self._server, self._thread = start_http_server(
                self.port, self.host, registry=self.registry
            )
        except OSError as exc:
            raise MetricsPortError(
                f"cannot serve /metrics on {self.host}:{self.port} ({exc.strerror or exc}): "
                "another process has the port; choose another one (0 turns /metrics off)"
            ) from exc
        self.port = self._server.server_port  # the one bound, when 0 was asked for in a test
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, what: str
) -> MetricsServer | None:
    """Start ``/metrics`` for process ``what`` when ``port`` is set (0: off). A busy port is
    logged as an error and the process goes on without ``/metrics``: its monitoring is lost,
    not its work."""
    if not port:
        return None
    try:
        server = MetricsServer(registry, host, port).start()
    except MetricsPortError as exc:
        log.error("the %s runs without /metrics: %s", what, exc)
        return None
    log.info("the %s serves /metrics on http://%s:%d/metrics", what, host, server.port)
    return server


def counts_by(values: Iterable[str], names: Iterable[str]) -> dict[str, int]:
    """How many of ``values`` are each of ``names`` (zero included, so every series exists)."""
    counted = dict.fromkeys(names, 0)
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return counted


class RetrainJobsCollector(Collector):
    """Retraining jobs by state, counted in the store at scrape time (one small query): the
    retrainer's series, right whichever process wrote the jobs. A store that does not answer
    costs the scrape this series, never the scrape."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.jobs.count_by_state()
        except Exception:
            log.exception("could not count the retraining jobs for /metrics")
            return
        family = GaugeMetricFamily(
            "driftline_retrain_jobs", "Retraining jobs by state (in the store)", labels=["state"]
        )
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family
