"""A fuzz run through the real broker and a real `driftline worker` (issue 13): over 20,000
messages, valid events mixed with every kind of malformed message (not JSON, wrong types, far
timestamps, names and segments past their limits, deep nesting, huge numbers, 2 MB messages).

Every valid event must be counted exactly once, every invalid message or array element must be
in the dead-letter topic with a reason, the worker must stay up, and the other models must keep
storing their windows throughout. The expected counts come from how each message was built,
not from the decoder.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from helpers import wait_until
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from driftline import topics
from driftline.broker import EmbeddedBroker
from driftline.store import Store

StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]

MODELS = ("m0", "m1", "m2", "m3", "m4")
MESSAGES = 20_000
WINDOW = 10


@dataclass
class Expected:
    valid: Counter[str] = field(default_factory=Counter)  # events counted, per model
    invalid: Counter[str] = field(default_factory=Counter)  # rejected events naming a model
    letters: int = 0  # dead letters
    oversize: list[int] = field(default_factory=list)  # sizes of the messages over the limit


class Fuzz:
    """Builds messages and keeps count of what each must become."""

    def __init__(self, seed: int, start: float) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.expected = Expected()
        self.sent = 0

    def ts(self) -> float:
        # the stream advances with the messages: windows close as it runs, in time order
        return self.start + 60.0 * self.sent / MESSAGES + self.rng.random() * 0.5

    def valid(self, model: str) -> dict[str, Any]:
        rng = self.rng
        return {
            "model": model,
            "features": {"x": rng.random(), "n": rng.randint(0, 9), "c": rng.choice("abc"),
                         "gone": None},
            "prediction": rng.random(),
            "ts": self.ts(),
            "segment": {"channel": rng.choice(("web", "mobile"))},
        }  # fmt: skip

    def invalid_event(self, model: str) -> tuple[Any, bool]:
        """A JSON value that breaks the schema; True when it still names ``model`` (so it is
        counted in that model's traffic.invalid)."""
        good = self.valid(model)
        broken: list[tuple[Any, bool]] = [
            ({**good, "features": {"x": [1, 2]}}, True),
            ({**good, "features": "x=1"}, True),
            ({**good, "prediction": {"p": 1}}, True),
            ({**good, "ts": "9999-12-31T23:59:59Z"}, True),  # legal RFC 3339, past the store
            ({**good, "ts": 1e300}, True),
            ({**good, "ts": -1}, True),
            ({**good, "ts": self.start * 1000}, True),  # milliseconds sent as seconds
            ({**good, "ts": "yesterday"}, True),
            ({**good, "ts": "2026-11-21T12:00:00"}, True),  # no time zone
            ({**good, "segment": {"channel": 3}}, True),
            ({**good, "segment": {f"k{i}": "v" for i in range(40)}}, True),
            ({**good, "latency_ms": -5}, True),
            ({**good, "id": 17}, True),
            ({**good, "features": {f"f{i}": 1.0 for i in range(1500)}}, True),
            ({**good, "features": {"x" * 5000: 1.0}}, True),
            ({**good, "features": {"s": "y" * 5000}}, True),
            ({**good, "prediction": [0.1] * 5000}, True),
            ({**good, "model": "m" * 5000}, False),
            ({**good, "model": "a::b"}, False),
            ({k: v for k, v in good.items() if k != "prediction"}, True),
            ({k: v for k, v in good.items() if k != "features"}, True),
            ({k: v for k, v in good.items() if k != "model"}, False),
            ({**good, "model": 7}, False),
            (["not", "an", "object"], False),
            (None, False),
            (42, False),
        ]
        return self.rng.choice(broken)

    def message(self) -> tuple[bytes, bytes | None]:
        """One message value and its key; updates the expectation."""
        rng, exp = self.rng, self.expected
        self.sent += 1
        model = rng.choice(MODELS)
        key = model.encode()
        kind = rng.random()
        if kind < 0.40:  # one valid event
            exp.valid[model] += 1
            if rng.random() < 0.05:  # an integer past 64 bits is read as a float: still valid
                text = f'{{"model": "{model}", "features": {{"x": {10**30}}}, "prediction": 1, '
                return f'{text}"ts": {self.ts()}}}'.encode(), key
            return orjson.dumps(self.valid(model)), key
        if kind < 0.55:  # a valid array of one model
            n = rng.randint(2, 20)
            exp.valid[model] += n
            return orjson.dumps([self.valid(model) for _ in range(n)]), key
        if kind < 0.70:  # an array mixing valid and invalid events
            items: list[Any] = []
            for _ in range(rng.randint(2, 12)):
                if rng.random() < 0.6:
                    items.append(self.valid(model))
                    exp.valid[model] += 1
                else:
                    value, names = self.invalid_event(model)
                    items.append(value)
                    exp.letters += 1
                    exp.invalid[model] += names
            return orjson.dumps(items), key
        if kind < 0.85:  # one invalid event
            value, names = self.invalid_event(model)
            exp.letters += len(value) if isinstance(value, list) else 1  # each item of a list
            exp.invalid[model] += names
            return orjson.dumps(value), key
        exp.letters += 1  # a message that is not an event at all
        garbage = [
            b"",
            b"{broken",
            b"[1,",
            b'{"model": "m0", "features": {}, "prediction": NaN}',
            b'{"model": "m0", "features": {"x": 1e999}, "prediction": 1}',
            b"[" * 5000 + b"]" * 5000,
            b'{"model": "m0", "features": {"s": "\xff\xfe"}, "prediction": 1}',
            bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))),
            b'"just a string"',
        ]
        return rng.choice(garbage), None

    def oversize(self) -> bytes:
        self.sent += 1
        events = [self.valid("m0") for _ in range(13_000)]  # over 2 MB
        value = orjson.dumps(events)
        self.expected.letters += 1
        self.expected.oversize.append(len(value))
        return value


def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 120.0) -> list[Any]:
    """Every record of a one-partition topic, reading until ``expected`` have come."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        records.extend(consumer)
    records.extend(consumer)  # and anything more, which would be a duplicate or a bug
    consumer.close()
    return records


def totals(store: Store, metric: str) -> Counter[str]:
    rows = store.backend.execute(
        "SELECT model, sum(value) FROM metrics FINAL WHERE metric = %(metric)s "
        "AND segment = '' AND stage = '' GROUP BY model",
        {"metric": metric},
    )
    return Counter({str(model): int(total) for model, total in rows})


def test_fuzzed_messages_are_each_counted_or_dead_lettered_exactly_once(
    broker: EmbeddedBroker,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    server_store: Store,
) -> None:
    env = {**worker_env, "DRIFTLINE_IDLE_CLOSE_S": "4"}
    worker = start_worker(env)
    start = (time.time() // WINDOW) * WINDOW - 120
    fuzz = Fuzz(seed=13, start=start)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        max_request_size=8 * 1024 * 1024,
        linger_ms=5,
        batch_size=256 * 1024,
    )
    oversize_every = MESSAGES // 4
    for i in range(MESSAGES):
        value, key = fuzz.message()
        producer.send(topics.PREDICTIONS, key=key, value=value)
        if i % oversize_every == oversize_every // 2:
            producer.send(topics.PREDICTIONS, key=b"m0", value=fuzz.oversize())
    producer.flush()
    producer.close()
    exp = fuzz.expected
    assert len(exp.oversize) == 4 and min(exp.oversize) > 2_000_000

    counted: list[Counter[str]] = []
    changed_at = [time.monotonic()]

    def settled() -> bool:
        counted.append(totals(server_store, "traffic.count"))
        if len(counted) < 2 or counted[-1] != counted[-2]:
            changed_at[0] = time.monotonic()
        done = counted[-1] == exp.valid or worker.poll() is not None
        return done or time.monotonic() - changed_at[0] > 45  # no progress for 45 s

    wait_until(settled, timeout=240, what="every valid event counted")
    assert worker.poll() is None, "the worker stopped"
    assert counted[-1] == exp.valid
    assert totals(server_store, "traffic.late") == Counter()  # nothing was late, even replayed
    assert totals(server_store, "traffic.invalid") == exp.invalid
    # every model's windows were stored all along the run (60 s of event time: 6 or 7 each),
    # none held back behind a bad message
    windows = server_store.backend.execute(
        "SELECT model, uniqExact(window_start) FROM metrics FINAL "
        "WHERE metric = 'traffic.count' AND segment = '' GROUP BY model"
    )
    assert {str(m): int(n) >= 6 for m, n in windows} == dict.fromkeys(MODELS, True)

    letters = [orjson.loads(r.value) for r in read_all(broker.bootstrap, topics.DEADLETTER,
                                                       exp.letters)]  # fmt: skip
    assert len(letters) == exp.letters
    assert all(letter["reason"] and letter["topic"] == topics.PREDICTIONS for letter in letters)
    assert len({(x["offset"], x["index"]) for x in letters}) == len(letters)  # once each
    oversize = [x for x in letters if x["raw_truncated"]]
    assert sorted(x["raw_bytes"] for x in oversize) == sorted(exp.oversize)
    assert all("over the limit" in x["reason"] for x in oversize)
    assert worker.poll() is None
