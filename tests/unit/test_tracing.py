"""Traces on the harness's side (the traceparent every request carries, the record's trace id) and
the reference server's tracing in process (its spans written to a spans file): a malformed incoming
traceparent starts a new trace, a valid one is continued; the spans file is read back and joined."""

import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.client import CaptionResult, record_row, to_record
from harness.protocols import PROTOCOLS, ProtocolChoice
from harness.protocols.template import TemplateAdapter
from harness.records import COLUMNS
from harness.report.spans import read_spans, server_span, span_tree
from harness.traceparent import parse_traceparent, trace_id_of, trace_ids, traceparent

ROOT = Path(__file__).resolve().parents[2]
_W3C = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


# -- the harness's traceparent --------------------------------------------------------------------
def test_traceparent_is_w3c_and_derived_from_the_request_id():
    value = traceparent("a1b2c3-0000001")
    assert _W3C.fullmatch(value)
    digest = hashlib.sha256(b"a1b2c3-0000001").digest()
    assert value == f"00-{digest[:16].hex()}-{digest[16:24].hex()}-01"
    assert traceparent("a1b2c3-0000001") == value  # the same id, the same header: a record can recompute it
    assert trace_id_of("a1b2c3-0000001") == digest[:16].hex() == trace_ids("a1b2c3-0000001")[0]
    assert traceparent("a1b2c3-0000002") != value
    assert parse_traceparent(value) == trace_ids("a1b2c3-0000001")
    assert _W3C.fullmatch(traceparent("é ünïcode id"))


def test_an_all_zero_digest_still_gives_valid_ids(monkeypatch):
    import harness.traceparent as tp

    class Zero:
        def __init__(self, data: bytes):
            pass

        def hexdigest(self) -> str:
            return "0" * 64

    monkeypatch.setattr(tp, "_sha256", Zero)
    tp.trace_ids.cache_clear()
    try:
        assert trace_ids("zero-digest") == ("0" * 31 + "1", "0" * 15 + "1")
        assert parse_traceparent(traceparent("zero-digest")) == trace_ids("zero-digest")
    finally:
        tp.trace_ids.cache_clear()


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # an all-zero trace id
        "00-" + "1" * 32 + "-" + "0" * 16 + "-01",  # an all-zero parent id
        "ff-" + "1" * 32 + "-" + "1" * 16 + "-01",  # version ff is invalid
        "00-" + "A" * 32 + "-" + "1" * 16 + "-01",  # upper-case hex
        "00-" + "1" * 32 + "-" + "1" * 16 + "-01-extra",  # version 00 has four fields
        "00-" + "1" * 31 + "-" + "1" * 16 + "-01",
    ],
)
def test_a_malformed_traceparent_is_none(value):
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_by_its_first_four_fields():
    assert parse_traceparent("01-" + "1" * 32 + "-" + "2" * 16 + "-01-more") == ("1" * 32, "2" * 16)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_every_protocol_sends_the_traceparent_beside_the_request_id(name):
    req = ProtocolChoice(protocol=name, model="tiny").build().request(b"\x89PNG", "image/png", "req-42")
    assert req.headers["X-Request-Id"] == "req-42"
    assert req.headers["traceparent"] == traceparent("req-42")


def test_a_template_sends_the_harness_traceparent_in_place_of_its_own():
    adapter = TemplateAdapter("$.caption", headers={"TraceParent": "00-x", "X-Other": "{request_id}"})
    req = adapter.request(b"img", "image/png", "req-7")
    assert req.headers["traceparent"] == traceparent("req-7")
    assert "TraceParent" not in req.headers and req.headers["X-Other"] == "req-7"
    quiet = TemplateAdapter("$.caption", request_id_header=None).request(b"img", "image/png", "req-8")
    assert "X-Request-Id" not in quiet.headers and quiet.headers["traceparent"] == traceparent("req-8")


def test_the_record_keeps_the_trace_id_of_its_request():
    result = CaptionResult("ok", 200, 0.05, 1_700_000_000.0, "req-9", caption="a circle", confidence=0.9)
    row = record_row(result, "run", "baseline", "steady")
    assert row["trace_id"] == trace_id_of("req-9") == parse_traceparent(traceparent("req-9"))[0]
    assert tuple(row) == COLUMNS  # the record's own column, in the schema's order
    assert to_record(result, run_id="run", target="baseline", scenario="steady").trace_id == trace_id_of("req-9")
    failed = CaptionResult("timeout", 0, 30.0, 1_700_000_000.0, "req-10", error="timeout")
    assert record_row(failed, "run", "canary", "steady")["trace_id"] == trace_id_of("req-10")


def test_harness_help_imports_no_opentelemetry():
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "harness", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0
    assert "opentelemetry" not in out.stderr


# -- the server's tracing, in process -------------------------------------------------------------
class _Request:
    """What the tracing reads of a Starlette request: its scope, headers and state."""

    def __init__(self, headers: dict[str, str], path: str = "/v1/caption"):
        self.scope = {"method": "POST", "path": path}
        self.headers = headers
        self.state = SimpleNamespace()


def _spans_file(tmp_path, requests):
    """Run ``requests`` (request id, headers) through a ``Tracing`` writing ``spans.jsonl``: each a
    server span with admission, decode and a batch of two; the spans read back, and the requests."""
    pytest.importorskip("opentelemetry.sdk")
    from reference_model.server.tracing import BatchRun, Tracing

    path = tmp_path / "spans.jsonl"
    tracing = Tracing("tiny", "tiny-1234", spans_file=str(path))
    made = []
    for rid, headers in requests:
        req = _Request(headers)
        with tracing.server_span(req, "/v1/caption", rid) as span:
            with tracing.span("admission"):
                pass
            with tracing.span("decode", {"caption.image.bytes": 155}):
                pass
            base = time.time_ns() - 50_000_000  # times of the past: the batch ran before the span began
            run = BatchRun(7, 2, base + 5_000_000, base + 15_000_000, base + 17_000_000)
            tracing.batch_spans(base, [(SimpleNamespace(tokens=5), run)])
            span.finish(200, rid)
        made.append(req)
    tracing.shutdown()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return lines, made


def test_the_server_continues_a_valid_traceparent_and_starts_a_new_trace_for_a_malformed_one(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    good = traceparent("req-good")
    bad = {
        "garbage": "garbage",
        "zero": "00-" + "0" * 32 + "-" + "1" * 16 + "-01",
        "upper": "00-" + trace_id_of("req-upper").upper() + "-" + "1" * 16 + "-01",
        "short": "00-" + "1" * 31 + "-" + "1" * 16 + "-01",
    }
    requests = [("req-good", {"traceparent": good})] + [(f"req-{k}", {"traceparent": v}) for k, v in bad.items()]
    requests.append(("req-none", {}))
    unsampled = "00-" + trace_id_of("req-unsampled") + "-" + "1" * 16 + "-00"
    requests.append(("req-unsampled", {"traceparent": unsampled}))
    lines, made = _spans_file(tmp_path, requests)
    assert not [d for d in lines if d["trace_id"] == trace_id_of("req-unsampled")]  # flags 00: not recorded
    requests.pop()
    servers = {d["attributes"]["caption.request_id"]: d for d in lines if d["kind"] == "server"}
    assert set(servers) == {rid for rid, _ in requests}
    s = servers["req-good"]
    assert (s["trace_id"], s["parent_span_id"]) == trace_ids("req-good")
    assert made[0].state.trace_id == trace_id_of("req-good")  # what the request log line carries
    for k in [*bad, "none"]:
        s = servers[f"req-{k}"]
        assert s["parent_span_id"] is None, k  # a new trace: the malformed header is ignored
        assert re.fullmatch(r"[0-9a-f]{32}", s["trace_id"]) and s["trace_id"] != trace_id_of(f"req-{k}")
    assert len({s["trace_id"] for s in servers.values()}) == len(servers)


def test_each_request_gets_its_steps_and_the_model_span_under_its_batch(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    lines, _ = _spans_file(tmp_path, [("req-1", {"traceparent": traceparent("req-1")})])
    by_name = {d["name"]: d for d in lines}
    assert set(by_name) == {"POST /v1/caption", "admission", "decode", "queue", "batch", "generate_content tiny"}
    root = by_name["POST /v1/caption"]
    assert root["kind"] == "server" and root["service"] == "caption-reference-server"
    assert root["attributes"] == {
        "http.request.method": "POST",
        "http.route": "/v1/caption",
        "url.path": "/v1/caption",
        "caption.request_id": "req-1",
        "http.response.status_code": 200,
    }
    for name in ("admission", "decode", "queue", "batch"):
        assert by_name[name]["parent_span_id"] == root["span_id"], name
    model, batch, queue = by_name["generate_content tiny"], by_name["batch"], by_name["queue"]
    assert model["parent_span_id"] == batch["span_id"]
    assert model["attributes"] == {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "reference_model",
        "gen_ai.request.model": "tiny",
        "gen_ai.response.model": "tiny-1234",
        "gen_ai.output.type": "text",
        "gen_ai.usage.output_tokens": 5,
        "caption.batch.size": 2,
    }
    assert batch["attributes"] == {"caption.batch.id": 7, "caption.batch.size": 2}
    assert (queue["duration_ms"], batch["duration_ms"], model["duration_ms"]) == (5.0, 12.0, 10.0)
    assert queue["end"] == batch["start"] == model["start"]


def test_a_server_span_ends_as_an_error_for_a_5xx_and_for_an_exception(tmp_path):
    pytest.importorskip("opentelemetry.sdk")
    from reference_model.server.tracing import Tracing

    path = tmp_path / "spans.jsonl"
    tracing = Tracing("tiny", "tiny-1", spans_file=str(path))
    with tracing.server_span(_Request({}), "/v1/caption", "r-503") as span:
        span.finish(503, "r-503")
    with pytest.raises(RuntimeError):
        with tracing.server_span(_Request({}), "/v1/caption", "r-boom"):
            with tracing.span("admission"):
                raise RuntimeError("boom")
    tracing.shutdown()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    status = {(d["name"], d["attributes"].get("caption.request_id")): d["status"] for d in lines}
    assert status == {
        ("POST /v1/caption", "r-503"): "error",
        ("admission", None): "error",
        ("POST /v1/caption", "r-boom"): "error",
    }


def test_without_an_exporter_the_server_has_no_tracer_and_imports_no_sdk():
    code = (
        "import sys\n"
        "from reference_model.server.settings import ServerSettings\n"
        "from reference_model.server.tracing import NO_TRACING, tracing_for\n"
        "t = tracing_for(ServerSettings(), 'tiny', 'tiny-1')\n"
        "with t.server_span(None, '/v1/caption', 'r') as s:\n"
        "    s.finish(200)\n"
        "    with t.span('decode'): pass\n"
        "t.batch_spans(0, [])\n"
        "print(t is NO_TRACING, 'opentelemetry.sdk' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "False"], out.stderr


# -- the spans file read back -----------------------------------------------------------------------
def test_read_spans_keeps_only_the_traces_asked_for_and_skips_damaged_lines(tmp_path):
    lines, _ = _spans_file(
        tmp_path, [("req-a", {"traceparent": traceparent("req-a")}), ("req-b", {"traceparent": traceparent("req-b")})]
    )
    path = tmp_path / "spans.jsonl"
    with path.open("a") as f:
        f.write('{"trace_id":"' + trace_id_of("req-a") + '","span_id":"torn\n')
        f.write("not json at all " + trace_id_of("req-a") + "\n")
        f.write(json.dumps({"span_id": "x", "name": "other", "trace_id": trace_id_of("req-a"), "start": "soon"}) + "\n")
    found = read_spans(path, [trace_id_of("req-a"), "not-a-trace-id", None])
    assert list(found) == [trace_id_of("req-a")]
    spans = found[trace_id_of("req-a")]
    assert len(spans) == 6
    root = server_span(spans)
    assert root is not None and root.parent_span_id == trace_ids("req-a")[1]
    rows = span_tree(spans)
    assert [r["step"] for r in rows] == [
        "POST /v1/caption",
        "  queue",  # each level by start: the test's batch ran before admission
        "  batch",
        "    generate_content tiny",
        "  admission",
        "  decode",
    ]
    assert rows[1]["start_ms"] == 0.0 and rows[2]["start_ms"] == 5.0
    by_step = {r["step"].strip(): r for r in rows}
    assert by_step["batch"]["duration_ms"] == 12.0 and by_step["batch"]["detail"] == "batch of 2, batch # 7"
    assert by_step["generate_content tiny"]["detail"] == "batch of 2, output tokens 5"
    assert by_step["POST /v1/caption"]["detail"] == "status 200"
    assert read_spans(path, []) == {}


def test_the_environment_names_the_service(tmp_path, monkeypatch):
    pytest.importorskip("opentelemetry.sdk")
    from reference_model.server.tracing import Tracing

    monkeypatch.setenv("OTEL_SERVICE_NAME", "captioner-canary")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci")
    tracing = Tracing("tiny", "tiny-1")
    attrs = dict(tracing._provider.resource.attributes)
    tracing.shutdown()
    assert (attrs["service.name"], attrs["service.version"], attrs["deployment.environment"]) == (
        "captioner-canary",
        "tiny-1",
        "ci",
    )


# -- the server's options -------------------------------------------------------------------------
def test_the_otlp_endpoint_gets_the_traces_route_when_it_names_none():
    from harness.cli.serve import otlp_traces_url

    assert otlp_traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert otlp_traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert otlp_traces_url("https://otel.example/tenant/v1/traces") == "https://otel.example/tenant/v1/traces"


@pytest.mark.parametrize(
    "url, said",
    [
        ("ftp://collector", "http:// or https:// URL with a host"),
        ("collector:4318", "http:// or https:// URL with a host"),
        ("http://", "http:// or https:// URL with a host"),
        ("http://collector:port", "http:// or https:// URL with a host"),
        ("http://user:secret@collector:4318", "must not hold credentials"),
        ("ftp://user:secret@collector", "must not hold credentials"),
    ],
)
def test_a_bad_otlp_endpoint_is_a_usage_error_before_anything_starts(url, said, tmp_path):
    from cli_run import run_cli

    code, _, err = run_cli(["serve", "--otlp-endpoint", url, "--port-file", tmp_path / "port"])
    assert code == 64 and said in err
    assert "secret" not in err
    assert not (tmp_path / "port").exists()


def test_a_spans_file_in_a_folder_that_is_a_file_is_a_usage_error(tmp_path):
    from cli_run import run_cli

    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["serve", "--spans-file", tmp_path / "file" / "spans.jsonl"])
    assert code == 64 and "--spans-file" in err
