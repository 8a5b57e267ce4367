"""backfill: a burst of --users images (50 by default) submitted at once to the asynchronous
route, then each job polled until its caption is available; the run ends when every job has its
record. The summary's ``pipeline`` section gives the drain time (first arrival to last caption),
lag percentiles and the missing captions of an overfilled queue (refused 429, or expired)."""

from harness.load.pipeline_user import AsyncCaptionUser, BackfillShape


class BackfillUser(AsyncCaptionUser):
    jobs_per_user = 1


class Backfill(BackfillShape):
    default_users = 50
    default_duration_s = 120.0
    default_request_timeout_s = 60.0
