"""latency_injection: steady load; from a quarter to three quarters of the run every request
(or batch, on the reference server) gets 200 ms plus up to 100 ms of added latency."""

from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser


class LatencyInjectionUser(CaptionUser):
    pass


class LatencyInjection(SteadyShape):
    default_users = 8
    default_duration_s = 60.0
    faults = ((0.25, {"latency_ms": 200.0, "jitter_ms": 100.0}), (0.75, None))
