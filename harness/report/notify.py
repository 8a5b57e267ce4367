"""Telling people a verdict: after a judgement has written its decision record, the record is pushed
as gauges to a Prometheus Pushgateway and posted as a message to a Slack-compatible incoming
webhook, each when asked for (``Notify``). ``judge_sources`` calls ``tell`` once per decision
record: after a gate, a single ``harness judge`` and every look of an interval analysis.

Telling is best effort. A gateway or webhook that is down, answers anything but 2xx or gives no
answer within ``TIMEOUT_S`` is one warning line on stderr (the ``harness`` logger) naming only its
scheme, host and port (a webhook's path is its token); the verdict, the exit code and the decision
record, written before, stay exactly as they are.

The push (``push_to_gateway`` of ``prometheus_client``: a PUT, so it replaces every metric the group
held and a dashboard shows the latest judgement) goes to job ``caption_harness`` with the grouping
key ``instance`` = ``Notify.group``: the run id unless one is given (an interval analysis keeps its
run's id for all its looks). Its gauges:

- ``caption_canary_verdict{verdict}``: 1 for the verdict given, 0 for the other two (PROMOTE, HOLD,
  ROLLBACK), the way a state is exported (``kube_pod_status_phase``);
- ``caption_canary_score``: the score, 0 to 100 (absent when no metric had data);
- ``caption_canary_metric_classification{metric,classification}``: 1 for the metric's
  classification, 0 for the others (Pass, High, Low, NoData, Info);
- ``caption_canary_metric_failed{metric}``: 1 when the metric failed (High or Low), else 0;
- ``caption_canary_analysis_look`` and ``caption_canary_analysis_looks``: this look and the looks
  planned, for a look of an interval analysis only;
- ``caption_canary_decision_timestamp_seconds``: when the decision record was written (unix).

The message is Slack's incoming-webhook body (``text``, the notification's one line, and
``blocks``): the verdict and score, the canary's model version, the look (k of n), the failed
metrics, the first ``REASONS_SHOWN`` reasons and the decision record's path. Every text in it that
is not the harness's own words is one line and escaped as Slack asks (``&``, ``<``, ``>``), so a
model version or a reason quoting a target cannot mention ``<!channel>``, link or format a link."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, get_args
from urllib.parse import urlsplit

from harness.redaction import Redactor
from harness.text import one_line
from harness.verdicts import Classification, VerdictName

if TYPE_CHECKING:
    from harness.report.model import DecisionRecord

__all__ = ["PUSH_JOB", "TIMEOUT_S", "REASONS_SHOWN", "Notify", "tell", "gauges", "message", "slack_text"]

log = logging.getLogger(__name__)

PUSH_JOB = "caption_harness"
TIMEOUT_S = 5.0  # per push and per post
REASONS_SHOWN = 3


@dataclass(frozen=True)
class Notify:
    """Where to tell a verdict: a Pushgateway's base URL, the ``instance`` its pushes are grouped
    under (None: the run id), a Slack-compatible incoming webhook. False when it names neither."""

    pushgateway: str | None = None
    webhook: str | None = None
    group: str | None = None

    def __bool__(self) -> bool:
        return bool(self.pushgateway or self.webhook)

    def grouped(self, run_id: str) -> Notify:
        """These settings with the push group fixed: the one given, else ``run_id``."""
        return self if self.group else replace(self, group=run_id)


def tell(rec: DecisionRecord, record_path: Path, how: Notify) -> list[str]:
    """Push and post the decision record ``rec`` (written at ``record_path``) as ``how`` asks;
    returns the warnings logged, one per delivery that failed (none raises)."""
    warnings: list[str] = []
    if how.pushgateway:
        gateway, group = how.pushgateway, how.group or rec.run_id
        warnings += _attempt("push the verdict to the Pushgateway", gateway, lambda: _push(rec, gateway, group))
    if how.webhook:
        hook = how.webhook

        def post() -> None:  # the message is made here too: nothing in telling may raise
            _send("POST", hook, json=message(rec, record_path))

        warnings += _attempt("post the verdict to the webhook", hook, post)
    return warnings


# ---------------------------------------------------------------------------- the Pushgateway


def gauges(rec: DecisionRecord):
    """The decision record's gauges in a registry of their own (``prometheus_client``)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    verdict = gauge("caption_canary_verdict", "1 for the canary's verdict, 0 for the other two", ("verdict",))
    for name in get_args(VerdictName):
        verdict.labels(verdict=name).set(float(name == rec.verdict))
    if rec.score is not None:
        gauge("caption_canary_score", "the canary's score, 0 to 100").set(rec.score)
    classified = gauge(
        "caption_canary_metric_classification",
        "1 for the metric's classification (Pass, High, Low, NoData, Info), 0 for the others",
        ("metric", "classification"),
    )
    failed = gauge("caption_canary_metric_failed", "1 when the metric failed (High or Low), else 0", ("metric",))
    for m in rec.metrics:
        for cls in get_args(Classification):
            classified.labels(metric=m.name, classification=cls).set(float(m.classification == cls))
        failed.labels(metric=m.name).set(float(m.failed))
    if rec.analysis is not None:
        gauge("caption_canary_analysis_look", "this look of the interval analysis, from 1").set(rec.analysis.look)
        gauge("caption_canary_analysis_looks", "looks the interval analysis makes").set(rec.analysis.looks)
    gauge("caption_canary_decision_timestamp_seconds", "when the decision record was written, unix seconds").set(
        rec.created_unix
    )
    return registry


def _push(rec: DecisionRecord, gateway: str, group: str) -> None:
    from prometheus_client import push_to_gateway

    registry = gauges(rec)
    push_to_gateway(gateway, PUSH_JOB, registry, grouping_key={"instance": group}, timeout=TIMEOUT_S, handler=_handler)


def _handler(url: str, method: str, timeout: float | None, headers, data: bytes) -> Callable[[], None]:
    """``prometheus_client``'s push over httpx, so that both deliveries fail alike."""
    return lambda: _send(method, url, content=data, headers=dict(headers), timeout=timeout)


# ---------------------------------------------------------------------------- the webhook


def slack_text(value: Any, limit: int = 300) -> str:
    """``value`` as one line of at most ``limit`` characters, escaped for Slack's mrkdwn (``&``,
    ``<`` and ``>`` as entities, the only characters Slack reads as control sequences)."""
    return one_line(value, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(rec: DecisionRecord, record_path: Path) -> dict[str, Any]:
    """The incoming-webhook body telling the decision record ``rec`` (written at ``record_path``)."""
    verdict = rec.verdict
    scored = "no score (no metric had data)" if rec.score is None else f"score {rec.score:g}"
    analysis = rec.analysis
    look = f"{analysis.look} of {analysis.looks}" if analysis is not None else None
    canary = rec.inputs.targets["canary"] if "canary" in rec.inputs.targets else None
    reported = canary.model_version if canary is not None else None
    version = slack_text(reported, 200) if reported is not None else "not reported"
    failed = [m for m in rec.metrics if m.failed]
    failed_text = ", ".join(
        f"{slack_text(m.name, 80)} ({m.classification}{', critical' if m.critical else ''})" for m in failed
    )
    reasons = rec.reasons
    why = [f"• {slack_text(r, 300)}" for r in reasons[:REASONS_SHOWN]]
    if len(reasons) > REASONS_SHOWN:
        why.append(f"and {len(reasons) - REASONS_SHOWN} more in the decision record")
    path = slack_text(Path(record_path).absolute(), 500)
    headline = f"Canary {verdict}, {scored}" + (f", look {look}" if look else "")
    fields = [("Verdict", verdict), ("Score", scored.removeprefix("score ")), ("Canary model version", version)]
    if look:
        fields.append(("Look", look))
    text = (
        f"{headline}: failed {', '.join(slack_text(m.name, 80) for m in failed) or 'none'}; "
        f"canary model version {version}; decision record {path}"
    )
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Failed metrics*\n{failed_text or 'none'}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Why*\n" + ("\n".join(why) or "no reasons")}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Decision record {path} (run {slack_text(rec.run_id, 120)})"}],
            },
        ],
    }


# ---------------------------------------------------------------------------- sending


class _Refused(Exception):
    """The receiver answered, but not with 2xx."""


def _send(method: str, url: str, **kw: Any) -> None:
    """One request (httpx's keywords: ``json``, ``content``, ``headers``, ``timeout``); not
    following redirects, so a 3xx is a refusal too."""
    import httpx

    kw.setdefault("timeout", TIMEOUT_S)
    r = httpx.request(method, url, **kw)
    if not r.is_success:
        said = one_line(r.text, 80)  # Slack's "invalid_token", the gateway's reason: shown on one line
        raise _Refused(f"it answered HTTP {r.status_code}" + (f" ({said})" if said else ""))


def _attempt(what: str, url: str, send: Callable[[], None]) -> list[str]:
    """Run ``send``; a failure of any kind is one warning line, never an error: no delivery may
    change the verdict or lose the decision record."""
    import httpx

    try:
        send()
    except _Refused as exc:
        why = str(exc)
    except httpx.TimeoutException:
        why = f"no answer within {TIMEOUT_S:g} s"
    except Exception as exc:  # noqa: BLE001 - down, refused, a bad answer: all mean the same here
        why = f"{type(exc).__name__}: {exc}"
    else:
        return []
    line = f"could not {what} at {_origin(url)}: {Redactor([url]).text(one_line(why, 200))}; the verdict stands"
    log.warning("%s", line)
    return [line]


def _origin(url: str) -> str:
    """Scheme, host and port of ``url``: never its user, password or path (a webhook's token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
