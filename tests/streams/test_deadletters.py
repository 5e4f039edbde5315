"""The dead-letter outbox: a letter that cannot be sent is retried and holds its offset; it never
drops other letters or raises into the worker (issue 13, point 2)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from driftline.events import DeadLetter, Rejected
from streams.deadletters import SHRINK_AFTER, DeadLetterOutbox

TP = ("driftline.predictions", 0)


def letter(offset: int, raw: bytes = b"{bad") -> DeadLetter:
    return DeadLetter(Rejected("not valid JSON", raw, None, "m"), TP, offset)


class FlakySender:
    """A send callable as the outbox sees one (the real producer is in the broker fuzz test):
    refuses the first ``failures`` sends, and answers each other one with a delivery future,
    failed for the first ``fail_deliveries``."""

    def __init__(self, failures: int = 0, fail_deliveries: int = 0) -> None:
        self.failures = failures
        self.fail_deliveries = fail_deliveries
        self.delivered: list[dict[str, Any]] = []

    async def send(self, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        await asyncio.sleep(0)  # a real send yields to the loop
        if self.failures:
            self.failures -= 1
            raise RuntimeError("MessageSizeTooLargeError")
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_deliveries:
            self.fail_deliveries -= 1
            delivery.set_exception(RuntimeError("broker down"))
        else:
            delivery.set_result(None)
            self.delivered.append(orjson.loads(value))
        return delivery


def test_a_failed_send_is_retried_and_holds_its_offset_meanwhile() -> None:
    sender = FlakySender(failures=1, fail_deliveries=1)
    outbox = DeadLetterOutbox(sender.send)

    async def scenario() -> None:
        await outbox.send([letter(3), letter(5), letter(9)])  # 3 fails to send, 5 to deliver
        await asyncio.sleep(0)
        assert outbox.hold({TP: 12, ("other", 0): 4}) == {TP: 3, ("other", 0): 4}
        await outbox.settle()  # 9 is confirmed, 3 and 5 are sent again
        await outbox.settle()
        assert outbox.backlog == 0 and outbox.hold({TP: 12}) == {TP: 12}

    asyncio.run(scenario())
    assert sorted(x["offset"] for x in sender.delivered) == [3, 5, 9]  # once each
    assert outbox.stats.failed_attempts == 2


def test_a_letter_that_keeps_failing_is_sent_without_the_original_bytes() -> None:
    sender = FlakySender(failures=SHRINK_AFTER)
    outbox = DeadLetterOutbox(sender.send)

    async def scenario() -> None:
        await outbox.send([letter(1, b"x" * 10_000)])
        for _ in range(SHRINK_AFTER):
            await outbox.settle()

    asyncio.run(scenario())
    [record] = sender.delivered
    assert record["raw"] == "" and record["raw_bytes"] == 10_000 and record["raw_truncated"]
    assert outbox.stats.shrunk == 1


def test_a_settle_while_a_send_is_awaited_does_not_send_it_twice() -> None:
    """The tick's settle runs while the agent awaits a send: found by the broker fuzz test."""
    sender = FlakySender()
    outbox = DeadLetterOutbox(sender.send)

    async def scenario() -> None:
        sending = asyncio.ensure_future(outbox.send([letter(i) for i in range(20)]))
        for _ in range(10):
            await asyncio.sleep(0)  # the send is under way, awaiting the broker
            await outbox.settle()
        await sending
        await outbox.settle()

    asyncio.run(scenario())
    assert sorted(x["offset"] for x in sender.delivered) == list(range(20))
