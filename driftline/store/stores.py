"""Every store of one process, built once over one backend and handed to whoever needs it.

The backend holds the connection (or the embedded session) and its lock; the job and alarm
stores each keep a lock of their own so that their write versions strictly increase, which
holds only if the process has one of each. So a process opens its :class:`Stores` once
(:func:`open_stores`) and passes them, or the one store it needs, to the API, the worker, the
alarm service and the retrainer; nothing else builds a store.
"""

from __future__ import annotations

from driftline.settings import Settings
from driftline.store.alarms import AlarmStore
from driftline.store.base import Store, open_store
from driftline.store.deployments import DeploymentStore
from driftline.store.jobs import JobStore
from driftline.store.labels import LabelStore
from driftline.store.tags import TagStore


class Stores:
    """Window metrics, drift results and references (``store``), raw predictions and labels
    (``labels``), retraining jobs (``jobs``), the alarm tables (``alarms``), deployments
    (``deployments``) and the examples' tags (``tags``), over the backend of ``store``.
    Closing closes that backend."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.labels = LabelStore(store.backend)
        self.jobs = JobStore(store.backend)
        self.alarms = AlarmStore(store.backend)
        self.deployments = DeploymentStore(store.backend)
        self.tags = TagStore(store.backend)

    def close(self) -> None:
        self.store.close()


def open_stores(settings: Settings) -> Stores:
    """The stores the settings name, with their tables created."""
    return Stores(open_store(settings))
