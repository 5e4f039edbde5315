"""Which segment values get a slice of their own: one rule for traffic, drift and quality.

Per unit (model or ``model::stage``) and segment key, the first ``max_values`` values seen get
a slice each; later ones are counted together as ``key=__other__``. The window pipeline admits
values as events arrive; the quality pass, which sees the same events later, only looks them
up, so a value has the same slice name in every metric. The admitted values are the stored
slices: a worker that starts or takes a unit over restores them from the store, so a slice
keeps its name across restarts and rebalances.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

OTHER_SEGMENT = "__other__"  # segment values beyond the per-key cap are counted as this


@dataclass
class SegmentValues:
    max_values: int = 20
    _admitted: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # unit -> key -> values

    def admit(self, unit: str, key: str, value: str) -> str:
        """The slice name ``key=value`` for an event's segment value, admitting it while the
        key has room; ``key=__other__`` once it has not."""
        values = self._admitted.setdefault(unit, {}).setdefault(key, set())
        if value not in values:
            if len(values) >= self.max_values or value == OTHER_SEGMENT:
                return f"{key}={OTHER_SEGMENT}"
            values.add(value)
        return f"{key}={value}"

    def lookup(self, unit: str, key: str, value: str) -> str:
        """The slice name of a value the window pipeline has seen (``__other__`` if not
        admitted), admitting nothing."""
        if value in self._admitted.get(unit, {}).get(key, ()):
            return f"{key}={value}"
        return f"{key}={OTHER_SEGMENT}"

    def restore(self, unit: str, slices: Iterable[str]) -> None:
        """Admit the stored slices (``key=value``) of a unit."""
        keys = self._admitted.setdefault(unit, {})
        for name in slices:
            key, sep, value = name.partition("=")
            if sep and value != OTHER_SEGMENT:
                keys.setdefault(key, set()).add(value)

    def forget(self, units: Iterable[str]) -> None:
        for unit in units:
            self._admitted.pop(unit, None)
