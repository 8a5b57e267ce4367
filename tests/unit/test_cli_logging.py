"""The harness logs through ``logging``: modules log on ``getLogger(__name__)``, the CLI gives the
``harness`` logger its one handler on stderr at ``--log-level`` (``-v``: DEBUG), and the result of a
command is all that reaches stdout."""

import contextlib
import io
import logging

import pytest

from harness.cli import configure_logging, main

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _restore_harness_logger():
    logger = logging.getLogger("harness")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_one_handler_however_often_it_is_configured():
    logger = logging.getLogger("harness")
    before = [h for h in logger.handlers if not getattr(h, "harness_cli", False)]
    first = configure_logging("DEBUG", io.StringIO())
    stream = io.StringIO()
    second = configure_logging("WARNING", stream)
    assert [h for h in logger.handlers if getattr(h, "harness_cli", False)] == [second] and first not in logger.handlers
    assert [h for h in logger.handlers if not getattr(h, "harness_cli", False)] == before
    logging.getLogger("harness.canary.gate").info("not shown")
    logging.getLogger("harness.canary.gate").warning("shown")
    assert stream.getvalue().endswith(" WARNING harness.canary.gate: shown\n")


def test_the_gate_logs_its_stages_on_stderr_and_prints_only_its_result(tmp_path):
    argv = ["gate", "--baseline", CLOSED, "--canary", CLOSED, "--dataset", "shapes:2", "--out"]
    code, out, err = _cli(argv + [str(tmp_path / "a")])
    assert code == 2  # both targets down: HOLD
    assert out == (tmp_path / "a" / "summary.md").read_text() + "\n"
    lines = err.splitlines()
    assert len(lines) == 2 and " INFO harness.canary.gate: run " in lines[0]
    assert lines[1].endswith(
        f" INFO harness.canary.judgement: verdict HOLD (score None): {tmp_path / 'a' / 'decision.json'}"
    )
    code, out, err = _cli(["--log-level", "warning"] + argv + [str(tmp_path / "b")])
    assert code == 2 and err == "" and out.startswith("## Canary decision: ⏸️ HOLD")


def test_an_unknown_level_is_a_usage_error():
    code, out, err = _cli(["--log-level", "loud", "dataset", "export", "--out", "x"])
    assert code == 64 and out == ""
    assert err.startswith("harness: error: argument --log-level: invalid choice: 'LOUD'") and err.count("\n") == 1


def test_the_handler_writes_to_stderr_as_it_is_at_each_record(capsys):
    configure_logging("INFO")
    logging.getLogger("harness.x").info("first")
    first = capsys.readouterr().err
    swapped = io.StringIO()
    with contextlib.redirect_stderr(swapped):
        logging.getLogger("harness.x").info("second")
    assert first.endswith(" INFO harness.x: first\n") and swapped.getvalue().endswith(" INFO harness.x: second\n")
    assert capsys.readouterr().err == ""
