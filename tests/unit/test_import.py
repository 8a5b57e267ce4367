import subprocess
import sys


def test_import_harness_stays_light():
    code = (
        "import sys, harness, harness.cli, harness.datasets, harness.records, harness.image\n"
        "harness.cli.build_parser()\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_python_m_harness_runs():
    out = subprocess.run([sys.executable, "-m", "harness", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("harness ")


def test_parser_errors_exit_64():
    out = subprocess.run([sys.executable, "-m", "harness", "no-such-command"], capture_output=True, text=True)
    assert out.returncode == 64
    assert "Traceback" not in out.stderr
