"""The built-in protocols: parsing on constructed answers, the reference server speaking each one
to the harness and to real clients (openai, tritonclient), evaluate/load/gate on every protocol,
confidence from log-probabilities, and credentials that never reach an output."""

from __future__ import annotations

import base64
import io
import json
import math
import secrets
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness.cli import main
from harness.client import CaptionClient, result_from_response
from harness.datasets import shapes_sample
from harness.errors import DataError, UsageError
from harness.protocols import PROTOCOLS, Auth, ProtocolChoice, load_adapter
from harness.protocols.hf_inference import HFInference
from harness.protocols.kserve_v2 import HEADER_LENGTH, KServeV2, pack_bytes, unpack_bytes
from harness.protocols.openai_chat import OpenAIChat
from harness.protocols.torchserve import TorchServe

ENV = "CAPTION_TEST_TOKEN"
MODEL = "tiny"
CHOICES = {name: ProtocolChoice(name, model=MODEL, auth_env=ENV) for name in PROTOCOLS}


def _png(i: int = 3) -> bytes:
    buf = io.BytesIO()
    shapes_sample(i, 0).image.save(buf, "PNG")
    return buf.getvalue()


def _parse(adapter, body: bytes | dict | list, headers: dict | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return result_from_response(adapter, "r", 0.0, 0.1, 200, headers or {}, raw)


# -- parsing constructed answers -------------------------------------------------------------------


def _chat(logprobs, content="a red circle", usage=None) -> dict:
    doc = {
        "id": "c1",
        "model": "m-7",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
    }
    if usage is not None:
        doc["usage"] = usage
    return doc


def test_openai_chat_request_and_confidence_from_logprobs() -> None:
    a = OpenAIChat("m", prompt="Caption it.").use_auth(Auth(ENV), {ENV: "tok"})
    req = a.request(b"\x89PNG", "image/png", "rid")
    doc = json.loads(req.content)
    assert (req.method, req.path, req.headers["Authorization"]) == ("POST", "/v1/chat/completions", "Bearer tok")
    assert doc["logprobs"] is True and doc["model"] == "m"
    parts = doc["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "Caption it."}
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
    lps = [math.log(0.5), math.log(0.8), 0.0]
    r = _parse(
        a,
        _chat(
            {"content": [{"token": t, "logprob": lp} for t, lp in zip("abc", lps)]},
            usage={"prompt_tokens": 9, "completion_tokens": 3},
        ),
    )
    assert r.outcome == "ok" and r.caption == "a red circle" and r.model_version == "m-7"
    assert r.confidence == pytest.approx((0.5 * 0.8 * 1.0) ** (1 / 3), abs=1e-12)
    assert (r.prompt_tokens, r.completion_tokens) == (9, 3)
    # No log-probabilities: no confidence (null, never zero), and no usage: no token counts.
    for missing in (None, {"content": None}, {"content": []}):
        r = _parse(a, _chat(missing))
        assert (r.outcome, r.confidence, r.prompt_tokens) == ("ok", None, None)
    assert _parse(a, _chat({"content": [{"token": "a", "logprob": "x"}]})).outcome == "invalid_response"
    assert _parse(a, _chat({"content": [{"token": "a", "logprob": 0.5}]})).outcome == "invalid_response"
    assert _parse(a, {"choices": []}).outcome == "invalid_response"
    assert _parse(a, _chat(None, content=None)).outcome == "invalid_response"


def test_kserve_v2_json_and_binary_requests_and_answers() -> None:
    a = KServeV2("cap")
    req = a.request(b"IMG", "image/png", "rid")
    body = json.loads(req.content)
    assert req.path == "/v2/models/cap/infer"
    assert body["inputs"] == [
        {
            "name": "image",
            "shape": [1],
            "datatype": "BYTES",
            "parameters": {"content_type": "base64"},
            "data": [base64.b64encode(b"IMG").decode()],
        }
    ]
    b = KServeV2("cap", version="3", encoding="binary", input="pixels")
    req = b.request(b"IMG", "image/png", "rid")
    n = int(req.headers[HEADER_LENGTH])
    head = json.loads(req.content[:n])
    assert b.path == "/v2/models/cap/versions/3/infer"
    assert head["inputs"][0]["name"] == "pixels" and unpack_bytes(req.content[n:]) == [b"IMG"]
    outputs = [
        {"name": "caption", "datatype": "BYTES", "shape": [1], "data": ["two squares"]},
        {"name": "confidence", "datatype": "FP32", "shape": [1], "data": [0.25]},
    ]
    r = _parse(a, {"model_name": "cap", "model_version": "7", "outputs": outputs})
    assert (r.outcome, r.caption, r.confidence, r.model_version) == ("ok", "two squares", 0.25, "7")
    r = _parse(a, {"outputs": outputs[:1]})  # no confidence output: no confidence
    assert (r.outcome, r.confidence) == ("ok", None)
    assert _parse(KServeV2("cap", caption_output="text"), {"outputs": outputs}).outcome == "invalid_response"
    # An answer in the binary extension.
    blob = pack_bytes([b"a dog"])
    head = json.dumps(
        {
            "outputs": [
                {"name": "caption", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(blob)}},
                {"name": "confidence", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}},
            ]
        }
    ).encode()
    raw = head + blob + np.float32(0.5).tobytes()
    r = _parse(a, raw, {HEADER_LENGTH.lower(): str(len(head))})
    assert (r.outcome, r.caption, r.confidence) == ("ok", "a dog", 0.5)
    assert _parse(a, raw[:-3], {HEADER_LENGTH: str(len(head))}).outcome == "invalid_response"


def test_torchserve_and_hf_inference_answers() -> None:
    t = TorchServe("cap", version="2")
    req = t.request(b"IMG", "image/jpeg", "rid")
    assert (req.path, req.content, req.headers["Content-Type"]) == ("/predictions/cap/2", b"IMG", "image/jpeg")
    assert (
        _parse(t, {"caption": "a cat", "confidence": 0.5}).confidence,
        _parse(t, {"caption": "a cat"}).confidence,
    ) == (0.5, None)
    assert _parse(t, b"a cat on a mat\n").caption == "a cat on a mat"
    assert _parse(t, ["a cat"]).caption == "a cat"
    assert _parse(t, {"text": "a cat"}).outcome == "invalid_response"
    assert _parse(t, {"caption": "a", "confidence": 3}).outcome == "invalid_response"
    h = HFInference("org/captioner")
    assert h.request(b"IMG", "image/png", "r").path == "/models/org/captioner" and HFInference().path == "/"
    r = _parse(h, [{"generated_text": " a boat "}])
    assert (r.outcome, r.caption, r.confidence) == ("ok", "a boat", None)
    assert _parse(h, {"error": "loading"}).outcome == "invalid_response"


def test_protocol_choices_adapter_files_and_credentials(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(UsageError, match="needs a model name"):
        ProtocolChoice("openai-chat").build()
    with pytest.raises(UsageError, match=f"{ENV} .*not set"):
        ProtocolChoice("v1", auth_env=ENV).build()
    monkeypatch.setenv(ENV, "s3cret\n")
    with pytest.raises(UsageError, match=f"{ENV} .*printable ASCII") as info:
        ProtocolChoice("v1", auth_env=ENV).build()
    assert "s3cret" not in str(info.value)
    monkeypatch.setenv(ENV, "s3cret")
    a = ProtocolChoice("torchserve", model="m", auth_env=ENV, auth_header="X-API-Key").build()
    assert a.request(b"x", "image/png", "r").headers["X-API-Key"] == "s3cret"
    assert "s3cret" not in json.dumps(ProtocolChoice("v1", auth_env=ENV).describe())
    f = tmp_path / "chat.yaml"
    f.write_text(
        f"protocol: openai-chat\nmodel: qwen\nprompt: Say what you see.\nmax_tokens: 12\n"
        f"auth: {{type: header, header: api-key, env: {ENV}}}\n"
    )
    a = load_adapter(f)
    req = a.request(b"x", "image/png", "r")
    assert isinstance(a, OpenAIChat) and a.model == "qwen" and req.headers["api-key"] == "s3cret"
    assert json.loads(req.content)["max_tokens"] == 12
    assert ProtocolChoice(adapter=str(f), model="other").build().model == "other"
    assert a.describe()["auth"] == {"type": "header", "env": ENV, "header": "api-key"}
    f.write_text("protocol: openai-chat\nmodel: q\ntemperature_k: 1\n")
    with pytest.raises(DataError, match="has no option temperature_k"):
        load_adapter(f)
    f.write_text("protocol: kserve-v2\nmodel: q\nencoding: hex\n")
    with pytest.raises(DataError, match="encoding"):
        load_adapter(f)
    f.write_text("caption: $.text\n")
    with pytest.raises(UsageError, match="is a template adapter: use one or the other"):
        ProtocolChoice("openai-chat", adapter=str(f), model="m").build()
    with pytest.raises(UsageError, match="unknown protocol"):
        ProtocolChoice("grpc").build()


def test_cli_refuses_a_bad_protocol_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    for args, message in (
        (["--protocol", "kserve-v2"], "needs a model name"),
        (["--protocol", "v1", "--auth-env", ENV], f"{ENV} (named for auth) is not set"),
    ):
        code = main(
            ["evaluate", "--target", "http://127.0.0.1:9", "--dataset", "shapes:2", "--out", str(tmp_path / "o"), *args]
        )
        err = capsys.readouterr().err.strip()
        assert code == 64 and message in err and len(err.splitlines()) == 1, err


def test_a_missing_confidence_is_no_data_for_the_judge_not_zero() -> None:
    import pandas as pd

    from harness.canary import JudgeConfig
    from harness.canary.judge import classify
    from harness.canary.observations import TargetData, metric_samples
    from harness.records import RequestRecord

    def target(conf):
        ev = pd.DataFrame(
            [
                RequestRecord(
                    "r",
                    "t",
                    "evaluate",
                    f"q{i}",
                    str(i),
                    1.0 + i,
                    0.1,
                    200,
                    "ok",
                    caption="a red circle",
                    confidence=c,
                    safety_flagged=False,
                ).to_dict()
                for i, c in enumerate(conf)
            ]
        )
        return TargetData(evaluation=ev, per_image_quality={str(i): 1.0 for i in range(30)})

    cfg = JudgeConfig()
    baseline, canary = target([0.9] * 30), target([None] * 30)  # e.g. hf-inference: no confidence at all
    samples = metric_samples(cfg.metrics, baseline, canary)
    for name in ("confidence", "calibration"):
        result = classify(cfg.metric(name), samples[name], cfg)
        assert result.classification == "NoData" and result.n_canary == 0, (name, result.reason)
        assert "canary has 0 observations" in result.reason


# -- the reference server on every protocol ---------------------------------------------------------


@pytest.fixture(scope="module")
def secret() -> str:
    return "sk-test-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def server(secret):
    pytest.importorskip("torch")
    from reference_model.server.launch import start_server

    # The key reaches the server by its environment too, never by a command line.
    with start_server(MODEL, extra_args=["--threads", "1"], env={"CAPTION_API_KEY": secret}) as srv:
        yield srv


@pytest.fixture
def token(secret, monkeypatch) -> str:
    monkeypatch.setenv(ENV, secret)
    return secret


@pytest.mark.slow
def test_every_protocol_gets_the_same_caption_from_the_reference_server(server, token) -> None:
    png = _png()
    results = {}
    for name, choice in CHOICES.items():
        with CaptionClient(server.url, timeout=30, adapter=choice.build()) as c:
            results[name] = c.caption(png)
        with CaptionClient(server.url, timeout=30, adapter=ProtocolChoice(name, model=MODEL).build()) as c:
            assert c.caption(png).status == 401, name  # every route asks for the key
        with CaptionClient(
            server.url, timeout=30, adapter=ProtocolChoice(name, model="nope", auth_env=ENV).build()
        ) as c:
            assert c.caption(png).status == (200 if name == "v1" else 404), name
    assert {r.outcome for r in results.values()} == {"ok"}
    assert len({r.caption for r in results.values()}) == 1
    base = results["v1"]
    for name in ("openai-chat", "kserve-v2", "torchserve"):
        assert abs(results[name].confidence - base.confidence) <= 1e-6, name
    assert results["hf-inference"].confidence is None
    assert results["openai-chat"].model_version == base.model_version == results["kserve-v2"].model_version
    assert results["openai-chat"].completion_tokens == len(base.caption.replace(",", " ,").split()) + 1
    binary = KServeV2(MODEL, encoding="binary").use_auth(Auth(ENV))
    with CaptionClient(server.url, timeout=30, adapter=binary) as c:
        r = c.caption(png)
    assert r.caption == base.caption and abs(r.confidence - base.confidence) <= 1e-6


@pytest.mark.slow
def test_confidence_from_logprobs_is_the_models_own(server, token) -> None:
    from harness.image import decode_image
    from reference_model.tiny import TinyCaptioner

    model = TinyCaptioner(MODEL)
    pngs = [_png(i) for i in range(8)]
    own = model.caption([decode_image(p) for p in pngs])
    with CaptionClient(server.url, timeout=30, adapter=CHOICES["openai-chat"].build()) as c:
        answers = [c.caption(p) for p in pngs]
    for cap, r in zip(own, answers):
        assert r.caption == cap.text
        assert abs(r.confidence - cap.confidence) <= 1e-6
        assert abs(math.exp(sum(lp for _, lp in cap.token_logprobs) / len(cap.token_logprobs)) - cap.confidence) <= 1e-6
        assert "".join(t for t, _ in cap.token_logprobs) == cap.text


@pytest.mark.slow
def test_the_openai_package_talks_to_the_reference_server(server, token) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=token, max_retries=0, timeout=30)
    assert [m.id for m in client.models.list().data] == [MODEL]
    url = "data:image/png;base64," + base64.b64encode(_png()).decode()
    resp = client.chat.completions.create(
        model=MODEL,
        logprobs=True,
        top_logprobs=1,
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in the image?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    )
    choice = resp.choices[0]
    tokens = choice.logprobs.content
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "".join(t.token for t in tokens) == choice.message.content and tokens[-1].token == ""
    assert all(t.logprob <= 0 and t.top_logprobs[0].token == t.token for t in tokens)
    assert resp.usage.completion_tokens == len(tokens) and resp.usage.prompt_tokens == 5 + 1
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    short = client.chat.completions.create(
        model=MODEL,
        max_tokens=2,
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
    )
    assert short.choices[0].finish_reason == "length" and short.choices[0].logprobs is None
    assert short.choices[0].message.content == "".join(t.token for t in tokens[:2])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
        )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "no image"}])
    anonymous = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        anonymous.models.list()


@pytest.mark.slow
def test_tritonclient_talks_to_the_v2_route(server, token) -> None:
    pytest.importorskip("geventhttpclient")
    httpclient = pytest.importorskip("tritonclient.http")
    auth = {"Authorization": f"Bearer {token}"}

    def headers() -> dict:  # a fresh dict per call: tritonclient adds its own headers to the one it is given
        return dict(auth)

    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=30)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
        meta = client.get_model_metadata(MODEL, headers=headers())
        assert meta["name"] == MODEL and [o["name"] for o in meta["outputs"]] == ["caption", "confidence"]
        pngs = [_png(3), _png(4)]
        expected = []
        for p in pngs:
            expected.append(
                httpx.post(
                    server.url + "/v1/caption", content=p, headers={"Content-Type": "image/png", **auth}, timeout=30
                ).json()
            )
        # Raw bytes in the binary extension, answers in binary and in JSON.
        tensor = httpclient.InferInput("image", [2], "BYTES")
        tensor.set_data_from_numpy(np.array(pngs, dtype=np.object_), binary_data=True)
        outputs = [
            httpclient.InferRequestedOutput("caption", binary_data=True),
            httpclient.InferRequestedOutput("confidence", binary_data=False),
        ]
        res = client.infer(MODEL, [tensor], outputs=outputs, headers=headers(), request_id="t-1")
        captions = [c.decode() if isinstance(c, bytes) else c for c in res.as_numpy("caption")]
        assert captions == [e["caption"] for e in expected]
        assert np.allclose(res.as_numpy("confidence"), [e["confidence"] for e in expected], atol=1e-6)
        assert res.get_response()["model_version"] == expected[0]["model_version"]
        # Base64 text in JSON.
        tensor = httpclient.InferInput("image", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([base64.b64encode(pngs[0])], dtype=np.object_), binary_data=False)
        res = client.infer(MODEL, [tensor], headers=headers())
        assert res.as_numpy("caption")[0] in (expected[0]["caption"], expected[0]["caption"].encode())
        with pytest.raises(Exception, match="not served"):
            client.infer("other", [tensor], headers=headers())
    finally:
        client.close()


# -- evaluate, load and gate on every protocol ----------------------------------------------------------


def _no_secret(secret: str, folder: Path, *texts: str) -> None:
    """The secret is in no file under ``folder`` and none of ``texts``."""
    assert all(secret not in t for t in texts)
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert secret.encode() not in p.read_bytes(), p


@pytest.mark.slow
def test_evaluate_on_every_protocol(server, token, tmp_path, capsys) -> None:
    """The command on hf-inference (no confidence at all); the evaluation it runs on kserve-v2 (from
    an adapter file, raw bytes in the binary extension) and torchserve. v1 and openai-chat are
    evaluated by the gate below: each command run costs a data contract check of ~10 s."""
    from harness.client import AsyncCaptionClient
    from harness.quality.evaluation import parse_dataset, run_evaluation
    from harness.records import RecordWriter

    out = tmp_path / "hf-inference"
    code = main(
        [
            "evaluate",
            "--target",
            server.url,
            "--dataset",
            "shapes:6",
            "--out",
            str(out),
            "--protocol",
            "hf-inference",
            "--model",
            MODEL,
            "--auth-env",
            ENV,
            "--metrics",
            "cider",
            "--bootstrap",
            "0",
            "--concurrency",
            "3",
        ]
    )
    std = capsys.readouterr()
    assert code == 0, std.err
    _no_secret(token, out, std.out, std.err)
    doc = json.loads((out / "quality.json").read_text())
    assert doc["run"]["protocol"] == {
        "protocol": "hf-inference",
        "auth": {"type": "bearer", "env": ENV},
        "path": f"/models/{MODEL}",
        "model": MODEL,
    }
    adapter_file = tmp_path / "v2.yaml"
    adapter_file.write_text(
        f"protocol: kserve-v2\nmodel: {MODEL}\nencoding: binary\nauth: {{type: header, "
        f"header: X-API-Key, env: {ENV}}}\n"
    )
    rows = {"hf-inference": [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]}
    for name, choice in (
        ("kserve-v2", ProtocolChoice(adapter=str(adapter_file))),
        ("torchserve", CHOICES["torchserve"]),
    ):
        adapter = choice.build()
        with RecordWriter(tmp_path / name) as w:
            summary = run_evaluation(
                lambda a=adapter: AsyncCaptionClient(server.url, 30, adapter=a, max_connections=3),
                parse_dataset("shapes:6"),
                w,
                run_id="r",
                target=name,
                concurrency=3,
            )
        assert summary.n_ok == 6
        rows[name] = [json.loads(line) for line in (tmp_path / name / "records.jsonl").read_text().splitlines()]
    captions = {}
    for name, rs in rows.items():
        assert {r["outcome"] for r in rs} == {"ok"} and len(rs) == 6
        captions[name] = {r["image_id"]: r["caption"] for r in rs}
        assert {r["confidence"] is None for r in rs} == {name == "hf-inference"}, name
        assert {r["prompt_tokens"] for r in rs} == {None}
    assert captions["kserve-v2"] == captions["torchserve"] == captions["hf-inference"]


@pytest.mark.slow
def test_load_on_every_protocol(server, token, tmp_path, capsys) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def load(name: str) -> int:  # the command waits on its Locust process: five run at once
        return main(
            [
                "load",
                "--scenario",
                "steady",
                "--target",
                server.url,
                "--duration",
                "2s",
                "--users",
                "1",
                "--pool-size",
                "3",
                "--out",
                str(tmp_path / name),
                "--protocol",
                name,
                "--model",
                MODEL,
                "--auth-env",
                ENV,
            ]
        )

    with ThreadPoolExecutor(len(PROTOCOLS)) as pool:
        codes = dict(zip(PROTOCOLS, pool.map(load, PROTOCOLS)))
    std = capsys.readouterr()
    assert codes == {name: 0 for name in PROTOCOLS}, std.err
    _no_secret(token, tmp_path, std.out, std.err)
    for name in PROTOCOLS:
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["requests"] > 0 and summary["outcomes"]["ok"] == summary["requests"], name
        assert summary["settings"]["protocol"]["protocol"] == name


@pytest.mark.slow
def test_gate_judges_a_canary_on_another_protocol(server, token, tmp_path, capsys) -> None:
    out = tmp_path / "gate"
    code = main(
        [
            "gate",
            "--baseline",
            server.url,
            "--canary",
            server.url,
            "--baseline-protocol",
            "v1",
            "--canary-protocol",
            "openai-chat",
            "--model",
            MODEL,
            "--auth-env",
            ENV,
            "--dataset",
            "shapes:20",
            "--duration",
            "3s",
            "--users",
            "1",
            "--concurrency",
            "2",
            "--out",
            str(out),
        ]
    )
    std = capsys.readouterr()
    assert code in (0, 1, 2), std.err
    _no_secret(token, out, std.out, std.err)
    rec = json.loads((out / "decision.json").read_text())
    targets = rec["inputs"]["targets"]
    assert (targets["baseline"]["protocol"], targets["canary"]["protocol"]) == ("v1", "openai-chat")
    assert targets["baseline"]["model_version"] == targets["canary"]["model_version"]
    assert "| protocol | `v1` | `openai-chat` |" in (out / "summary.md").read_text()
    metrics = {m["name"]: m for m in rec["metrics"]}
    assert metrics["quality"]["effect"] == 0.0 and metrics["caption_changed"]["effect"] == 0.0
    assert metrics["confidence"]["classification"] == "Pass" and abs(metrics["confidence"]["effect"]) <= 1e-6
    assert rec["drift"]["drifted"] is False  # without embeddings from the canary: compared on what both have
    import pandas as pd

    df = pd.read_parquet(out / "records.parquet")
    assert df.loc[df["target"] == "canary", "prompt_tokens"].notna().all()
    assert df.loc[df["target"] == "baseline", "prompt_tokens"].isna().all()
