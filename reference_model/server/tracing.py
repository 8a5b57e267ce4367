"""The reference server's traces (OpenTelemetry): each captioning request continues the trace of
its ``traceparent`` (W3C Trace Context; a missing or malformed one starts a new trace) with a
server span and its steps, exported over OTLP/HTTP (``--otlp-endpoint``) and/or appended to a JSON
lines file (``--spans-file``).

The spans of one request (every route that captions: contract v1, the other protocols, and the
asynchronous route's submission and job)::

    POST /v1/caption              server; parent: the caller's span in traceparent
    ├── admission                 the API key and readiness
    ├── decode                    the image checked from its header, decoded and shrunk
    ├── queue                     submitted to the batcher until its batch starts
    └── batch                     the batch's run on the inference thread (injected latency too);
        └── generate_content tiny the model's forward (GenAI semantic conventions)

A batch serves many requests: each request gets its own ``batch`` and model spans, with the
batch's times, number (``caption.batch.id``, the same for every request it served) and size, so a
request's trace holds all of its time and the requests batched together can be found by that id.
An asynchronous job's ``job`` span (consumer; from the job's arrival to its end) is a child of its
submission's server span and holds the job's ``queue`` and ``batch``.

Off unless an exporter is set: ``NO_TRACING`` stands in, whose methods do nothing and which imports
nothing of OpenTelemetry. Spans leave through the SDK's ``BatchSpanProcessor`` (at most 2048 spans
wait, 512 are sent at once, every 5 s; ``OTEL_BSP_*`` change those; when the queue is full new spans
are dropped): a request only appends its spans to that queue. An endpoint that does not take them
costs one warning in the log (``_Watched``), again only after it took spans in between; at shutdown
the exporters get ``SHUTDOWN_GRACE_S`` to send what is left."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from typing import Any, NamedTuple, Sequence

from reference_model.server.logs import log

__all__ = [
    "BatchRun",
    "NoTracing",
    "NO_TRACING",
    "Tracing",
    "SpansFile",
    "span_line",
    "SERVICE_NAME",
    "GENAI_OPERATION",
    "GENAI_PROVIDER",
    "SHUTDOWN_GRACE_S",
]

SERVICE_NAME = "caption-reference-server"
GENAI_OPERATION = "generate_content"  # gen_ai.operation.name: an image in, text out
GENAI_PROVIDER = "reference_model"  # gen_ai.provider.name: no well-known provider serves this model
SHUTDOWN_GRACE_S = 5.0


class BatchRun(NamedTuple):
    """One inference batch as the inference thread ran it: its number and size, and its wall times
    in unix nanoseconds (start, the model's end, the end after any injected latency)."""

    id: int
    size: int
    start_ns: int
    model_end_ns: int
    end_ns: int


class _NullSpan:
    """What ``NoTracing`` gives for every span: a context manager that records nothing."""

    __slots__ = ()

    def __enter__(self) -> "_NullSpan":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def finish(self, status: int, request_id: str | None = None) -> None:
        return None


_NULL_SPAN = _NullSpan()


class NoTracing:
    """The server without traces: every method does nothing (the default)."""

    enabled = False

    def server_span(self, request: Any, route: str | None = None, request_id: str | None = None) -> Any:
        """The server span of ``request`` (a context manager; ``finish(status, request_id)`` at its end)."""
        return _NULL_SPAN

    def span(self, name: str, attributes: dict[str, Any] | None = None) -> Any:
        """A child span of the current one, as a context manager."""
        return _NULL_SPAN

    def context(self) -> Any:
        """The current trace context, to continue later (an asynchronous job), or ``None``."""
        return None

    def job_span(self, parent: Any, job: Any) -> Any:
        """The span of an asynchronous job's work, a child of ``parent`` (``context()`` at submission)."""
        return _NULL_SPAN

    def carrier(self, context: Any) -> dict[str, str] | None:
        """``context`` (from ``context()``) as W3C headers, to continue it in another process."""
        return None

    def continued(self, carrier: dict[str, str] | None) -> Any:
        """The context ``carrier`` holds (``carrier()`` of another process), or ``None``."""
        return None

    def batch_spans(self, submitted_ns: int, outs: Sequence[tuple[Any, BatchRun]]) -> None:
        """The ``queue``, ``batch`` and model spans of each image of ``outs`` (captions with their
        batch), submitted to the batcher at ``submitted_ns``."""
        return None

    def shutdown(self) -> None:
        return None


NO_TRACING = NoTracing()


def tracing_for(settings: Any, model_name: str, model_version: str) -> NoTracing:
    """``Tracing`` when ``settings`` name an exporter, else ``NO_TRACING``."""
    if not (settings.otlp_endpoint or settings.spans_file):
        return NO_TRACING
    return Tracing(model_name, model_version, otlp_endpoint=settings.otlp_endpoint, spans_file=settings.spans_file)


def span_line(span: Any) -> str:
    """A finished span as one JSON line: ids as hex, times in unix seconds, the duration in ms."""
    from opentelemetry.trace import format_span_id, format_trace_id

    ctx = span.context
    start, end = span.start_time or 0, span.end_time or 0
    doc = {
        "trace_id": format_trace_id(ctx.trace_id),
        "span_id": format_span_id(ctx.span_id),
        "parent_span_id": format_span_id(span.parent.span_id) if span.parent is not None else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "start": start / 1e9,
        "end": end / 1e9,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": span.status.status_code.name.lower(),
        "service": span.resource.attributes.get("service.name") if span.resource is not None else None,
        "attributes": dict(span.attributes or {}),
    }
    return json.dumps(doc, separators=(",", ":"), default=list) + "\n"


def _exporter_base():
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    return SpanExporter, SpanExportResult


class SpansFile:
    """An SDK span exporter appending each span to ``path`` as one JSON line (``span_line``);
    made with ``SpansFile.make(path)`` (the class is built on the SDK's ``SpanExporter`` when the
    SDK is imported)."""

    @staticmethod
    def make(path: str) -> Any:
        SpanExporter, SpanExportResult = _exporter_base()

        class _SpansFile(SpanExporter):
            def __init__(self) -> None:
                self.path = path
                # Appended to by each of the server's processes (front-end workers): every export
                # is one write() of whole lines at the end of the file.
                self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._lock = threading.Lock()

            def export(self, spans):
                data = "".join(span_line(s) for s in spans).encode("utf-8")
                with self._lock:
                    if self._fd is None:
                        return SpanExportResult.FAILURE
                    written = os.write(self._fd, data)
                    while written < len(data):  # only a full disk writes less
                        written += os.write(self._fd, data[written:])
                return SpanExportResult.SUCCESS

            def shutdown(self) -> None:
                with self._lock:
                    if self._fd is not None:
                        os.close(self._fd)
                        self._fd = None

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                return True

        return _SpansFile()


def _watched(inner: Any, where: str, queue_bound: int) -> Any:
    """``inner`` (an SDK span exporter) wrapped so that its failures cost one warning: at the first
    failed export, and again only after an export went through. While the exporters are being shut
    down, an exporter that is down drops what is left at once instead of trying again."""
    SpanExporter, SpanExportResult = _exporter_base()

    class _Watched(SpanExporter):
        def __init__(self) -> None:
            self.inner, self.where = inner, where
            self.down = False
            self.closing = False

        def export(self, spans):
            if self.closing and self.down:
                return SpanExportResult.FAILURE
            try:
                result = self.inner.export(spans)
            except Exception as exc:  # a full disk, a bug: the spans are lost, never a request
                result, why = SpanExportResult.FAILURE, f": {type(exc).__name__}: {exc}"
            else:
                why = ""
            if result is SpanExportResult.SUCCESS:
                if self.down:
                    self.down = False
                    log.warning(f"traces: {self.where} takes spans again")
            elif not self.down:
                self.down = True
                log.warning(
                    f"traces: {self.where} did not take {len(spans)} spans{why}; spans are dropped while it "
                    f"does not (at most {queue_bound} wait); requests are not affected"
                )
            return result

        def shutdown(self) -> None:
            self.inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return _Watched()


class Tracing(NoTracing):
    """The server's own tracer provider (not the process's global one) with a batch span processor
    per exporter: the spans file (``spans_file``) and OTLP/HTTP (``otlp_endpoint``, the full URL of
    the traces route). The model span names ``model_name`` and ``model_version``."""

    enabled = True

    def __init__(
        self,
        model_name: str,
        model_version: str,
        *,
        otlp_endpoint: str | None = None,
        spans_file: str | None = None,
    ):
        from opentelemetry import context, trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # The exporter's own lines (each retry, each failed batch) and the processor's "queue full"
        # would repeat while an endpoint is down: _Watched says it once instead.
        logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
        logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
        self._context, self._trace = context, trace
        self._propagator = TraceContextTextMapPropagator()
        self.model_name, self.model_version = model_name, model_version
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win (a baseline and a canary told apart).
        detected = Resource.create({})
        ours = {"service.name": SERVICE_NAME, "service.version": model_version}
        if not str(detected.attributes.get("service.name", "")).startswith("unknown_service"):
            ours.pop("service.name")
        if "service.version" in detected.attributes:
            ours.pop("service.version")
        resource = detected.merge(Resource(ours))
        self._provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self._watched: list[Any] = []
        # The file first: at shutdown it is flushed before the network exporter is waited for.
        for where, make in (
            (spans_file, lambda: SpansFile.make(spans_file)),
            (otlp_endpoint, lambda: _otlp_exporter(otlp_endpoint)),
        ):
            if where:
                processor = BatchSpanProcessor(_watched(make(), where, _queue_bound()))
                self._watched.append(processor.span_exporter)
                self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("reference_model.server")
        self._model_name = f"{GENAI_OPERATION} {model_name}"
        kinds = trace.SpanKind
        self._server, self._consumer = kinds.SERVER, kinds.CONSUMER

    # -- spans ----------------------------------------------------------------------------------

    def server_span(self, request: Any, route: str | None = None, request_id: str | None = None) -> Any:
        return _ServerSpan(self, request, route, request_id)

    def span(self, name: str, attributes: dict[str, Any] | None = None) -> Any:
        if not self._trace.get_current_span().is_recording():
            return _NULL_SPAN
        return self._tracer.start_as_current_span(name, attributes=attributes, record_exception=False)

    def context(self) -> Any:
        return self._context.get_current() if self._trace.get_current_span().is_recording() else None

    def job_span(self, parent: Any, job: Any) -> Any:
        return _NULL_SPAN if parent is None else _JobSpan(self, parent, job)

    def carrier(self, context: Any) -> dict[str, str] | None:
        if context is None:
            return None
        headers: dict[str, str] = {}
        self._propagator.inject(headers, context=context)
        return headers or None

    def continued(self, carrier: dict[str, str] | None) -> Any:
        return self._propagator.extract(carrier) if carrier else None

    def batch_spans(self, submitted_ns: int, outs: Sequence[tuple[Any, BatchRun]]) -> None:
        if not self._trace.get_current_span().is_recording():
            return
        tracer, in_span = self._tracer, self._trace.set_span_in_context
        for cap, run in outs:
            tracer.start_span("queue", start_time=submitted_ns).end(end_time=max(submitted_ns, run.start_ns))
            batch = tracer.start_span(
                "batch",
                start_time=run.start_ns,
                attributes={"caption.batch.id": run.id, "caption.batch.size": run.size},
            )
            model = tracer.start_span(
                self._model_name,
                context=in_span(batch),
                start_time=run.start_ns,
                attributes={
                    "gen_ai.operation.name": GENAI_OPERATION,
                    "gen_ai.provider.name": GENAI_PROVIDER,
                    "gen_ai.request.model": self.model_name,
                    "gen_ai.response.model": self.model_version,
                    "gen_ai.output.type": "text",
                    "gen_ai.usage.output_tokens": int(cap.tokens),
                    "caption.batch.size": run.size,
                },
            )
            model.end(end_time=run.model_end_ns)
            batch.end(end_time=run.end_ns)

    # -- the end --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Send what is left, each exporter within ``SHUTDOWN_GRACE_S`` (then its retries stop)."""
        for w in self._watched:
            w.closing = True
        timer = threading.Timer(SHUTDOWN_GRACE_S, self._abort)
        timer.daemon = True
        timer.start()
        try:
            self._provider.shutdown()
        finally:
            timer.cancel()

    def _abort(self) -> None:
        for w in self._watched:
            try:
                w.inner.shutdown()  # stops the OTLP exporter's retries; the processor drops the rest
            except Exception:  # shutting down: nothing more to do
                pass


def _queue_bound() -> int:
    """The batch span processor's queue bound: ``OTEL_BSP_MAX_QUEUE_SIZE``, else the SDK's 2048."""
    try:
        return int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") or 2048)
    except ValueError:
        return 2048


def _otlp_exporter(endpoint: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


class _ServerSpan:
    """The server span of one request, current while the handler runs: its parent is the
    request's ``traceparent`` (none, or a malformed one: a new trace). ``finish`` sets the answer's
    status (5xx: an error) and the request id the answer carries."""

    __slots__ = ("_t", "_request", "_route", "_request_id", "_span", "_token", "_finished")

    def __init__(self, tracing: Tracing, request: Any, route: str | None, request_id: str | None):
        self._t, self._request, self._route, self._request_id = tracing, request, route, request_id
        self._span = self._token = None
        self._finished = False

    def __enter__(self) -> "_ServerSpan":
        t, request = self._t, self._request
        scope = request.scope
        route = self._route or getattr(scope.get("route"), "path", None) or scope.get("path", "")
        method = scope.get("method", "")
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": scope.get("path", ""),
        }
        if self._request_id is not None:
            attributes["caption.request_id"] = self._request_id
        parent = t._propagator.extract(request.headers)
        span = self._span = t._tracer.start_span(
            f"{method} {route}", context=parent, kind=t._server, attributes=attributes
        )
        self._token = t._context.attach(t._trace.set_span_in_context(span))
        ctx = span.get_span_context()
        if span.is_recording():
            request.state.trace_id = t._trace.format_trace_id(ctx.trace_id)
        return self

    def finish(self, status: int, request_id: str | None = None) -> None:
        span = self._span
        self._finished = True
        if span is None or not span.is_recording():
            return
        span.set_attribute("http.response.status_code", int(status))
        if request_id is not None:
            span.set_attribute("caption.request_id", request_id)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(self._t._trace.Status(self._t._trace.StatusCode.ERROR))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        span = self._span
        if span is None:
            return
        try:
            if exc is not None and not self._finished:
                if isinstance(exc, asyncio.CancelledError):
                    self.finish(499)  # the client went away
                else:
                    span.set_attribute("error.type", type(exc).__qualname__)
                    span.set_status(self._t._trace.Status(self._t._trace.StatusCode.ERROR, type(exc).__name__))
        finally:
            self._t._context.detach(self._token)
            span.end()


class _JobSpan:
    """The span of an asynchronous job's work, from the job's arrival, under its submission's span."""

    __slots__ = ("_t", "_parent", "_job", "_span", "_token")

    def __init__(self, tracing: Tracing, parent: Any, job: Any):
        self._t, self._parent, self._job = tracing, parent, job
        self._span = self._token = None

    def __enter__(self) -> "_JobSpan":
        t, job = self._t, self._job
        self._span = t._tracer.start_span(
            "job",
            context=self._parent,
            kind=t._consumer,
            start_time=int(job.arrived_wall * 1e9),
            attributes={"caption.job.id": job.id, "caption.request_id": job.request_id},
        )
        self._token = t._context.attach(t._trace.set_span_in_context(self._span))
        return self

    def __exit__(self, *exc: Any) -> None:
        span = self._span
        try:
            span.set_attribute("caption.job.status", self._job.status)
            if self._job.status in ("failed", "expired"):
                span.set_status(self._t._trace.Status(self._t._trace.StatusCode.ERROR, self._job.status))
        finally:
            self._t._context.detach(self._token)
            span.end()
