"""soak: moderate steady load for a long time; the summary's timeline shows any slow decay."""

from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser


class SoakUser(CaptionUser):
    pass


class Soak(SteadyShape):
    default_users = 4
    default_duration_s = 1800.0
