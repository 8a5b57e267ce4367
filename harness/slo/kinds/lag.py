"""Pipeline lag: every image offered to the pipeline (an asynchronous job submitted, or refused for
want of room: 429, 5xx); good when its caption became available within ``threshold`` seconds of
its arrival. A missing caption (refused, failed, expired, never finished) is bad, as coverage
counts it. Client errors at submission (other 4xx) are not events (``harness.slo.job_figures``).

From Prometheus, the asynchronous route's metrics: total = ``caption_jobs_total`` of the states
``submitted`` and ``rejected``, good = ``caption_job_lag_seconds`` at the bucket ``le=threshold``
(exact when the threshold is one of the server's lag bucket bounds: 0.1, 0.25, 0.5, 1, 2, 5, 10,
30, 60, 120, 300, 600, 1800, 3600 s). A job is counted when it arrives and its lag when its
caption comes, so over a window shorter than the lag the two differ by the jobs in flight."""

from __future__ import annotations

from typing import Mapping

from harness.slo.kinds import RecordsKind
from harness.slo.kinds.latency import Latency
from harness.slo.promql import le_label, rate, total

JOBS = "caption_jobs_total"
JOB_LAG = "caption_job_lag_seconds"
_OFFERED = 'state=~"submitted|rejected"'


class Lag(RecordsKind):
    name = "lag"
    events_doc = (
        "every image offered to the pipeline: a request or asynchronous job, or one refused for want of room "
        "(429, 5xx); other 4xx are the client's and no event"
    )
    good_doc = (
        "its caption available within the threshold (seconds) of its arrival; missing captions (refused, "
        "failed, expired, never finished) are bad; the report adds the pipeline figures (lag p50/p95/p99, "
        'drain time, missing by kind). Prometheus: `caption_jobs_total{state=~"submitted|rejected"}` against '
        "`caption_job_lag_seconds_bucket{le=threshold}` (exact at a bucket bound); a job is counted when it "
        "arrives and its lag when its caption comes, so a window shorter than the lag sees the jobs in flight "
        "as bad"
    )
    fields = Latency.fields  # a threshold in seconds, as latency's
    options = Latency.options

    def select(self, df, slo, inputs):
        import pandas as pd

        from harness.slo.columns import captioned
        from harness.slo.job_figures import job_events

        lag = pd.to_numeric(df["latency_s"], errors="coerce")
        return job_events(df), captioned(df) & (lag <= float(slo.threshold)), ""

    def columns(self, slo):
        return super().columns(slo)[0] + ("caption", "error"), ()

    def figure_part(self, records, slo):
        from harness.slo.job_figures import pipeline_part

        return pipeline_part(records)

    def merge_figures(self, parts, slo):
        from harness.slo.job_figures import pipeline_from_parts

        return pipeline_from_parts(parts) if parts else {}

    def rates(self, slo, base: Mapping[str, str], window: str):
        offered = rate(JOBS, base, window, _OFFERED)
        fast = rate(f"{JOB_LAG}_bucket", base, window, f'le="{le_label(slo.threshold)}"')
        return f"{offered} - ({fast} or vector(0))", offered

    def counters(self, slo, base: Mapping[str, str]):
        offered = total(JOBS, base, _OFFERED)
        fast = total(f"{JOB_LAG}_bucket", base, f'le="{le_label(slo.threshold)}"')
        return f"{offered} - ({fast} or vector(0))", offered


KIND = Lag()
