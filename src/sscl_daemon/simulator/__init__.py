"""A faithful stand-in for the RingCentral platform (and the CRMs) for demos, tests, benchmarks.

Scenario side: `org` (the simulated account), `scenarios` (one call's notification bodies,
call-log records and ground-truth logs), `traffic` (when calls start, for load). The HTTP and
WebSocket side (OAuth, wstoken, gateway, REST, faults, rate limits) serves what they produce.
"""

from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind, ExpectedLog, SimCall, SimEvent
from sscl_daemon.simulator.traffic import Traffic

__all__ = [
    "CallFactory",
    "CallKind",
    "ExpectedLog",
    "Organisation",
    "SimCall",
    "SimEvent",
    "Traffic",
]
