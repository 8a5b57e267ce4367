"""overflow: open-loop arrivals above the target's capacity (--rate, 400/s by default): a full
queue answers 429, and every request, refused or not, is counted and recorded."""

from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser


class OverflowUser(CaptionUser):
    pass


class Overflow(SteadyShape):
    default_users = 256
    default_duration_s = 60.0
    default_rate = 400.0
    default_request_timeout_s = 10.0
