"""step: a ramp in four equal stairs up to the user count."""

from harness.load.shapes import StepShape
from harness.load.user import CaptionUser


class StepUser(CaptionUser):
    pass


class Step(StepShape):
    default_users = 16
    default_duration_s = 120.0
    steps = 4
