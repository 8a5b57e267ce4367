"""Schemathesis against the served OpenAPI schema: no 5xx and no answer outside the schema."""

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 20


def test_served_schema_holds_for_generated_requests(reference_server):
    schema = schemathesis.openapi.from_url(reference_server.url + "/openapi.json", timeout=10)
    # The fault endpoints are left out: fuzzing them would switch faults on for later tests.
    operations = [r.ok() for r in schema.exclude(path_regex="^/admin/").get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert labels == [
        "GET /healthz",
        "GET /metrics",
        "GET /readyz",
        "GET /v1/jobs/{job_id}",
        "GET /v1/model",
        "POST /v1/caption",
        "POST /v1/caption:async",
    ]
    calls = []
    for op in operations:
        # Only the caption operation takes input, so only it has invalid input to generate.
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if op.label == "POST /v1/caption" else [])
        for mode in modes:

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                response = case.call_and_validate(checks=CHECKS, timeout=30)
                calls.append((op.label, response.status_code))  # noqa: B023 - run() is called in this loop

            run()
    by_op = {label: {status for lab, status in calls if lab == label} for label in labels}
    assert all(status < 500 for _, status in calls)
    assert by_op["GET /healthz"] == {200} and by_op["GET /v1/model"] == {200}
    assert 400 in by_op["POST /v1/caption"]
