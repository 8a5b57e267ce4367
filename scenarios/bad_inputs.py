"""bad_inputs: normal traffic with a quarter of the requests drawn from the malformed corpus
(truncated PNG and JPEG, 0 bytes, text as an image, a 20000x20000 bomb, a wrong content type,
an oversize body); each should get a 4xx while the good ones keep getting captions."""

from harness.load.payload import Payload
from harness.load.shapes import SteadyShape
from harness.load.user import CaptionUser

MALFORMED_FRACTION = 0.25


class BadInputsUser(CaptionUser):
    pools = ("main", "malformed")

    def choose(self) -> Payload:
        pool = "malformed" if self.rng.random() < MALFORMED_FRACTION else "main"
        return self.recorder.pool(pool).pick(self.rng)


class BadInputs(SteadyShape):
    default_users = 8
    default_duration_s = 60.0
