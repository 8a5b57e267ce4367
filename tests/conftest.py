# ---------------------------------------------------------------------------------------------
# Hypothesis profiles. `ci` (loaded here): seeded (derandomized), no example database, no
# deadline; `--hypothesis-profile=long` runs twenty times as many examples of the fuzz suite
# (tests/integration/test_fuzz.py scales each family with max_examples), at random: add --hypothesis-seed=N
# to repeat a sequence.
# ---------------------------------------------------------------------------------------------
import contextlib as _contextlib

import pytest as _pytest
from hypothesis import settings as _hypothesis_settings

_hypothesis_settings.register_profile("ci", max_examples=100, derandomize=True, database=None, deadline=None)
_hypothesis_settings.register_profile("long", max_examples=2000, database=None, deadline=None)
_hypothesis_settings.load_profile("ci")


# ---------------------------------------------------------------------------------------------
# Reference captioning server fixtures.
# `reference_server`: one server (tiny model) for the whole session, started with fault injection
# enabled and the admin token REFERENCE_ADMIN_TOKEN (also on the handle: `.admin_token`). A test
# that sets faults must clear them (DELETE /admin/faults) before it ends.
# `server_factory(model="tiny", extra_args=[...], env=..., **kw)`: starts servers of its own,
# stopped when the test ends. Both give a `ServerHandle` (.url, .port, .pid, .process).
# ---------------------------------------------------------------------------------------------
REFERENCE_ADMIN_TOKEN = "test-admin-token"
REFERENCE_SERVER_MODEL = "tiny"


@_pytest.fixture(scope="session")
def reference_server():
    _pytest.importorskip("torch")
    from reference_model.server.launch import start_server

    with start_server(REFERENCE_SERVER_MODEL, admin_token=REFERENCE_ADMIN_TOKEN, extra_args=["--enable-faults"]) as srv:
        yield srv


@_pytest.fixture
def server_factory():
    _pytest.importorskip("torch")
    from reference_model.server.launch import start_server

    with _contextlib.ExitStack() as stack:

        def factory(model: str = REFERENCE_SERVER_MODEL, extra_args=(), env=None, **kwargs):
            return stack.enter_context(start_server(model, extra_args=extra_args, env=env, **kwargs))

        yield factory


# ----------------------------------------------------------------- end of reference server fixtures


# ---------------------------------------------------------------------------------------------
# The `slow` marker (`make test-fast` runs `-m "not slow"`): a test that starts a real server
# through a fixture (`reference_server`, `server_factory`, `server`, `servers`, `*_server`, or a
# fixture built on one) takes seconds, and is marked here; modules that start other heavy things
# (Locust runs, the gate, Prometheus, Chromium, a wheel build) mark themselves.
# ---------------------------------------------------------------------------------------------
def _starts_a_server(fixture: str) -> bool:
    return fixture in ("server", "servers", "server_factory") or fixture.endswith("_server")


# The longest files first: under pytest-xdist (`make test`: `-n 4 --dist worksteal`, which hands
# each worker a run of tests in this order) the minutes-long live analysis then overlaps everything
# else instead of running alone at the end.
LONGEST_FIRST = (
    "test_live_analysis.py",
    "test_judge_records.py",
    "test_gate.py",
    "test_gate_flaws.py",
    "test_judge_flaws.py",
    "test_scenarios.py",
    "test_drift_cli.py",
    "test_judge_prometheus.py",
    "test_replay.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(_starts_a_server(f) for f in getattr(item, "fixturenames", ())):
            item.add_marker(_pytest.mark.slow)
        kind = item.path.parent.name  # tests/unit, tests/integration, tests/e2e: the marker by folder
        if kind in ("unit", "integration", "e2e"):
            item.add_marker(getattr(_pytest.mark, kind))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


# A command's crash files (``harness-crash-*.txt``, written to the temp folder on exit 70) go to a
# folder of the test's own, so a test can assert that none was written.
@_pytest.fixture
def crash_dir(tmp_path, monkeypatch):
    import tempfile

    folder = tmp_path / "crashes"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
