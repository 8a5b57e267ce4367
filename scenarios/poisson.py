"""poisson: open-loop arrivals at --rate per second; --burstiness sets the gamma shape of the
gaps (1: Poisson, below 1: bursts), as in vLLM's serving benchmark. Users only cap concurrency."""

from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser


class PoissonUser(CaptionUser):
    pass


class Poisson(SteadyShape):
    default_users = 64
    default_duration_s = 60.0
    default_rate = 10.0
