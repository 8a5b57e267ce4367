"""The server's parts on their own: safety filter, metrics exposition, fault draws, batcher."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from reference_model.server.batcher import Batcher, QueueFullError
from reference_model.server.faults import FaultInjector, FaultSpec
from reference_model.server.metrics import ServerMetrics
from reference_model.server.safety import DEFAULT_BLOCKLIST, SafetyFilter, SafetyVerdict


@pytest.mark.parametrize(
    "text, redacted, reasons",
    [
        ("a red circle above a blue square", "a red circle above a blue square", ()),
        ("a GUN near a circle", "a [redacted] near a circle", ("blocklist",)),
        ("gunman and gunpowder", "gunman and gunpowder", ()),
        ("mail bob.smith@example.co.uk now", "mail [redacted] now", ("email",)),
        ("call +1 (555) 123-4567 or 555.123.4567", "call [redacted] or [redacted]", ("phone",)),
        ("3 circles and 12 squares in 2024", "3 circles and 12 squares in 2024", ()),
        (
            "email a@b.io and gore, 07911 123456",
            "email [redacted] and [redacted], [redacted]",
            ("blocklist", "email", "phone"),
        ),
    ],
)
def test_safety_filter_redacts_and_names_reasons(text, redacted, reasons):
    assert SafetyFilter().check(text) == SafetyVerdict(redacted, bool(reasons), reasons)


def test_safety_blocklist_is_extendable_and_whole_word():
    f = SafetyFilter(DEFAULT_BLOCKLIST + ("Circle",))
    assert "circle" in f.blocklist
    assert f.check("a circle and circles").text == "a [redacted] and circles"


def _exposition(registry: CollectorRegistry) -> str:
    return "".join(line + "\n" for line in generate_latest(registry).decode().splitlines() if "_created" not in line)


def test_metrics_exposition_is_exact():
    registry = CollectorRegistry()
    m = ServerMetrics(registry, "tiny", "tiny-abc", "cpu")
    for status, seconds in ((200, 0.0625), (429, 0.0078125), (200, 0.25)):
        m.observe_request(status, seconds)
    m.batch_size.observe(3)
    m.queue_depth.set(2)
    m.observe_caption(0.875, ("email",))
    m.jobs.labels("submitted").inc(3)
    m.jobs.labels("done").inc(2)
    m.jobs.labels("expired").inc()
    m.job_lag.observe(0.5)
    m.job_lag.observe(45.0)
    m.jobs_pending.set(0)
    expected = """\
# HELP caption_requests_total Caption requests answered, by HTTP status and model version.
# TYPE caption_requests_total counter
caption_requests_total{model_version="tiny-abc",status="200"} 2.0
caption_requests_total{model_version="tiny-abc",status="429"} 1.0
# HELP caption_request_duration_seconds Time from a caption request's arrival to its answer, every status included.
# TYPE caption_request_duration_seconds histogram
caption_request_duration_seconds_bucket{le="0.01"} 1.0
caption_request_duration_seconds_bucket{le="0.025"} 1.0
caption_request_duration_seconds_bucket{le="0.05"} 1.0
caption_request_duration_seconds_bucket{le="0.1"} 2.0
caption_request_duration_seconds_bucket{le="0.2"} 2.0
caption_request_duration_seconds_bucket{le="0.3"} 3.0
caption_request_duration_seconds_bucket{le="0.5"} 3.0
caption_request_duration_seconds_bucket{le="0.75"} 3.0
caption_request_duration_seconds_bucket{le="1.0"} 3.0
caption_request_duration_seconds_bucket{le="2.5"} 3.0
caption_request_duration_seconds_bucket{le="5.0"} 3.0
caption_request_duration_seconds_bucket{le="10.0"} 3.0
caption_request_duration_seconds_bucket{le="+Inf"} 3.0
caption_request_duration_seconds_count 3.0
caption_request_duration_seconds_sum 0.3203125
# HELP caption_batch_size Images per inference batch.
# TYPE caption_batch_size histogram
caption_batch_size_bucket{le="1.0"} 0.0
caption_batch_size_bucket{le="2.0"} 0.0
caption_batch_size_bucket{le="4.0"} 1.0
caption_batch_size_bucket{le="8.0"} 1.0
caption_batch_size_bucket{le="16.0"} 1.0
caption_batch_size_bucket{le="32.0"} 1.0
caption_batch_size_bucket{le="64.0"} 1.0
caption_batch_size_bucket{le="128.0"} 1.0
caption_batch_size_bucket{le="256.0"} 1.0
caption_batch_size_bucket{le="+Inf"} 1.0
caption_batch_size_count 1.0
caption_batch_size_sum 3.0
# HELP caption_queue_depth Images waiting for an inference batch.
# TYPE caption_queue_depth gauge
caption_queue_depth 2.0
# HELP caption_confidence Confidence of the captions answered.
# TYPE caption_confidence histogram
caption_confidence_bucket{le="0.1"} 0.0
caption_confidence_bucket{le="0.2"} 0.0
caption_confidence_bucket{le="0.3"} 0.0
caption_confidence_bucket{le="0.4"} 0.0
caption_confidence_bucket{le="0.5"} 0.0
caption_confidence_bucket{le="0.6"} 0.0
caption_confidence_bucket{le="0.7"} 0.0
caption_confidence_bucket{le="0.8"} 0.0
caption_confidence_bucket{le="0.9"} 1.0
caption_confidence_bucket{le="0.95"} 1.0
caption_confidence_bucket{le="0.99"} 1.0
caption_confidence_bucket{le="1.0"} 1.0
caption_confidence_bucket{le="+Inf"} 1.0
caption_confidence_count 1.0
caption_confidence_sum 0.875
# HELP caption_safety_flags_total Captions flagged by the safety filter, by reason.
# TYPE caption_safety_flags_total counter
caption_safety_flags_total{reason="blocklist"} 0.0
caption_safety_flags_total{reason="email"} 1.0
caption_safety_flags_total{reason="phone"} 0.0
# HELP caption_model_info The model being served (always 1).
# TYPE caption_model_info gauge
caption_model_info{device="cpu",name="tiny",version="tiny-abc"} 1.0
# HELP caption_jobs_total Asynchronous caption jobs, by state reached: submitted, done, failed, expired, rejected.
# TYPE caption_jobs_total counter
caption_jobs_total{state="submitted"} 3.0
caption_jobs_total{state="done"} 2.0
caption_jobs_total{state="failed"} 0.0
caption_jobs_total{state="expired"} 1.0
caption_jobs_total{state="rejected"} 0.0
# HELP caption_job_lag_seconds Pipeline lag: from an asynchronous job's arrival to its caption being available.
# TYPE caption_job_lag_seconds histogram
caption_job_lag_seconds_bucket{le="0.1"} 0.0
caption_job_lag_seconds_bucket{le="0.25"} 0.0
caption_job_lag_seconds_bucket{le="0.5"} 1.0
caption_job_lag_seconds_bucket{le="1.0"} 1.0
caption_job_lag_seconds_bucket{le="2.0"} 1.0
caption_job_lag_seconds_bucket{le="5.0"} 1.0
caption_job_lag_seconds_bucket{le="10.0"} 1.0
caption_job_lag_seconds_bucket{le="30.0"} 1.0
caption_job_lag_seconds_bucket{le="60.0"} 2.0
caption_job_lag_seconds_bucket{le="120.0"} 2.0
caption_job_lag_seconds_bucket{le="300.0"} 2.0
caption_job_lag_seconds_bucket{le="600.0"} 2.0
caption_job_lag_seconds_bucket{le="1800.0"} 2.0
caption_job_lag_seconds_bucket{le="3600.0"} 2.0
caption_job_lag_seconds_bucket{le="+Inf"} 2.0
caption_job_lag_seconds_count 2.0
caption_job_lag_seconds_sum 45.5
# HELP caption_jobs_pending Asynchronous jobs accepted and not yet done, failed or expired.
# TYPE caption_jobs_pending gauge
caption_jobs_pending 0.0
# HELP caption_job_callbacks_total Callbacks of finished asynchronous jobs, by result: delivered, refused, failed, skipped.
# TYPE caption_job_callbacks_total counter
caption_job_callbacks_total{result="delivered"} 0.0
caption_job_callbacks_total{result="refused"} 0.0
caption_job_callbacks_total{result="failed"} 0.0
caption_job_callbacks_total{result="skipped"} 0.0
"""
    assert _exposition(registry) == expected


def test_fault_spec_validation_names_the_bad_field():
    spec = FaultSpec().with_updates({"error_rate": 0.25, "latency_ms": 10})
    assert (spec.error_rate, spec.latency_ms, spec.hang_rate) == (0.25, 10.0, 0.0)
    for bad, word in (
        ({"error_rate": 1.5}, "error_rate"),
        ({"jitter_ms": -1}, "jitter_ms"),
        ({"hang_rate": "half"}, "hang_rate"),
        ({"colour": 1}, "colour"),
        ({"seed": 1.5}, "seed"),
        ({"stall_s": 3601}, "stall_s is over one hour"),
        ({"drop_rate": True}, "drop_rate must be a number"),
        ({"latency_ms": "10"}, "latency_ms must be a number"),
    ):
        with pytest.raises(ValueError, match=word):
            FaultSpec().with_updates(bad)


def test_fault_draws_are_reproducible_and_respect_rates():
    def run(seed):
        inj = FaultInjector(seed=seed)
        inj.update({"error_rate": 0.3, "hang_rate": 0.2, "latency_ms": 100, "jitter_ms": 50, "unsafe_rate": 0.5})
        return (
            [inj.draw_request() for _ in range(200)],
            [inj.batch_delay_s() for _ in range(50)],
            [inj.draw_unsafe(DEFAULT_BLOCKLIST) for _ in range(50)],
        )

    a, b, c = run(1), run(1), run(2)
    assert a == b and a != c
    requests, delays, words = a
    assert set(requests) == {None, "hang", "error"}
    assert all(0.1 <= d <= 0.15 for d in delays) and len(set(delays)) == 50
    assert {w for w in words if w} <= set(DEFAULT_BLOCKLIST) and None in words
    inj = FaultInjector()
    assert inj.draw_request() is None and inj.batch_delay_s() == 0.0 and not inj.active
    inj.update({"error_rate": 1.0})
    assert {inj.draw_request() for _ in range(20)} == {"error"}
    inj.clear()
    assert not inj.active and inj.draw_request() is None


def test_slow_start_counts_down_on_the_injected_clock():
    now = [100.0]
    inj = FaultInjector(clock=lambda: now[0])
    inj.update({"slow_start_s": 5})
    assert inj.slow_start_remaining() == 5.0
    now[0] = 103.0
    assert inj.slow_start_remaining() == 2.0
    now[0] = 106.0
    assert inj.slow_start_remaining() == 0.0


def test_batcher_groups_up_to_max_batch_and_keeps_order():
    sizes = []

    def infer(xs):
        sizes.append(len(xs))
        return [x * 10 for x in xs]

    async def main():
        b = Batcher(infer, max_batch=2, max_wait_s=0.05, max_queue=10)
        b.start()
        futs = [b.submit(i) for i in range(5)]
        out = await asyncio.gather(*futs)
        await b.stop()
        return out

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert sizes == [2, 2, 1]


def test_batcher_bounds_the_queue_skips_given_up_items_and_survives_a_failing_batch():
    seen = []

    def infer(xs):
        seen.append(list(xs))
        if "boom" in xs:
            raise RuntimeError("model failed")
        return [x.upper() for x in xs]

    async def main():
        depths = []
        b = Batcher(infer, max_batch=4, max_wait_s=0.01, max_queue=3, on_depth=depths.append)
        b.start()
        a, gone, c = b.submit("a"), b.submit("gone"), b.submit("c")
        with pytest.raises(QueueFullError) as full:
            b.submit("d")
        assert full.value.retry_after_s >= 1
        gone.cancel()
        assert await asyncio.gather(a, c) == ["A", "C"]
        boom = b.submit("boom")
        with pytest.raises(RuntimeError, match="model failed"):
            await boom
        assert await b.submit("e") == "E"
        await b.stop()
        return depths

    depths = asyncio.run(main())
    assert seen == [["a", "c"], ["boom"], ["e"]]
    assert depths[:3] == [1, 2, 3] and depths[-1] == 0
