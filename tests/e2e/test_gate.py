"""The gate end to end: real reference servers on loopback, real Locust load, real scoring."""

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli_run import run_cli
from harness.canary.gate import GateConfig, run_gate
from harness.errors import UsageError

pytest.importorskip("torch")

# 100 images and 10 s of load (2 users: both targets share this machine): the smallest run that can detect what the default judge must detect
# (a quality regression on 10% of images, error rate +3 points).
QUICK = dict(duration_s=10.0, users=2, dataset="shapes:100", concurrency=4)
# SMALL: 20 images, 3 s at 40 requests/s a target (open loop: about 120 requests each, however busy the machine).
SMALL = dict(duration_s=3.0, users=2, rate=40.0, dataset="shapes:20", concurrency=2)


@pytest.fixture(scope="module")
def servers():
    from contextlib import ExitStack

    from reference_model.server.launch import start_server

    with ExitStack() as st:
        yield {
            "stable": st.enter_context(start_server("tiny", extra_args=["--threads", "1"])),
            "twin": st.enter_context(start_server("tiny", extra_args=["--threads", "1"])),
            "undertrained": st.enter_context(start_server("tiny-undertrained", extra_args=["--threads", "1"])),
        }


def _metric(rec, name):
    return next(m for m in rec["metrics"] if m["name"] == name)


def _same_when_judged_again(folder, rec):
    """``harness judge`` on the gate's folder writes the gate's own decision record, bar the run id,
    the time and where the artifacts are."""
    out = folder / "judged-again"
    code, stdout, stderr = run_cli(["judge", "--baseline", folder, "--canary", folder, "--out", out, "--json"])
    assert code == {"PROMOTE": 0, "ROLLBACK": 1, "HOLD": 2}[rec["verdict"]], stderr
    again = json.loads(stdout)
    assert json.loads((out / "decision.json").read_text()) == again
    drop = ("run_id", "created_unix", "artifacts")
    assert {k: v for k, v in again.items() if k not in drop} == {k: v for k, v in rec.items() if k not in drop}
    assert again["run_id"] != rec["run_id"] and rec["run_id"] in again["run_id"]


def test_identical_canary_is_promoted(servers, tmp_path):
    # PROMOTE needs a run that could have seen +3 points of errors: a longer load than QUICK's, so a
    # busy machine's slower answers still give enough requests.
    rec = run_gate(GateConfig(servers["stable"].url, servers["twin"].url, tmp_path, **{**QUICK, "duration_s": 15.0}))
    assert rec["verdict"] == "PROMOTE" and rec["score"] == 100.0, rec["reasons"]
    assert _metric(rec, "quality")["effect"] == 0.0
    assert _metric(rec, "caption_changed")["effect"] == 0.0
    assert all(p["adequate"] is not False for p in rec["metrics"])
    assert rec["findings"] == []
    assert rec["artifacts"]["dataset"] and rec["artifacts"]["summary_md"] == "summary.md"
    assert rec["inputs"]["targets"]["canary"]["model_version"] == rec["inputs"]["targets"]["baseline"]["model_version"]
    for name in ("decision.json", "summary.md", "records.parquet", "quality.json", "drift.json", "drift.html"):
        assert (tmp_path / name).exists(), name
    assert set(rec["figures"]) == {"baseline", "canary"}
    assert {s["target"] for s in rec["slos"]} == {"baseline", "canary"}
    assert rec["drift"]["drifted"] is False
    assert (tmp_path / "summary.md").read_text().startswith("## Canary decision: ✅ PROMOTE")
    with pytest.raises(UsageError, match="holds an earlier run"):
        run_gate(GateConfig(servers["stable"].url, servers["twin"].url, tmp_path, **SMALL))
    _same_when_judged_again(tmp_path, rec)


def test_undertrained_canary_is_rolled_back_for_quality(servers, tmp_path):
    rec = run_gate(GateConfig(servers["stable"].url, servers["undertrained"].url, tmp_path, **SMALL))
    assert rec["verdict"] == "ROLLBACK"
    q = _metric(rec, "quality")
    assert q["classification"] == "Low" and q["critical"]
    assert rec["reasons"][0].startswith("critical metric quality failed")
    _same_when_judged_again(tmp_path, rec)


def test_latency_injected_canary_is_rolled_back(servers, server_factory, tmp_path):
    slow = server_factory(
        "tiny", extra_args=["--threads", "1", "--enable-faults", "--admin-token", "t", "--faults", '{"latency_ms": 60}']
    )
    rec = run_gate(GateConfig(servers["stable"].url, slow.url, tmp_path, **SMALL, faults={"latency_ms": 60}))
    assert rec["verdict"] == "ROLLBACK"
    lat = _metric(rec, "latency_p50")
    assert lat["classification"] == "High" and lat["effect"] > 0.05
    assert rec["inputs"]["faults"] == {"latency_ms": 60}
    _same_when_judged_again(tmp_path, rec)
    # The same run judged another way: a config that tolerates +2000% latency passes it.
    loose = tmp_path / "loose.yaml"
    loose.write_text(
        "metrics:\n" + "".join(f"  {m}: {{tolerance: 20.0}}\n" for m in ("latency_p50", "latency_p95", "latency_p99"))
    )
    out = tmp_path / "loose"
    code, _, _ = run_cli(["judge", "--baseline", tmp_path, "--canary", tmp_path, "--judge-config", loose, "--out", out])
    again = json.loads((out / "decision.json").read_text())
    assert code != 1 and again["verdict"] != "ROLLBACK", again["reasons"]
    assert _metric(again, "latency_p50")["classification"] == "Pass"
    assert _metric(again, "latency_p50")["p_value"] == lat["p_value"]  # the same data and resampling seed


def test_every_demo_canary_is_judged_again_to_the_same_decision(servers, server_factory, tmp_path):
    """The demo's canaries (``harness demo``): undertrained and latency are judged again in their own
    tests above; int8 here, with the demo's own model and options."""
    from harness.cli.demo import CANARIES

    model, extra, _ = CANARIES["int8"]
    canary = server_factory(model, extra_args=["--threads", "1", *extra])
    # A run this short judges int8's latency on a few dozen requests: any verdict may come out of
    # it; what is checked is that judging the folder again gives the same one.
    rec = run_gate(GateConfig(servers["stable"].url, canary.url, tmp_path, **SMALL))
    _same_when_judged_again(tmp_path, rec)
    assert set(CANARIES) == {"int8", "undertrained", "latency"}  # each judged again in this file


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_canary_down_holds_with_the_reason_through_the_cli(servers, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "gate",
            "--baseline",
            servers["stable"].url,
            "--canary",
            url,
            "--out",
            str(tmp_path),
            "--duration",
            "3s",
            "--dataset",
            "shapes:10",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 2, out.stderr
    rec = json.loads((tmp_path / "decision.json").read_text())
    assert rec["verdict"] == "HOLD"
    assert rec["reasons"][0].startswith(f"canary target {url} is unavailable: ConnectError")
    assert "Traceback" not in out.stderr


class _EmptyCaptions(BaseHTTPRequestHandler):
    """A service that answers 200 with an empty caption, and 502 on every fifth request."""

    n = 0

    def _send(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._send(200, {"status": "ok"} if self.path != "/v1/model" else {"name": "empty", "version": "empty-1"})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).n += 1
        if type(self).n % 5 == 0:
            self._send(502, {"error": {"code": "bad_gateway", "message": "upstream"}})
            return
        self._send(
            200,
            {
                "request_id": self.headers.get("X-Request-Id"),
                "caption": "",
                "confidence": 0.5,
                "model_version": "empty-1",
                "server_latency_ms": 1.0,
                "safety": {"flagged": False, "reasons": []},
            },
        )

    def log_message(self, *a):
        pass


def test_blank_answers_and_unknown_statuses_are_judged_against_the_canary(servers, tmp_path):
    """What a target answers is an observation against it, not a reason to distrust the run: blank
    captions and 502s roll the canary back; the harness's own records pass their contract."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyCaptions)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        rec = run_gate(GateConfig(servers["stable"].url, url, tmp_path, **SMALL))
    finally:
        httpd.shutdown()
    assert rec["verdict"] == "ROLLBACK", rec["reasons"]
    assert rec["contracts"]["records"]["success"] is True
    assert _metric(rec, "blank_rate")["classification"] == "High"
    assert _metric(rec, "error_rate")["classification"] == "High"
    assert any(r.startswith("critical metric blank_rate failed") for r in rec["reasons"])


def test_a_small_run_is_held_as_underpowered(servers, tmp_path):
    rec = run_gate(GateConfig(servers["stable"].url, servers["twin"].url, tmp_path, **SMALL))
    assert rec["verdict"] == "HOLD"
    assert any(
        r.startswith("underpowered: quality could only detect a quality regression on >= ") for r in rec["reasons"]
    )
    assert _metric(rec, "quality")["adequate"] is False
