"""The flaw zoo: partial regressions of a captioning service, as fault-proxy settings. Each class
touches a fraction of the requests, the way real regressions do (one image domain, one replica,
one code path). On-call rehearses them through the proxy; the gate's tests and
``benchmarks/gate_power.py`` measure how often the gate catches each one."""

from __future__ import annotations

from typing import Any

__all__ = ["FLAWS", "flaw_faults"]

# name -> (the fault fields, the field that takes the fraction of requests, what it does)
FLAWS: dict[str, tuple[dict[str, Any], str, str]] = {
    "wrong_words": (
        {"caption_fault": "replace"},
        "caption_fault_rate",
        "captions keep their words but one attribute or relation is wrong",
    ),
    "reordered": ({"caption_fault": "reorder"}, "caption_fault_rate", "caption words shuffled"),
    "truncated": ({"caption_fault": "truncate"}, "caption_fault_rate", "captions cut to half their words"),
    "repeated": ({"caption_fault": "repeat"}, "caption_fault_rate", "captions end in a repeated n-gram"),
    "blank": ({"caption_fault": "blank"}, "caption_fault_rate", "200 answers with an empty caption"),
    "pii": (
        {"caption_fault": "append"},
        "caption_fault_rate",
        "an e-mail address and a phone number appended, not flagged by the service",
    ),
    "hallucinated_object": (
        {"caption_fault": "add_object"},
        "caption_fault_rate",
        "an object the image does not hold appended (' and a red pentagon': a shape the shapes world never draws)",
    ),
    "overconfident": (
        {"caption_fault": "replace", "confidence_value": 0.99, "confidence_on_fault": True},
        "caption_fault_rate",
        "wrong captions with confidence pinned at 0.99",
    ),
    "status_502": ({"status_code": 502}, "status_rate", "502 answers"),
    "slow_tail": ({"slow_ms": 400.0}, "slow_rate", "+400 ms on a fraction of requests"),
}


def flaw_faults(name: str, fraction: float) -> dict[str, Any]:
    """The fault-proxy fields of flaw ``name`` on ``fraction`` of the requests."""
    if name not in FLAWS:
        raise ValueError(f"unknown flaw {name!r} (known: {', '.join(FLAWS)})")
    fields, rate_field, _ = FLAWS[name]
    return {**fields, rate_field: float(fraction)}
