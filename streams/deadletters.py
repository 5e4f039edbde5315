"""Dead letters on their way to ``driftline.deadletter``, accounted for one by one.

A dead letter is sent once; its delivery is confirmed before the offset of the message it came
from may be committed. A letter whose send fails (at once, or on delivery) is retried on every
tick and holds its message's offset until it is on the broker; after ``SHRINK_AFTER`` failed
attempts it is sent without the copy of the original bytes (its size and hash are kept), so a
letter can never be stuck on its size. A failed letter never drops the other events of its
batch, and the worker never stops on one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from driftline.events import DEADLETTER_RAW_BYTES, DeadLetter

log = logging.getLogger(__name__)

TP = tuple[str, int]
SendDeadLetter = Callable[[bytes | None, bytes], Awaitable[Any]]

SHRINK_AFTER = 3  # failed attempts before a letter is sent without its copy of the original
SETTLE_TIMEOUT_S = 10.0


@dataclass
class _Letter:
    letter: DeadLetter
    attempts: int = 0
    delivery: asyncio.Future[Any] | None = None  # None: not (or no longer) in flight
    sending: bool = False  # a send of it is being awaited (another task must not resend it)


@dataclass
class OutboxStats:
    sent: int = 0  # confirmed on the broker (or by a sender that confirms nothing)
    failed_attempts: int = 0
    shrunk: int = 0


@dataclass
class DeadLetterOutbox:
    send_letter: SendDeadLetter
    max_raw_bytes: int = DEADLETTER_RAW_BYTES
    stats: OutboxStats = field(default_factory=OutboxStats)
    _open: list[_Letter] = field(default_factory=list)  # sent, not yet confirmed, or failed

    async def send(self, letters: Iterable[DeadLetter]) -> None:
        """Send each letter; a failure is kept for :meth:`retry`, never raised."""
        for letter in letters:
            entry = _Letter(letter)
            self._open.append(entry)
            await self._attempt(entry)

    async def _attempt(self, entry: _Letter) -> None:
        entry.attempts += 1
        raw_bytes = self.max_raw_bytes if entry.attempts <= SHRINK_AFTER else 0
        if raw_bytes == 0 and entry.attempts == SHRINK_AFTER + 1:
            self.stats.shrunk += 1
        entry.sending = True
        try:
            result = await self.send_letter(entry.letter.key, entry.letter.record(raw_bytes))
        except Exception as exc:
            self._failed(entry, exc)
            return
        finally:
            entry.sending = False
        entry.delivery = result if isinstance(result, asyncio.Future) else None
        if entry.delivery is None:  # the sender confirms nothing more: it is out
            self._open.remove(entry)
            self.stats.sent += 1

    def _failed(self, entry: _Letter, exc: BaseException) -> None:
        entry.delivery = None
        self.stats.failed_attempts += 1
        letter = entry.letter
        log.warning(
            "could not send the dead letter of %s[%d]@%d (attempt %d, %s); retrying, its offset "
            "stays uncommitted",
            *letter.tp,
            letter.offset,
            entry.attempts,
            exc.__class__.__name__,
        )

    def _collect(self) -> None:
        """Drop confirmed letters; mark failed deliveries for a retry."""
        still = []
        for entry in self._open:
            delivery = entry.delivery
            if delivery is not None and delivery.done():
                exc = None if delivery.cancelled() else delivery.exception()
                if delivery.cancelled() or exc is not None:
                    self._failed(entry, exc or asyncio.CancelledError())
                else:
                    self.stats.sent += 1
                    continue
            still.append(entry)
        self._open = still

    async def settle(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Wait (bounded) for the letters in flight, then resend the failed ones."""
        flying = [e.delivery for e in self._open if e.delivery is not None]
        if flying:
            await asyncio.wait(flying, timeout=timeout_s)
        self._collect()
        for entry in [e for e in self._open if e.delivery is None and not e.sending]:
            await self._attempt(entry)

    @property
    def backlog(self) -> int:
        """Letters not yet confirmed on the broker."""
        return len(self._open)

    def hold(self, offsets: dict[TP, int]) -> dict[TP, int]:
        """``offsets`` to commit, lowered to the message of any letter not yet confirmed."""
        held = dict(offsets)
        for entry in self._open:
            tp, offset = entry.letter.tp, entry.letter.offset
            if tp in held and offset < held[tp]:
                held[tp] = offset
        return held
