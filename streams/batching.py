"""Micro-batches of a Faust stream bounded by messages, by bytes and by time.

Faust's ``Stream.take_events`` bounds a batch by its count of messages only. A count is a poor
bound on memory when messages vary in size: 256 arrays of 500 events with 50 features are
~160 MB of raw JSON held at once (measured: the 100 models x 50 features bench case reached
560-575 MB peak RSS with it, 479 MB with half the count), while 256 one-event messages are a
few hundred KB. ``take_batches`` ends a batch at whichever bound comes first, so large messages
are taken fewer at a time and small ones keep the batch that amortises the per-batch work.

The semantics follow ``take_events``: a batch is handed over when it is full, or ``within``
seconds after the last one was handed back with whatever has arrived (never empty); while the
caller works on a batch, no further events are taken from the stream (they wait in Faust's
stream buffer), so at most one batch is held. Driftline's topics run without Faust's acks
(``streams/transport.py``), so events need no acking here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

FIRST = asyncio.FIRST_COMPLETED


def message_bytes(event: Any) -> int:
    """The raw size of an event's message value (0 for anything that is not bytes)."""
    value = event.message.value
    return len(value) if isinstance(value, (bytes, bytearray, memoryview)) else 0


class _Batch:
    def __init__(self, max_messages: int, max_bytes: int) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ValueError(
                f"a batch needs room for one message: max_messages={max_messages}, "
                f"max_bytes={max_bytes}"
            )
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.events: list[Any] = []
        self.bytes = 0
        self.full = asyncio.Event()
        self.open = asyncio.Event()  # cleared while the caller holds a batch, or it is full
        self.open.set()

    async def fill(self, events: AsyncIterator[Any]) -> None:
        async for event in events:
            size = message_bytes(event)
            if self.events and self.bytes + size > self.max_bytes:
                self._close()  # past the batch's bytes with it: it starts the next one
            await self.open.wait()
            self.events.append(event)
            self.bytes += size
            if len(self.events) >= self.max_messages or self.bytes >= self.max_bytes:
                self._close()

    def _close(self) -> None:
        self.open.clear()
        self.full.set()

    def take(self) -> list[Any]:
        taken, self.events, self.bytes = self.events, [], 0
        self.full.clear()
        return taken


async def take_batches(
    stream: Any, *, max_messages: int, max_bytes: int, within: float
) -> AsyncGenerator[list[Any], None]:
    """The stream's events in batches of at most ``max_messages`` messages and ``max_bytes``
    bytes of message values (a message larger than that is a batch of its own),
    handed over when full or ``within`` seconds after the previous one was handed back. As in
    ``take_events``, the stream's own acks are off while it runs and each event is acked (for
    Faust's sensors) once the caller is done with its batch."""
    batch = _Batch(max_messages, max_bytes)
    enable_acks = stream.enable_acks
    stream.enable_acks = False
    filler = asyncio.ensure_future(batch.fill(stream.events()))
    try:
        while True:
            if not batch.full.is_set():
                full = asyncio.ensure_future(batch.full.wait())
                try:
                    await asyncio.wait((full, filler), timeout=within, return_when=FIRST)
                finally:
                    full.cancel()
            if filler.done() and not batch.events:
                filler.result()  # the stream's error, if it failed
                return
            if not batch.events:
                continue
            batch.open.clear()  # nothing more is taken while the caller has this batch
            taken = batch.take()
            try:
                yield taken
            finally:
                for event in taken:
                    await stream.ack(event)
                batch.open.set()
    finally:
        filler.cancel()
        await asyncio.wait((filler,))  # (its error, if any, was raised above or ends here)
        if not filler.cancelled():
            filler.exception()
        stream.enable_acks = enable_acks
