"""The server's Prometheus metrics, registered on a registry passed in. The names are part of
the contract: the generated alerting rules and the Grafana dashboard use exactly these."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from reference_model.server.safety import SAFETY_REASONS

__all__ = [
    "ServerMetrics",
    "METRIC_NAMES",
    "LATENCY_BUCKETS",
    "BATCH_SIZE_BUCKETS",
    "CONFIDENCE_BUCKETS",
    "LAG_BUCKETS",
    "JOB_STATES",
]

# The usual SLO latency thresholds (50, 100, 200, 300, 500 ms, 1 s, ...) are bucket bounds, so a
# "share of requests under T" SLI is exact for each of them.
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONFIDENCE_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
# Pipeline lag (an asynchronous job's arrival to its caption being available): the usual lag
# thresholds, from half a second to an hour, are bucket bounds, so the lag SLI is exact for each.
LAG_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# What ``caption_jobs_total`` counts: jobs accepted (submitted), finished (done, failed), expired
# unanswered, and submissions the server refused while the job queue was full or it was not ready.
JOB_STATES: tuple[str, ...] = ("submitted", "done", "failed", "expired", "rejected")
# What became of a finished job's callback: delivered (a 2xx answer), refused (another status),
# failed (no answer: connection refused, timeout), skipped (too many callbacks waiting).
CALLBACK_RESULTS: tuple[str, ...] = ("delivered", "refused", "failed", "skipped")

METRIC_NAMES: tuple[str, ...] = (
    "caption_requests_total",
    "caption_request_duration_seconds",
    "caption_batch_size",
    "caption_queue_depth",
    "caption_confidence",
    "caption_safety_flags_total",
    "caption_model_info",
    "caption_jobs_total",
    "caption_job_lag_seconds",
    "caption_jobs_pending",
    "caption_job_callbacks_total",
)


class ServerMetrics:
    """The metrics of the reference server, bound to one model version."""

    def __init__(self, registry: CollectorRegistry, model_name: str, model_version: str, device: str):
        self.model_version = model_version
        self.requests = Counter(
            "caption_requests",
            "Caption requests answered, by HTTP status and model version.",
            ["status", "model_version"],
            registry=registry,
        )
        self.duration = Histogram(
            "caption_request_duration_seconds",
            "Time from a caption request's arrival to its answer, every status included.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "caption_batch_size",
            "Images per inference batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        # With front-end workers the values of every process are added up (prometheus_client's
        # multiprocess mode): the gauges below are set by the model process alone, the others
        # hold 0, so their largest value is the server's.
        self.queue_depth = Gauge(
            "caption_queue_depth",
            "Images waiting for an inference batch.",
            registry=registry,
            multiprocess_mode="max",
        )
        self.confidence = Histogram(
            "caption_confidence",
            "Confidence of the captions answered.",
            buckets=CONFIDENCE_BUCKETS,
            registry=registry,
        )
        self.safety_flags = Counter(
            "caption_safety_flags",
            "Captions flagged by the safety filter, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in SAFETY_REASONS:
            self.safety_flags.labels(reason)
        self.model_info = Gauge(
            "caption_model_info",
            "The model being served (always 1).",
            ["name", "version", "device"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.model_info.labels(model_name, model_version, device).set(1)
        self.jobs = Counter(
            "caption_jobs",
            "Asynchronous caption jobs, by state reached: submitted, done, failed, expired, rejected.",
            ["state"],
            registry=registry,
        )
        for state in JOB_STATES:
            self.jobs.labels(state)
        self.job_lag = Histogram(
            "caption_job_lag_seconds",
            "Pipeline lag: from an asynchronous job's arrival to its caption being available.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.jobs_pending = Gauge(
            "caption_jobs_pending",
            "Asynchronous jobs accepted and not yet done, failed or expired.",
            registry=registry,
            multiprocess_mode="max",
        )
        self.job_callbacks = Counter(
            "caption_job_callbacks",
            "Callbacks of finished asynchronous jobs, by result: delivered, refused, failed, skipped.",
            ["result"],
            registry=registry,
        )
        for result in CALLBACK_RESULTS:
            self.job_callbacks.labels(result)

    def observe_request(self, status: int | str, seconds: float) -> None:
        """Count one answered caption request and its duration."""
        self.requests.labels(str(status), self.model_version).inc()
        self.duration.observe(seconds)

    def observe_caption(self, confidence: float, reasons: tuple[str, ...] | list[str]) -> None:
        """Record one caption's confidence and the safety reasons it was flagged for."""
        self.confidence.observe(confidence)
        for reason in reasons:
            self.safety_flags.labels(reason).inc()
