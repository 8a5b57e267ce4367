"""steady: the same number of users for the whole run (closed loop, or open loop with --rate)."""

from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser


class SteadyUser(CaptionUser):
    pass


class Steady(SteadyShape):
    default_users = 8
    default_duration_s = 60.0
