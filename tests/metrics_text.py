"""Reading a server's Prometheus exposition in the tests: ``prometheus_client``'s own parser, never
a hand-written one."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["parse_samples", "scrape", "sample_value"]


def parse_samples(text: str) -> list[Sample]:
    """Every sample of an exposition (``caption_requests_total``, ``..._bucket``, ``..._sum`` ...)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def scrape(url: str) -> list[Sample]:
    """Every sample ``GET url/metrics`` exposes now."""
    r = httpx.get(url.rstrip("/") + "/metrics", timeout=10.0)
    r.raise_for_status()
    return parse_samples(r.text)


def sample_value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``; None when it is not exposed."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    return found[0] if found else None
