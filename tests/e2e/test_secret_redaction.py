"""The credential a run sends never lands in what the harness stores: a loopback target that echoes
the Authorization / X-API-Key header it got into its captions, model version and error messages,
driven by ``harness evaluate``, ``harness load`` (two worker processes) and ``harness gate``; every
byte under ``--out`` is searched for the key."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from harness.cli import main
from harness.client import CaptionClient
from harness.protocols import ProtocolChoice
from harness.records import RecordWriter, load_records, read_jsonl, record_line
from harness.redaction import MIN_SECRET_CHARS, REDACTED, Redactor, credential_values

KEY = "sk-test-7f3a9c1e5b2d"


def _echoed(headers) -> str:
    """What the target heard of the credential: the headers' values, as sent."""
    return " ".join(v for v in (headers.get("Authorization"), headers.get("X-API-Key")) if v)


class _Echo(BaseHTTPRequestHandler):
    """Contract v1, echoing the credential everywhere it can: the caption, the model version, the
    model info, and the error of every first attempt (503, retry at once) and every fifth request."""

    lock = threading.Lock()
    count = [0]

    def _send(self, status: int, doc: dict, extra: dict | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        heard = _echoed(self.headers)
        if self.path == "/v1/model":
            self._send(200, {"name": f"echo {heard}", "version": f"m-{heard}", "device": "cpu"})
        elif self.path in ("/healthz", "/readyz"):
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": {"code": "not_found", "message": f"{self.path} (key {heard})"}})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        heard = _echoed(self.headers)
        rid = self.headers.get("X-Request-Id") or ""
        with self.lock:
            self.count[0] += 1
            n = self.count[0]
        if rid.endswith("-0") or (n % 5 == 0 and not rid.startswith("eval")):
            self._send(
                503,
                {"error": {"code": "not_ready", "message": f"key {heard} is not ready"}},
                {"Retry-After": "0"},
            )
            return
        doc = {
            "request_id": rid,
            "caption": f"a red circle seen with {heard}",
            "confidence": 0.8,
            "model_version": f"m-{heard}",
            "server_latency_ms": 1.0,
            "safety": {"flagged": False, "reasons": []},
        }
        self._send(200, doc)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def echo_target() -> Iterator[str]:
    handler = type("Echo", (_Echo,), {"lock": threading.Lock(), "count": [0]})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _files_holding(folder: Path, secret: str) -> list[str]:
    """Every file under ``folder`` whose bytes hold ``secret`` (as UTF-8, or JSON-escaped)."""
    needles = {secret.encode(), json.dumps(secret)[1:-1].encode()}
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and any(n in p.read_bytes() for n in needles)
    )


# -- the redaction step ----------------------------------------------------------------------------
def test_redactor_replaces_each_secret_and_ignores_short_ones() -> None:
    r = Redactor([KEY, "abc", "", None, KEY[:8]])
    assert MIN_SECRET_CHARS == 4 and r.secrets == (KEY, KEY[:8])  # "abc" would match ordinary text
    assert r.text(f"Bearer {KEY}; half {KEY[:8]}; abc") == f"Bearer {REDACTED}; half {REDACTED}; abc"
    assert r.value({"a": [f"x{KEY}", 1.5], KEY: (None, KEY)}) == {
        "a": [f"x{REDACTED}", 1.5],
        REDACTED: (None, REDACTED),
    }
    row = {"caption": "clean", "confidence": 0.5}
    assert r.row(row) is row and not Redactor(["abc"]) and repr(r) == "Redactor(2 secrets)"
    # One pass: a secret found inside the replacement text is not replaced again.
    assert Redactor(["DACT", "token-1"]).text("token-1 DACT") == f"{REDACTED} {REDACTED}"


def test_every_write_of_the_record_writer_is_redacted(tmp_path: Path) -> None:
    odd = 'k"\\é\u2028z-9'  # a quote, a backslash, non-ASCII and a line separator: JSON escapes them
    w = RecordWriter(tmp_path, secrets=[KEY, odd])
    w.write({"caption": f"a {KEY}", "error": None, "confidence": 0.5})
    w.write_many([{"caption": f"b {odd}"}, {"caption": "c"}])
    w.write_line(json.dumps({"caption": f"d {KEY}"}) + "\n")
    w.write_lines([record_line({"caption": f"e {odd}"}), '{"caption":"f"}'])
    w.write_text(record_line({"caption": f"g {KEY}", "sep": "\u2028"}) + record_line({"caption": f"h {odd}"}))
    w.close()
    assert read_jsonl(w.path) == [
        {"caption": f"a {REDACTED}", "error": None, "confidence": 0.5},
        {"caption": f"b {REDACTED}"},
        {"caption": "c"},
        {"caption": f"d {REDACTED}"},
        {"caption": f"e {REDACTED}"},
        {"caption": "f"},
        {"caption": f"g {REDACTED}", "sep": "\u2028"},
        {"caption": f"h {REDACTED}"},
    ]
    assert w.count == 8 and _files_holding(tmp_path, KEY) == _files_holding(tmp_path, odd) == []
    assert record_line({"caption": KEY}, Redactor([KEY])) == f'{{"caption":"{REDACTED}"}}\n'


def test_the_credentials_a_client_sends(monkeypatch) -> None:
    monkeypatch.setenv("ECHO_TOKEN", "tok-from-env")
    bearer = ProtocolChoice(auth_env="ECHO_TOKEN").build()
    header = ProtocolChoice(auth_env="ECHO_TOKEN", auth_header="X-API-Key").build()
    assert credential_values(bearer) == ("tok-from-env",) == credential_values(header)
    assert credential_values(bearer, KEY) == (KEY, "tok-from-env") and credential_values(None, None) == ()
    with CaptionClient("http://127.0.0.1:9", api_key=KEY, adapter=header) as client:
        assert client.secrets == (KEY, "tok-from-env")


# -- whole commands against the echoing target -----------------------------------------------------
@pytest.mark.parametrize("header", [None, "X-API-Key"])
def test_evaluate_stores_no_key(tmp_path: Path, monkeypatch, capsys, header: str | None) -> None:
    monkeypatch.setenv("CAPTION_API_KEY", KEY)
    heard = f"Bearer {REDACTED}" if header is None else REDACTED
    out = tmp_path / "out"
    with echo_target() as url:
        code = main(
            ["evaluate", "--target", url, "--dataset", "shapes:4", "--out", str(out), "--concurrency", "2"]
            + ["--metrics", "bleu", "--bootstrap", "0", "--auth-env", "CAPTION_API_KEY"]
            + (["--auth-header", header] if header else [])
        )
    assert code == 0, capsys.readouterr().err
    assert _files_holding(out, KEY) == []
    df = load_records(out)
    first, retried = df[df["request_id"].str.endswith("-0")], df[df["request_id"].str.endswith("-1")]
    assert len(first) == len(retried) == 4
    assert set(first["error"]) == {f"HTTP 503: not_ready: key {heard} is not ready"}
    assert set(retried["caption"]) == {f"a red circle seen with {heard}"}
    assert set(retried["model_version"]) == {f"m-{heard}"}
    assert json.loads((out / "quality.json").read_text())["run"]["model_versions"] == [f"m-{heard}"]
    assert REDACTED in (out / "records.jsonl").read_text()


@pytest.mark.slow  # Locust in three processes
def test_load_with_workers_stores_no_key(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    with echo_target() as url:
        code = main(
            ["load", "--target", url, "--scenario", "steady", "--duration", "4s", "--users", "2", "--workers", "2"]
            + ["--out", str(out), "--api-key", KEY]
        )
    assert code == 0, capsys.readouterr().err
    assert _files_holding(out, KEY) == []
    df = load_records(out)
    assert df["request_id"].str.split("-").str[0].nunique() == 2  # both workers' records are in it
    heard = f"Bearer {REDACTED}"
    ok, failed = df[df["outcome"] == "ok"], df[df["outcome"] == "http_error"]
    assert len(ok) and len(failed)
    assert set(ok["caption"]) == {f"a red circle seen with {heard}"} and set(ok["model_version"]) == {f"m-{heard}"}
    assert set(failed["error"]) == {f"HTTP 503: not_ready: key {heard} is not ready"}


@pytest.mark.slow  # the gate: evaluation, two Locust runs, the judgement
def test_gate_stores_no_key(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gate"
    with echo_target() as baseline, echo_target() as canary:
        code = main(
            ["gate", "--baseline", baseline, "--canary", canary, "--dataset", "shapes:6", "--duration", "2s"]
            + ["--users", "1", "--out", str(out), "--api-key", KEY, "--json"]
        )
    assert code in (0, 1, 2), capsys.readouterr().err
    assert _files_holding(out, KEY) == []
    rec = json.loads((out / "decision.json").read_text())
    heard = f"Bearer {REDACTED}"
    for target in ("baseline", "canary"):  # the model info of the probe, not a record
        assert rec["inputs"]["targets"][target]["model_version"] == f"m-{heard}"
    assert set(load_records(out)["model_version"].dropna()) == {f"m-{heard}"}
    assert REDACTED in (out / "summary.md").read_text()
