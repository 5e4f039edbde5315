"""streams.batching.take_batches: micro-batches bounded by messages, bytes and time.

The stream here is a stand-in with the three things ``take_batches`` uses of a Faust stream
(``events()``, ``enable_acks``, ``ack``); the worker's end-to-end tests run it on Faust and the
broker (tests/streams/test_worker_pipeline.py replays with a byte bound of one message).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.batching import take_batches


@dataclass
class Message:
    value: Any


@dataclass
class Event:
    message: Message


@dataclass
class Stream:
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    enable_acks: bool = True
    acked: list[Event] = field(default_factory=list)
    fail: Exception | None = None

    async def events(self) -> AsyncIterator[Event]:
        while (event := await self.queue.get()) is not None:
            yield event
        if self.fail is not None:
            raise self.fail

    async def ack(self, event: Event) -> bool:
        self.acked.append(event)
        return True

    def put(self, *sizes: int) -> None:
        for size in sizes:
            self.queue.put_nowait(Event(Message(b"x" * size)))


def sizes(batch: list[Any]) -> list[int]:
    return [len(e.message.value) for e in batch]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_batch_ends_before_its_bounds_are_passed_and_a_large_message_is_a_batch_alone() -> None:
    async def main() -> list[list[int]]:
        stream = Stream()
        stream.put(10, 10, 10, 10, 10, 40, 5, 100, 1, 1)
        stream.queue.put_nowait(None)
        got = []
        async for batch in take_batches(stream, max_messages=4, max_bytes=50, within=0.05):
            got.append(sizes(batch))
        assert stream.enable_acks  # restored
        assert len(stream.acked) == 10
        return got

    # 4 messages; then 10 + 40 reaches 50 bytes; 100 would take 5 past them, and is over them
    # alone; what is left at the end
    assert run(main()) == [[10, 10, 10, 10], [10, 40], [5], [100], [1, 1]]


def test_a_partial_batch_is_handed_over_within_the_time_bound() -> None:
    async def main() -> None:
        stream = Stream()
        batches = take_batches(stream, max_messages=100, max_bytes=1 << 20, within=0.05)
        stream.put(3, 4)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert sizes(await anext(batches)) == [3, 4]
        assert loop.time() - started < 5  # not waiting for a full batch
        stream.put(5)
        assert sizes(await anext(batches)) == [5]
        await batches.aclose()

    run(main())


def test_nothing_is_taken_while_the_caller_holds_a_batch_and_acks_follow_its_work() -> None:
    async def main() -> None:
        stream = Stream()
        batches = take_batches(stream, max_messages=2, max_bytes=1 << 20, within=0.01)
        stream.put(1, 2)
        first = await anext(batches)
        stream.put(3, 4, 5)
        await asyncio.sleep(0.05)  # the caller is busy: the stream is not drained meanwhile
        assert stream.queue.qsize() == 2  # one message in hand, held for the next batch
        assert stream.acked == [] and not stream.enable_acks
        assert sizes(await anext(batches)) == [3, 4]
        assert stream.acked == first
        await batches.aclose()
        assert stream.enable_acks

    run(main())


def test_the_stream_s_error_reaches_the_caller_after_the_events_before_it() -> None:
    async def main() -> list[list[int]]:
        stream = Stream(fail=RuntimeError("the stream broke"))
        stream.put(1, 2, 3)
        stream.queue.put_nowait(None)
        got = []
        with pytest.raises(RuntimeError, match="the stream broke"):
            async for batch in take_batches(stream, max_messages=2, max_bytes=99, within=0.01):
                got.append(sizes(batch))
        return got

    assert run(main()) == [[1, 2], [3]]


def test_cancelling_the_caller_stops_the_filler() -> None:
    async def main() -> None:
        stream = Stream()
        before = len(asyncio.all_tasks())

        async def consume() -> None:
            async for _ in take_batches(stream, max_messages=2, max_bytes=99, within=0.01):
                pass

        task = asyncio.ensure_future(consume())
        stream.put(1)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(asyncio.all_tasks()) == before  # no filler left behind
        assert stream.enable_acks

    run(main())


@pytest.mark.parametrize("bounds", [{"max_messages": 0}, {"max_bytes": 0}])
def test_bounds_below_one_message_are_refused(bounds: dict[str, int]) -> None:
    async def main() -> None:
        args: dict[str, Any] = {"max_messages": 2, "max_bytes": 2, "within": 0.01, **bounds}
        with pytest.raises(ValueError, match="room for one message"):
            await anext(take_batches(Stream(), **args))

    run(main())


def test_closing_after_the_stream_failed_closes_cleanly() -> None:
    """The caller stops (an agent restart) after the stream's last events were handed over but
    before its error was: closing the batches does not raise that error at the caller."""

    async def main() -> None:
        stream = Stream(fail=RuntimeError("the stream broke"))
        stream.put(1)
        stream.queue.put_nowait(None)
        batches = take_batches(stream, max_messages=5, max_bytes=99, within=0.01)
        assert sizes(await anext(batches)) == [1]
        await batches.aclose()
        assert stream.enable_acks

    run(main())
