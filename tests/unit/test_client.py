"""The contract v1 client, the adapter for other APIs, and the classification of every outcome."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
from pathlib import Path

import httpx
import pytest

from harness.client import (
    AsyncCaptionClient,
    CaptionClient,
    CaptionResult,
    ContractV1Adapter,
    ParsedCaption,
    TemplateAdapter,
    json_path,
    load_adapter,
    outcome_of_exception,
    result_from_exception,
    result_from_parsed,
    result_from_response,
    to_record,
)
from harness.datasets import shapes_sample
from harness.errors import DataError, InputMissingError, UsageError
from harness.load.calibration import CONTRACT_V1_BODY, FixedResponseServer


def _png() -> bytes:
    buf = io.BytesIO()
    shapes_sample(3, 0).image.save(buf, "PNG")
    return buf.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- parsing and classification ----------------------------------------------------------------


def _body(**kw) -> bytes:
    doc = {
        "request_id": "a",
        "caption": "a red circle",
        "confidence": 0.75,
        "model_version": "m",
        "server_latency_ms": 12.5,
        "safety": {"flagged": True, "reasons": ["pii"]},
    }
    doc.update(kw)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_contract_v1_answer_is_ok_with_every_field() -> None:
    r = result_from_response(ContractV1Adapter(), "a", 10.0, 0.5, 200, {}, _body(embedding=[1, 2.5]))
    assert (r.outcome, r.status, r.caption, r.confidence, r.model_version) == ("ok", 200, "a red circle", 0.75, "m")
    assert r.safety_flagged is True and r.embedding == [1.0, 2.5] and r.server_latency_ms == 12.5
    rec = to_record(
        r, run_id="run", target="canary", scenario="steady", image_id="7", image_bytes=9, image_w=4, image_h=5
    )
    assert (rec.run_id, rec.target, rec.request_id, rec.t_start, rec.latency_s) == ("run", "canary", "a", 10.0, 0.5)
    assert (rec.image_id, rec.image_w, rec.image_h, rec.embedding) == ("7", 4, 5, [1.0, 2.5])
    assert to_record(r, run_id="r", target="t", scenario="s", keep_embedding=False).embedding is None


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"confidence": 1},
        {"confidence": 0.0},
        {"server_latency_ms": 12},
        {"server_latency_ms": True},
        {"model_version": 3},
        {"request_id": None},
        {"safety": ...},
        {"safety": {"flagged": None}},
        {"embedding": [1, 2.5]},
        {"embedding": None},
        {"caption": ""},
    ],
)
def test_the_usual_v1_answer_reads_as_the_full_checks_read_it(changes: dict) -> None:
    adapter = ContractV1Adapter()
    body = _body(**changes)
    assert adapter.parse(200, {}, body) == adapter._parse_doc(json.loads(body))
    r = result_from_response(adapter, "a", 10.0, 0.5, 200, None, body)
    p = adapter._parse_doc(json.loads(body))
    expected = CaptionResult(
        "ok",
        200,
        0.5,
        10.0,
        "a",
        caption=p.caption,
        confidence=p.confidence,
        model_version=p.model_version,
        safety_flagged=p.safety_flagged,
        embedding=p.embedding,
        server_latency_ms=p.server_latency_ms,
    )
    assert r == expected
    assert repr(r) == repr(expected)


def test_an_answer_read_by_any_protocol_keeps_every_field_in_its_result() -> None:
    p = ParsedCaption("a caption", 0.5, "m-2", "rid", True, [0.25], 7.5, 11, 13, 0.125, [0.01, 0.02], 0.0625)
    r = result_from_parsed(p, "req-1", 10.0, 0.5, 203)
    assert r == CaptionResult(
        "ok",
        203,
        0.5,
        10.0,
        "req-1",
        caption="a caption",
        confidence=0.5,
        model_version="m-2",
        safety_flagged=True,
        embedding=[0.25],
        server_latency_ms=7.5,
        prompt_tokens=11,
        completion_tokens=13,
        ttft_s=0.125,
        itl_s=[0.01, 0.02],
        tpot_s=0.0625,
    )
    assert r.error is None and r.retry_after_s is None


@pytest.mark.parametrize(
    "body, why",
    [
        (b"<html>nope</html>", "not JSON"),
        (b"", "empty body"),
        (b"[1, 2]", "JSON object"),
        (_body(caption=...), "caption"),
        (_body(confidence=1.5), "outside [0, 1]"),
        (_body(confidence="high"), "not a number"),
        (_body(embedding=["x"]), "embedding"),
    ],
)
def test_a_2xx_that_breaks_the_contract_is_invalid_response(body: bytes, why: str) -> None:
    r = result_from_response(ContractV1Adapter(), "a", 0.0, 0.1, 200, {}, body)
    assert r.outcome == "invalid_response" and r.status == 200 and why in r.error


def test_error_statuses_are_http_errors_with_the_servers_reason() -> None:
    body = json.dumps({"error": {"code": "queue_full", "message": "try later"}}).encode()
    r = result_from_response(ContractV1Adapter(), "a", 0.0, 0.1, 429, {"retry-after": "2"}, body)
    assert (r.outcome, r.status, r.retry_after_s) == ("http_error", 429, 2.0)
    assert r.error == "HTTP 429: queue_full: try later"
    r = result_from_response(ContractV1Adapter(), "a", 0.0, 0.1, 502, {}, b"bad gateway")
    assert (r.outcome, r.error) == ("http_error", "HTTP 502: bad gateway")


class _Wrapped(Exception):
    def __init__(self, original: BaseException):
        super().__init__("retries exceeded")
        self.original = original


@pytest.mark.parametrize(
    "exc, outcome",
    [
        (ConnectionRefusedError(111, "refused"), "connection_error"),
        (ConnectionResetError(104, "reset"), "connection_error"),
        (socket.timeout("timed out"), "timeout"),
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.ConnectError("refused"), "connection_error"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), "connection_error"),
        (httpx.RemoteProtocolError("illegal status line: bytearray(b'\\x00\\xff')"), "invalid_response"),
        (_Wrapped(socket.timeout("timed out")), "timeout"),
        (_Wrapped(ConnectionRefusedError(111, "refused")), "connection_error"),
    ],
)
def test_exceptions_are_classified(exc: BaseException, outcome: str) -> None:
    assert outcome_of_exception(exc)[0] == outcome
    r = result_from_exception("a", 1.0, 0.2, exc)
    assert (r.outcome, r.status, r.latency_s) == (outcome, 0, 0.2) and r.error


# -- the adapter for other APIs ----------------------------------------------------------------


def test_json_path_forms() -> None:
    doc = {"predictions": [{"caption": "x", "score": 0.5}], "a b": {"c": 1}}
    assert json_path(doc, "$.predictions[0].caption") == "x"
    assert json_path(doc, "predictions[0].score") == 0.5
    assert json_path(doc, "$['a b'].c") == 1
    assert json_path(doc, "$.predictions[3].caption") is None
    assert json_path(doc, "$.missing.deeper") is None
    with pytest.raises(UsageError, match="bad JSON path"):
        json_path(doc, "$.predictions[x]")


def test_template_adapter_json_body_and_paths() -> None:
    a = TemplateAdapter(
        "$.outputs[0].text",
        "$.outputs[0].prob",
        path="predict",
        body={"instances": [{"b64": "{image_base64}", "id": "{request_id}"}]},
        headers={"X-Trace": "t-{request_id}"},
        model_version_path="$.model",
    )
    req = a.request(b"\x01\x02", "image/png", "rid1", api_key="k")
    assert (req.method, req.path) == ("POST", "/predict")
    assert json.loads(req.content) == {"instances": [{"b64": base64.b64encode(b"\x01\x02").decode(), "id": "rid1"}]}
    assert req.headers["X-Trace"] == "t-rid1" and req.headers["Authorization"] == "Bearer k"
    good = json.dumps({"outputs": [{"text": "two squares", "prob": 0.25}], "model": "v9"}).encode()
    r = result_from_response(a, "rid1", 0.0, 0.1, 200, {}, good)
    assert (r.outcome, r.caption, r.confidence, r.model_version) == ("ok", "two squares", 0.25, "v9")
    bad = json.dumps({"outputs": [{"text": "two squares"}]}).encode()
    assert result_from_response(a, "rid1", 0.0, 0.1, 200, {}, bad).outcome == "invalid_response"


def test_template_adapter_without_confidence_and_multipart() -> None:
    a = TemplateAdapter("caption", None, body="multipart:file")
    req = a.request(b"PNGDATA", "image/png", "r")
    assert req.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="image.png"' in req.content and b"PNGDATA" in req.content
    r = result_from_response(a, "r", 0.0, 0.1, 200, {}, b'{"caption": "a dog"}')
    assert (r.outcome, r.caption, r.confidence) == ("ok", "a dog", None)


def test_load_adapter_files(tmp_path: Path) -> None:
    y = tmp_path / "a.yaml"
    y.write_text("request:\n  path: /v2/describe\n  body: raw\ncaption: $.text\nconfidence: $.p\n")
    a = load_adapter(y)
    assert a.path == "/v2/describe" and a.caption_path == "$.text" and a.confidence_path == "$.p"
    with pytest.raises(InputMissingError):
        load_adapter(tmp_path / "none.json")
    bad = tmp_path / "b.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_adapter(bad)
    bad.write_text(json.dumps({"confidence": "$.p"}))
    with pytest.raises(DataError, match="caption"):
        load_adapter(bad)
    bad.write_text(json.dumps({"caption": "$.x", "request": {"verb": "GET"}}))
    with pytest.raises(DataError, match="unknown request field"):
        load_adapter(bad)


# -- the clients against real loopback servers ----------------------------------------------------


def test_client_against_fixed_answers_garbage_down_and_silent_targets() -> None:
    png = _png()
    with FixedResponseServer() as srv, CaptionClient(srv.url, timeout=5) as c:
        r = c.caption(png, request_id="abc")
        assert (r.outcome, r.status, r.caption, r.request_id) == ("ok", 200, "a large red circle", "abc")
        assert r.latency_s > 0
    with FixedResponseServer(body=b'{"text": "not contract v1"}') as srv, CaptionClient(srv.url, timeout=5) as c:
        assert c.caption(png).outcome == "invalid_response"
    with FixedResponseServer(garbage=True) as srv, CaptionClient(srv.url, timeout=5) as c:
        r = c.caption(png)
        assert (r.outcome, r.status) == ("invalid_response", 0)
    with CaptionClient(f"http://127.0.0.1:{_closed_port()}", timeout=5) as c:
        r = c.caption(png)
        assert (r.outcome, r.status) == ("connection_error", 0)
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        with CaptionClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3) as c:
            r = c.caption(png)
            assert (r.outcome, r.status) == ("timeout", 0) and r.latency_s >= 0.3


def test_template_adapter_against_a_loopback_api() -> None:
    body = json.dumps({"result": {"text": "a blue square", "score": 0.6}}).encode()
    adapter = TemplateAdapter("$.result.text", "$.result.score", path="/describe", body={"image": "{image_base64}"})
    with FixedResponseServer(body=body) as srv, CaptionClient(srv.url, adapter=adapter) as c:
        r = c.caption(_png())
        assert (r.outcome, r.caption, r.confidence) == ("ok", "a blue square", 0.6)


def test_async_client_matches_the_sync_one() -> None:
    async def go(url: str):
        async with AsyncCaptionClient(url, timeout=5) as c:
            return await asyncio.gather(*(c.caption(_png(), request_id=f"r{i}") for i in range(5)))

    with FixedResponseServer() as srv:
        results = asyncio.run(go(srv.url))
    assert [r.outcome for r in results] == ["ok"] * 5 and [r.request_id for r in results] == [f"r{i}" for i in range(5)]
    assert asyncio.run(go(f"http://127.0.0.1:{_closed_port()}"))[0].outcome == "connection_error"


def test_client_against_the_reference_server(reference_server) -> None:
    with CaptionClient(reference_server.url, timeout=30) as c:
        r = c.caption(_png(), request_id="req-1", return_embedding=True)
        assert (r.outcome, r.status, r.request_id) == ("ok", 200, "req-1")
        assert r.caption and 0.0 <= r.confidence <= 1.0 and r.model_version
        assert r.embedding and all(isinstance(x, float) for x in r.embedding) and r.safety_flagged is False
        assert c.caption(_png()).embedding is None
        bad = c.caption(b"", "image/png")
        assert (bad.outcome, bad.status) == ("http_error", 400) and "HTTP 400" in bad.error
        wrong = c.caption(_png(), "text/plain")
        assert (wrong.outcome, wrong.status) == ("http_error", 415)
    with FixedResponseServer(body=CONTRACT_V1_BODY) as srv, CaptionClient(srv.url) as c:
        assert c.caption(_png()).model_version == "fixed-1"
