"""Coverage: every request sent; good when it came back ``ok`` with a non-empty caption."""

from __future__ import annotations

from typing import Mapping

from harness.slo.kinds import RecordsKind
from harness.slo.promql import REQUESTS, rate, total

_UNANSWERED = 'status!~"2.."'


class Coverage(RecordsKind):
    name = "coverage"
    events_doc = "every request sent"
    good_doc = "answered `ok` with a non-empty caption"

    def columns(self, slo):
        return super().columns(slo)[0] + ("caption",), ()

    def select(self, df, slo, inputs):
        import pandas as pd

        from harness.slo.columns import captioned

        return pd.Series(True, index=df.index), captioned(df), ""

    def rates(self, slo, base: Mapping[str, str], window: str):
        return f"{rate(REQUESTS, base, window, _UNANSWERED)} or vector(0)", rate(REQUESTS, base, window)

    def counters(self, slo, base: Mapping[str, str]):
        return f"{total(REQUESTS, base, _UNANSWERED)} or vector(0)", total(REQUESTS, base)


KIND = Coverage()
