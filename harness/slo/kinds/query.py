"""An SLI that only the SLO's own Prometheus queries show (``promql: {errors, total}``, ``{good,
total}`` or ``{error_ratio}``), such as an OpenSLO SLI: the records give no data for it."""

from __future__ import annotations

from harness.slo.errors import SpecError
from harness.slo.kinds import SLIKind


class Query(SLIKind):
    name = "promql"
    events_doc = "what the SLO's own Prometheus queries count (an OpenSLO SLI without `harness/sli`)"
    good_doc = "what they count; `--records` gives no data"

    def check(self, slo, path):
        if not slo.promql:
            raise SpecError(f"{path}.promql: is required for a promql SLO ({{errors, total}} or {{error_ratio}})")

    def events(self, inputs, slo):
        import pandas as pd

        empty = pd.DataFrame({"t": pd.Series(dtype=float), "good": pd.Series(dtype=bool)})
        return empty, "no data: this SLI is the SLO's own Prometheus queries; read it with --prometheus"


KIND = Query()
