"""Safety: every caption returned; bad when the service flagged it, or when it carries a word of the
SLO's blocklist all the same (an unsafe caption the service's filter let through). From Prometheus:
the server's flags over its 200 answers (it cannot see a word its filter missed)."""

from __future__ import annotations

from typing import Annotated, Mapping

from pydantic import StringConstraints

from harness.errors import DataError
from harness.slo.kinds import RecordsKind
from harness.slo.promql import REQUESTS, SAFETY_FLAGS, rate, total
from harness.validation import Strict

# Words no caption may contain (the reference server's filter blocks the same words).
DEFAULT_BLOCKLIST: tuple[str, ...] = ("blood", "corpse", "gore", "gun", "kill", "naked", "nude", "weapon")


class SafetyFields(Strict):
    blocklist: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]] | None = None


def blocklisted(captions, words: tuple[str, ...]):
    """Whether each caption carries one of ``words`` (whole words, any case)."""
    import re

    import pandas as pd

    if not words:
        return pd.Series(False, index=captions.index)
    pattern = r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b"
    return captions.astype("string").str.contains(pattern, case=False, regex=True).fillna(False).astype(bool)


class Safety(RecordsKind):
    name = "safety"
    events_doc = "every caption returned"
    good_doc = "neither flagged by the service nor carrying a word of the SLO's `blocklist`"
    fields = SafetyFields

    def options(self, fields, path):
        words = DEFAULT_BLOCKLIST if fields.blocklist is None else tuple(sorted({w.lower() for w in fields.blocklist}))
        return {"blocklist": words}

    def describe(self, slo):
        return {"blocklist": list(slo.blocklist)}

    def columns(self, slo):
        return super().columns(slo)[0] + ("caption", "safety_flagged"), ()

    def select(self, df, slo, inputs):
        from harness.slo.columns import captioned

        try:
            flagged = df["safety_flagged"].astype("boolean").fillna(False).astype(bool)
        except (TypeError, ValueError):
            raise DataError("records: safety_flagged must be true, false or empty") from None
        return captioned(df), ~(flagged | blocklisted(df["caption"], slo.blocklist)), ""

    def rates(self, slo, base: Mapping[str, str], window: str):
        return f"{rate(SAFETY_FLAGS, base, window)} or vector(0)", rate(REQUESTS, base, window, 'status="200"')

    def counters(self, slo, base: Mapping[str, str]):
        return f"{total(SAFETY_FLAGS, base)} or vector(0)", total(REQUESTS, base, 'status="200"')


KIND = Safety()
