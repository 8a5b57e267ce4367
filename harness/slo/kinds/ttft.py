"""Time to first token: every request whose answer began a stream (a streamed ``openai-chat``
answer: ``ttft_s`` recorded, or a stream that timed out before its first token); good when its
first token came within ``threshold`` seconds. Records without the ``ttft_s`` column, or of a target
that does not stream, give no data. No server metric shows it (the records only)."""

from __future__ import annotations

from harness.slo.kinds import RecordsKind
from harness.slo.kinds.latency import Latency

NO_STREAM = "no data: the records hold no ttft_s (the target's answers were not streamed)"


def streamed(df):
    """Requests whose answer began a stream: a first token timed, or a stream (``completion_tokens``
    0, as the client records a stream that delivered nothing) cut by the timeout before it."""
    import pandas as pd

    ttft = pd.to_numeric(df["ttft_s"], errors="coerce") if "ttft_s" in df.columns else None
    if ttft is None:
        return None, None
    tokens = pd.to_numeric(df["completion_tokens"], errors="coerce") if "completion_tokens" in df.columns else None
    waited = (df["outcome"] == "timeout") & (tokens == 0) if tokens is not None else False
    return ttft.notna() | waited, ttft


class TimeToFirstToken(RecordsKind):
    name = "ttft"
    events_doc = (
        "every request whose answer began a stream (`openai-chat` with `stream: true`): a first token timed, "
        "or a stream cut by the timeout before its first token"
    )
    good_doc = (
        "a first token within the threshold (seconds) of sending (`ttft_s`); records without `ttft_s` give no "
        "data; no server metric (records only)"
    )
    fields = Latency.fields  # a threshold in seconds, as latency's
    options = Latency.options

    def columns(self, slo):
        return super().columns(slo)[0], ("ttft_s", "completion_tokens")

    def select(self, df, slo, inputs):
        import pandas as pd

        events, ttft = streamed(df)
        if events is None:
            none = pd.Series(False, index=df.index)
            return none, none, NO_STREAM
        note = "" if events.any() else NO_STREAM
        return events, events & (ttft <= float(slo.threshold)).fillna(False), note


KIND = TimeToFirstToken()
