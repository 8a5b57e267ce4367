"""error_burst: steady load with half of all requests answered 500 from 30% to 60% of the run."""

from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser


class ErrorBurstUser(CaptionUser):
    pass


class ErrorBurst(SteadyShape):
    default_users = 8
    default_duration_s = 60.0
    faults = ((0.3, {"error_rate": 0.5}), (0.6, None))
