"""A Faust transport (``driftline://host:port``) with two changes to the aiokafka consumer.

Registered through Faust's public extension point, the ``faust.transports`` entry-point
namespace (see pyproject.toml). faust-streaming is pinned because this extends its consumer.

1. **Explicit commits.** Driftline's topics are declared with ``acks=False``, so Faust's ack
   bookkeeping never commits them. The worker decides what is safe to commit (offsets whose
   windows are stored, ``streams/windowing.py``) and calls :meth:`Consumer.commit_offsets`.
2. **A leaner drain loop.** Faust's loop wraps every message in
   ``wait_first(callback(message), suspend_flow.wait())``: several tasks and an
   ``asyncio.wait`` per message, which caps one-event-per-message topics at a few thousand
   events/s (PERF-NOTES.md). Here the callback is awaited directly while flow runs, and Faust's
   guarded form is kept while flow is suspended (a rebalance), where abandoning a blocked
   callback matters. The loop is used only when no subscribed topic has acks enabled (it skips
   Faust's gap tracking, which only acked topics need); otherwise Faust's own loop runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

YIELD_EVERY = 100  # messages between explicit yields to the event loop


class Consumer(faust_aiokafka.Consumer):
    async def commit_offsets(self, offsets: Mapping[TP, int]) -> bool:
        """Commit the given next-offsets for partitions this worker still owns."""
        assigned = self.assignment()
        todo = {
            tp: offset
            for tp, offset in offsets.items()
            if tp in assigned and self._committed_offset.get(tp) != offset
        }
        if not todo:
            return False
        committed = bool(await self._commit(todo))
        if committed:
            self._committed_offset.update(todo)
        return committed

    def _uses_acks(self) -> bool:
        acks_enabled_for = self.app.topics.acks_enabled_for
        return any(acks_enabled_for(tp.topic) for tp in self.assignment())

    async def _drain_messages(self, fetcher: Any) -> None:
        if self._uses_acks():
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        getmany = self.getmany
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        suspended = self.suspend_flow
        read_offset = self._read_offset
        diag = self.diag
        since_yield = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                diag.set_flag(CONSUMER_FETCHING)
                batch = getmany(timeout=1.0)
                await asyncio.sleep(0)
                if self.should_stop:
                    break
                async for tp, message in batch:
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # delivered before a seek; Faust drops these too
                    if suspended.is_set():
                        await self.wait_first(callback(message), suspended.wait())
                    else:
                        await callback(message)
                    read_offset[tp] = offset
                    since_yield += 1
                    if since_yield >= YIELD_EVERY:
                        since_yield = 0
                        await asyncio.sleep(0)
                diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            diag.unset_flag(CONSUMER_FETCHING)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def consumer_of(app: Any) -> Consumer:
    """The app's consumer, checked to be Driftline's (the app must use driftline://)."""
    consumer = app.consumer
    if not isinstance(consumer, Consumer):
        raise TypeError("the Faust app must use the driftline:// transport")
    return consumer
