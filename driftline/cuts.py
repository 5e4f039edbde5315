"""Cuts: the same window of a unit, seen per value of something.

A window is computed as a whole and per cut; each cut's rows are stored beside the whole's,
in the same columns, told apart by the ``segment`` column, which holds the cut's label:

* a **segment** cut, from an event's ``segment`` object: ``channel=mobile``. Its values are
  capped per unit and key (``streams/segments.py``; later ones share ``channel=__other__``);
* a **version** cut, from an event's ``version``: ``@version=2``. Versions are never capped:
  a 1 % canary is a version like any other;
* the **shadow** cut, ``@shadow=true``: the events sent with ``"shadow": true``, monitored but
  not acted on. They are left out of the whole window (and its other cuts), which is what the
  model's users got;
* a **decided_by** cut, ``@decided_by=human`` or ``@decided_by=model``: who decided the case,
  for models that defer some to people;
* ``""``: the whole window.

Labels of the cut kinds that Driftline makes itself start with ``@``, which a segment key may
not (the event contract refuses it), so a label says what it cuts by:

>>> version_cut("2"), cut_version("@version=2"), cut_version("channel=web")
('@version=2', '2', None)
>>> is_reserved("@version=2"), is_reserved("channel=web"), is_reserved("")
(True, False, False)
"""

from __future__ import annotations

RESERVED = "@"  # the first character of the labels of Driftline's own cut kinds
VERSION_PREFIX = f"{RESERVED}version="
SHADOW_CUT = f"{RESERVED}shadow=true"
DECIDED_BY_PREFIX = f"{RESERVED}decided_by="
DECIDED_BY = ("model", "human")  # the event contract's values of ``decided_by``


def decided_by_cut(who: str) -> str:
    return DECIDED_BY_PREFIX + who


def version_cut(version: str) -> str:
    """The label of one model version's cut."""
    return VERSION_PREFIX + version


def cut_version(label: str) -> str | None:
    """The version a cut label stands for, or None when it is not a version cut."""
    return label[len(VERSION_PREFIX) :] if label.startswith(VERSION_PREFIX) else None


def is_reserved(label: str) -> bool:
    """Whether ``label`` is a cut of one of Driftline's own kinds (not a segment slice)."""
    return label.startswith(RESERVED)
