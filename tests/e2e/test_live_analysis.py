"""A live analysis end to end: reference servers behind a traffic split that records every request
as production would, Locust sending the traffic, and ``harness judge`` looking every 20 s for 80
seconds at two canaries at once: an identical one and one that answers 502 on a tenth of its
requests. Kayenta's practice: each canary is compared with a baseline of the same size and share
(20% each), not with the rest of production."""

import json
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest

from harness.canary.analysis import ANALYSIS_JSON
from harness.load.flaws import flaw_faults
from harness.load.proxy import ProxyProcess
from harness.load.split import SplitProxy

pytest.importorskip("torch")

SHARES = {"production": 0.4, "baseline": 0.2, "twin": 0.2, "flawed": 0.2}


# The four servers share two cores with the rest of the suite (make test runs it on 4 workers):
# two identical servers then differ by tens of milliseconds for minutes at a time, a difference of
# the machine's, not the canary's. The latency metrics get a floor of 50 ms here; the rest is the
# default judge, and the flawed canary is caught by its errors.
JUDGE_YAML = """
metrics:
  latency_p50: {direction: increase, tolerance: 0.25, tolerance_abs: 0.05}
  latency_p95: {direction: increase, tolerance: 0.5, tolerance_abs: 0.05, must_detect: 0.25}
  latency_p99: {direction: increase, tolerance: 1.0, tolerance_abs: 0.05}
"""


def _judge(records, canary, out):
    config = out.parent / "judge.yaml"
    config.write_text(JUDGE_YAML)
    cmd = [sys.executable, "-m", "harness", "judge", "--baseline", str(records), "--baseline-where", "target=baseline"]
    cmd += ["--canary", str(records), "--canary-where", f"target={canary}", "--judge-config", str(config)]
    cmd += ["--interval", "20s", "--lifetime", "80s", "--out", str(out), "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_a_flawed_canary_is_rolled_back_early_and_an_identical_one_promoted_at_the_end(tmp_path):
    from reference_model.server.launch import start_server

    records = tmp_path / "production"
    with ExitStack() as st:
        up = {n: st.enter_context(start_server("tiny", extra_args=["--threads", "1"])).url for n in SHARES}
        flawed = st.enter_context(ProxyProcess(up["flawed"], faults=flaw_faults("status_502", 0.1), seed=5))
        split = st.enter_context(SplitProxy({**up, "flawed": flawed.url}, SHARES, records, seed=1))
        judges = {c: _judge(records, c, tmp_path / c) for c in ("twin", "flawed")}
        started = time.monotonic()
        load = subprocess.run(
            [sys.executable, "-m", "harness", "load", "--target", split.url, "--scenario", "steady"]
            + ["--rate", "30", "--duration", "95s", "--out", str(tmp_path / "load"), "--seed", "3"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert load.returncode == 0, load.stderr[-2000:]
        outs = {c: p.communicate(timeout=120) for c, p in judges.items()}
    took = time.monotonic() - started
    twin, bad = (json.loads((tmp_path / c / ANALYSIS_JSON).read_text())["looks"] for c in ("twin", "flawed"))

    assert judges["flawed"].returncode == 1, outs["flawed"][1][-2000:]
    assert bad[-1]["verdict"] == "ROLLBACK" and len(bad) <= 2, bad  # early: at the first looks that see it
    rec = json.loads(outs["flawed"][0])
    # what sees the 502s first: the error rate itself, or the availability SLO's projected burn
    # (a decisive failure too: past its page factor while the baseline's is not)
    seen = {m["name"] for m in rec["metrics"] if m["classification"] == "High" and m["critical"]}
    assert seen & {"error_rate", "burn:availability"}, rec["reasons"]
    assert rec["analysis"]["look"] == len(bad) and rec["reasons"][0].startswith("critical metric")

    assert judges["twin"].returncode == 0, (twin, outs["twin"][1][-2000:])
    assert [lk["verdict"] for lk in twin] == ["HOLD"] * 3 + ["PROMOTE"]
    rec = json.loads(outs["twin"][0])
    assert rec["analysis"]["final"] and rec["metrics"][0]["n_canary"] > 400
    assert split.counts["twin"] > 0 and took < 180
