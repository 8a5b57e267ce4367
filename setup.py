"""Packaging that pyproject.toml cannot say: the top-level ``scenarios/``, ``examples/`` and
``dashboards/`` folders ship inside the wheel as ``harness/scenarios`` ... (package data read through
``harness.resources``). An editable install reads them where they are."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_FOLDERS = ("scenarios", "examples", "dashboards")  # = harness.resources.DATA_FOLDERS


class BuildPyWithData(build_py):
    """``build_py`` that also copies the data folders into the built ``harness`` package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in DATA_FOLDERS:
            dest = Path(self.build_lib) / "harness" / name
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ROOT / name, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
