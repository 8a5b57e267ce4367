"""The flaw zoo against the live gate: a partial regression on a fifth of the requests, built with
the fault proxy in front of a real reference server, is never promoted. Two flaws go end to end
here, one in the answers (``wrong_words``) and one in the tail (``slow_tail``); every flaw of the
zoo, these two included, is judged on a recorded gate run mutated offline by the proxy's own code
in ``tests/integration/test_judge_flaws.py`` (each verdict and the metric that catches it)."""

import pytest

from harness.canary.gate import GateConfig, run_gate
from harness.load.flaws import flaw_faults
from harness.load.proxy import ProxyProcess

pytest.importorskip("torch")

# 100 images: the evaluation set a flaw must be caught on; a short load keeps the suite fast
# (benchmarks/gate_power.py measures detection with 20-30 s of load).
RUN = dict(duration_s=3.0, users=4, dataset="shapes:100", concurrency=4)
# One flaw in the answers, one in the tail; the others: tests/integration/test_judge_flaws.py.
END_TO_END = ("wrong_words", "slow_tail")
ROLLED_BACK = {"wrong_words": "quality"}


@pytest.fixture(scope="module")
def servers():
    from contextlib import ExitStack

    from reference_model.server.launch import start_server

    with ExitStack() as st:
        yield (
            st.enter_context(start_server("tiny", extra_args=["--threads", "1"])),
            st.enter_context(start_server("tiny", extra_args=["--threads", "1"])),
        )


def _run(flaw):
    # The tail is judged on the load's requests alone: give it enough of them on a busy machine.
    return {**RUN, "duration_s": 6.0} if flaw == "slow_tail" else RUN


def _metric(rec, name):
    return next(m for m in rec["metrics"] if m["name"] == name)


@pytest.mark.parametrize("flaw", END_TO_END)
def test_a_fifth_of_flawed_requests_is_never_promoted(servers, tmp_path, flaw):
    stable, twin = servers
    faults = flaw_faults(flaw, 0.2)
    # Both answers take the same path: the baseline through a proxy without faults (each proxy in a
    # process of its own, so neither adds latency to the other).
    with ProxyProcess(stable.url) as base, ProxyProcess(twin.url, faults=faults, seed=7) as proxy:
        rec = run_gate(GateConfig(base.url, proxy.url, tmp_path, faults=faults, seed=3, **_run(flaw)))
    assert rec["verdict"] != "PROMOTE", rec["reasons"]
    if flaw in ROLLED_BACK:
        m = _metric(rec, ROLLED_BACK[flaw])
        assert rec["verdict"] == "ROLLBACK" and m["classification"] in ("High", "Low") and m["critical"]
        assert any(r.startswith(f"critical metric {m['name']} failed") for r in rec["reasons"])
    if flaw == "slow_tail":
        assert "High" in (_metric(rec, "latency_p95")["classification"], _metric(rec, "latency_p99")["classification"])
    if flaw == "wrong_words":
        q = _metric(rec, "quality")
        assert q["details"]["better"] == 0 and q["details"]["worse"] >= 10
        assert 0.1 <= _metric(rec, "caption_changed")["effect"] <= 0.3
