# ---------------------------------------------------------------------------------------------
# Reference captioning server fixtures.
# `reference_server`: one server (tiny model) for the whole session, started with fault injection
# enabled and the admin token REFERENCE_ADMIN_TOKEN (also on the handle: `.admin_token`). A test
# that sets faults must clear them (DELETE /admin/faults) before it ends.
# `server_factory(model="tiny", extra_args=[...], env=..., **kw)`: starts servers of its own,
# stopped when the test ends. Both give a `ServerHandle` (.url, .port, .pid, .process).
# ---------------------------------------------------------------------------------------------
import contextlib as _contextlib

import pytest as _pytest

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
# Prometheus fixture (tests/prom_fixture.py): `prometheus_factory(targets=[url], rule_files=[path])`
# starts a real Prometheus on a free loopback port, scraping every second; skipped when absent.
# ---------------------------------------------------------------------------------------------
from prom_fixture import prometheus_factory  # noqa: E402,F401
# ------------------------------------------------------------------------ end of Prometheus fixture
