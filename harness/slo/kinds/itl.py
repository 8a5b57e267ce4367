"""Inter-token latency: every gap between consecutive tokens of a streamed answer (``itl_s``, each
gap an event at its request's answer time); good when the gap is within ``threshold`` seconds.
Records without the ``itl_s`` column, or of a target that does not stream, give no data. No server
metric shows it (the records only)."""

from __future__ import annotations

from harness.slo.kinds import RecordsKind
from harness.slo.kinds.latency import Latency

NO_GAPS = "no data: the records hold no itl_s (the target's answers were not streamed, or of one token)"


def gaps(df):
    """``(request position, gap)`` arrays of every inter-token gap in ``df``'s ``itl_s``."""
    import numpy as np

    where: list[int] = []
    values: list[float] = []
    for i, v in enumerate(df["itl_s"].tolist()):
        if v is None or not hasattr(v, "__len__"):  # null (NaN or NA in a frame)
            continue
        seq = [float(x) for x in v]
        where += [i] * len(seq)
        values += seq
    return np.asarray(where, dtype=np.int64), np.asarray(values, dtype=float)


class InterTokenLatency(RecordsKind):
    name = "itl"
    events_doc = "every gap between consecutive tokens of a streamed answer (`itl_s`), at its request's answer time"
    good_doc = "a gap within the threshold (seconds); records without `itl_s` give no data; no server metric"
    fields = Latency.fields
    options = Latency.options

    def columns(self, slo):
        return ("t_start", "latency_s"), ("itl_s",)

    def events(self, inputs, slo):
        import numpy as np
        import pandas as pd

        from harness.slo.columns import event_time

        df = inputs.records
        if df is None or "itl_s" not in df.columns or not len(df):
            return pd.DataFrame({"t": pd.Series(dtype=float), "good": pd.Series(dtype=bool)}), NO_GAPS
        at, gap = gaps(df)
        t = event_time(df).to_numpy(dtype=float)[at] if len(at) else np.empty(0)
        events = pd.DataFrame({"t": t, "good": gap <= float(slo.threshold)})
        return events, "" if len(events) else NO_GAPS


KIND = InterTokenLatency()
