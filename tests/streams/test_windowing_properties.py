"""Property-based tests of the window bookkeeping (hypothesis): whatever the event times, the
interleaving of partitions, when windows close and where a worker crashes, every valid event
ends up counted exactly once, as on time in a window or as late, and so does every invalid
one. A crash loses the windows not yet stored; the new worker restores the stored offset marks
and replays from the committed offsets, as streams/worker.py does. The store is modelled as it
is: a window written again replaces its rows (ReplacingMergeTree)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.windowing import ClosedWindow, Message, WindowConfig, WindowManager

BASE = 1_700_000_000
WINDOW = 10
MODELS = ("a", "b", "c")
PARTITIONS = (("driftline.predictions", 0), ("driftline.predictions", 1))


@dataclass(frozen=True)
class Planned:
    partition: int
    events: tuple[tuple[str, float], ...]  # (model, ts)
    invalid: tuple[tuple[str, int], ...]


planned_messages = st.lists(
    st.builds(
        Planned,
        st.integers(0, len(PARTITIONS) - 1),
        st.lists(
            st.tuples(st.sampled_from(MODELS), st.floats(0, 8 * WINDOW).map(lambda t: BASE + t)),
            max_size=6,
        ).map(tuple),
        st.lists(st.tuples(st.sampled_from(MODELS), st.integers(1, 3)), max_size=1).map(tuple),
    ),
    min_size=1,
    max_size=40,
)


def as_messages(planned: list[Planned]) -> list[Message]:
    """Offsets are consecutive per partition, in the order planned."""
    next_offset = Counter[int]()
    out = []
    for p in planned:
        offset = next_offset[p.partition]
        next_offset[p.partition] += 1
        events = [
            {"model": m, "features": {"x": 1.0}, "prediction": 0.5, "ts": ts} for m, ts in p.events
        ]
        out.append(Message(PARTITIONS[p.partition], offset, float(BASE), events, dict(p.invalid)))
    return out


def manager() -> WindowManager:
    config = WindowConfig(window_seconds=WINDOW, allowed_lateness_s=2.0, idle_close_s=30)
    return WindowManager(config)


def tally(windows: list[ClosedWindow]) -> tuple[Counter[str], Counter[str]]:
    """What the store holds after these writes, in order: the last write of each window."""
    table = {(w.model, w.profile.start): w for w in windows}
    counted: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    for w in table.values():
        counted[w.model] += w.profile.count + w.profile.late
        invalid[w.model] += w.profile.invalid
    return counted, invalid


def expected(messages: list[Message]) -> tuple[Counter[str], Counter[str]]:
    counted = Counter(e["model"] for m in messages for e in m.events)
    invalid: Counter[str] = Counter()
    for m in messages:
        invalid.update(m.invalid)
    return counted, invalid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    planned=planned_messages,
    batch=st.integers(1, 8),
    crash_after=st.integers(0, 40),
    stored_share=st.floats(0, 1),
    committed=st.booleans(),
    data=st.data(),
)
def test_every_event_is_counted_exactly_once_across_a_crash_and_replay(
    planned: list[Planned],
    batch: int,
    crash_after: int,
    stored_share: float,
    committed: bool,
    data: Any,
) -> None:
    messages = as_messages(planned)
    first = manager()
    stored: list[ClosedWindow] = []
    crash_after = min(crash_after, len(messages))
    now = 0.0
    for i in range(0, crash_after, batch):
        first.add(messages[i : min(i + batch, crash_after)], now=now)
        if data.draw(st.booleans(), label="close"):
            first.close_due(now)
            closed = first.unstored
            keep = closed[: int(len(closed) * data.draw(st.floats(0, 1), label="store share"))]
            first.mark_stored(keep)
            stored.extend(keep)
        now += 1.0
    # the crash: windows closed but not stored yet may still be stored in order, or be lost
    first.close_due(now)
    closed = first.unstored
    keep = closed[: int(len(closed) * stored_share)]
    first.mark_stored(keep)
    stored.extend(keep)
    replay_from = first.committable() if committed else {}

    second = manager()  # the new worker: the stored marks, then a replay
    for window in stored:
        for tp, offset in window.marks.items():
            second.restore(window.model, tp, offset, window.profile.start, window.seen.get(tp, 0))
    replay = [m for m in messages if m.offset >= replay_from.get(m.tp, 0)]
    for i in range(0, len(replay), batch):
        second.add(replay[i : i + batch], now=now)
    finished = second.close_due(now + 3600)  # idle: everything closes
    second.mark_stored(finished)
    assert tally(stored + finished) == expected(messages)
    assert second.committable() == {
        tp: max(m.offset for m in messages if m.tp == tp) + 1 for tp in {m.tp for m in replay}
    }


@settings(max_examples=200, deadline=None)
@given(planned=planned_messages, batch=st.integers(1, 8), closes=st.lists(st.booleans()))
def test_without_a_crash_every_event_is_counted_once(
    planned: list[Planned], batch: int, closes: list[bool]
) -> None:
    messages = as_messages(planned)
    m = manager()
    windows: list[ClosedWindow] = []
    for n, i in enumerate(range(0, len(messages), batch)):
        m.add(messages[i : i + batch], now=float(n))
        if n < len(closes) and closes[n]:
            windows.extend(m.close_due(float(n)))
    windows.extend(m.close_due(1e6))
    m.mark_stored(windows)
    assert tally(windows) == expected(messages)
    assert m.unstored == [] and all(not s.windows for s in m.models.values())
