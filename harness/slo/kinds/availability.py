"""Availability: every request sent; bad when the status is 5xx, 429 (the service turned work away),
0 (no response: timeout or connection error), or a 200 whose body was unusable. Other 4xx are the
client's fault and count as good. From Prometheus: 5xx, 429 and 499 (a client that gave up)."""

from __future__ import annotations

from typing import Mapping

from harness.slo.kinds import RecordsKind
from harness.slo.promql import AVAILABILITY_BAD_STATUS, REQUESTS, rate, total


class Availability(RecordsKind):
    name = "availability"
    events_doc = "every request sent"
    good_doc = (
        "not 5xx, not 429 (work turned away), not 0 (no response: timeout, refused), not an unusable 200 "
        "body; other 4xx are the client's and count as good"
    )

    def select(self, df, slo, inputs):
        import pandas as pd

        from harness.slo.columns import outcomes, statuses

        status, outcome = statuses(df), outcomes(df)
        bad = (status >= 500) | (status == 429) | (status == 0) | (outcome == "invalid_response")
        return pd.Series(True, index=df.index), ~bad, ""

    def rates(self, slo, base: Mapping[str, str], window: str):
        errors = rate(REQUESTS, base, window, f'status=~"{AVAILABILITY_BAD_STATUS}"')
        return f"{errors} or vector(0)", rate(REQUESTS, base, window)

    def counters(self, slo, base: Mapping[str, str]):
        bad = total(REQUESTS, base, f'status=~"{AVAILABILITY_BAD_STATUS}"')
        return f"{bad} or vector(0)", total(REQUESTS, base)


KIND = Availability()
