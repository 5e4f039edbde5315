"""A stop asked of the process before the Faust worker took the signal over.

``up`` and ``demo`` stop on SIGTERM by raising SystemExit from the handler
(``launch/cli.py``), which unwinds their clean-up. Python drops an exception raised while it
runs a callback whose exceptions it ignores (a weakref's, seen in CI): that stop would be lost.
The handler notes it here first, and the worker sends the signal again once it handles it
itself (``launch/services.run_worker``).
"""

from __future__ import annotations

import threading

TERMINATED = threading.Event()
