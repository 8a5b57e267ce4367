"""spike: a fifth of the users, all of them for the middle fifth of the run, then back."""

from harness.load.shapes import SpikeShape
from harness.load.user import CaptionUser


class SpikeUser(CaptionUser):
    pass


class Spike(SpikeShape):
    default_users = 25
    default_duration_s = 90.0
    spike = (0.4, 0.6)
