"""Webhook delivery: signed POSTs, retries with exponential backoff, a delivery log.

Each subscription has its own lane (a FIFO and a thread), so a slow or dead receiver delays
only its own notifications, which stay in order (a ``resolved`` never overtakes its
``firing``), and nothing here ever blocks window processing. At least once: a delivery is
logged as ``pending`` before its first attempt, and deliveries a stopped process left
unfinished are attempted again by the next one (:meth:`WebhookDispatcher.resume`);
receivers deduplicate on the ``X-Driftline-Delivery`` header.

An ``alertmanager`` subscription goes through the same lanes, retries and log: its body is
Alertmanager's alert array (``alarms/alertmanager.py``), posted unsigned to the
Alertmanager's ``/api/v2/alerts``.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import orjson

from alarms.payload import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, rfc3339, sign
from alarms.routing import Subscription
from driftline.store.alarms import AlarmStore, Delivery

log = logging.getLogger(__name__)

USER_AGENT = "Driftline-Webhook/1"
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    timeout_s: float = 5.0
    max_attempts: int = 10
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0

    def delay(self, attempts: int) -> float:
        """Wait before attempt ``attempts + 1``: doubling, capped, with ±20 % jitter."""
        base = min(self.backoff_max_s, self.backoff_s * 2.0 ** (attempts - 1))
        return base * random.uniform(0.8, 1.2)


def retryable(status: int) -> bool:
    """No answer, a timeout, rate limiting or a server error: try again. Other 4xx: don't."""
    return status == 0 or status in (408, 425, 429) or status >= 500


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is the receiver's answer, not an invitation to go elsewhere


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> tuple[int, str]:
    """POST ``body``; return (HTTP status or 0 when there was no answer, error text)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout_s) as reply:
            reply.read(MAX_RESPONSE_BYTES)
            return int(reply.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return 0, f"{type(exc).__name__}: {reason}"


ALERTMANAGER_PATH = "/api/v2/alerts"


def target_url(subscription: Subscription) -> str:
    """Where a subscription's deliveries go: its URL, or its Alertmanager's alerts API."""
    if subscription.kind == "alertmanager":
        return subscription.url.rstrip("/") + ALERTMANAGER_PATH
    return subscription.url


def held_firing(body: bytes, now: float, hold_s: float) -> bytes:
    """A firing body for Alertmanager as it goes out now: each ``endsAt`` moved to ``now +
    hold_s``, so that one retried or resumed late does not reach Alertmanager already ended
    (which it would take for a resolve, and notify). A body that is not such an array is
    sent as it is (Alertmanager's 400 then says why)."""
    try:
        alerts = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        return body
    ends_at = rfc3339(now + hold_s)
    return orjson.dumps([{**a, "endsAt": ends_at} for a in alerts])


def webhook_headers(subscription: Subscription, delivery: Delivery) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: delivery.id,
        EVENT_HEADER: delivery.event,
    }
    if subscription.secret and subscription.kind == "webhook":
        headers[SIGNATURE_HEADER] = sign(subscription.secret.encode(), delivery.payload)
    return headers


class _Lane:
    """One subscription's deliveries, attempted in order on one thread."""

    def __init__(self, dispatcher: WebhookDispatcher, subscription: Subscription) -> None:
        self.dispatcher = dispatcher
        self.subscription = subscription
        self.queue: deque[Delivery] = deque()
        self.cond = threading.Condition()
        self.retired = False
        self.thread = threading.Thread(
            target=self._run, name=f"driftline-webhook-{subscription.id}", daemon=True
        )
        self.thread.start()

    def put(self, delivery: Delivery) -> None:
        with self.cond:
            self.queue.append(delivery)
            self.cond.notify()

    def retire(self) -> None:
        with self.cond:
            self.retired = True
            self.cond.notify()

    def _run(self) -> None:
        stop = self.dispatcher.stopping
        while True:
            with self.cond:
                while not self.queue and not self.retired and not stop.is_set():
                    self.cond.wait()
                if stop.is_set() or not self.queue:
                    return
                delivery = self.queue[0]
            if self.retired:
                self.dispatcher.record(replace(delivery, status="cancelled", error="unsubscribed"))
            else:
                self.dispatcher.attempt_until_done(
                    self.subscription, delivery, cancelled=lambda: self.retired
                )
            if stop.is_set():
                return  # left unfinished in the log: the next process resumes it
            with self.cond:
                self.queue.popleft()


@dataclass
class DeliveryStats:
    """Webhook attempts of this process, by outcome (``/metrics``, driftline/metrics.py)."""

    pending: int = 0  # queued
    delivered: int = 0
    failed: int = 0  # given up: refused for good or out of attempts
    retrying: int = 0  # an attempt that failed and will be retried
    cancelled: int = 0
    silenced: int = 0

    def count(self, status: str) -> None:
        if status in DELIVERY_OUTCOMES:
            setattr(self, status, getattr(self, status) + 1)


DELIVERY_OUTCOMES = ("pending", "delivered", "failed", "retrying", "cancelled", "silenced")


class WebhookDispatcher:
    """Delivers notifications to webhook subscriptions and keeps the delivery log."""

    def __init__(
        self,
        log_store: AlarmStore,
        policy: RetryPolicy,
        *,
        alertmanager_hold_s: float = 240.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``alertmanager_hold_s``: how far ahead a firing alert sent to Alertmanager ends
        (the alarm service re-sends it before then)."""
        self.log_store = log_store
        self.policy = policy
        self.alertmanager_hold_s = alertmanager_hold_s
        self._clock = clock
        self.stopping = threading.Event()
        self.stats = DeliveryStats()
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()

    def submit(self, deliveries: Sequence[tuple[Subscription, Delivery]]) -> None:
        """Log the deliveries as pending (one write), then queue them; returns at once."""
        if not deliveries:
            return
        self.record(*(d for _, d in deliveries))
        for subscription, delivery in deliveries:
            self._lane(subscription).put(delivery)

    def resume(
        self, subscriptions: Mapping[str, Subscription], unfinished: Iterable[Delivery]
    ) -> int:
        """Queue deliveries an earlier process left unfinished; return how many."""
        count = 0
        for delivery in unfinished:
            subscription = subscriptions.get(delivery.subscription_id)
            if subscription is None:
                self.record(replace(delivery, status="cancelled", error="unsubscribed"))
                continue
            self._lane(subscription).put(delivery)
            count += 1
        return count

    def retire(self, subscription_ids: Iterable[str]) -> None:
        """Subscriptions that were deleted: their queued deliveries are cancelled."""
        with self._lock:
            lanes = [self._lanes.pop(i) for i in subscription_ids if i in self._lanes]
        for lane in lanes:
            lane.retire()

    def backlog(self, subscription_id: str) -> int:
        """Deliveries of a subscription queued or in flight in this process."""
        with self._lock:
            lane = self._lanes.get(subscription_id)
        if lane is None:
            return 0
        with lane.cond:
            return len(lane.queue)

    def subscription_ids(self) -> set[str]:
        with self._lock:
            return set(self._lanes)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the attempts in flight; what is unfinished stays so in the log."""
        self.stopping.set()
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:
            with lane.cond:
                lane.cond.notify()
        deadline = time.monotonic() + timeout_s
        for lane in lanes:
            lane.thread.join(max(0.0, deadline - time.monotonic()))

    def _lane(self, subscription: Subscription) -> _Lane:
        with self._lock:
            lane = self._lanes.get(subscription.id)
            if lane is None:
                lane = self._lanes[subscription.id] = _Lane(self, subscription)
            return lane

    def attempt_until_done(
        self,
        subscription: Subscription,
        delivery: Delivery,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        """Attempts until delivered, refused for good, out of attempts, or stopping."""
        while True:
            wait = (delivery.next_attempt_at or 0.0) - self._clock()
            if wait > 0 and self.stopping.wait(wait):
                return
            if cancelled():
                self.record(replace(delivery, status="cancelled", error="unsubscribed"))
                return
            attempts = delivery.attempts + 1
            body = delivery.payload
            if subscription.kind == "alertmanager" and delivery.event == "firing":
                body = held_firing(body, self._clock(), self.alertmanager_hold_s)
            status, error = post(
                target_url(subscription),
                body,
                webhook_headers(subscription, delivery),
                self.policy.timeout_s,
            )
            now = self._clock()
            if 200 <= status < 300:
                self.record(
                    replace(
                        delivery,
                        status="delivered",
                        attempts=attempts,
                        response_code=status,
                        error="",
                        next_attempt_at=None,
                        finished_at=now,
                    )
                )
                return
            if not retryable(status) or attempts >= self.policy.max_attempts:
                log.warning(
                    "%s %s: giving up on delivery %s after %d attempts: %s",
                    subscription.kind,
                    target_url(subscription),
                    delivery.id,
                    attempts,
                    error,
                )
                self.record(
                    replace(
                        delivery,
                        status="failed",
                        attempts=attempts,
                        response_code=status,
                        error=error,
                        next_attempt_at=None,
                        finished_at=now,
                    )
                )
                return
            delivery = replace(
                delivery,
                status="retrying",
                attempts=attempts,
                response_code=status,
                error=error,
                next_attempt_at=now + self.policy.delay(attempts),
            )
            self.record(delivery)

    def record(self, *deliveries: Delivery) -> None:
        """Write deliveries' states to the log; a store outage must not stop deliveries."""
        for delivery in deliveries:
            self.stats.count(delivery.status)
        try:
            self.log_store.record_deliveries(deliveries)
        except Exception:
            log.exception("could not log %d deliveries", len(deliveries))
