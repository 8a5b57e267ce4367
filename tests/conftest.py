# ---------------------------------------------------------------------------------------------
# Hypothesis profiles. `ci` (loaded here): seeded (derandomized), no example database, no
# deadline; `--hypothesis-profile=long` runs twenty times as many examples of the fuzz suite
# (tests/integration/test_fuzz.py scales each family with max_examples), at random: add --hypothesis-seed=N
# to repeat a sequence.
# ---------------------------------------------------------------------------------------------
import contextlib as _contextlib
import os as _os

import pytest as _pytest
from hypothesis import settings as _hypothesis_settings

# ---------------------------------------------------------------------------------------------
# One OpenMP/BLAS thread per process (torch, numpy, scipy), here and in the servers, Locust and
# commands the tests start (they inherit it): `make test` runs 4 workers on the machine's cores,
# where pools of threads spinning against each other cost CPU and gain nothing (the drift
# calibration's CPU halves with one). Set before anything imports numpy or torch (pytest and
# hypothesis do not); a value given outside is kept.
# ---------------------------------------------------------------------------------------------
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")


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


# Seconds each of the longest files took in `make test` (4 workers on 2 cores). Under pytest-xdist's
# worksteal (`make test`: `-n 4 --dist worksteal`) worker k first gets the k-th run of consecutive
# tests, and an idle worker takes the back half of the longest queue: the order below puts these
# files at the fronts of the runs, spread so each worker's share takes about as long, and the
# minutes-long live analysis overlaps everything else instead of running alone at the end. Without
# xdist they simply come first.
FILE_SECONDS = {
    "test_live_analysis.py": 115,
    "test_gate.py": 100,
    "test_scenarios.py": 80,
    "test_drift_calibration.py": 60,
    "test_judge_flaws.py": 53,
    "test_gate_streaming.py": 48,
    "test_judge_records.py": 44,
    "test_slo_backfill.py": 40,
    "test_evaluate.py": 39,
    "test_gate_flaws.py": 39,
    "test_gate_without_references.py": 34,
    "test_async_jobs.py": 33,
    "test_quality_scoring.py": 32,
    "test_server_frontend.py": 31,
    "test_load_runs.py": 30,
    "test_judge_prometheus.py": 28,
    "test_judge_serve.py": 28,
}


def _worksteal_order(items: list, workers: int) -> list:
    """``items`` as ``workers`` consecutive runs of the sizes worksteal's first split gives, each
    starting with its share of the long files (longest first, each to the run with the least so
    far), the other files after them, each to the run with the most room (split where it must)."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.path.name, []).append(item)
    sizes, left = [], len(items)
    for k in range(workers):
        sizes.append(left // (workers - k))
        left -= sizes[-1]
    runs: list[list] = [[] for _ in range(workers)]
    seconds = [0.0] * workers
    for name in sorted((f for f in files if f in FILE_SECONDS), key=FILE_SECONDS.__getitem__, reverse=True):
        k = min(range(workers), key=lambda k: (seconds[k], len(runs[k])))
        runs[k] += files[name]
        seconds[k] += FILE_SECONDS[name]
    for name, tests in files.items():
        while tests and name not in FILE_SECONDS:
            k = max(range(workers), key=lambda k: sizes[k] - len(runs[k]))
            room = max(sizes[k] - len(runs[k]), 1)
            runs[k] += tests[:room]
            tests = tests[room:]
    return [item for run in runs for item in run]


@_pytest.hookimpl(tryfirst=True)  # markers before `-m` selects by them
def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(_starts_a_server(f) for f in getattr(item, "fixturenames", ())):
            item.add_marker(_pytest.mark.slow)
        kind = item.path.parent.name  # tests/unit, tests/integration, tests/e2e: the marker by folder
        if kind in ("unit", "integration", "e2e"):
            item.add_marker(getattr(_pytest.mark, kind))


class _Order:
    """The order of the tests selected (after `-m` and `-k` have deselected theirs)."""

    @_pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        workers = int(_os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))  # set in an xdist worker
        if workers > 1:
            items[:] = _worksteal_order(items, workers)
        else:  # stable: each file keeps its order
            items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 0))


def pytest_configure(config):
    config.pluginmanager.register(_Order(), "caption-harness-test-order")


# A command's crash files (``harness-crash-*.txt``, written to the temp folder on exit 70) go to a
# folder of the test's own, so a test can assert that none was written.
@_pytest.fixture
def crash_dir(tmp_path, monkeypatch):
    import tempfile

    folder = tmp_path / "crashes"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
