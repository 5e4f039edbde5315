"""Launching Driftline: the ``driftline`` command, which starts the processes (worker, API,
retrainer, embedded broker) and wires them together, and the demo's traffic and setup.

The top of the house: it imports every other package, and none imports it.
"""
