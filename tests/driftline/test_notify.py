"""Webhook delivery against a real HTTP receiver, with the delivery log in a real store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from helpers import wait_until
from helpers.webhook_receiver import WebhookReceiver

from alarms.routing import Subscription
from driftline.broker import free_port
from driftline.notify import RetryPolicy, WebhookDispatcher
from driftline.store import Store
from driftline.store.alarms import AlarmStore, Delivery
from driftline.store.embedded import EmbeddedBackend

FAST = RetryPolicy(timeout_s=2.0, max_attempts=30, backoff_s=0.05, backoff_max_s=0.2)


@pytest.fixture
def log_store(tmp_path: Path) -> Iterator[AlarmStore]:
    """The embedded engine: the log's SQL is tested on both backends in
    tests/driftline/store/test_alarms.py."""
    store = Store(EmbeddedBackend(tmp_path / "chdb"))
    store.init_schema()
    yield AlarmStore(store.backend)
    store.close()


@pytest.fixture
def dispatcher(log_store: AlarmStore) -> Iterator[WebhookDispatcher]:
    d = WebhookDispatcher(log_store, FAST)
    yield d
    d.stop()


def delivery(n: int, event: str = "firing", sub: str = "s1") -> Delivery:
    body = f'{{"event": "{event}", "alert": {{"id": "a{n}"}}}}'.encode()
    return Delivery(f"d{n}", sub, f"a{n}", event, body, created_at=float(n))


def statuses(log_store: AlarmStore, sub: str = "s1") -> dict[str, tuple[str, int]]:
    return {d.id: (d.status, d.attempts) for d in log_store.deliveries(sub)}


def test_signed_delivery_in_order_and_logged(
    dispatcher: WebhookDispatcher, log_store: AlarmStore
) -> None:
    with WebhookReceiver() as receiver:
        sub = Subscription("s1", receiver.url, secret="s3cret")
        dispatcher.submit([(sub, delivery(1, "firing"))])
        dispatcher.submit([(sub, delivery(2, "resolved"))])
        wait_until(lambda: len(receiver.received) == 2, timeout=10, what="two deliveries")
        wait_until(
            lambda: statuses(log_store) == {"d1": ("delivered", 1), "d2": ("delivered", 1)},
            timeout=10,
            what="the log to say delivered",
        )
    first, second = receiver.received
    assert [first.json["event"], second.json["event"]] == ["firing", "resolved"]
    assert first.signed_by("s3cret") and not first.signed_by("other")
    assert first.headers["x-driftline-delivery"] == "d1"
    assert first.headers["content-type"] == "application/json"
    [logged] = log_store.deliveries("s1", statuses=("delivered",), limit=1)
    assert logged.response_code == 200 and logged.finished_at is not None


def test_receiver_down_then_up_gets_it_after_retries(
    dispatcher: WebhookDispatcher, log_store: AlarmStore
) -> None:
    port = free_port()  # nothing listens here yet
    sub = Subscription("s1", f"http://127.0.0.1:{port}/hook")
    dispatcher.submit([(sub, delivery(1))])
    wait_until(lambda: statuses(log_store).get("d1", ("", 0))[1] >= 2, timeout=10, what="retries")
    [retrying] = log_store.deliveries("s1")
    assert retrying.status == "retrying" and "Connection refused" in retrying.error
    assert retrying.next_attempt_at is not None
    with WebhookReceiver(port) as receiver:
        wait_until(lambda: receiver.received, timeout=10, what="delivery once the receiver is up")
        wait_until(lambda: statuses(log_store)["d1"][0] == "delivered", timeout=10, what="log")
    assert statuses(log_store)["d1"][1] >= 3


def test_server_errors_are_retried_client_errors_are_not(
    dispatcher: WebhookDispatcher, log_store: AlarmStore
) -> None:
    with WebhookReceiver(statuses=(503, 500)) as flaky, WebhookReceiver(statuses=(400,)) as bad:
        dispatcher.submit([(Subscription("s1", flaky.url), delivery(1))])
        dispatcher.submit([(Subscription("s2", bad.url), delivery(2, sub="s2"))])
        wait_until(lambda: statuses(log_store).get("d1") == ("delivered", 3), timeout=10,
                   what="delivered on the third attempt")  # fmt: skip
        wait_until(lambda: statuses(log_store, "s2").get("d2") == ("failed", 1), timeout=10,
                   what="a 400 fails at once")  # fmt: skip
        [failed] = log_store.deliveries("s2")
        assert failed.response_code == 400 and "HTTP 400" in failed.error
        assert bad.attempts == 1


def test_gives_up_after_max_attempts(log_store: AlarmStore) -> None:
    policy = RetryPolicy(timeout_s=1.0, max_attempts=3, backoff_s=0.01, backoff_max_s=0.02)
    dispatcher = WebhookDispatcher(log_store, policy)
    try:
        dispatcher.submit([(Subscription("s1", f"http://127.0.0.1:{free_port()}/"), delivery(1))])
        wait_until(lambda: statuses(log_store).get("d1") == ("failed", 3), timeout=10,
                   what="failed after 3 attempts")  # fmt: skip
    finally:
        dispatcher.stop()


def test_a_hanging_receiver_does_not_hold_up_another(
    dispatcher: WebhookDispatcher, log_store: AlarmStore
) -> None:
    with WebhookReceiver() as hanging, WebhookReceiver() as fast:
        hanging.hold.clear()  # answers nothing until released
        dispatcher.submit([(Subscription("hanging", hanging.url), delivery(1, sub="hanging"))])
        wait_until(lambda: hanging.attempts == 1, timeout=10, what="the hanging request")
        dispatcher.submit([(Subscription("fast", fast.url), delivery(2, sub="fast"))])
        wait_until(lambda: fast.received, timeout=10, what="the other receiver")
        assert hanging.received == []  # still hanging
        hanging.hold.set()
        wait_until(lambda: hanging.received, timeout=10, what="the released receiver")


def test_unfinished_deliveries_resume_in_a_new_dispatcher(log_store: AlarmStore) -> None:
    port = free_port()
    sub = Subscription("s1", f"http://127.0.0.1:{port}/hook")
    first = WebhookDispatcher(log_store, FAST)
    first.submit([(sub, delivery(1))])
    wait_until(lambda: statuses(log_store).get("d1", ("", 0))[1] >= 1, timeout=10, what="try")
    first.stop()  # the process stops while the receiver is down
    with WebhookReceiver(port) as receiver:
        second = WebhookDispatcher(log_store, FAST)
        try:
            assert second.resume({"s1": sub}, log_store.unfinished_deliveries()) == 1
            wait_until(lambda: receiver.received, timeout=10, what="the resumed delivery")
            wait_until(lambda: statuses(log_store)["d1"][0] == "delivered", timeout=10,
                       what="logged")  # fmt: skip
        finally:
            second.stop()
    assert receiver.received[0].headers["x-driftline-delivery"] == "d1"


def test_deleted_subscription_cancels_its_queue(
    dispatcher: WebhookDispatcher, log_store: AlarmStore
) -> None:
    sub = Subscription("s1", f"http://127.0.0.1:{free_port()}/hook")
    dispatcher.submit([(sub, delivery(1))])
    dispatcher.submit([(sub, delivery(2))])
    dispatcher.retire(["s1"])
    wait_until(
        lambda: {s for s, _ in statuses(log_store).values()} == {"cancelled"},
        timeout=10,
        what="both cancelled",
    )


def test_alertmanager_deliveries_go_unsigned_to_its_api_and_never_arrive_already_ended(
    log_store: AlarmStore,
) -> None:
    """A firing delivery resumed or retried late gets ``endsAt`` moved ahead as it goes out
    (Alertmanager would take an ended alert for a resolve); a resolve keeps its own."""
    dispatcher = WebhookDispatcher(log_store, FAST, alertmanager_hold_s=600.0)
    stale = b'[{"labels": {"alertname": "A"}, "endsAt": "2023-11-14T22:16:40Z"}]'
    resolve = b'[{"labels": {"alertname": "A"}, "endsAt": "2023-11-14T22:20:00Z"}]'
    try:
        with WebhookReceiver() as receiver:
            sub = Subscription(
                "am", f"http://127.0.0.1:{receiver.port}/", secret="x", kind="alertmanager"
            )
            dispatcher.submit(
                [
                    (sub, Delivery("d1", "am", "", "firing", stale, created_at=1_700_000_000.0)),
                    (sub, Delivery("d2", "am", "a1", "resolved", resolve, created_at=1.0)),
                ]
            )
            wait_until(lambda: len(receiver.received) == 2, timeout=10, what="two deliveries")
            firing, resolved = receiver.received
            assert {firing.path, resolved.path} == {"/api/v2/alerts"}
            assert "x-driftline-signature" not in firing.headers
            [alert] = firing.json
            sent_end = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
            assert sent_end.timestamp() > time.time() + 300
            assert resolved.body == resolve
    finally:
        dispatcher.stop()
