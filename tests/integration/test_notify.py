"""Telling people the verdict: after every judgement the decision is pushed as gauges to a real
Prometheus Pushgateway (read back through a real Prometheus scraping it) and posted as a
Slack-compatible message to a loopback webhook; a gateway or webhook that fails is one warning line
and changes neither the exit code nor the decision record."""

import json
import logging
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from cli_run import run_harness
from factories import write_records
from harness.canary.simulation import simulate_traffic
from harness.report import notify
from harness.report.notify import Notify, message, tell
from prom_fixture import free_port, start_prometheus, start_pushgateway

pytestmark = pytest.mark.slow  # a real Pushgateway scraped by a real Prometheus

T0 = 1_700_000_000.0  # when the simulated traffic starts (in the past: an analysis replays its looks at once)
HOSTILE = "v2 <script>alert(1)</script> <!channel> & <https://evil.example|log in>"
WEBHOOK_TOKEN = "T000/B000/XXXXSECRETXXXX"


def _records(tmp_path: Path, flaw: str | None = None, n: int = 6000, duration_s: float = 300.0, version=None) -> Path:
    """A 20% traffic split over ``duration_s``, one records folder with a target per record."""
    stable = simulate_traffic(int(n * 0.8), target="stable", seed=2, t0=T0, duration_s=duration_s)
    canary = simulate_traffic(
        int(n * 0.2), target="canary", seed=3, t0=T0, duration_s=duration_s, flaw=flaw, model_version=version
    )
    return write_records(tmp_path / "production", stable, canary)


def _harness(*args) -> subprocess.CompletedProcess:
    return run_harness(*args)


def _judge(records: Path, out: Path, *args) -> subprocess.CompletedProcess:
    return _harness(
        "judge",
        "--baseline", records, "--baseline-where", "target=stable",
        "--canary", records, "--canary-where", "target=canary",
        "--out", out, *args,
    )  # fmt: skip


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " WARNING " in line]


class Receiver:
    """A loopback HTTP receiver in a thread: keeps every request (method, path, body) and answers
    ``status`` with the body ``answer``; with ``hang``, answers only once ``release`` is set (at the
    end of the test)."""

    def __init__(self, status: int = 200, hang: bool = False, answer: bytes = b"ok"):
        self.requests: list[tuple[str, str, bytes]] = []
        self.status, self.answer = status, answer
        self.release = threading.Event()
        if not hang:
            self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.command, self.path, body))
                receiver.release.wait(30)
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            do_POST = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posted(self) -> list[dict]:
        return [json.loads(body) for method, _, body in self.requests if method == "POST"]

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _query(prom_url: str, expr: str) -> dict[tuple, float]:
    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=5)
    return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in r.json()["data"]["result"]}


def _by(series: dict[tuple, float], label: str) -> dict[str, float]:
    return {dict(k)[label]: v for k, v in series.items()}


# ---------------------------------------------------------------------------- the Pushgateway


@pytest.mark.slow
def test_the_verdict_pushed_to_a_pushgateway_reads_back_from_prometheus(tmp_path):
    records = _records(tmp_path, "status_502")
    out = tmp_path / "judged"
    with start_pushgateway() as gateway, start_prometheus(targets=[gateway], honor_labels=True) as prom:
        proc = _judge(records, out, "--pushgateway", gateway, "--push-group", "captioner-canary")
        assert proc.returncode == 1, proc.stderr
        assert _warnings(proc.stderr) == []
        rec = json.loads((out / "decision.json").read_text())
        assert rec["verdict"] == "ROLLBACK" and rec["score"] == 86.0
        group = '{job="caption_harness",instance="captioner-canary"}'
        prom.wait_for(f"caption_canary_decision_timestamp_seconds{group}")
        verdict = _query(prom.url, f"caption_canary_verdict{group}")
        assert _by(verdict, "verdict") == {"PROMOTE": 0.0, "HOLD": 0.0, "ROLLBACK": 1.0}
        assert list(_query(prom.url, f"caption_canary_score{group}").values()) == [86.0]
        error_rate = _query(prom.url, f'caption_canary_metric_classification{{metric="error_rate",{group[1:]}')
        assert _by(error_rate, "classification") == {"Pass": 0.0, "High": 1.0, "Low": 0.0, "NoData": 0.0, "Info": 0.0}
        failed = _by(_query(prom.url, f"caption_canary_metric_failed{group}"), "metric")
        assert {m for m, v in failed.items() if v == 1.0} == {m["name"] for m in rec["metrics"] if m["failed"]}
        assert failed["error_rate"] == 1.0 and failed["latency_p50"] == 0.0
        assert set(failed) == {m["name"] for m in rec["metrics"]}
        when = _query(prom.url, f"caption_canary_decision_timestamp_seconds{group}")
        assert list(when.values()) == [rec["created_unix"]]
        assert _query(prom.url, f"caption_canary_analysis_look{group}") == {}  # a single judgement has no look


@pytest.mark.slow
def test_every_look_of_an_interval_analysis_is_pushed_and_posted_once(tmp_path):
    records = _records(tmp_path, n=1500, duration_s=120.0)
    out = tmp_path / "analysis"
    with start_pushgateway() as gateway, Receiver() as hook:
        proc = _judge(
            records, out, "--since", f"{T0:.0f}", "--interval", "30s", "--lifetime", "2m",
            "--pushgateway", gateway, "--notify", hook.url,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert _warnings(proc.stderr) == []
        looks = json.loads((out / "analysis.json").read_text())["looks"]
        assert [lk["verdict"] for lk in looks] == ["HOLD"] * 4
        metrics = httpx.get(f"{gateway}/metrics", timeout=5).text
        assert 'pushgateway_http_requests_total{code="200",handler="push",method="put"} 4' in metrics.splitlines()
        groups = httpx.get(f"{gateway}/api/v1/metrics", timeout=5).json()["data"]
        assert len(groups) == 1  # every look replaced the one before: one group, the latest look
        labels = groups[0]["labels"]
        assert labels["job"] == "caption_harness" and labels["instance"].startswith("judge-")
        assert not labels["instance"].endswith("look04")  # the analysis's run id, not the look's

        def gauge(name):
            return [float(m["value"]) for m in groups[0][name]["metrics"]]

        assert gauge("caption_canary_analysis_look") == [4.0] and gauge("caption_canary_analysis_looks") == [4.0]
        posted = hook.posted()
    assert [p["text"].split(":")[0] for p in posted] == [
        f"Canary HOLD, score {lk['score']:g}, look {k} of 4" for k, lk in enumerate(looks, 1)
    ]
    for k, p in enumerate(posted, 1):
        fields = p["blocks"][1]["fields"]
        assert fields[-1] == {"type": "mrkdwn", "text": f"*Look*\n{k} of 4"}
        assert str((out / f"look-{k:02d}" / "decision.json").absolute()) in p["blocks"][-1]["elements"][0]["text"]


@pytest.mark.slow
def test_the_gate_and_a_judgement_of_its_run_folder_push_and_post_their_verdicts(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # both targets down: the gate holds, at once
    with start_pushgateway() as gateway, Receiver() as hook:
        tell = ("--pushgateway", gateway, "--notify", hook.url)
        gate = _harness(
            "gate", "--baseline", closed, "--canary", closed, "--dataset", "shapes:4", "--duration", "1s",
            "--out", tmp_path / "gate", *tell,
        )  # fmt: skip
        assert gate.returncode == 2, gate.stderr
        again = _harness(
            "judge", "--baseline", tmp_path / "gate", "--canary", tmp_path / "gate", "--out", tmp_path / "again", *tell
        )
        assert again.returncode == 2, again.stderr
        groups = {g["labels"]["instance"]: g for g in httpx.get(f"{gateway}/api/v1/metrics", timeout=5).json()["data"]}
        posted = hook.posted()
    assert _warnings(gate.stderr) == _warnings(again.stderr) == []
    recs = [json.loads((tmp_path / f / "decision.json").read_text()) for f in ("gate", "again")]
    assert set(groups) == {rec["run_id"] for rec in recs}  # without --push-group, each run is its own group
    for rec in recs:
        assert rec["verdict"] == "HOLD" and rec["score"] is None
        group = groups[rec["run_id"]]
        verdicts = {m["labels"]["verdict"]: float(m["value"]) for m in group["caption_canary_verdict"]["metrics"]}
        assert verdicts == {"PROMOTE": 0.0, "HOLD": 1.0, "ROLLBACK": 0.0}
        assert "caption_canary_score" not in group  # no metric had data: no score, not a 0
    assert [p["text"].split(":")[0] for p in posted] == ["Canary HOLD, no score (no metric had data)"] * 2
    why = posted[0]["blocks"][3]["text"]["text"].split("\n")
    assert sorted(why[1:]) == [  # the probes run at once: either may come first
        f"• {role} target {closed} is unavailable: ConnectError: [Errno 111] Connection refused"
        for role in ("baseline", "canary")
    ]


# ---------------------------------------------------------------------------- the webhook


def test_the_message_posted_names_the_verdict_and_escapes_the_targets_text(tmp_path, monkeypatch):
    records = _records(tmp_path, "status_502", version=HOSTILE)
    out = tmp_path / "judged"
    with Receiver() as hook:
        # the webhook's URL (its token) from the environment: off the command line
        monkeypatch.setenv("HARNESS_TEST_WEBHOOK", f"{hook.url}/services/{WEBHOOK_TOKEN}")
        proc = _judge(records, out, "--notify-env", "HARNESS_TEST_WEBHOOK")
    assert proc.returncode == 1, proc.stderr
    assert _warnings(proc.stderr) == []
    rec = json.loads((out / "decision.json").read_text())
    assert rec["inputs"]["targets"]["canary"]["model_version"] == HOSTILE
    ((method, path, body),) = hook.requests
    assert method == "POST" and path == f"/services/{WEBHOOK_TOKEN}"
    raw = body.decode()
    assert "<script>" not in raw and "<!channel>" not in raw and "<https:" not in raw
    msg = json.loads(body)
    escaped = "v2 &lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt; &amp; &lt;https://evil.example|log in&gt;"
    failed = [m["name"] for m in rec["metrics"] if m["failed"]]
    assert failed == ["error_rate", "goodput", "burn:availability", "burn:coverage"]
    record = str((out / "decision.json").absolute())
    assert msg["text"] == (
        "Canary ROLLBACK, score 86: failed error_rate, goodput, burn:availability, burn:coverage; "
        f"canary model version {escaped}; decision record {record}"
    )
    assert msg["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "Canary ROLLBACK, score 86"}}
    assert msg["blocks"][1]["fields"] == [
        {"type": "mrkdwn", "text": "*Verdict*\nROLLBACK"},
        {"type": "mrkdwn", "text": "*Score*\n86"},
        {"type": "mrkdwn", "text": f"*Canary model version*\n{escaped}"},
    ]
    assert msg["blocks"][2]["text"]["text"] == (
        "*Failed metrics*\nerror_rate (High, critical), goodput (Low), burn:availability (High, critical), "
        "burn:coverage (High, critical)"
    )
    why = msg["blocks"][3]["text"]["text"].split("\n")
    assert len(rec["reasons"]) == 4 and why[0] == "*Why*" and why[4] == "and 1 more in the decision record"
    assert why[1] == (
        "• critical metric error_rate failed: canary rate (0.23% -&gt; 10.58%) is higher by 10.4 points "
        "(p=4.12e-77), beyond the tolerance of 1 points"
    )
    assert msg["blocks"][4]["elements"][0]["text"] == f"Decision record {record} (run {rec['run_id']})"


def _record(**fields):
    """The smallest decision record, with ``fields`` set."""
    from harness.report.model import DecisionRecord

    bare = {"schema_version": 2, "run_id": "r", "created_unix": 0.0, "verdict": "PROMOTE", "score": 100.0}
    bare |= {"reasons": [], "metrics": [], "groups": [], "thresholds": None, "power": [], "slos": []}
    return DecisionRecord.model_validate({**bare, "inputs": {"targets": {}}, **fields})


def test_a_reason_quoting_a_target_is_escaped_and_only_the_first_reasons_are_sent():
    rec = _record(
        run_id="r1",
        verdict="HOLD",
        score=None,
        reasons=["canary target is unavailable: <!here> said <@U123> & left", "two", "three", "four", "five"],
        inputs={"targets": {"canary": {"url": "http://c"}}},
    )
    msg = message(rec, Path("/reports/run & <1>/decision.json"))
    assert msg["blocks"][0]["text"]["text"] == "Canary HOLD, no score (no metric had data)"
    assert msg["blocks"][1]["fields"][2]["text"] == "*Canary model version*\nnot reported"
    assert msg["blocks"][2]["text"]["text"] == "*Failed metrics*\nnone"
    assert msg["blocks"][3]["text"]["text"] == (
        "*Why*\n• canary target is unavailable: &lt;!here&gt; said &lt;@U123&gt; &amp; left\n• two\n• three\n"
        "and 2 more in the decision record"
    )
    assert (
        msg["blocks"][4]["elements"][0]["text"] == "Decision record /reports/run &amp; &lt;1&gt;/decision.json (run r1)"
    )


# ---------------------------------------------------------------------------- failures change nothing


@pytest.mark.slow
def test_a_gateway_down_and_a_webhook_answering_500_leave_the_exit_code_and_the_record_as_they_were(tmp_path):
    records = _records(tmp_path, "status_502")
    plain = _judge(records, tmp_path / "plain")
    closed = f"http://127.0.0.1:{free_port()}"
    with Receiver(status=500, answer=b"no_service\x1b[31m") as hook:
        told = _judge(
            records, tmp_path / "told", "--pushgateway", closed, "--notify", f"{hook.url}/services/{WEBHOOK_TOKEN}"
        )
    assert plain.returncode == told.returncode == 1, (plain.stderr, told.stderr)
    assert len(hook.requests) == 1  # posted once, not retried

    def record(folder):
        rec = json.loads((tmp_path / folder / "decision.json").read_text())
        return {k: v for k, v in rec.items() if k not in ("run_id", "created_unix")}

    assert record("told") == record("plain")
    assert (tmp_path / "told" / "summary.md").exists()
    assert _warnings(plain.stderr) == []
    push, post = _warnings(told.stderr)
    assert push.endswith(
        f"could not push the verdict to the Pushgateway at {closed}: ConnectError: "
        "[Errno 111] Connection refused; the verdict stands"
    )
    assert post.endswith(
        f"could not post the verdict to the webhook at {hook.url}: it answered HTTP 500 (no_service[31m); "
        "the verdict stands"
    )
    assert WEBHOOK_TOKEN not in told.stderr


def test_a_webhook_that_does_not_answer_in_time_is_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(notify, "TIMEOUT_S", 0.2)
    caplog.set_level(logging.WARNING, logger="harness")
    rec = _record()
    with Receiver(hang=True) as hook:
        warnings = tell(rec, Path("decision.json"), Notify(webhook=hook.url + "/hook"))
    assert warnings == [
        f"could not post the verdict to the webhook at {hook.url}: no answer within 0.2 s; the verdict stands"
    ]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == warnings


# ---------------------------------------------------------------------------- the options


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--notify", "hooks.example/services/" + WEBHOOK_TOKEN], "--notify must be an http(s) URL"),
        (["--notify", "ftp://hooks.example/x"], "--notify must be an http(s) URL"),
        (["--pushgateway", "file:///tmp/x"], "--pushgateway must be an http(s) URL (got 'file:///tmp/x')"),
        (
            ["--pushgateway", "http://127.0.0.1:99999"],
            "--pushgateway must be an http(s) URL (got 'http://127.0.0.1:99999')",
        ),
        (["--push-group", "canary"], "--push-group goes with --pushgateway"),
        (["--notify-env", "HARNESS_TEST_UNSET"], "--notify-env HARNESS_TEST_UNSET: the variable is not set or empty"),
        (
            ["--notify", "http://hooks.example/x", "--notify-env", "HARNESS_TEST_UNSET"],
            "--notify and --notify-env go one at a time",
        ),
        (["--pushgateway", "http://127.0.0.1:9091", "--push-group", " "], "--push-group must not be blank"),
    ],
)
@pytest.mark.parametrize("command", ["judge", "gate"])
def test_a_bad_notify_option_is_refused_before_any_work(tmp_path, command, args, error):
    out = tmp_path / "out"
    closed = f"http://127.0.0.1:{free_port()}"
    targets = (
        ["--baseline", closed, "--canary", closed]
        if command == "gate"
        else ["--baseline", tmp_path, "--canary", tmp_path]
    )
    proc = _harness(command, *targets, *args, "--out", out)
    assert proc.returncode == 64, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"harness {command}: error: {error}"]
    assert WEBHOOK_TOKEN not in proc.stderr and not out.exists()
