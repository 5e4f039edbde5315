"""Driftline's SDK: send prediction and label events from a service, with nothing else.

``pip install driftline-sdk`` brings this package and kafka-python. The platform
(``pip install driftline``) depends on it and re-exports it: ``from driftline import Monitor``.

>>> from driftline_sdk import Monitor                                       # doctest: +SKIP
>>> with Monitor(bootstrap="kafka:9092") as monitor:                         # doctest: +SKIP
...     monitor.log_prediction(model="fraud", features={"amount": 12.5}, prediction=0.93)
"""

from __future__ import annotations

from driftline_sdk import topics
from driftline_sdk.contract import EventLimits, check_label_event, check_prediction_event
from driftline_sdk.monitor import DeliveryStats, Monitor
from driftline_sdk.traffic import TrafficSplit

__version__ = "0.1.0"

__all__ = [
    "DeliveryStats",
    "EventLimits",
    "Monitor",
    "TrafficSplit",
    "check_label_event",
    "check_prediction_event",
    "topics",
]
