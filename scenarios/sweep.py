"""sweep: concurrency 1, 2, 4, ... up to the user count, equal time at each level; the summary
gives the throughput-latency curve and the saturation point."""

from harness.load.shapes import SweepShape
from harness.load.user import CaptionUser


class SweepUser(CaptionUser):
    pass


class Sweep(SweepShape):
    default_users = 32
    default_duration_s = 120.0
