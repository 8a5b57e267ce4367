"""Load and chaos runs: Locust as the engine (in child processes), the harness's records, payloads,
load shapes, a fault proxy, and the run summary.

This package's top level never imports Locust or gevent: ``capture``, ``user``, ``shapes`` and
``run`` do, and only Locust processes import them (``scenarios/*.py``, ``python -m harness.load.run``).
"""

from harness.load.arrivals import ArrivalClock
from harness.load.launch import LoadOutcome, LoadRun, available_scenarios, resolve_scenario, run_load
from harness.load.payload import Payload, PayloadPool, malformed_payloads, pool_from_dataset
from harness.load.summary import LoadSummary, read_summary, summarize, write_summary

__all__ = [
    "ArrivalClock",
    "LoadOutcome",
    "LoadRun",
    "available_scenarios",
    "resolve_scenario",
    "run_load",
    "Payload",
    "PayloadPool",
    "malformed_payloads",
    "pool_from_dataset",
    "LoadSummary",
    "read_summary",
    "summarize",
    "write_summary",
]
