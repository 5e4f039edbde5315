"""Alarms: threshold rules over window metrics, and the alert life cycle they drive.

Pure computation, like ``detectors/``: rules and alerts are values, :func:`evaluate` turns a
stored window's metric points into alert changes, and routing decides which subscriptions
and silences apply. Storage, webhooks and Kafka live in ``driftline/store/alarms.py``,
``driftline/notify.py`` and ``streams/alarms.py``.
"""

from alarms.routing import Matcher, Silence, Subscription, active_silences, subscribers
from alarms.rules import DEFAULT_RULES, Comparison, Rule, RuleIndex, Selector
from alarms.state import Alert, AlertBook, AlertKey, AlertState, Change, due_notifications, evaluate

__all__ = [
    "DEFAULT_RULES",
    "Alert",
    "AlertBook",
    "AlertKey",
    "AlertState",
    "Change",
    "Comparison",
    "Matcher",
    "Rule",
    "RuleIndex",
    "Selector",
    "Silence",
    "Subscription",
    "active_silences",
    "due_notifications",
    "evaluate",
    "subscribers",
]
