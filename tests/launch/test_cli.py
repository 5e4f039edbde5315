"""The command line as a user runs it: real processes, embedded broker and chDB, HTTP API."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
import pytest
from helpers import get_json, wait_until
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from driftline import topics
from driftline.broker import (
    BrokerPidfile,
    EmbeddedBroker,
    broker_command,
    ensure_topics,
    free_port,
    wait_for_port,
)
from driftline.processes import is_running, port_free, process_name

# a warning of the libraries under Driftline (kafka-python, aiokafka, Faust), as logged
LIBRARY_WARNING = re.compile(r"WARNING (kafka|aiokafka|faust|mode)[.:]")


def series(api: str, model: str, name: str) -> list[dict[str, Any]]:
    body = get_json(f"{api}/v1/models/{model}/metrics?name={name}")
    return body["series"] if body else []


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "launch.cli", *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=None if env is None else {**os.environ, **env},
    )


def children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()]  # fmt: skip


def kcat(bootstrap: str, args: list[str], stdin: bytes = b"") -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "launch.cli", "kcat", "-b", bootstrap, *args],
        input=stdin, capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_up_takes_events_from_any_kafka_client_and_from_replay(tmp_path: Path) -> None:
    api_port, kafka_port = free_port(), free_port()
    up = start(
        ["up", "--duration", "45", "--window-seconds", "5", "--api-port", str(api_port),
         "--kafka-port", str(kafka_port), "--data-dir", str(tmp_path / "data")],
        tmp_path / "up.log",
    )  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    bootstrap = f"127.0.0.1:{kafka_port}"
    try:
        wait_until(lambda: get_json(f"{api}/health"), timeout=60, what="the API")
        now = time.time()
        raw = KafkaProducer(bootstrap_servers=bootstrap)  # a plain Kafka client, like kcat
        for i in range(20):
            event = {"model": "plain", "features": {"x": i}, "prediction": 1, "ts": now}
            raw.send(topics.PREDICTIONS, key=b"plain", value=orjson.dumps(event))
        raw.flush()
        raw.close()
        # librdkafka (the C client under kcat and confluent-kafka) as well
        rdkafka = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        for i in range(7):
            event = {"model": "rdkafka", "features": {"x": i}, "prediction": 1, "ts": now}
            rdkafka.produce(topics.PREDICTIONS, key=b"rdkafka", value=orjson.dumps(event))
        assert rdkafka.flush(30) == 0
        # and kcat itself, as the banner tells people to run it (Debian's kcat binary)
        lines = [orjson.dumps({"model": "kcat", "features": {"x": i}, "prediction": 1, "ts": now})
                 for i in range(5)]  # fmt: skip
        kcat(bootstrap, ["-P", "-t", topics.PREDICTIONS, "-k", "kcat"],
             stdin=b"\n".join([*lines, b"not json"]) + b"\n")  # fmt: skip

        csv = tmp_path / "scored.csv"
        csv.write_text("amount,country,prediction\n" + "".join(
            f"{i}.5,{'FR' if i % 2 else 'DE'},0.{i % 10}\n" for i in range(50)))  # fmt: skip
        jsonl = tmp_path / "scored.jsonl"
        jsonl.write_text("".join(
            json.dumps({"features": {"amount": i}, "prediction": 0.5, "ts": now}) + "\n"
            for i in range(10)))  # fmt: skip
        for path in (csv, jsonl):
            replay = subprocess.run(
                [sys.executable, "-m", "launch.cli", "replay", str(path),
                 "--model", "replayed", "--bootstrap", bootstrap],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert replay.returncode == 0, replay.stderr
            assert "driftline: sent" in replay.stdout

        def total(model: str) -> float:
            found = series(api, model, "traffic.count")
            return sum(p["value"] for s in found for p in s["points"]) if found else 0

        wait_until(lambda: total("plain") == 20 and total("replayed") == 60
                   and total("rdkafka") == 7 and total("kcat") == 5, timeout=60,
                   what="events from a Kafka client and from replay in the API")  # fmt: skip
        rejected = kcat(bootstrap, ["-C", "-t", topics.DEADLETTER, "-e"])
        record = orjson.loads(rejected)
        assert record["raw"] == "not json" and record["reason"].startswith("not valid JSON")
        freq = get_json(f"{api}/v1/models/replayed/metrics?name=input.category_freq")
        assert {s["category"] for s in freq["series"]} == {"FR", "DE"}
        # one process, one registry: the API's /metrics has the worker's and the retrainer's
        with urllib.request.urlopen(f"{api}/metrics", timeout=10) as reply:
            exposition = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(reply.read().decode())
                for s in family.samples
            }
        assert exposition[("driftline_worker_events_total", (("topic", "predictions"),))] == 92
        dead = (("reason", "invalid_json"), ("topic", "predictions"))
        assert exposition[("driftline_worker_dead_letters_total", dead)] == 1
        assert exposition[("driftline_retrain_jobs", (("state", "queued"),))] == 0
        assert any(name == "driftline_api_requests_total" for name, _ in exposition)
    finally:
        up.terminate()  # SIGTERM: the same clean stop as Ctrl-C
        assert up.wait(timeout=60) == 0
    assert "driftline: stopped" in (tmp_path / "up.log").read_text()


@pytest.mark.parametrize("command", ["demo", "up", "worker", "api", "replay"])
def test_every_subcommand_has_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "launch.cli", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "usage: driftline" in result.stdout


def test_up_console_keeps_driftline_warnings_and_logs_library_ones_to_a_file(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    # a topic made elsewhere with another partition count: Driftline warns, and must be heard
    ensure_topics(broker.bootstrap, {topics.PREDICTIONS: 1})
    api_port = free_port()
    log = tmp_path / "up.log"
    up = start(["up", "--kafka-bootstrap", broker.bootstrap, "--api-port", str(api_port),
                "--data-dir", str(tmp_path / "data")], log,
               env={"DRIFTLINE_CONSUMER_SESSION_TIMEOUT_S": "6"})  # a quick group join  # fmt: skip
    log_file = tmp_path / "data" / "driftline.log"
    try:
        wait_until(lambda: get_json(f"http://127.0.0.1:{api_port}/health"), what="the API")
        # kafka-python warns as the producers and consumers of the stack start
        wait_until(lambda: LIBRARY_WARNING.search(log_file.read_text()), timeout=30,
                   what="kafka-python's warnings in the log file")  # fmt: skip
    finally:
        up.terminate()
        assert up.wait(timeout=60) == 0
    out = log.read_text()
    assert "WARNING driftline.broker: topic driftline.predictions has 1 partitions" in out
    assert not LIBRARY_WARNING.search(out), out
    assert f"Log        {log_file}" in out


def test_up_restarts_on_its_ports_after_a_kill_9(tmp_path: Path) -> None:
    api_port, kafka_port = free_port(), free_port()
    args = ["up", "--api-port", str(api_port), "--kafka-port", str(kafka_port),
            "--window-seconds", "5", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    first = start(args, tmp_path / "first.log")
    brokers: list[int] = []

    def stored_counts() -> list[float]:
        return [p["value"] for s in series(api, "kept", "traffic.count") for p in s["points"]]

    try:
        wait_until(lambda: get_json(f"{api}/health"), what="the API")
        # one message: five events of a past window (stored once the sixth, now, is read)
        now = time.time()
        events = [{"model": "kept", "features": {"x": i}, "prediction": 1, "ts": now - 20}
                  for i in range(5)] + [{"model": "kept", "features": {"x": 0}, "prediction": 1,
                                         "ts": now}]  # fmt: skip
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{kafka_port}")
        producer.send(topics.PREDICTIONS, key=b"kept", value=orjson.dumps(events))
        producer.close()
        wait_until(lambda: stored_counts() == [5], what="the past window stored")
        brokers = [c for c in children(first.pid) if process_name(c) == "tansu"]
        assert len(brokers) == 1
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        # the broker dies with it and frees the Kafka port (as the API's)
        wait_until(lambda: not is_running(brokers[0]), timeout=5, what="the broker to die")
        wait_until(lambda: port_free(kafka_port) and port_free(api_port), timeout=5,
                   what="the ports to be free")  # fmt: skip
    finally:
        for pid in brokers:  # the bug this guards against: a broker that outlived `up`
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
        if first.poll() is None:
            first.kill()

    second = start(args, tmp_path / "second.log")
    try:
        wait_until(lambda: get_json(f"{api}/health"), what="the API after a restart")
        wait_for_port("127.0.0.1", kafka_port)
        assert stored_counts() == [5]  # stored windows survive in the data directory
    finally:
        second.terminate()
        assert second.wait(timeout=60) == 0
    out = (tmp_path / "second.log").read_text()
    assert f"bootstrap 127.0.0.1:{kafka_port}" in out and "driftline: stopped" in out


def test_up_stops_the_broker_a_crashed_up_left_on_its_port(tmp_path: Path) -> None:
    """The fallback where the broker outlived its owner all the same (started by a Driftline
    that did not tie it to its own life): the pidfile in the data directory names it."""
    api_port, kafka_port = free_port(), free_port()
    data = tmp_path / "data"
    crashed_owner = subprocess.Popen(["true"])
    crashed_owner.wait()
    leftover = subprocess.Popen(broker_command("127.0.0.1", kafka_port), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    up = None
    try:
        wait_for_port("127.0.0.1", kafka_port)
        BrokerPidfile.of(leftover.pid, kafka_port, owner=crashed_owner.pid).write(
            data / "broker.pid"
        )
        up = start(["up", "--api-port", str(api_port), "--kafka-port", str(kafka_port),
                    "--data-dir", str(data)], tmp_path / "up.log")  # fmt: skip
        wait_until(lambda: get_json(f"http://127.0.0.1:{api_port}/health"), what="the API")
        assert leftover.wait(timeout=5) == -signal.SIGKILL
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
        if up is not None:
            up.terminate()
            assert up.wait(timeout=60) == 0
    out = (tmp_path / "up.log").read_text()
    assert f"stopping the embedded broker (pid {leftover.pid})" in out
    assert f"bootstrap 127.0.0.1:{kafka_port}" in out


def test_up_names_the_process_that_holds_its_port(tmp_path: Path) -> None:
    option = "--kafka-port"  # the API's port is checked the same way, by the same code
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        other = "--api-port" if option == "--kafka-port" else "--kafka-port"
        done = subprocess.run(
            [sys.executable, "-m", "launch.cli", "up", option, str(port), other,
             str(free_port()), "--data-dir", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode != 0
    assert (
        f"driftline: port {port} is in use by pid {os.getpid()} ({process_name(os.getpid())}): "
        f"stop it or pass {option}"
    ) in done.stderr
