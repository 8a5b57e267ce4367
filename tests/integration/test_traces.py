"""The reference server's traces end to end: a real OTLP/HTTP receiver on a loopback port decodes
the protobuf exports (the collector's own messages, ``opentelemetry-proto``), the server is started
with ``--otlp-endpoint`` pointing at it, requests go through ``harness.client`` with known request
ids, and each request's spans are found by the trace id its record keeps: the right parent (the
harness's span id in ``traceparent``), names and attributes. An endpoint nobody listens on costs the
server one warning and its requests nothing."""

import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pandas as pd
import pytest
from PIL import Image

from harness.client import CaptionClient, to_record
from harness.protocols import ProtocolChoice
from harness.protocols.v1 import ContractV1Adapter
from harness.traceparent import trace_id_of, trace_ids

pytest.importorskip("torch")
trace_service_pb2 = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
trace_pb2 = pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")

STEPS = {"admission", "decode", "queue", "batch", "generate_content tiny"}


def _value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


class OtlpReceiver:
    """An OTLP/HTTP traces receiver: ``POST /v1/traces`` with ``application/x-protobuf``, each body
    decoded as an ``ExportTraceServiceRequest``; every span kept as a dict (ids in hex)."""

    def __init__(self):
        self.spans: list[dict] = []
        self.posts: list[tuple[str, str]] = []  # (path, content type)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.posts.append((self.path, self.headers.get("Content-Type", "")))
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(415)
                    self.end_headers()
                    return
                req = trace_service_pb2.ExportTraceServiceRequest()
                req.ParseFromString(body)
                receiver._keep(req)
                out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _keep(self, req) -> None:
        kept = []
        for rs in req.resource_spans:
            resource = _attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    kept.append(
                        {
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex() or None,
                            "name": s.name,
                            "kind": trace_pb2.Span.SpanKind.Name(s.kind),
                            "start_ns": s.start_time_unix_nano,
                            "end_ns": s.end_time_unix_nano,
                            "status": trace_pb2.Status.StatusCode.Name(s.status.code),
                            "attributes": _attrs(s.attributes),
                            "resource": resource,
                            "scope": ss.scope.name,
                        }
                    )
        with self.lock:
            self.spans.extend(kept)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def trace(self, trace_id: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def wait_for(self, trace_id: str, names: set[str], timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.trace(trace_id)
            if names <= {s["name"] for s in spans}:
                return spans
            time.sleep(0.05)
        raise AssertionError(f"spans of {trace_id} not all in after {timeout} s: {[s['name'] for s in spans]}")

    def __enter__(self) -> "OtlpReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


def _log_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def _check_request(spans: list[dict], request_id: str, route: str, status: int = 200) -> dict:
    """The spans of one request: its server span under the harness's span, the steps under it, the
    model under its batch, with their attributes; returns the spans by name."""
    by_name = {s["name"]: s for s in spans}
    root = by_name[f"POST {route}"]
    trace, parent = trace_ids(request_id)
    assert (root["trace_id"], root["parent_span_id"]) == (trace, parent)
    assert root["kind"] == "SPAN_KIND_SERVER"
    assert root["attributes"]["http.route"] == route
    assert root["attributes"]["http.request.method"] == "POST"
    assert root["attributes"]["http.response.status_code"] == status
    assert root["attributes"]["caption.request_id"] == request_id
    assert root["resource"]["service.name"] == "caption-reference-server"
    assert root["resource"]["service.version"].startswith("tiny-")
    for name in ("admission", "decode"):
        assert by_name[name]["parent_span_id"] == root["span_id"], name
        assert root["start_ns"] <= by_name[name]["start_ns"] <= by_name[name]["end_ns"] <= root["end_ns"]
    batch, model, queue = by_name["batch"], by_name["generate_content tiny"], by_name["queue"]
    assert model["parent_span_id"] == batch["span_id"] and model["kind"] == "SPAN_KIND_INTERNAL"
    assert queue["end_ns"] <= batch["start_ns"] + 1_000_000 and model["end_ns"] <= batch["end_ns"]
    attrs = model["attributes"]
    assert attrs["gen_ai.operation.name"] == "generate_content"
    assert attrs["gen_ai.request.model"] == "tiny"
    assert attrs["gen_ai.response.model"] == root["resource"]["service.version"]
    assert attrs["gen_ai.provider.name"] == "reference_model"
    assert isinstance(attrs["gen_ai.usage.output_tokens"], int) and attrs["gen_ai.usage.output_tokens"] > 0
    assert batch["attributes"]["caption.batch.size"] >= 1 and batch["attributes"]["caption.batch.id"] >= 1
    assert by_name["decode"]["attributes"]["caption.image.bytes"] > 0
    return by_name


def test_the_spans_of_known_requests_reach_an_otlp_receiver(server_factory, receiver, png, tmp_path):
    spans_file = tmp_path / "spans.jsonl"
    srv = server_factory(
        extra_args=["--otlp-endpoint", receiver.url, "--spans-file", str(spans_file)],
        env={"OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    records = []
    with CaptionClient(srv.url) as client:
        for k in range(3):
            result = client.caption(png, request_id=f"trace-v1-{k}")
            assert result.ok, result
            records.append(to_record(result, run_id="traces", target="baseline", scenario="test"))
    chat = ProtocolChoice(protocol="openai-chat", model="tiny").build()
    with CaptionClient(srv.url, adapter=chat) as client:
        result = client.caption(png, request_id="trace-chat-0")
        assert result.ok, result
        records.append(to_record(result, run_id="traces", target="baseline", scenario="test"))
    # The asynchronous route, as the pipeline user submits: the job's spans join its submission's trace.
    submit = ContractV1Adapter("/v1/caption:async").request(png, "image/png", "trace-job-0")
    assert submit.headers["traceparent"].split("-")[1] == trace_id_of("trace-job-0")
    doc = httpx.post(srv.url + submit.path, content=submit.content, headers=dict(submit.headers)).json()
    deadline = time.monotonic() + 30
    while doc["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
        doc = httpx.get(f"{srv.url}/v1/jobs/{doc['job_id']}").json()
    assert doc["status"] == "done"
    # A malformed traceparent: the server starts a trace of its own.
    bad = httpx.post(
        srv.url + "/v1/caption",
        content=png,
        headers={"Content-Type": "image/png", "X-Request-Id": "trace-bad-0", "traceparent": "00-not-a-trace-01"},
    )
    assert bad.status_code == 200

    for rec in records:
        assert rec.trace_id == trace_id_of(rec.request_id)
        route = "/v1/chat/completions" if rec.request_id.startswith("trace-chat") else "/v1/caption"
        spans = receiver.wait_for(rec.trace_id, STEPS | {f"POST {route}"})
        assert {s["trace_id"] for s in spans} == {rec.trace_id}  # the record's trace id finds them all
        assert len(spans) == 6, [s["name"] for s in spans]
        _check_request(spans, rec.request_id, route)

    job = receiver.wait_for(trace_id_of("trace-job-0"), STEPS | {"POST /v1/caption:async", "job"})
    by_name = {s["name"]: s for s in job}
    root = by_name["POST /v1/caption:async"]
    assert (root["trace_id"], root["parent_span_id"]) == trace_ids("trace-job-0")
    assert root["attributes"]["http.response.status_code"] == 202
    work = by_name["job"]
    assert work["parent_span_id"] == root["span_id"] and work["kind"] == "SPAN_KIND_CONSUMER"
    assert work["attributes"]["caption.job.status"] == "done"
    assert work["attributes"]["caption.job.id"] == doc["job_id"]
    assert by_name["queue"]["parent_span_id"] == by_name["batch"]["parent_span_id"] == work["span_id"]
    assert by_name["admission"]["parent_span_id"] == root["span_id"]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        bad_roots = [s for s in receiver.spans if s["attributes"].get("caption.request_id") == "trace-bad-0"]
        if bad_roots:
            break
        time.sleep(0.05)
    (bad_root,) = bad_roots
    assert bad_root["parent_span_id"] is None and bad_root["trace_id"] != trace_id_of("trace-bad-0")
    assert len(receiver.trace(bad_root["trace_id"])) >= 5

    assert {p for p in receiver.posts} == {("/v1/traces", "application/x-protobuf")}
    # The request log names each request's trace; the spans file holds the same spans as the receiver.
    logged = {ln["request_id"]: ln.get("trace_id") for ln in _log_lines(srv.output()) if ln.get("event") == "request"}
    assert logged["trace-v1-0"] == records[0].trace_id and logged["trace-chat-0"] == records[3].trace_id
    assert srv.stop() == 0
    lines = [json.loads(line) for line in spans_file.read_text().splitlines()]
    in_file = {(d["trace_id"], d["span_id"], d["name"]) for d in lines}
    received = {(s["trace_id"], s["span_id"], s["name"]) for s in receiver.spans}
    assert in_file == received
    assert not [ln for ln in _log_lines(srv.output()) if ln.get("level") in ("warning", "error")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_otlp_endpoint_nobody_listens_on_costs_one_warning_and_no_request(server_factory, png):
    endpoint = f"http://127.0.0.1:{_free_port()}"
    srv = server_factory(
        extra_args=["--otlp-endpoint", endpoint],
        env={"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1"},
    )

    def warnings() -> list[dict]:
        return [ln for ln in _log_lines(srv.output()) if ln.get("level") in ("warning", "error")]

    with CaptionClient(srv.url, timeout=10) as client:
        first = [client.caption(png, request_id=f"down-{k}") for k in range(8)]
        assert all(r.ok for r in first), first
        deadline = time.monotonic() + 30
        while not warnings() and time.monotonic() < deadline:
            time.sleep(0.1)
        second = [client.caption(png, request_id=f"down-more-{k}") for k in range(8)]
        assert all(r.ok for r in second), second
        time.sleep(1.0)  # more batches fail to go out meanwhile
        third = [client.caption(png, request_id=f"down-last-{k}") for k in range(4)]
        assert all(r.ok for r in third), third
    (warning,) = warnings()
    assert warning["logger"] == "reference_model.server"
    assert warning["message"].startswith(f"traces: {endpoint}/v1/traces did not take ")
    assert "requests are not affected" in warning["message"]
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 15  # the spans left are given up within the shutdown grace
    assert len(warnings()) == 1


def test_the_split_proxy_records_the_trace_its_client_sent(tmp_path, png):
    from harness.load.calibration import FixedResponseServer
    from harness.load.split import SplitProxy
    from harness.records import load_records
    from harness.traceparent import traceparent

    sent = {
        "p-harness": {"traceparent": traceparent("p-harness")},
        "p-other": {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"},
        "p-bad": {"traceparent": "00-xyz-01"},
        "p-none": {},
    }
    with (
        FixedResponseServer() as upstream,
        SplitProxy({"stable": upstream.url}, {}, tmp_path, seed=1) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):
        for rid, headers in sent.items():
            r = client.post(
                "/v1/caption", content=png, headers={"Content-Type": "image/png", "X-Request-Id": rid, **headers}
            )
            assert r.status_code == 200
    got = {r["request_id"]: r["trace_id"] for r in load_records(tmp_path).to_dict("records")}
    assert got["p-harness"] == trace_id_of("p-harness") and got["p-other"] == "ab" * 16
    assert pd.isna(got["p-bad"]) and pd.isna(got["p-none"])  # no trace the client sent: none recorded
