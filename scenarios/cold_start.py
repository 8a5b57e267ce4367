"""cold_start: load that begins with the server process the harness starts: connection errors
while the model loads, 503 while it warms up, then the first answers and their latency."""

from harness.load.shapes import ColdStartShape
from harness.load.user import CaptionUser


class ColdStartUser(CaptionUser):
    pass


class ColdStart(ColdStartShape):
    default_users = 4
    default_duration_s = 30.0
    default_request_timeout_s = 10.0
