"""``harness judge serve``: the real command on a loopback port, driven with exactly the requests
rollout controllers make (Argo Rollouts' web provider POSTing its jsonBody with a bearer key,
Flagger's webhook payloads with the key in ``metadata.token``), over production records written as
the analysis runs. A canary answering 502 on 30% of its requests is rolled back at its first look;
an identical canary (the baseline's very records under another target) holds at every interim look
and is promoted at the last, through a SIGKILL and a restart of the server. Every refusal is a 4xx
in the JSON error shape, and the key is in no file the server wrote and no line it logged."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from cli_run import run_cli
from harness.canary.simulation import simulate_traffic
from harness.records import RecordWriter

KEY = "judge-key-7Qx2-never-in-any-file"
INTERVAL_S, LOOKS = 3.0, 3
RATE = 250  # records per second per target
ARGO = {"Authorization": f"Bearer {KEY}"}  # the web provider's headers; it sets the JSON content type itself


def _body(canary: str, **extra) -> dict:
    """Argo's jsonBody, as the contract's AnalysisTemplate builds it from its args."""
    return {
        "baseline": {"source": "records", "where": {"target": "baseline"}},
        "canary": {"source": "records", "where": {"target": canary}},
        "interval": "3s",
        "lifetime": "9s",
        "spending": "pocock",
        **extra,
    }


def _flagger(name: str, checksum: str, canary: str | None = None, token: str = KEY) -> dict:
    """Flagger's webhook payload; the pre-rollout hook's metadata describes the analysis."""
    metadata = {"token": token}
    if canary is not None:
        metadata.update(
            baseline="records",
            canary="records",
            baseline_where="target=baseline",
            canary_where=f"target={canary}",
            interval="3s",
            lifetime="9s",
            spending="pocock",
        )
    return {"name": name, "namespace": "test", "phase": "Progressing", "checksum": checksum, "metadata": metadata}


class Production(threading.Thread):
    """Production traffic as a service's records, appended every quarter second: the baseline, an
    identical canary (``twin``: the baseline's own draws, request by request) and a canary with 502s
    on 30% of its requests (``flawed``)."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.stop, self.chunks = folder, threading.Event(), 0
        self.t = time.time() - 1.0
        self._write()  # records from before any analysis starts: the first file is there at once

    def _write(self) -> None:
        now = time.time()
        n, seed = max(1, int(RATE * (now - self.t))), self.chunks + 1
        frames = [
            simulate_traffic(n, target=t, seed=seed, t0=self.t, duration_s=now - self.t, flaw=flaw, fraction=0.3)
            for t, flaw in (("baseline", None), ("twin", None), ("flawed", "status_502"))
        ]
        df = pd.concat(frames, ignore_index=True).sort_values("t_start", kind="stable")
        with RecordWriter(self.folder) as w:
            w.write_many(df.astype(object).where(pd.notna(df), None).to_dict("records"))
        self.t, self.chunks = now, self.chunks + 1

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self._write()


@contextmanager
def _production(folder: Path):
    prod = Production(folder)
    prod.start()
    try:
        yield prod
    finally:
        prod.stop.set()
        prod.join(10)


def _config(tmp_path: Path, **extra) -> Path:
    doc = {
        "sources": {"records": {"records": "records"}, "prom": {"prometheus": "http://127.0.0.1:9"}},
        "max_analyses": 4,
        "interval": "3s",
        "lifetime": "9s",
        **extra,
    }
    path = tmp_path / "judge-serve.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


@contextmanager
def _serve(tmp_path: Path, config: Path, state: Path, key: str | None = KEY, log_name: str = "serve.log"):
    """``harness judge serve`` as a child process on a free loopback port; yields (url, process, log).
    Stopped with SIGTERM on exit (unless the test killed it)."""
    port_file = tmp_path / f"{log_name}.port"
    port_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_JUDGE_KEY"}
    if key is not None:
        env["HARNESS_JUDGE_KEY"] = key
    cmd = [sys.executable, "-m", "harness", "judge", "serve", "--config", str(config), "--state", str(state)]
    cmd += ["--port", "0", "--port-file", str(port_file)]
    log = tmp_path / log_name
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path
        )
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = f"http://127.0.0.1:{int(port_file.read_text())}"
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"} and doc["error"]["code"] == code, doc
    assert KEY not in r.text
    return doc["error"]["message"]


def _until(predicate, timeout: float = 30.0, step: float = 0.25):
    """Poll ``predicate`` until it returns something true; bounded in time and tries."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / step) + 1):
        got = predicate()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(step)
    return predicate()


def _without_key(tmp_path: Path, logs: list[Path]) -> None:
    """No file under the test's folder (the state folder, the records, the server's logs) holds the key."""
    secret = KEY.encode()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "request.json" for p in files) and all(p in files for p in logs)
    holding = [str(p) for p in files if secret in p.read_bytes()]
    assert not holding, holding


# ---------------------------------------------------------------------------- the controllers


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_argo_and_flagger_drive_analyses_to_rollback_and_promotion_through_a_restart(tmp_path):
    config, state = _config(tmp_path), tmp_path / "state"
    analyses = state / "analyses"
    twin_hook, bad_hook = _flagger("podinfo", "85d557f47b"), _flagger("podinfo-bad", "0c1d2e3f4a")
    flagger_twin, flagger_bad = "test.podinfo.85d557f47b", "test.podinfo-bad.0c1d2e3f4a"
    with _production(tmp_path / "records"), httpx.Client(timeout=60) as http:
        with _serve(tmp_path, config, state, log_name="serve-1.log") as (url, proc, log1):
            api, hook = url + "/api/v1/analyses/", url + "/flagger/"
            # The first measurement of each AnalysisRun creates its analysis; Flagger's pre-rollout hook creates its own.
            r = http.post(api + "argo-twin", json=_body("twin"), headers=ARGO)
            assert r.status_code == 201, r.text
            twin = r.json()
            assert twin["state"] == "running" and twin["verdict"] == "HOLD" and twin["final"] is False
            assert twin["look"] == 0 and twin["looks"] == LOOKS and twin["score"] is None and twin["reasons"] == []
            assert twin["decision"] == "/api/v1/analyses/argo-twin/decision"
            assert twin["next_look_unix"] == pytest.approx(twin["started_unix"] + INTERVAL_S)
            assert http.post(api + "argo-flawed", json=_body("flawed"), headers=ARGO).status_code == 201
            for name, checksum, canary in (("podinfo", "85d557f47b", "twin"), ("podinfo-bad", "0c1d2e3f4a", "flawed")):
                r = http.post(hook + "pre-rollout", json=_flagger(name, checksum, canary))
                assert r.status_code == 200 and r.json()["name"] == f"test.{name}.{checksum}", r.text
            # four analyses run: max_analyses; a fifth is refused, the same POST again is not
            r = http.post(api + "argo-fifth", json=_body("twin"), headers=ARGO)
            assert "4 analyses are running" in _error(r, 429, "too_many_analyses")
            assert not (analyses / "argo-fifth").exists()
            r = http.post(api + "argo-twin", json=_body("twin"), headers=ARGO)
            assert r.status_code == 200 and r.json()["started_unix"] == twin["started_unix"], r.text
            _error(http.post(api + "argo-twin", json=_body("twin", lifetime="12s"), headers=ARGO), 409, "conflict")
            assert http.get(url + "/healthz").json() == {"status": "ok", "analyses_running": 4}
            _error(http.get(api + "argo-twin/decision", headers=ARGO), 404, "not_found")
            # before the last look, promotion waits; an iteration that sees no ROLLBACK goes on
            r = http.post(hook + "confirm-promotion", json=twin_hook)
            assert r.status_code == 409 and r.json()["final"] is False, r.text
            r = http.post(hook + "rollout", json=twin_hook)
            assert r.status_code == 200 and r.json()["verdict"] == "HOLD", r.text
            assert http.post(hook + "rollback", json=twin_hook).status_code == 409

            # Argo's second measurement, one interval after the first: look 1, an interim HOLD
            time.sleep(max(0.0, twin["started_unix"] + INTERVAL_S - time.time()))
            r = http.post(api + "argo-twin", json=_body("twin"), headers=ARGO)
            assert r.status_code == 200, r.text
            one = r.json()
            assert 1 <= one["look"] < LOOKS and one["verdict"] == "HOLD" and one["final"] is False, one
            assert one["state"] == "running" and one["score"] == 100.0, one
            assert any("PROMOTE only at the last look" in x for x in one["reasons"]), one["reasons"]
            # SIGKILL while the analysis is in progress: nothing judged is lost or judged again
            judged = json.loads((analyses / "argo-twin" / "analysis.json").read_text())["looks"]
            kept = {
                lk["folder"]: (analyses / "argo-twin" / lk["folder"] / "decision.json").read_bytes() for lk in judged
            }
            proc.kill()
            assert proc.wait(10) == -signal.SIGKILL
        with _serve(tmp_path, config, state, log_name="serve-2.log") as (url, proc, log2):
            api, hook = url + "/api/v1/analyses/", url + "/flagger/"
            again = http.get(api + "argo-twin", headers=ARGO).json()
            assert again["started_unix"] == twin["started_unix"] and again["look"] >= len(judged), again
            # the flawed canary: rolled back at its first look, final; Flagger's hooks say so
            r = http.post(api + "argo-flawed", json=_body("flawed"), headers=ARGO)
            bad = r.json()
            assert r.status_code == 200 and bad["verdict"] == "ROLLBACK" and bad["final"] is True, bad
            assert bad["state"] == "done" and bad["look"] == 1 and bad["next_look_unix"] is None
            rec = http.get(api + "argo-flawed/decision", headers=ARGO).json()
            failed = {m["name"] for m in rec["metrics"] if m["classification"] == "High" and m["critical"]}
            assert failed & {"error_rate", "burn:availability"}, rec["reasons"]
            r = http.post(hook + "rollout", json=bad_hook)
            assert r.status_code == 409 and r.json()["verdict"] == "ROLLBACK" and r.json()["final"], r.text
            assert http.post(hook + "rollback", json=bad_hook).status_code == 200
            assert http.post(hook + "confirm-promotion", json=bad_hook).status_code == 409
            # Argo's next measurements, one an interval: HOLD until the last look, PROMOTE there
            for k in range(2, LOOKS + 1):
                time.sleep(max(0.0, twin["started_unix"] + k * INTERVAL_S - time.time()))
                r = http.post(api + "argo-twin", json=_body("twin"), headers=ARGO)
                last = r.json()
                assert r.status_code == 200 and last["look"] >= k, r.text
                if last["look"] < LOOKS:
                    assert last["verdict"] == "HOLD" and last["final"] is False, last
            assert last["verdict"] == "PROMOTE" and last["final"] is True and last["state"] == "done", last
            assert last["look"] == LOOKS and last["score"] == 100.0 and last["next_look_unix"] is None
            rec = http.get(api + "argo-twin/decision", headers=ARGO).json()
            assert rec["verdict"] == "PROMOTE" and rec["analysis"]["look"] == LOOKS and rec["analysis"]["final"]
            assert rec["metrics"][0]["n_canary"] > 1000, rec["metrics"][0]
            saved = json.loads((analyses / "argo-twin" / "analysis.json").read_text())
            assert [lk["look"] for lk in saved["looks"]] == [1, 2, 3]
            assert saved["plan"]["started_unix"] == twin["started_unix"]
            for folder, record in kept.items():  # judged before the SIGKILL, not judged again
                assert (analyses / "argo-twin" / folder / "decision.json").read_bytes() == record

            # Flagger's identical canary: promotion is confirmed once the last look promotes
            done = _until(lambda: http.get(api + flagger_twin, headers=ARGO).json()["final"], 40)
            assert done, http.get(api + flagger_twin, headers=ARGO).json()
            r = http.post(hook + "confirm-promotion", json=twin_hook)
            assert r.status_code == 200 and r.json()["verdict"] == "PROMOTE", r.text
            assert http.post(hook + "rollout", json=twin_hook).status_code == 200
            r = http.post(hook + "post-rollout", json=twin_hook)
            assert r.status_code == 200 and r.json()["state"] == "done"
            listed = http.get(url + "/api/v1/analyses", headers=ARGO).json()["analyses"]
            assert [a["name"] for a in listed] == sorted(["argo-flawed", "argo-twin", flagger_bad, flagger_twin])
            assert http.get(url + "/healthz").json()["analyses_running"] == 0
            assert _stop(proc) == 0
    request = json.loads((analyses / flagger_twin / "request.json").read_text())
    assert request["canary"] == {"source": "records", "where": {"target": "twin"}} and "token" not in json.dumps(
        request
    )
    assert "argo-twin/look-01" in log1.read_text() and "argo-twin/look-01" not in log2.read_text()
    assert "Traceback" not in log1.read_text() + log2.read_text()
    _without_key(tmp_path, [log1, log2])


# ---------------------------------------------------------------------------- refusals


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_every_refusal_is_a_4xx_in_the_error_shape_and_reads_nothing(tmp_path):
    config, state = _config(tmp_path, max_analyses=1, interval="1h", lifetime="2h"), tmp_path / "state"
    (tmp_path / "records").mkdir()
    with _serve(tmp_path, config, state) as (url, proc, log), httpx.Client(timeout=30) as http:
        api = url + "/api/v1/analyses/"
        # 401: no key, a wrong one (either header), a wrong Flagger token
        _error(http.post(api + "a1", json=_body("twin")), 401, "unauthorized")
        _error(http.post(api + "a1", json=_body("twin"), headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
        _error(http.get(api + "a1", headers={"X-API-Key": KEY + "x"}), 401, "unauthorized")
        _error(http.get(url + "/api/v1/analyses"), 401, "unauthorized")
        _error(http.post(url + "/flagger/rollout", json=_flagger("p", "c1", token="nope")), 401, "unauthorized")
        _error(http.post(url + "/flagger/rollout", content=b"{not json"), 401, "unauthorized")
        # 403: a source the config does not list; nothing is made
        r = http.post(api + "a1", json={**_body("twin"), "canary": {"source": "elsewhere"}}, headers=ARGO)
        assert "canary.source" in _error(r, 403, "source_not_allowed")
        r = http.post(url + "/flagger/pre-rollout", json={**_flagger("p", "c1", "twin"), "metadata": {
            **_flagger("p", "c1", "twin")["metadata"], "baseline": "etc"}})  # fmt: skip
        _error(r, 403, "source_not_allowed")
        assert not list((state / "analyses").iterdir())
        # 400: what cannot be read, each naming the field
        bad = {
            b"{": "body: not valid JSON",
            b"[1, 2]": "body: must be a JSON object",
            b"\xff\xfe": "body: not UTF-8",
            b'{"a": NaN}': "body: NaN is not a JSON number",
            b'{"a": 1, "a": 2}': "given twice",
            b"[" * 5000 + b"]" * 5000: "nested more than 16 levels deep",
            b'{"a": ' + b"9" * 5000 + b"}": "",  # a number too long, or a: unknown field
        }
        for content, message in bad.items():
            r = http.post(api + "a1", content=content, headers={**ARGO, "Content-Type": "application/json"})
            assert message in _error(r, 400, "bad_request"), content[:40]
        cases = [
            (
                {**_body("twin"), "canary": {"source": "records", "where": {"target": 2}}},
                "canary.where.target: must be a string",
            ),
            ({"baseline": _body("twin")["baseline"]}, "canary: is required"),
            ({**_body("twin"), "period": "1h"}, "period: unknown field"),
            ({**_body("twin"), "interval": "soon"}, "interval: "),
            ({**_body("twin"), "interval": "1h", "lifetime": "1m"}, "lifetime: must be at least one interval"),
            ({**_body("twin"), "spending": "eager"}, "spending: must be one of pocock, obrien_fleming"),
            ({**_body("twin"), "baseline": {"source": "prom"}}, "baseline.selector: a Prometheus scope needs one"),
            ({**_body("twin"), "baseline": {"source": "prom", "selector": "up{"}}, "baseline.selector: expected label"),
            (
                {**_body("twin"), "baseline": {"source": "records", "selector": '{a="b"}'}},
                "baseline.selector: goes with",
            ),
            ({**_body("twin"), "baseline": {"source": "../etc"}}, "baseline.source: must match"),
        ]
        for body, message in cases:
            assert message in _error(http.post(api + "a1", json=body, headers=ARGO), 400, "bad_request"), body
        assert "name: must match" in _error(
            http.post(api + "Not_A_Name", json=_body("twin"), headers=ARGO), 400, "bad_request"
        )
        r = http.post(api + "a1", content=json.dumps(_body("twin")), headers={**ARGO, "Content-Type": "text/plain"})
        _error(r, 400, "bad_request")
        payload = _flagger("p", "c1", "twin")
        payload["metadata"]["canary_where"] = "target"
        assert "metadata.canary_where: expected col=value" in _error(
            http.post(url + "/flagger/pre-rollout", json=payload), 400, "bad_request"
        )
        payload["metadata"] = {**_flagger("p", "c1", "twin")["metadata"], "canary_wehre": "target=twin"}
        assert "metadata.canary_wehre: unknown key" in _error(
            http.post(url + "/flagger/pre-rollout", json=payload), 400, "bad_request"
        )
        # 413: over 64 KiB, refused before it is read
        big = {**_body("twin"), "pad": "x" * (65 * 1024)}
        _error(http.post(api + "a1", json=big, headers=ARGO), 413, "too_large")
        # 404: no such analysis, route or hook; a decision before the first look
        _error(http.get(api + "nothing-here", headers=ARGO), 404, "not_found")
        _error(http.post(url + "/flagger/rollout", json=_flagger("p", "c1")), 404, "not_found")
        _error(http.post(url + "/flagger/unknown-hook", json=_flagger("p", "c1")), 404, "not_found")
        _error(http.get(url + "/api/v2/nothing", headers=ARGO), 404, "not_found")
        assert http.post(api + "a1", json=_body("twin"), headers=ARGO).status_code == 201
        _error(http.get(api + "a1/decision", headers=ARGO), 404, "not_found")
        # 429 past max_analyses (1); a stopped analysis makes room
        _error(http.post(api + "a2", json=_body("twin"), headers=ARGO), 429, "too_many_analyses")
        r = http.delete(api + "a1", headers=ARGO)
        assert r.status_code == 200 and r.json()["state"] == "stopped" and r.json()["next_look_unix"] is None
        r = http.post(url + "/flagger/pre-rollout", json=_flagger("p", "c1", "twin"), headers={"X-API-Key": KEY})
        assert r.status_code == 200 and r.json()["state"] == "running", r.text
        assert (state / "analyses" / "a1" / "stopped.json").exists()
        assert _stop(proc) == 0
    assert "Traceback" not in log.read_text() and "ERROR" not in log.read_text()
    _without_key(tmp_path, [log])


# ---------------------------------------------------------------------------- the command line


def _cli(monkeypatch, tmp_path, config, key: str | None = KEY) -> tuple[int, str]:
    if key is None:
        monkeypatch.delenv("HARNESS_JUDGE_KEY", raising=False)
    else:
        monkeypatch.setenv("HARNESS_JUDGE_KEY", key)
    code, out, err = run_cli(["judge", "serve", "--config", config, "--state", tmp_path / "state", "--port", "0"])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return code, lines[0]


@pytest.mark.parametrize(
    "doc, code, message",
    [
        ({"sources": {}}, 65, "sources: must be a non-empty list"),
        ({"sources": {"r": {"records": "x"}}, "port": 1}, 65, "port: unknown field"),
        ({"sources": {"r": {"records": "x", "prometheus": "http://p:9090"}}}, 65, "give exactly one of records"),
        ({"sources": {"r": {"prometheus": "ftp://p"}}}, 65, "must be an http(s) URL"),
        (
            {"sources": {"r": {"records": "x"}}, "interval": "5m", "lifetime": "1m"},
            65,
            "lifetime: must be at least one interval",
        ),
        ({"sources": {"r": {"records": "x"}}, "max_analyses": "4"}, 65, "max_analyses: must be a number"),
        ({"sources": {"bad name": {"records": "x"}}}, 65, "sources.bad name"),
        ({"sources": {"r": {"records": "x"}}, "spec": "missing.yaml"}, 66, "SLO spec not found"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_field(tmp_path, monkeypatch, doc, code, message):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(doc))
    got, line = _cli(monkeypatch, tmp_path, path)
    assert got == code and line.startswith("harness judge serve: error: ") and message in line, line


def test_the_key_missing_extras_and_usage(tmp_path, monkeypatch):
    config = _config(tmp_path)
    code, line = _cli(monkeypatch, tmp_path, config, key="  ")
    assert code == 64 and "HARNESS_JUDGE_KEY is set but empty" in line
    code, line = _cli(monkeypatch, tmp_path, tmp_path / "missing.yaml")
    assert code == 66 and "not found" in line
    code, out, err = run_cli(["judge", "serve"])
    assert code == 64 and err.strip() == (
        "harness judge serve: error: the following arguments are required: --config (see harness judge serve --help)"
    )
    code, out, err = run_cli(["--log-level", "WARNING", "judge", "serve", "--config", config, "--port", "70000"])
    assert code == 64 and "--port must be 0..65535" in err
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the api extra were not installed
    code, line = _cli(monkeypatch, tmp_path, config)
    assert code == 69 and line.endswith(
        "needs the 'api' extra (fastapi is not installed): pip install 'caption-slo-harness[api]'"
    )
    code, out, _ = run_cli(["judge", "--help"])
    assert code == 0 and "harness judge serve --config FILE" in out


def test_the_command_line_stays_light():
    code = (
        "import sys, harness, harness.cli\n"
        "try:\n"
        "    harness.cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'pydantic', 'pandas') if m in sys.modules]\n"
        "print('loaded:', ','.join(heavy), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "judge a canary" in out.stdout and out.stderr.strip() == "loaded:"


def _service(tmp_path: Path, now: list[float], **config):
    from harness.canary.service import JudgeService, load_serve_config

    (tmp_path / "records").mkdir(exist_ok=True)
    cfg, settings, sources = load_serve_config(_config(tmp_path, **config))
    svc = JudgeService(cfg, settings, sources, tmp_path / "state", key=KEY, clock=lambda: now[0])
    svc.load()
    return svc


def test_an_analysis_its_controller_let_go_is_stopped_and_frees_its_place(tmp_path):
    """An aborted Rollout never calls again: after 3 intervals without a request (at least the
    configured idle_stop) its analysis is stopped, files kept, and a new analysis may start."""
    now = [1_800_000_000.0]
    svc = _service(tmp_path, now, max_analyses=1, idle_stop="60s", interval="10m", lifetime="1h")
    assert svc.create("abandoned", _body("twin", interval="10m", lifetime="1h"))[0] == 201
    from harness.canary.service import ServiceError

    with pytest.raises(ServiceError) as full:
        svc.create("next", _body("twin", interval="10m", lifetime="1h"))
    assert full.value.status == 429
    now[0] += 59.0
    svc.start()
    try:
        time.sleep(0.3)
        assert svc.list()["analyses"][0]["state"] == "running"  # a listing does not keep it alive
        now[0] += 2.0
        _until(lambda: svc.list()["analyses"][0]["state"] == "stopped", timeout=10)
    finally:
        svc.close()
    stopped = json.loads((tmp_path / "state" / "analyses" / "abandoned" / "stopped.json").read_text())
    assert stopped["why"].startswith("no request named it for 61 s")
    assert svc.create("next", _body("twin", interval="10m", lifetime="1h"))[0] == 201


def test_a_flagger_name_past_128_characters_is_cut_and_keeps_a_digest():
    from harness.canary.service import NAME_PATTERN, flagger_name

    assert flagger_name("Test", "PodInfo", "85d557f47b") == "test.podinfo.85d557f47b"
    long_a, long_b = ("x" * 200 + "a"), ("x" * 200 + "b")
    a, b = flagger_name("test", long_a, "85d557f47b"), flagger_name("test", long_b, "85d557f47b")
    assert len(a) == len(b) == 128 and a != b and a[:117] == b[:117]
    import re

    assert re.match(NAME_PATTERN, a) and re.match(NAME_PATTERN, b)
