"""``harness serve``: option errors are one line with the shared exit codes; parsing stays light."""

import subprocess
import sys

import pytest


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "serve", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--max-batch", "0"], 64, "--max-batch must be at least 1"),
        (["--enable-faults"], 64, "needs an admin token"),
        (["--faults", '{"error_rate": 0.5}'], 64, "--faults needs --enable-faults"),
        (["--enable-faults", "--admin-token", "t", "--faults", '{"colour": 1}'], 64, "unknown fault field(s): colour"),
        (["--enable-faults", "--admin-token", "t", "--faults", "[1]"], 64, "not a JSON object"),
        (["--port", "70000"], 64, "--port must be 0..65535"),
        (["--max-batch", "many"], 64, "invalid int value"),
    ],
)
def test_bad_options_fail_in_one_line(args, code, words):
    out = _serve(*args)
    assert out.returncode == code
    assert words in out.stderr and "Traceback" not in out.stderr
    assert len([ln for ln in out.stderr.splitlines() if "error" in ln]) == 1


@pytest.mark.parametrize("env", ["CAPTION_API_KEY", "CAPTION_ADMIN_TOKEN"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_secret_in_the_environment_is_refused_not_ignored(monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    out = _serve("--port", "0")
    assert out.returncode == 64, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"harness serve: error: {env} is set but empty: give it a value, or unset it to serve without one"
    ]


def test_missing_model_is_input_missing():
    pytest.importorskip("torch")
    out = _serve("--model", "/nowhere/absent.safetensors", "--port", "0")
    assert out.returncode == 66
    assert out.stderr.strip().splitlines() == [
        "harness serve: error: cannot load model '/nowhere/absent.safetensors': "
        "model checkpoint /nowhere/absent.safetensors not found"
    ]


def test_parsing_serve_options_imports_neither_torch_nor_the_server():
    code = (
        "import argparse, sys, harness.cli.serve as s; p = argparse.ArgumentParser(); "
        "s.register(p.add_subparsers()); p.parse_args(['serve', '--port', '0']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'reference_model', 'fastapi')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
