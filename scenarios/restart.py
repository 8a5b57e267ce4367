"""restart: the harness starts the reference server itself (--server-args passes options), puts
steady load on it, SIGKILLs it at 35% of the run and starts it again on the same port: the
records show the outage (connection errors, then 503 while it warms up) and the recovery."""

from harness.load.shapes import RestartShape
from harness.load.user import CaptionUser


class RestartUser(CaptionUser):
    pass


class Restart(RestartShape):
    default_users = 4
    default_duration_s = 60.0
    default_request_timeout_s = 5.0
    kill_at = 0.35
