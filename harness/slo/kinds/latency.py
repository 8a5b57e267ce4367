"""Latency: every request that got a response or timed out; good when a response came within
``threshold`` seconds. From Prometheus: the server's duration histogram at the bucket ``le=threshold``."""

from __future__ import annotations

from typing import Mapping

from pydantic import field_validator

from harness.slo.kinds import RecordsKind
from harness.slo.promql import DURATION, le_label, rate, total
from harness.validation import Strict


class LatencyFields(Strict):
    threshold: float

    @field_validator("threshold")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"must be above 0 seconds (got {v!r})")
        return v


class Latency(RecordsKind):
    name = "latency"
    events_doc = "every request that got a response or timed out"
    good_doc = "a response within the threshold (seconds)"
    fields = LatencyFields

    def options(self, fields, path):
        return {"threshold": float(fields.threshold)}

    def select(self, df, slo, inputs):
        import pandas as pd

        from harness.slo.columns import outcomes, statuses

        status = statuses(df)
        responded = status != 0
        latency = pd.to_numeric(df["latency_s"], errors="coerce")
        return responded | (outcomes(df) == "timeout"), responded & (latency <= float(slo.threshold)), ""

    def rates(self, slo, base: Mapping[str, str], window: str):
        count = rate(f"{DURATION}_count", base, window)
        fast = rate(f"{DURATION}_bucket", base, window, f'le="{le_label(slo.threshold)}"')
        return f"{count} - {fast}", count

    def counters(self, slo, base: Mapping[str, str]):
        count = total(f"{DURATION}_count", base)
        fast = total(f"{DURATION}_bucket", base, f'le="{le_label(slo.threshold)}"')
        return f"{count} - {fast}", count


KIND = Latency()
