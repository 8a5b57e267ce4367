"""high_res: the same scenes at the base size and at 4096 px, half and half; the summary's
by_image_size shows what the high-resolution camera costs in latency."""

from harness.load.payload import Payload
from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser


class HighResUser(CaptionUser):
    pools = ("high_res_base", "high_res")

    def choose(self) -> Payload:
        pool = "high_res" if self.rng.random() < 0.5 else "high_res_base"
        return self.recorder.pool(pool).pick(self.rng)


class HighRes(SteadyShape):
    default_users = 4
    default_duration_s = 60.0
    default_request_timeout_s = 60.0
