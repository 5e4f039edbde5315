from __future__ import annotations

from typing import Any

from streams.windowing import Message, WindowConfig, WindowManager

TP0 = ("driftline.predictions", 0)
BASE = 1_700_000_000  # a multiple of 10


def ev(model: str, ts: float, x: float = 1.0) -> dict[str, Any]:
    return {"model": model, "features": {"x": x}, "prediction": 0.5, "ts": ts}


def msg(offset: int, *events: dict[str, Any], invalid: dict[str, int] | None = None) -> Message:
    return Message(TP0, offset, broker_ts=float(BASE), events=list(events), invalid=invalid or {})


def manager(**kw: Any) -> WindowManager:
    config = {"window_seconds": 10, "allowed_lateness_s": 2.0, "idle_close_s": 30.0, **kw}
    return WindowManager(WindowConfig(**config))


def count(window: Any) -> int:
    return int(window.profile.count)


def test_window_closes_when_watermark_passes_its_end_plus_lateness() -> None:
    m = manager()
    m.add([msg(0, ev("a", BASE + 1), ev("a", BASE + 9))], now=0)
    m.add([msg(1, ev("a", BASE + 11))], now=0)
    assert m.close_due(now=0) == []  # watermark BASE+9 < end BASE+10
    m.add([msg(2, ev("a", BASE + 12))], now=0)
    closed = m.close_due(now=0)
    assert [(w.model, w.profile.start, count(w)) for w in closed] == [("a", BASE, 2)]


def test_late_event_is_counted_not_lost() -> None:
    m = manager()
    m.add([msg(0, ev("a", BASE + 1)), msg(1, ev("a", BASE + 15))], now=0)
    first = m.close_due(now=0)
    assert [w.profile.start for w in first] == [BASE]
    m.add([msg(2, ev("a", BASE + 2))], now=0)  # its window is stored already
    newest = m.models["a"].windows[BASE + 10]
    assert newest.profile.late == 1
    assert newest.min_offsets[TP0] == 1  # the late event's message stays held until stored


def test_idle_model_closes_its_windows() -> None:
    m = manager(idle_close_s=5.0)
    m.add([msg(0, ev("a", BASE + 1))], now=100.0)
    assert m.close_due(now=104.0) == []
    assert [w.profile.start for w in m.close_due(now=105.0)] == [BASE]


def test_commit_offsets_trail_open_and_unstored_windows() -> None:
    m = manager()
    m.add([msg(0, ev("a", BASE + 1)), msg(1, ev("b", BASE + 1)), msg(2, ev("b", BASE + 25))], now=0)
    assert m.committable() == {TP0: 0}  # a's open window needs offset 0
    closed = m.close_due(now=0)
    assert [w.model for w in closed] == ["b"]
    assert closed[0].marks == {TP0: 2}  # b's events below offset 2 are all in stored windows
    m.add([msg(3, ev("a", BASE + 30))], now=0)
    closed_a = m.close_due(now=0)
    assert [w.model for w in closed_a] == ["a"]
    assert m.committable() == {TP0: 0}  # closed but not stored yet: still held
    m.mark_stored(closed + closed_a)
    assert m.committable() == {TP0: 2}  # b's window at BASE+20 (offset 2) is still open


def test_restored_marks_skip_replayed_events_of_stored_windows() -> None:
    m = manager()
    m.restore("b", TP0, next_offset=5, window_start=BASE)
    m.add([msg(3, ev("b", BASE + 11)), msg(5, ev("b", BASE + 12))], now=0)
    assert count(m.models["b"].windows[BASE + 10]) == 1  # offset 3 was stored before
    m.add([msg(6, ev("b", BASE + 3))], now=0)  # at or before the stored window: late
    assert m.models["b"].windows[BASE + 10].profile.late == 1


def test_invalid_events_are_counted_in_the_oldest_open_window() -> None:
    m = manager()
    m.add([msg(0, ev("a", BASE + 1), ev("a", BASE + 11)), msg(1, invalid={"a": 2})], now=0)
    assert m.models["a"].windows[BASE].profile.invalid == 2


def test_events_spanning_windows_in_one_message() -> None:
    m = manager()
    m.add([msg(0, ev("a", BASE + 1), ev("a", BASE + 11), ev("a", BASE + 21))], now=0)
    assert sorted(m.models["a"].windows) == [BASE, BASE + 10, BASE + 20]
    assert [w.profile.start for w in m.close_due(now=0)] == [BASE]


def test_forget_drops_state_of_revoked_partitions() -> None:
    m = manager()
    m.add([msg(0, ev("a", BASE + 1))], now=0)
    m.forget([TP0])
    assert m.models == {} and m.committable() == {}


def test_streaming_detectors_count_change_points_in_their_window() -> None:
    from detectors.streaming import StreamingSpec

    m = manager(streaming={"a": (StreamingSpec.of("adwin"),)})
    before = [ev("a", BASE + 1 + i / 1000, x=0.0) for i in range(1000)]
    after = [ev("a", BASE + 2 + i / 1000, x=5.0) for i in range(1000)]
    m.add([msg(0, *before), msg(1, *after)], now=0)
    profile = m.models["a"].windows[BASE].profile
    assert profile.change_points[("x", "adwin")] >= 1
    m.add([msg(2, ev("b", BASE + 1))], now=0)
    assert m.models["b"].windows[BASE].profile.change_points == {}  # not selected for "b"


def test_an_unexpected_error_costs_one_models_events_a_dead_letter_not_the_worker(
    monkeypatch: Any,
) -> None:
    import streams.windowing as windowing
    from detectors.columns import build_batch as real

    def build_batch(events: Any, ts: Any, schema: Any) -> Any:
        if events[0]["model"] == "bad":
            raise ZeroDivisionError("a bug")
        return real(events, ts, schema)

    monkeypatch.setattr(windowing, "build_batch", build_batch)
    m = manager()
    failed = m.add([msg(0, ev("bad", BASE + 1)), msg(1, ev("good", BASE + 1))], now=0)
    assert [(f.model, f.offset, f.tp) for f in failed] == [("bad", 0, TP0)]
    assert "ZeroDivisionError" in failed[0].reason
    assert count(m.models["good"].windows[BASE]) == 1


def _restart(m: WindowManager, stored: list[Any]) -> WindowManager:
    """A new manager restored from the marks of ``stored`` windows (a worker restart)."""
    fresh = manager()
    for window in stored:
        for tp, offset in window.marks.items():
            fresh.restore(window.model, tp, offset, window.profile.start, window.seen.get(tp, 0))
    return fresh


def test_a_replay_of_a_message_spanning_a_window_boundary_counts_nothing_late() -> None:
    """Issue 13, point 3: the message at offset 1 holds events of a stored window and of an open
    one; after a restart it is read again (the open window's hold), and its events of the
    stored window were on time the first time: they are skipped, not counted late."""
    m = manager()
    boundary = msg(1, ev("a", BASE + 8), ev("a", BASE + 9), ev("a", BASE + 11))
    m.add([msg(0, ev("a", BASE + 1)), boundary, msg(2, ev("a", BASE + 13))], now=0)
    stored = m.close_due(now=0)
    assert [(w.profile.start, count(w)) for w in stored] == [(BASE, 3)]
    m.mark_stored(stored)
    replayed_from = m.committable()[TP0]
    assert replayed_from == 1  # the open window still needs the boundary message
    again = _restart(m, stored)
    messages = [boundary, msg(2, ev("a", BASE + 13))]
    again.add([x for x in messages if x.offset >= replayed_from], now=0)
    window = again.models["a"].windows[BASE + 10]
    assert (window.profile.late, count(window)) == (0, 2)


def test_a_replay_still_counts_late_events_whose_count_was_lost() -> None:
    """A late event counted in a window that was still open at the crash is counted again on
    the replay (that window's count was lost); one counted in a stored window is not."""
    m = manager()
    m.add([msg(0, ev("a", BASE + 1)), msg(1, ev("a", BASE + 15))], now=0)
    stored = m.close_due(now=0)
    m.mark_stored(stored)
    m.add([msg(2, ev("a", BASE + 3))], now=0)  # late: counted in the open window BASE+10
    assert m.models["a"].windows[BASE + 10].profile.late == 1
    again = _restart(m, stored)  # the crash loses BASE+10 with its late count
    again.add([msg(1, ev("a", BASE + 15)), msg(2, ev("a", BASE + 3))], now=0)
    assert again.models["a"].windows[BASE + 10].profile.late == 1


def test_a_replay_does_not_count_invalid_events_twice() -> None:
    m = manager()
    spanning = msg(1, ev("a", BASE + 15), invalid={"a": 2})  # counted in the open window BASE
    m.add([msg(0, ev("a", BASE + 1)), spanning, msg(2, ev("a", BASE + 16))], now=0)
    stored = m.close_due(now=0)
    assert [(w.profile.start, w.profile.invalid) for w in stored] == [(BASE, 2)]
    m.mark_stored(stored)
    assert m.committable()[TP0] == 1
    again = _restart(m, stored)
    again.add([spanning, msg(2, ev("a", BASE + 16))], now=0)
    assert [w.profile.invalid for w in again.models["a"].windows.values()] == [0]


def test_a_feature_null_at_first_and_text_later_is_monitored_not_dead_lettered() -> None:
    # its first batch has only nulls (kind unknown: a numeric placeholder), then text comes,
    # then nulls again; in the window, in a slice, and in the reference its windows make
    from detectors.drift.window import ModelReference
    from detectors.profile import CategoricalSummary

    def event(ts: float, z: str | None) -> dict[str, Any]:
        return {**ev("a", ts), "features": {"x": 1.0, "z": z}, "segment": {"k": "v"}}

    m = manager()
    failed = []
    for offset, z in enumerate([None, "red", None, "blue"]):
        failed += m.add([msg(offset, event(BASE + 1 + offset, z))], now=0)
    m.add([msg(9, ev("a", BASE + 15))], now=0)
    assert failed == []
    (window,) = m.close_due(now=0)
    for profile in (window.profile, window.cuts["k=v"]):
        summary = profile.features["z"]
        assert isinstance(summary, CategoricalSummary)
        assert (summary.count, summary.missing, dict(summary.counts)) == (
            4,
            2,
            {"red": 1, "blue": 1},
        )
    nulls = manager()
    nulls.add([msg(0, event(BASE + 1, None)), msg(1, ev("a", BASE + 15))], now=0)
    (only_nulls,) = nulls.close_due(now=0)
    reference = ModelReference.from_profiles([only_nulls.profile, window.profile], "1")
    z_reference = reference.features["z"]
    assert (z_reference.count, z_reference.missing) == (5, 3)  # not dropped as a kind change
