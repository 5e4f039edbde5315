"""Tumbling event-time windows per model, and which Kafka offsets are safe to commit.

Pure bookkeeping (no Faust, no I/O), driven by the agent:

* ``add(messages, now)`` folds decoded messages into open windows. An event whose window has
  already closed is *late*: it is counted (``traffic.late``) in the model's oldest open window.
  (One whose window is past the watermark but still open is folded into it.)
* ``close_due(now)`` closes windows once the model's watermark (newest event time minus the
  allowed lateness) passes their end, or once the model has been idle for ``idle_close_s``.
* ``committable()`` is, per partition, the lowest offset still needed by an open or unstored
  window; everything below it is stored, so committing it replays instead of losing.
* Per model and partition, ``ClosedWindow.marks`` records the offset below which all of the
  model's events are stored. After a restart, events below it are skipped: another model's open
  window may force a replay from an older offset, and re-reading this model's events there would
  fold them into a partial copy of a window that is already stored.
* ``ClosedWindow.seen`` records the offset below which every event of the model had been read
  when the window closed. On a replay, such an event of a closed window is already counted in
  a stored one (folded on time there, or counted late or invalid in it: a closing window takes
  the late and invalid counts of the newer open windows), so it is skipped. A message whose
  array spans a window boundary is re-read from the boundary on, and its events of the stored
  window were on time the first time: they are not counted late.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.columns import EventBatch, ModelSchema, build_batch
from detectors.profile import CategoricalSummary, ProfileConfig, WindowProfile, add_parts
from detectors.streaming import ColumnDetectors, StreamingSpec
from driftline.cuts import DECIDED_BY, SHADOW_CUT, decided_by_cut, version_cut
from streams.segments import SegmentValues

TP = tuple[str, int]  # (topic, partition)

log = logging.getLogger(__name__)

MAX_KNOWN_CATEGORIES = 10_000  # per feature, for input.new_category_rate
MAX_PAIRED_IDS = 200_000  # per window and side, for the shadow join (memory stays bounded)


@dataclass(frozen=True)
class WindowConfig:
    window_seconds: int = 60
    allowed_lateness_s: float = 10.0
    idle_close_s: float = 30.0
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    # river detectors run per event on numeric features and a numeric output, per model
    # ("*": every model); their change points are counted in the window they fall in
    streaming: Mapping[str, tuple[StreamingSpec, ...]] = field(default_factory=dict)
    # slices: each event's ``segment`` values ("channel=mobile") get a profile of their own
    # per window, with a smaller sample; at most max_segment_values distinct values per key
    # and model get one (streams/segments.py), later ones are counted as "key=__other__"
    max_segment_values: int = 20
    slice_profile: ProfileConfig = field(default_factory=lambda: ProfileConfig(256, 50))

    def streaming_for(self, model: str) -> tuple[StreamingSpec, ...]:
        return self.streaming.get(model, self.streaming.get("*", ()))


@dataclass
class Message:
    """One decoded Kafka message: its valid events and, per model, how many were invalid."""

    tp: TP
    offset: int
    broker_ts: float
    events: list[dict[str, Any]]
    invalid: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """An event the worker could not process: dead-lettered with the reason."""

    model: str
    tp: TP
    offset: int
    event: dict[str, Any]
    reason: str


@dataclass
class OpenWindow:
    profile: WindowProfile
    min_offsets: dict[TP, int] = field(default_factory=dict)
    # the window per cut (driftline/cuts.py): "key=value" segment slices and, once a second
    # version shows up in the window, "@version=<v>" per version
    cuts: dict[str, WindowProfile] = field(default_factory=dict)
    versioned: bool = False  # the window has had events of more than one version
    # outputs by event id, live and shadow, for the shadow join (models that send shadows)
    live_outputs: dict[str, Any] = field(default_factory=dict)
    shadow_outputs: dict[str, Any] = field(default_factory=dict)

    # the lowest offsets of the late and invalid events counted here (a subset of the holds)
    aside_offsets: dict[TP, int] = field(default_factory=dict)

    def hold(self, tp: TP, offset: int, *, aside: bool = False) -> None:
        current = self.min_offsets.get(tp)
        if current is None or offset < current:
            self.min_offsets[tp] = offset
        if aside:
            current = self.aside_offsets.get(tp)
            if current is None or offset < current:
                self.aside_offsets[tp] = offset


@dataclass(frozen=True)
class ClosedWindow:
    model: str
    profile: WindowProfile
    known_categories: Mapping[str, set[str]]  # values seen before this window, per feature
    marks: Mapping[TP, int]  # offsets below which all of the model's events are now stored
    holds: Mapping[TP, int]  # the window's own lowest offsets, held until it is stored
    cuts: Mapping[str, WindowProfile] = field(default_factory=dict)  # label -> profile
    # offsets below which every event of the model had been read when this window closed (and
    # is counted in this or an older window): on a replay, those of stored windows are skipped
    seen: Mapping[TP, int] = field(default_factory=dict)
    # (live output, shadow output) of the shadow predictions whose id a live one had
    shadow_pairs: tuple[tuple[Any, Any], ...] = ()


@dataclass
class ModelState:
    schema: ModelSchema = field(default_factory=lambda: ModelSchema(features={}))
    windows: dict[int, OpenWindow] = field(default_factory=dict)
    closed_through: int | None = None  # start of the newest closed window
    max_ts: float = float("-inf")
    last_event_wall: float = 0.0
    skip_below: dict[TP, int] = field(default_factory=dict)
    seen_below: dict[TP, int] = field(default_factory=dict)  # restored: see ClosedWindow.seen
    max_offset: dict[TP, int] = field(default_factory=dict)
    known: dict[str, set[str]] = field(default_factory=dict)
    detectors: ColumnDetectors | None = None  # the model's river detectors, once it has specs
    has_shadow: bool = False  # the model has sent shadow predictions: pair outputs by id


@dataclass
class _Pending:
    """Events of one model within one add() call, in arrival order."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    tp_codes: list[int] = field(default_factory=list)  # index into tps, per event
    tps: dict[TP, int] = field(default_factory=dict)  # partition -> code


class WindowManager:
    def __init__(self, config: WindowConfig, segments: SegmentValues | None = None) -> None:
        self.config = config
        # shared with the quality pass, so that a slice has one name everywhere
        self.segments = segments or SegmentValues(config.max_segment_values)
        self.models: dict[str, ModelState] = {}
        self._processed: dict[TP, int] = {}  # newest offset seen per partition
        # per unit, the newest window stored by any worker on any Kafka log: windows up to it
        # are closed for a unit first seen here without offset marks (see restore_stored)
        self._stored_through: dict[str, int] = {}
        self._unstored: list[ClosedWindow] = []

    # -- restore --------------------------------------------------------------------------
    def restore(
        self, model: str, tp: TP, next_offset: int, window_start: int, seen_below: int = 0
    ) -> None:
        """Apply a stored offset mark: the model's events below ``next_offset`` are already
        stored, and so are those below ``seen_below`` that fall in a closed window."""
        state = self._state(model)
        state.skip_below[tp] = max(next_offset, state.skip_below.get(tp, 0))
        state.seen_below[tp] = max(seen_below, state.seen_below.get(tp, 0))
        if state.closed_through is None or window_start > state.closed_through:
            state.closed_through = window_start

    def restore_stored(self, stored_through: Mapping[str, int]) -> None:
        """The newest stored window of each unit. Offset marks say which events are stored
        only for the Kafka log they were written for; after the embedded broker is restarted
        (new topics) none match, and a unit's new events in an already stored window would
        rebuild it from those events alone, replacing the stored one. With this they are late."""
        self._stored_through.update(stored_through)
        for model, start in stored_through.items():
            state = self.models.get(model)
            if state is not None and (state.closed_through is None or start > state.closed_through):
                state.closed_through = start

    def restore_categories(self, model: str, known: Mapping[str, Iterable[str]]) -> None:
        state = self._state(model)
        for feature, values in known.items():
            state.known.setdefault(feature, set()).update(values)

    def forget(self, tps: Iterable[TP]) -> None:
        """Drop state tied to partitions this worker no longer owns (their new owner replays)."""
        gone = set(tps)
        for model in [
            m for m, s in self.models.items() if gone & (s.max_offset.keys() | s.skip_below.keys())
        ]:
            del self.models[model]
            self.segments.forget([model])
        for tp in gone:
            self._processed.pop(tp, None)
        self._unstored = [w for w in self._unstored if not gone & w.holds.keys()]

    # -- add ------------------------------------------------------------------------------
    def add(self, messages: Iterable[Message], now: float) -> list[Failed]:
        """Fold messages into windows. Returns the events of any model whose batch could not be
        processed (an unexpected error): the caller dead-letters them, the worker goes on."""
        pending: dict[str, _Pending] = {}
        invalid: list[tuple[str, TP, int, int]] = []
        for msg in messages:
            self._processed[msg.tp] = msg.offset
            for model, n in msg.invalid.items():
                state = self._state(model)
                if msg.offset >= max(
                    state.skip_below.get(msg.tp, 0), state.seen_below.get(msg.tp, 0)
                ):  # else counted in a stored window already (a replay)
                    invalid.append((model, msg.tp, msg.offset, n))
            events = msg.events
            if not events:
                continue
            first = events[0]["model"]
            if all(e["model"] == first for e in events):  # the usual case: one model a message
                self._pend(pending, first, msg, events)
            else:
                by_model: dict[str, list[dict[str, Any]]] = {}
                for event in events:
                    by_model.setdefault(event["model"], []).append(event)
                for model, model_events in by_model.items():
                    self._pend(pending, model, msg, model_events)
        failed: list[Failed] = []
        for model, group in pending.items():
            try:
                self._add_model(model, group, now)
            except Exception as exc:  # a bug must cost these events a dead letter, not the worker
                log.exception("could not process %d events of model %r", len(group.events), model)
                failed.extend(
                    Failed(model, tp, offset, event, f"internal error: {exc!r}")
                    for event, offset, tp in zip(
                        group.events, group.offsets, _tps_of(group), strict=True
                    )
                )
        # after the valid events, so that they land in the window those events opened
        for model, tp, offset, n in invalid:
            self._count_aside(model, tp, offset, now, invalid=n)
        return failed

    def _pend(
        self,
        pending: dict[str, _Pending],
        model: str,
        msg: Message,
        events: list[dict[str, Any]],
    ) -> None:
        state = self.models.get(model) or self._state(model)
        skip = state.skip_below.get(msg.tp)
        if skip is not None and msg.offset < skip:
            return  # already in a stored window (replay after a restart)
        group = pending.get(model)
        if group is None:
            group = pending[model] = _Pending()
        broker_ts = msg.broker_ts
        group.events.extend(events)
        group.ts.extend([broker_ts if (t := e.get("ts")) is None else t for e in events])
        group.offsets.extend([msg.offset] * len(events))
        code = group.tps.setdefault(msg.tp, len(group.tps))
        group.tp_codes.extend([code] * len(events))

    def _add_model(self, model: str, group: _Pending, now: float) -> None:
        state = self.models[model]
        w = self.config.window_seconds
        ts = np.asarray(group.ts, dtype=np.float64)
        offsets = np.asarray(group.offsets, dtype=np.int64)
        codes = np.asarray(group.tp_codes, dtype=np.int64)
        tps = list(group.tps)  # in code order
        starts = (np.floor(ts / w) * w).astype(np.int64)
        # Late: the event's window is closed. One whose window is past the watermark but not
        # closed yet is folded into it (it closes at the next close_due, computed once): so a
        # late event is always of a closed window, which a replay can tell (see ClosedWindow.seen)
        if state.closed_through is None:
            late = np.zeros(ts.size, dtype=bool)
            counted = late
        else:
            late = starts <= state.closed_through
            counted = late  # late events to count (not those a stored window counted already)
            if state.seen_below:  # a replay: these were read, and counted, before it closed
                seen = np.asarray([state.seen_below.get(tp, 0) for tp in tps], dtype=np.int64)
                counted = late & (offsets >= seen[codes])
        on_time = np.flatnonzero(~late)
        specs = self.config.streaming_for(model)
        if on_time.size:
            events = group.events if on_time.size == ts.size else [group.events[i] for i in on_time]
            batch = build_batch(events, ts[on_time], state.schema)
            window_of = starts[on_time]
            windows = np.unique(window_of)
            for start in windows:
                window = self._window(state, int(start))
                if windows.size == 1:  # the usual case: the whole batch is in one window
                    part = batch
                    held = on_time
                else:
                    rows = np.flatnonzero(window_of == start)
                    part = batch.take(rows)
                    held = on_time[rows]
                live = self._add_shadow(window, part)
                if live is not None:
                    self._fold(window, live)
                    if live.segments is not None or live.decided_by is not None:
                        self._add_slices(model, window, live)
                    if specs:
                        if state.detectors is None:
                            state.detectors = ColumnDetectors(specs)
                        # change points are counted in the window they fall in
                        window.profile.change_points.update(state.detectors.feed(live))
                for code, tp in enumerate(tps):
                    mine = offsets[held] if len(tps) == 1 else offsets[held][codes[held] == code]
                    if mine.size:
                        window.hold(tp, int(mine.min()))
            if batch.shadow is not None:
                state.has_shadow = True
            if state.has_shadow:
                _pair_outputs(state, events, window_of, batch.shadow)
            state.max_ts = max(state.max_ts, float(ts[on_time].max()))
        if counted.any():  # counted in bulk per partition, holding the lowest offset
            for code, tp in enumerate(tps):
                mine = offsets[counted & (codes == code)]
                if mine.size:
                    self._count_aside(model, tp, int(mine.min()), now, late=int(mine.size))
        for code, tp in enumerate(tps):
            newest = int(offsets[codes == code].max())
            if newest > state.max_offset.get(tp, -1):
                state.max_offset[tp] = newest
        state.last_event_wall = now

    def _add_slices(self, model: str, window: OpenWindow, batch: EventBatch) -> None:
        """Profile the batch's rows once more per segment value they carry (capped), and per
        ``decided_by`` value (model or human)."""
        rows_of: dict[str, list[int]] = {}
        admit = self.segments.admit
        named: dict[tuple[str, str], str] = {}  # admitted in the order the events show them
        for row, segment in enumerate(batch.segments if batch.segments is not None else ()):
            if not segment:
                continue
            for pair in segment.items():
                label = named.get(pair)
                if label is None:
                    label = named[pair] = admit(model, *pair)
                rows_of.setdefault(label, []).append(row)
        if rows_of:  # every slice folded together (each as ``_add_cut`` would)
            parts = [
                (self._cut(window, label), np.asarray(rows, dtype=np.int64))
                for label, rows in rows_of.items()
            ]
            add_parts(parts, batch)
        if batch.decided_by is not None:
            deciders = batch.decided_by
            for who in DECIDED_BY:
                rows_of_who = np.flatnonzero(deciders == who)
                if rows_of_who.size:
                    part = batch if rows_of_who.size == batch.size else batch.take(rows_of_who)
                    self._add_cut(window, decided_by_cut(who), part, self.config.profile)

    def _add_shadow(self, window: OpenWindow, batch: EventBatch) -> EventBatch | None:
        """Shadow predictions go to the window's shadow cut only: they are monitored, but the
        whole window is what was acted on. Returns the live rows (None: there are none)."""
        if batch.shadow is None or not batch.shadow.any():
            return batch
        shadow = batch.shadow
        self._add_cut(window, SHADOW_CUT, batch.take(np.flatnonzero(shadow)), self.config.profile)
        live = np.flatnonzero(~shadow)
        return batch.take(live) if live.size else None

    def _add_cut(
        self, window: OpenWindow, label: str, part: EventBatch, config: ProfileConfig | None = None
    ) -> None:
        self._cut(window, label, config).add(part)

    def _cut(
        self, window: OpenWindow, label: str, config: ProfileConfig | None = None
    ) -> WindowProfile:
        profile = window.cuts.get(label)
        if profile is None:
            profile = window.cuts[label] = WindowProfile(
                window.profile.start, window.profile.seconds, config or self.config.slice_profile
            )
        return profile

    def _fold(self, window: OpenWindow, batch: EventBatch) -> None:
        """Add a batch to the whole window and to its version cuts. A window of one version
        has none (its whole is that version's, and ``streams/window_rows.py`` stores it as
        both); when a second version arrives, the window so far becomes the first version's
        cut, and from then on each version's events also go to their own."""
        versions = batch.versions
        first = versions[0]
        uniform = bool((versions == first).all())
        if not window.versioned:
            seen = window.profile.versions
            if uniform and (not seen or first in seen):  # the usual case: one version
                window.profile.add(batch)
                return
            window.versioned = True
            for only in seen:  # at most one: the window's version so far
                window.cuts[version_cut(only)] = _version_part(window.profile)
        window.profile.add(batch)
        groups = [(first, batch)] if uniform else _by_version(batch)
        for version, part in groups:
            self._add_cut(window, version_cut(version), part, self.config.profile)

    def _count_aside(
        self, model: str, tp: TP, offset: int, now: float, *, late: int = 0, invalid: int = 0
    ) -> None:
        """Count a late or invalid event in the model's oldest open window (stored soonest)."""
        state = self._state(model)
        if state.windows:
            window = state.windows[min(state.windows)]
        else:
            w = self.config.window_seconds
            start = int(now // w) * w
            if state.closed_through is not None:
                start = max(start, state.closed_through + w)
            window = self._window(state, start)
            state.last_event_wall = now
        window.profile.late += late
        window.profile.invalid += invalid
        window.hold(tp, offset, aside=True)
        if offset > state.max_offset.get(tp, -1):
            state.max_offset[tp] = offset

    def _state(self, model: str) -> ModelState:
        state = self.models.get(model)
        if state is None:
            state = self.models[model] = ModelState(closed_through=self._stored_through.get(model))
        return state

    def _window(self, state: ModelState, start: int) -> OpenWindow:
        window = state.windows.get(start)
        if window is None:
            profile = WindowProfile(start, self.config.window_seconds, self.config.profile)
            window = state.windows[start] = OpenWindow(profile)
        return window

    # -- close ----------------------------------------------------------------------------
    def close_due(self, now: float) -> list[ClosedWindow]:
        """Close every window that is due; they stay held until ``mark_stored``."""
        closed: list[ClosedWindow] = []
        w = self.config.window_seconds
        for model, state in self.models.items():
            if not state.windows:
                continue
            watermark = state.max_ts - self.config.allowed_lateness_s
            idle = now - state.last_event_wall >= self.config.idle_close_s
            due = sorted(s for s in state.windows if idle or s + w <= watermark)
            for start in due:
                window = state.windows.pop(start)
                _absorb_aside(window, state.windows.values())
                state.closed_through = max(start, state.closed_through or start)
                known = {
                    f: set(state.known[f]) for f in window.profile.features if f in state.known
                }
                _learn_categories(state.known, window.profile)
                # Each window's marks count the windows after it (those still open, and the
                # newer ones closing now) as unstored: they claim that every older window is
                # stored too, which holds since windows are stored in order. So a crash after
                # storing only some of them replays the rest, and nothing that is stored.
                closed.append(
                    ClosedWindow(
                        model,
                        window.profile,
                        known,
                        self._marks(state),
                        window.min_offsets,
                        window.cuts,
                        self._seen(state),
                        tuple(
                            (window.live_outputs[ident], output)
                            for ident, output in window.shadow_outputs.items()
                            if ident in window.live_outputs
                        ),
                    )
                )
        self._unstored.extend(closed)
        return closed

    def _marks(self, state: ModelState) -> dict[TP, int]:
        marks = {}
        for tp, newest in state.max_offset.items():
            held = [win.min_offsets[tp] for win in state.windows.values() if tp in win.min_offsets]
            marks[tp] = min(held) if held else newest + 1
        return marks

    @staticmethod
    def _seen(state: ModelState) -> dict[TP, int]:
        """Per partition, the offset below which every event of the model was read: each one
        of a window closed by now is counted in it, or (late or invalid) in a window closed by
        now too, since a closing window takes the newer windows' late and invalid counts."""
        return {tp: newest + 1 for tp, newest in state.max_offset.items()}

    def mark_stored(self, windows: Iterable[ClosedWindow]) -> None:
        done = {id(w) for w in windows}
        self._unstored = [w for w in self._unstored if id(w) not in done]
        for window in windows:
            state = self.models.get(window.model)
            if state is not None:
                for tp, offset in window.marks.items():
                    state.skip_below[tp] = max(offset, state.skip_below.get(tp, 0))

    @property
    def unstored(self) -> list[ClosedWindow]:
        return list(self._unstored)

    # -- commit ---------------------------------------------------------------------------
    def committable(self) -> dict[TP, int]:
        """Per partition, the offset to commit: nothing below it is needed again."""
        low: dict[TP, int] = {}
        holds: list[Mapping[TP, int]] = [w.holds for w in self._unstored]
        for state in self.models.values():
            holds.extend(win.min_offsets for win in state.windows.values())
        for mins in holds:
            for tp, offset in mins.items():
                if offset < low.get(tp, offset + 1):
                    low[tp] = offset
        return {tp: low.get(tp, newest + 1) for tp, newest in self._processed.items()}


def _tps_of(group: _Pending) -> list[TP]:
    tps = list(group.tps)
    return [tps[code] for code in group.tp_codes]


def _absorb_aside(closing: OpenWindow, others: Iterable[OpenWindow]) -> None:
    """Move the late and invalid counts of the model's other open windows into the window
    that closes: it is the oldest, stored soonest; and so, once it is stored, every late or
    invalid event read before it closed is counted in a stored window (``ClosedWindow.seen``).
    """
    for other in others:
        if other.aside_offsets:
            closing.profile.late += other.profile.late
            closing.profile.invalid += other.profile.invalid
            other.profile.late = other.profile.invalid = 0
            for tp, offset in other.aside_offsets.items():
                closing.hold(tp, offset, aside=True)
            other.aside_offsets.clear()


def _learn_categories(known: dict[str, set[str]], profile: WindowProfile) -> None:
    for name, summary in profile.features.items():
        if isinstance(summary, CategoricalSummary):
            seen = known.setdefault(name, set())
            if len(seen) < MAX_KNOWN_CATEGORIES:
                seen.update(summary.counts)


def _version_part(whole: WindowProfile) -> WindowProfile:
    """The whole window so far, as the cut of its one version: what only the whole counts
    (late and invalid events, change points) stays with the whole."""
    part = copy.deepcopy(whole)
    part.late = part.invalid = 0
    part.change_points = Counter()
    return part


def _by_version(batch: EventBatch) -> list[tuple[str, EventBatch]]:
    versions, codes = np.unique(batch.versions.astype(str), return_inverse=True)
    return [(str(v), batch.take(np.flatnonzero(codes == i))) for i, v in enumerate(versions)]


def _pair_outputs(
    state: ModelState,
    events: list[dict[str, Any]],
    window_of: np.ndarray[Any, Any],
    shadow: np.ndarray[Any, Any] | None,
) -> None:
    """Note each event's output by id in its window, live or shadow, for the shadow join."""
    for i, event in enumerate(events):
        ident = event.get("id")
        if ident is None:
            continue
        window = state.windows.get(int(window_of[i]))
        if window is None:
            continue
        side = window.shadow_outputs if shadow is not None and shadow[i] else window.live_outputs
        if len(side) < MAX_PAIRED_IDS:
            side[ident] = event.get("prediction")
