"""The files that ship with the harness: Locust scenarios, example specs and the Streamlit dashboard.

Installed from a wheel they are package data under ``harness/`` (found with ``importlib.resources``);
in a checkout they are the top-level ``scenarios/``, ``examples/`` and ``dashboards/`` folders, which
``locust -f scenarios/NAME.py`` and ``streamlit run dashboards/app.py`` use as they are.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from harness.errors import InputMissingError, UsageError

__all__ = [
    "DATA_FOLDERS",
    "data_dir",
    "scenarios_dir",
    "scenario_names",
    "scenario_path",
    "example_path",
    "dashboard_dir",
    "dashboard_app_path",
]

DATA_FOLDERS = ("scenarios", "examples", "dashboards")


def data_dir(name: str) -> Path:
    """The folder ``name`` (one of ``DATA_FOLDERS``) of this installation or checkout."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}; one of {', '.join(DATA_FOLDERS)}")
    packaged = resources.files("harness") / name
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[1] / name
    if checkout.is_dir():
        return checkout
    raise InputMissingError(f"the harness's {name}/ folder is missing from {packaged}: reinstall caption-slo-harness")


def scenarios_dir() -> Path:
    """The folder of the shipped Locust scenarios (``NAME.py``)."""
    return data_dir("scenarios")


def scenario_names() -> list[str]:
    """The names of the shipped scenarios, sorted."""
    return sorted(p.stem for p in scenarios_dir().glob("*.py") if not p.name.startswith("_"))


def scenario_path(name_or_path: str | Path) -> Path:
    """A shipped scenario by name (``steady``), or a Locust file by its path (``my_scenario.py``)."""
    p = Path(name_or_path)
    if p.suffix == ".py" or len(p.parts) > 1:
        if not p.is_file():
            raise UsageError(f"scenario file not found: {p}")
        return p.resolve()
    candidate = scenarios_dir() / f"{p.name}.py"
    if not p.name or p.name.startswith("_") or not candidate.is_file():
        raise UsageError(f"unknown scenario {str(name_or_path)!r}; available: {', '.join(scenario_names())}")
    return candidate


def example_path(name: str) -> Path:
    """A shipped example file by name, e.g. ``slo.yaml`` or ``judge.yaml``."""
    path = data_dir("examples") / name
    if Path(name).name != name or not path.is_file():
        known = ", ".join(sorted(p.name for p in data_dir("examples").iterdir() if p.is_file()))
        raise InputMissingError(f"no example {name!r}; shipped: {known}")
    return path


def dashboard_dir() -> Path:
    """The folder of the Streamlit dashboard (``app.py``, its pages, the Grafana JSON)."""
    return data_dir("dashboards")


def dashboard_app_path() -> Path:
    """The Streamlit app to ``streamlit run``."""
    return dashboard_dir() / "app.py"
