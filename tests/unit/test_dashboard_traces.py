"""The Debug page's slowest requests: their trace ids from the records and, when the run folder holds
the server's spans file, each one's steps with their durations (joined by trace id)."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("streamlit")

from dashboard_fixture import build_reports, open_app  # noqa: E402
from harness.records import COLUMNS, arrow_schema, load_records  # noqa: E402
from harness.traceparent import trace_id_of, trace_ids  # noqa: E402

HOSTILE_STEP = "decode *bold* <b>x</b> [link](http://x)"


def _span(trace: str, span: str, parent: str | None, name: str, kind: str, start: float, ms: float, **attrs) -> str:
    return (
        json.dumps(
            {
                "trace_id": trace,
                "span_id": span,
                "parent_span_id": parent,
                "name": name,
                "kind": kind,
                "start": start,
                "end": start + ms / 1000.0,
                "duration_ms": ms,
                "status": "unset",
                "service": "caption-reference-server",
                "attributes": attrs,
            },
            separators=(",", ":"),
        )
        + "\n"
    )


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """The dashboard's report folder, its newest run's records given trace ids (as the harness writes
    them now), and a copy of that run with the server's spans of its three slowest requests."""
    reports = build_reports(tmp_path_factory.mktemp("reports"))
    df = load_records(reports.new)
    df["trace_id"] = df["request_id"].map(trace_id_of)
    table = pa.Table.from_pandas(df[list(COLUMNS)], schema=arrow_schema(), preserve_index=False)
    pq.write_table(table, reports.new / "records.parquet")
    traced_run = reports.root / "run-c"
    shutil.copytree(reports.new, traced_run)
    decision = json.loads((traced_run / "decision.json").read_text())
    decision["created_unix"] = decision["created_unix"] + 60  # the newest run
    (traced_run / "decision.json").write_text(json.dumps(decision))
    slowest = df.sort_values("latency_s", ascending=False).head(3)
    lines = ["not a span\n"]
    for r in slowest.itertuples():
        trace, parent = trace_ids(r.request_id)
        t = r.t_start + 0.001
        lines += [
            _span(trace, "a" * 16, parent, "POST /v1/caption", "server", t, 80.0, **{"http.response.status_code": 200}),
            _span(trace, "b" * 16, "a" * 16, "admission", "internal", t + 0.001, 0.02),
            _span(trace, "c" * 16, "a" * 16, HOSTILE_STEP, "internal", t + 0.002, 3.5, **{"caption.image.bytes": 2048}),
            _span(trace, "d" * 16, "a" * 16, "queue", "internal", t + 0.006, 40.0),
            _span(trace, "e" * 16, "a" * 16, "batch", "internal", t + 0.046, 30.0, **{"caption.batch.size": 4}),
            _span(trace, "f" * 16, "e" * 16, "generate_content tiny", "internal", t + 0.046, 28.0),
        ]
    (traced_run / "spans.jsonl").write_text("".join(lines))
    return reports, list(slowest["request_id"])


def test_the_slowest_requests_show_their_traces_and_steps(traced, monkeypatch):
    reports, slowest = traced
    at = open_app(reports.root, monkeypatch, "debug")
    assert at.selectbox(key="run").value == "run-c"
    table = at.dataframe[0].value
    records = load_records(reports.root / "run-c")
    top = records.sort_values("latency_s", ascending=False).head(10)
    assert list(table["request_id"]) == list(top["request_id"])
    assert list(table["trace_id"]) == [trace_id_of(r) for r in top["request_id"]]
    assert list(table["server (ms)"].head(3)) == [80.0, 80.0, 80.0]
    assert table["server (ms)"].iloc[3:].isna().all()
    labels = [e.proto.label for e in at.expander]
    assert len(labels) == 3 and all(label.startswith(rid) for label, rid in zip(labels, slowest))
    steps = at.dataframe[1].value
    assert list(steps["step"]) == [
        "POST /v1/caption",
        "  admission",
        "  " + HOSTILE_STEP,
        "  queue",
        "  batch",
        "    generate_content tiny",
    ]
    assert list(steps["duration_ms"]) == [80.0, 0.02, 3.5, 40.0, 30.0, 28.0]
    assert steps["detail"].iloc[4] == "batch of 4" and steps["detail"].iloc[0] == "status 200"
    assert not [m for m in at.markdown if "<b>" in m.value or "*bold*" in m.value]


def test_a_run_without_spans_names_the_option_that_writes_them(traced, monkeypatch):
    reports, _ = traced
    at = open_app(reports.root, monkeypatch)
    at.selectbox(key="run").select("run-b").run()
    at.switch_page("views/debug.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["trace_id"].notna().all() and table["server (ms)"].isna().all()
    assert any("--spans-file RUN/spans.jsonl" in c.value for c in at.caption)
    assert not at.expander
