"""HTTP ingest (driftline/ingest.py) against the real broker: the same bounds as the worker."""

from __future__ import annotations

import time

import orjson
from kafka import KafkaConsumer, TopicPartition

from driftline import topics
from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.events import EventLimits
from driftline.ingest import Ingest
from driftline.topics import topic_partitions


def test_an_event_time_the_store_cannot_hold_is_refused_at_the_edge(
    broker: EmbeddedBroker,
) -> None:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
    ingest = Ingest(broker.bootstrap, EventLimits())
    now = time.time()
    good = {"model": "fraud", "features": {"x": 1.0}, "prediction": 0.5, "ts": now}
    far = [{**good, "ts": "9999-12-31T23:59:59Z"}, {**good, "ts": 1e300}, {**good, "ts": now * 1e3}]
    try:
        result = ingest.submit([good, *far, {**good, "model": "m" * 300}])
    finally:
        ingest.close()
    assert result.accepted == 1
    assert [r.index for r in result.rejected] == [1, 2, 3, 4]
    assert all("outside what the store holds" in r.reason for r in result.rejected[:3])
    assert result.rejected[3].model is None  # a name past the limit is not taken as a model
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=1000)
    consumer.assign([TopicPartition(topics.DEADLETTER, 0)])
    consumer.seek_to_beginning()
    letters = [orjson.loads(m.value) for m in consumer]
    consumer.close()
    assert sorted(x["index"] for x in letters) == [1, 2, 3, 4]
