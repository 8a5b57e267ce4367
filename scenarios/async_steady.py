"""async_steady: images submitted to the asynchronous route (POST /v1/caption:async) at a steady
rate (--rate, 20/s by default), each job polled with back-off until done, failed or expired; a job
still pending --request-timeout after its submission is missing. The summary's ``pipeline``
section gives lag percentiles, missing captions and the drain time."""

from harness.load.pipeline_user import AsyncCaptionUser
from harness.load.shapes import SteadyShape


class AsyncSteadyUser(AsyncCaptionUser):
    pass


class AsyncSteady(SteadyShape):
    default_users = 64
    default_duration_s = 60.0
    default_rate = 20.0
    default_request_timeout_s = 60.0
