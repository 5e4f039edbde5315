"""The ``driftline`` command (DESIGN.md): demo, up, worker, api, replay."""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftline.settings import Settings, get_settings
from launch.signals import TERMINATED

log = logging.getLogger("driftline")


def _pick_port(requested: int | None, default: int, option: str) -> int:
    """``requested`` if free (else a clear error); without one, ``default`` if free, else any."""
    from driftline.broker import free_port
    from driftline.processes import describe_port_user, port_free

    if requested is not None:
        if not port_free(requested):
            raise SystemExit(
                f"driftline: port {requested} is in use{describe_port_user(requested)}: "
                f"stop it or pass {option}"
            )
        return requested
    return default if port_free(default) else free_port()


def _pick_kafka_port(requested: int | None, pidfile: Path) -> int:
    """As :func:`_pick_port`, once a broker that a crashed Driftline left there is stopped."""
    from driftline.broker import stop_leftover

    stop_leftover(pidfile)
    return _pick_port(requested, 9092, "--kafka-port")


def _settings_for_stack(args: argparse.Namespace, demo: bool) -> Settings:
    updates: dict[str, Any] = {}
    if args.data_dir is not None:
        updates["data_dir"] = Path(args.data_dir)
    if args.window_seconds is not None:
        updates["window_seconds"] = args.window_seconds
        updates["allowed_lateness_s"] = min(get_settings().allowed_lateness_s, args.window_seconds)
    if demo:
        from launch.demo_setup import demo_settings

        updates.update(demo_settings(args.window_seconds))
    updates["api_port"] = _pick_port(args.api_port, get_settings().api_port, "--api-port")
    return get_settings().model_copy(update=updates)


def _print_window(result: Any) -> None:
    window = result.window
    profile = window.profile
    start = datetime.fromtimestamp(profile.start, UTC).strftime("%H:%M:%S")
    now = datetime.now(UTC).strftime("%H:%M:%S")
    line = (
        f"[{now}] stored window {start}Z +{profile.seconds}s of {window.model!r}: "
        f"{profile.count:,} events, {profile.invalid} invalid, {profile.late} late"
    )
    report = result.drift
    if report is not None and report.drifted_features:
        line += (
            f" | DRIFT in {', '.join(report.drifted_features)} "
            f"({report.share_drifted:.0%} of features, vs {report.reference})"
        )
    elif report is None:
        line += " | no drift reference yet (learning from the first windows)"
    print(line, flush=True)


def _print_alerts() -> None:
    """Alerts as they fire and resolve (streams/alarms.py announces them), on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S")
    formatter.converter = time.gmtime  # UTC, like the window lines
    handler.setFormatter(formatter)
    announcer = logging.getLogger("driftline.alerts")
    announcer.addHandler(handler)
    announcer.setLevel(logging.INFO)
    announcer.propagate = False


_OWN_PACKAGES = frozenset(
    {"driftline", "launch", "streams", "api", "retrainer", "alarms", "detectors"}
)


class _LibraryNoise(logging.Filter):
    """Driftline's own warnings, and only the errors of the libraries underneath: kafka-python,
    aiokafka and Faust warn about their internals (idempotence disabled, heartbeat ratios, a
    consumer without a group), nothing a user of the demo can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name.split(".")[0] in _OWN_PACKAGES


def _stack_logging(data_dir: Path) -> Path:
    """Console and a log file for ``up`` and ``demo``; every warning goes to the file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = data_dir / "driftline.log"
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(_LibraryNoise())
    to_file = logging.FileHandler(log_file)
    for handler in (console, to_file):
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(console)
    root.addHandler(to_file)
    root.setLevel(logging.WARNING)
    return log_file


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # noted first: a SystemExit raised while Python runs a callback whose exceptions it ignores
    # (a weakref's, seen in CI) is lost, and the worker re-sends the stop once it takes the
    # signal over (launch/services.py)
    TERMINATED.set()
    raise SystemExit(0)  # unwinds through cmd_stack's clean-up, as a stop of the worker does


def cmd_stack(args: argparse.Namespace, demo: bool) -> int:
    # a SIGTERM before the Faust worker takes the signal over still stops everything cleanly
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from api.main import create_app as create_api
    from driftline.broker import EmbeddedBroker
    from driftline.metrics import new_registry
    from driftline.store import open_stores
    from launch.demo import DemoProducer, Drift
    from launch.demo_loans import LoansDemo
    from launch.demo_release import ReleaseDemo
    from launch.demo_setup import seed_demo_rules
    from launch.services import ApiThread, RetrainerThread, prepare_topics, run_worker
    from retrainer.worker import registry_of

    settings = _settings_for_stack(args, demo)
    log_file = _stack_logging(settings.data_dir)
    broker = None
    if args.kafka_bootstrap:
        settings = settings.model_copy(update={"kafka_bootstrap": args.kafka_bootstrap})
    else:
        pidfile = settings.data_dir / "broker.pid"
        broker = EmbeddedBroker(_pick_kafka_port(args.kafka_port, pidfile), pidfile=pidfile)
        broker.start()
        # one worker on one machine: a short session timeout makes the group join quick
        settings = settings.model_copy(
            update={"kafka_bootstrap": broker.bootstrap, "consumer_session_timeout_s": 6.0}
        )
    producer = None
    release = None
    loans = None
    api = None
    stores = None
    retrainer = None
    try:
        stores = open_stores(settings)
        ids = prepare_topics(settings)
        # one process, one registry: the API's /metrics carries the worker's and the
        # retrainer's series too (and the worker's port, when DRIFTLINE_WORKER_METRICS_PORT is set)
        metrics = new_registry()
        api = ApiThread(
            create_api(settings, stores, registry=metrics), settings.api_host, settings.api_port
        )
        api.start()
        retrainer = RetrainerThread(settings, stores, metrics)
        retrainer.start()
        _banner(settings, demo, embedded_kafka=broker is not None, log_file=log_file)
        if demo:
            seed_demo_rules(stores.alarms)
            w = settings.window_seconds
            producer = DemoProducer(
                settings.kafka_bootstrap,
                registry_of(settings),
                rate=args.rate,
                drift_after_s=None if args.no_drift else args.drift_after,
                drift_duration_s=args.drift_duration or None,
                drift=Drift(),
                concept_after_s=None if args.no_drift else args.concept_after,
                label_delay_s=(1.0 * w, 3.0 * w),
            )
            producer.start()
            key = settings.api_key.get_secret_value() if settings.api_key else None
            release = ReleaseDemo(
                settings.kafka_bootstrap, f"http://127.0.0.1:{settings.api_port}", w, api_key=key
            )
            release.start()
            loans = LoansDemo(
                settings.kafka_bootstrap,
                w,
                shift_after_s=None if args.no_drift else args.harm_after,
                shift_for_s=args.harm_duration,
            )
            loans.start()
        _print_alerts()
        run_worker(
            settings,
            stores,
            ids,
            duration_s=args.duration,
            on_ready=lambda worker: worker.on_stored.append(_print_window),
            override_logging=False,  # keep _stack_logging's console and file
            registry=metrics,
        )
    finally:
        if producer is not None:
            producer.stop()
        if release is not None:
            release.stop()
        if loans is not None:
            loans.stop()
        if retrainer is not None:
            retrainer.stop()
        if api is not None:
            api.stop()
        if stores is not None:
            stores.close()
        if broker is not None:
            broker.stop()
        print("driftline: stopped", flush=True)
    return 0


def _self_command() -> str:
    """How the user can run this driftline again: the script as invoked, or plain driftline."""
    script = sys.argv[0]
    if Path(script).name != "driftline" or shutil.which("driftline") == script:
        return "driftline"
    return script


def _banner(settings: Settings, demo: bool, embedded_kafka: bool, log_file: Path) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    kafka = settings.kafka_bootstrap
    what = "demo" if demo else "up"
    kafka_kind = "embedded Tansu" if embedded_kafka else "external"
    store_kind = "embedded chDB" if settings.store == "embedded" else "ClickHouse server"
    # Debian's kcat cannot talk to the embedded broker; `driftline kcat` runs it on a newer
    # librdkafka (launch/kcat.py)
    kcat = f"{_self_command()} kcat" if embedded_kafka else "kcat"
    lines = [
        f"Driftline {what}: Kafka ({kafka_kind}) + ClickHouse ({store_kind}) + worker + API "
        "+ retrainer",
        f"  Dashboard  {api}/   (open it in a browser: drift heat map, alerts, charts)",
        f"  API        {api}   (OpenAPI docs: {api}/docs)",
        f"  Kafka      bootstrap {kafka}   (any Kafka client can send events)",
        f"  Store      {settings.data_dir.resolve() if settings.store == 'embedded' else 'server'}",
        f"  Windows    {settings.window_seconds} s, allowed lateness "
        f"{settings.allowed_lateness_s:g} s",
        f"  Log        {log_file.resolve()}   (every warning, the libraries' included)",
        "Try:",
        f"  curl -s {api}/v1/models",
        f"  curl -s '{api}/v1/models/fraud/metrics?name=traffic.count'",
        f'  echo \'{{"model":"mine","features":{{"x":1.5}},"prediction":0.7}}\' | '
        f"{kcat} -P -b {kafka} -t driftline.predictions -k mine",
        f"  {kcat} -C -b {kafka} -t driftline.deadletter -e    (rejected events, with reasons)",
        f"  curl -s '{api}/v1/alerts?state=firing'    (webhooks: POST /v1/subscriptions)",
        f"  curl -s '{api}/v1/models/fraud/metrics?name=quality.accuracy&segment=channel=mobile'",
        f"  curl -s {api}/v1/retrain-jobs ; curl -s {api}/v1/models/fraud/versions",
        "Stop with Ctrl-C.",
    ]
    if not demo:
        lines[9] = f"  curl -s '{api}/v1/models/<model>/metrics?name=traffic.count'"
        del lines[13:15]
    print("\n".join(lines), flush=True)


def cmd_worker(args: argparse.Namespace) -> int:
    from driftline.store import open_stores
    from launch.services import prepare_topics, run_worker

    settings = get_settings()
    stores = open_stores(settings)
    try:
        run_worker(settings, stores, prepare_topics(settings), duration_s=args.duration)
    finally:
        stores.close()
    return 0


def cmd_retrainer(args: argparse.Namespace) -> int:
    import threading

    from driftline.metrics import RetrainJobsCollector, new_registry, serve_metrics
    from driftline.store import open_stores
    from launch.services import prepare_topics
    from retrainer.worker import run_retrainer

    settings = get_settings()
    stores = open_stores(settings)
    prepare_topics(settings)
    registry = new_registry()
    registry.register(RetrainJobsCollector(stores.jobs))
    metrics = serve_metrics(
        registry, settings.metrics_host, settings.retrainer_metrics_port, "retrainer"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.duration:
        threading.Timer(args.duration, stop.set).start()
    try:
        run_retrainer(settings, stores, stop)
    except KeyboardInterrupt:
        pass
    finally:
        if metrics is not None:
            metrics.stop()
        stores.close()
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import create_app as create_api
    from driftline.store import open_stores
    from launch.services import tune_gc

    settings = get_settings()
    stores = open_stores(settings)
    try:
        app = create_api(settings, stores)
        # a read of 6 hours of a wide model builds ~10^6 short-lived objects: with start-up's
        # frozen, the collector took 35 % less of such a request (measured on /drift)
        tune_gc()
        uvicorn.run(
            app,
            host=args.host or settings.api_host,
            port=args.port or settings.api_port,
            log_level="info",
        )
    finally:
        stores.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from driftline.replay import replay_file

    bootstrap = args.bootstrap or get_settings().kafka_bootstrap
    started = time.monotonic()
    sent = replay_file(
        Path(args.file),
        model=args.model,
        bootstrap=bootstrap,
        prediction_column=args.prediction_column,
        ts_column=args.ts_column,
        id_column=args.id_column,
        version=args.version,
    )
    print(f"driftline: sent {sent:,} events to {bootstrap} in {time.monotonic() - started:.1f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline", description="Monitoring for machine-learning models in production."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def stack_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="embedded store directory (default driftline-data)")
        p.add_argument("--api-port", type=int, help="API port (default 8000, else a free one)")
        p.add_argument("--kafka-port", type=int, help="embedded broker port (default 9092)")
        p.add_argument("--kafka-bootstrap", help="use this Kafka instead of the embedded broker")
        p.add_argument("--window-seconds", type=int, help="window length (demo default 10)")
        p.add_argument("--duration", type=float, help="stop after this many seconds")

    demo = sub.add_parser("demo", help="the whole stack on embedded defaults, with traffic")
    stack_options(demo)
    demo.add_argument("--rate", type=float, default=200.0, help="events per second")
    demo.add_argument("--drift-after", type=float, default=90.0, help="seconds before drift")
    demo.add_argument("--no-drift", action="store_true", help="a stationary stream")
    demo.add_argument(
        "--drift-duration",
        type=float,
        default=120.0,
        help="seconds the drift lasts before the stream returns to normal (0: forever)",
    )
    demo.add_argument(
        "--concept-after",
        type=float,
        default=240.0,
        help="seconds before concept drift (mobile fraud moves to small amounts) starts",
    )
    demo.add_argument(
        "--harm-after",
        type=float,
        default=150.0,
        help="seconds before the loans model's applicants move to its boundary (a shift that "
        "hurts, seen by estimated quality before labels)",
    )
    demo.add_argument("--harm-duration", type=float, default=60.0, help="seconds that shift lasts")
    demo.set_defaults(func=lambda a: cmd_stack(a, demo=True))

    up = sub.add_parser("up", help="the whole stack on one machine, no synthetic traffic")
    stack_options(up)
    up.set_defaults(func=lambda a: cmd_stack(a, demo=False))

    worker = sub.add_parser("worker", help="the stream worker alone (settings from env)")
    worker.add_argument("--duration", type=float, help="stop after this many seconds")
    worker.set_defaults(func=cmd_worker)

    retrainer = sub.add_parser("retrainer", help="the retraining worker alone (settings from env)")
    retrainer.add_argument("--duration", type=float, help="stop after this many seconds")
    retrainer.set_defaults(func=cmd_retrainer)

    api = sub.add_parser("api", help="the HTTP API alone (settings from env)")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(func=cmd_api)

    replay = sub.add_parser("replay", help="send a CSV / JSONL / Parquet file as events")
    replay.add_argument("file")
    replay.add_argument("--model", required=True)
    replay.add_argument("--bootstrap", help="Kafka bootstrap (default DRIFTLINE_KAFKA_BOOTSTRAP)")
    replay.add_argument("--prediction-column", default="prediction")
    replay.add_argument("--ts-column", default="ts")
    replay.add_argument("--id-column", default="id")
    replay.add_argument("--version")
    replay.set_defaults(func=cmd_replay)

    # main() hands every argument after "kcat" to kcat unparsed; this entry is for --help
    sub.add_parser(
        "kcat",
        help="kcat on a current librdkafka (Debian's kcat cannot talk to the embedded broker)",
        add_help=False,
    )
    return parser


def cmd_kcat(args: Sequence[str]) -> int:
    from launch.kcat import KcatError, exec_kcat

    try:
        exec_kcat(args)  # returns only on failure
    except (KcatError, OSError) as exc:
        print(f"driftline kcat: {exc}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["kcat"]:
        return cmd_kcat(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
