"""hang: from 30% to 70% of the run a third of the requests never get an answer; the client
gives up after the request timeout (2 s unless --request-timeout says otherwise)."""

from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser


class HangUser(CaptionUser):
    pass


class Hang(SteadyShape):
    default_users = 8
    default_duration_s = 60.0
    default_request_timeout_s = 2.0
    faults = ((0.3, {"hang_rate": 0.3}), (0.7, None))
