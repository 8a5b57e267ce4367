"""The dashboard's SLO review (the SLO list and an SLO's page) with Streamlit's AppTest, on a report
root written by the harness's own writers: the runs of ``dashboard_fixture`` (deploys), a drift
report whose detectors' names carry markup, and a records dataset of three days with an hour of
errors, reviewed with a spec whose description carries markup. The figures shown are those
``build_review`` computes for the same data; faults and bad input are one line in place."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard_fixture import T0, build_reports, open_app  # noqa: E402
from harness.records import iter_records, write_dataset  # noqa: E402
from harness.report.markdown import inline_text  # noqa: E402
from harness.slo import load_spec  # noqa: E402
from harness.slo.history import LATENCY_MARGIN_S, checked_records, load_markers, records_history  # noqa: E402
from harness.slo.report import record_columns  # noqa: E402
from harness.slo.review import build_review, review_grid  # noqa: E402
from prom_fixture import free_port  # noqa: E402

HOSTILE = "*bold* <img src=x onerror=alert(1)> [link](http://x.example) `tick` | __under__ $x$"
DETECTORS = ["<script>alert(1)</script>", "**confidence**"]
EVERY_S = 30.0
START, END = T0 - 2 * 86400, T0 + 86400  # the records: three days around the fixture's runs
ERRORS = (T0 - 86400, T0 - 86400 + 3600)  # an hour at 80% errors
SPEC = {
    "service": "captioner",
    "slos": [
        {"name": "availability", "sli": "availability", "objective": 0.99, "period": "7d", "description": HOSTILE},
        {"name": "latency-500ms", "sli": "latency", "threshold": 0.5, "objective": 0.95, "period": "7d"},
        {"name": "quality", "sli": "quality", "metric": "CIDEr-D", "threshold": 0.5, "objective": 0.9, "period": "7d"},
    ],
}


def _records() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    t = np.arange(START, END, EVERY_S) + rng.uniform(0, EVERY_S / 2, int((END - START) / EVERY_S))
    n = len(t)
    bad = ((t >= ERRORS[0]) & (t < ERRORS[1]) & (rng.random(n) < 0.8)) | (rng.random(n) < 0.001)
    return pd.DataFrame(
        {
            "run_id": "production",
            "target": "production",
            "scenario": "production",
            "request_id": [f"r{i}" for i in range(n)],
            "t_start": t,
            "latency_s": rng.lognormal(np.log(0.12), 0.5, n),
            "status": np.where(bad, 500, 200),
            "outcome": np.where(bad, "http_error", "ok"),
            "caption": np.where(bad, None, "a red circle"),
            "safety_flagged": False,
        }
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    reports = build_reports(tmp_path_factory.mktemp("review") / "reports")
    root = reports.root
    write_dataset(_records(), root / "production")
    (root / "slo.yaml").write_text(yaml.safe_dump(SPEC))
    hostile = root / "drift-check"
    hostile.mkdir()
    (hostile / "drift.json").write_text(
        json.dumps({"created_unix": T0 + 7200, "drift": True, "drifted": DETECTORS, "results": []})
    )
    return reports


def _expected(root: Path):
    """The review ``harness slo review --records`` computes for the same data and defaults."""
    spec = load_spec(root / "slo.yaml")
    path = root / "production"
    end = max(float((c["t_start"] + c["latency_s"]).max()) for c in iter_records(path, ["t_start", "latency_s"]))
    grid = review_grid(end, 7 * 86400, spec.slos)
    columns, optional = record_columns(spec)
    chunks = iter_records(path, columns, optional=optional, since=grid.start - LATENCY_MARGIN_S, until=grid.end)
    histories = records_history(spec, checked_records(chunks, str(path)), grid, None, path)
    markers, warnings = load_markers(root, root)
    return build_review(spec, histories, grid, {"kind": "records", "path": str(path)}, markers, warnings)


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def _charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def _datasets(chart) -> list[pd.DataFrame]:
    return [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]


def _review_app(root: Path, monkeypatch, page: str = "slo_list", **boxes: str) -> AppTest:
    """The dashboard on the SLO review's ``page``, with the sidebar's boxes (``records``, ``spec``,
    ``window`` ...) filled in; a source box given picks that source."""
    monkeypatch.delenv("HARNESS_PROMETHEUS", raising=False)
    monkeypatch.delenv("HARNESS_SLO_SPEC", raising=False)
    at = open_app(root, monkeypatch, page)
    if "prometheus" in boxes:
        at.radio(key="slo_review_source").set_value("Prometheus").run()
    for name, value in boxes.items():
        at.text_input(key=f"slo_review_{name}").input(value)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_slo_list_shows_what_build_review_computes(site, monkeypatch):
    at = _review_app(site.root, monkeypatch, records="production")
    want = _expected(site.root)
    assert at.title[0].value == "SLO review"
    table = at.dataframe[0].value
    assert list(table["SLO"]) == ["availability", "latency-500ms", "quality"]
    by = {s.slo.name: s for s in want.slos}
    avail, lat, quality = (by[n] for n in ("availability", "latency-500ms", "quality"))
    assert avail.budget.remaining < 0 < lat.budget.remaining  # the hour of errors overspent availability
    assert list(table["budget left"]) == [f"{avail.budget.remaining:.2%}", f"{lat.budget.remaining:.2%}", "no data"]
    assert list(table["SLI"]) == [f"{avail.sli.ratio:.3%}", f"{lat.sli.ratio:.3%}", "no data"]
    assert list(table["objective"]) == ["99%", "95%", "90%"]
    assert list(table["window"]) == ["7d", "7d", "7d"]
    arrows = {"better": "▲ better", "worse": "▼ worse", "steady": "► steady", "unknown": "– unknown"}
    assert list(table["trend"]) == [arrows[s.trend] for s in want.slos]
    assert list(table["alerts firing"]) == [", ".join(s.firing_now) or "none" for s in want.slos]
    for name, cell in zip(table["SLO"], table["what to decide"]):
        assert cell == " ".join(d.text for d in want.decisions if d.slo == name)
    assert "spent" in table["what to decide"][0] and "no data" in table["what to decide"][2]
    assert list(table["note"])[2] == quality.note and quality.note
    # the window (7d) is longer than the three days of data: said in place
    (covers,) = _texts(at.info)[:1]
    assert covers.startswith("The data covers 2d 23h of the 7d window: events from 2023-11-12 22:13 UTC to ")
    assert _texts(at.text) == ["\n".join(f"• {d.text}" for d in want.decisions)]
    marks = at.dataframe[1].value
    assert list(marks["kind"]) == [m.kind for m in want.markers]
    assert {"deploy", "drift"} <= set(marks["kind"])


def test_slo_page_charts_alerts_and_markers(site, monkeypatch):
    at = _review_app(site.root, monkeypatch, records="production")
    want = {s.slo.name: s for s in _expected(site.root).slos}["availability"]
    at.query_params["slo"] = "availability"
    at.switch_page("views/slo_page.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == inline_text("SLO availability")
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Budget left"] == f"{want.budget.remaining:.2%}"
    assert tiles["SLI over the window"] == f"{want.sli.ratio:.3%}"
    assert tiles["Budget runs out in"] == "spent"
    a = want.alerts[0]
    assert tiles[f"Long burn ({a.window.long}) now"] == f"{a.long_now:.2f}x"
    charts = _charts(at)
    assert len(charts) == 3 + len(want.alerts)  # burn-down, SLI, events, one per alert
    # at most ~1,000 points a line; the burn-down's last point is the budget left; the peaks survive
    burn_down = _datasets(charts[0])[0]
    assert len(burn_down) <= 1000 and burn_down["remaining"].iloc[-1] == pytest.approx(want.budget.remaining)
    for chart, alert in zip(charts[3:], want.alerts):
        data = _datasets(chart)
        rates = next(d for d in data if "burn rate" in d.columns and "window" in d.columns)
        assert len(rates) <= 2000
        assert rates["burn rate"].max() == pytest.approx(max(np.nanmax(alert.long_burn), np.nanmax(alert.short_burn)))
        shaded = next((d for d in data if "end" in d.columns), None)
        assert (shaded is not None) == bool(alert.episodes)
        rules = [d for d in data if "kind" in d.columns]
        assert sorted(k for d in rules for k in d["kind"]) == sorted(m.kind for m in _expected(site.root).markers)
    fired = at.dataframe[0].value
    assert len(fired) == len(want.episodes) > 0
    assert set(fired["severity"]) == {e.severity for e in want.episodes}
    assert list(fired["source"]) == ["burn rates"] * len(fired)


def test_choosing_an_slo_opens_its_page(site, monkeypatch):
    at = _review_app(site.root, monkeypatch, records="production")
    at.selectbox(key="slo_review_open").select("latency-500ms").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == inline_text("SLO latency-500ms")
    assert at.query_params["slo"] == ["latency-500ms"] or at.query_params["slo"] == "latency-500ms"
    assert at.selectbox(key="slo_review_slo").value == "latency-500ms"
    # the sidebar's boxes keep their values across the page change
    assert at.text_input(key="slo_review_records").value == "production"


def test_an_slo_without_data_shows_its_note_in_place_of_charts(site, monkeypatch):
    at = _review_app(site.root, monkeypatch, records="production")
    note = {s.slo.name: s for s in _expected(site.root).slos}["quality"].note
    at.query_params["slo"] = "quality"
    at.switch_page("views/slo_page.py").run()
    assert not at.exception
    assert inline_text(note, 1000) in _texts(at.info)
    assert not _charts(at)
    assert {m.label: m.value for m in at.metric}["Budget left"] == "no data"


def test_hostile_text_is_plain(site, monkeypatch):
    at = _review_app(site.root, monkeypatch, records="production")
    at.query_params["slo"] = "availability"
    at.switch_page("views/slo_page.py").run()
    assert HOSTILE in _texts(at.text)  # the SLO's description, verbatim as text
    marks = at.dataframe[-1].value
    assert ", ".join(DETECTORS) in list(marks["detail"])
    rendered = [*_texts(at.markdown), *_texts(at.caption), *_texts(at.info), *_texts(at.error), *_texts(at.warning)]
    for needle in (HOSTILE, *DETECTORS, "<img", "<script"):
        assert not [t for t in rendered if needle in t], needle
    # in the charts, the markers' text is data (tooltips), never markup
    details = {d for c in _charts(at) for frame in _datasets(c) if "detail" in frame.columns for d in frame["detail"]}
    assert ", ".join(DETECTORS) in details


def test_missing_and_invalid_specs_are_one_line(site, monkeypatch, tmp_path):
    at = _review_app(site.root, monkeypatch, records="production", spec="nowhere.yaml")
    assert _texts(at.error) == [inline_text(f"{site.root / 'nowhere.yaml'}: SLO spec not found", 1000)]
    assert not at.dataframe and not _charts(at)
    bad = site.root / "bad-slo.yaml"
    bad.write_text("service: captioner\nslos:\n  - {name: availability, sli: availability, objective: 2}\n")
    at.text_input(key="slo_review_spec").input("bad-slo.yaml").run()
    (line,) = _texts(at.error)
    assert "objective" in line and "\n" not in line
    at.text_input(key="slo_review_spec").input("../../outside.yaml").run()
    (line,) = _texts(at.error)
    assert "outside the report root" in line


def test_bad_window_end_and_step_are_one_line(site, monkeypatch):
    at = _review_app(site.root, monkeypatch, records="production", window="a week")
    (line,) = _texts(at.error)
    assert line.startswith(inline_text("Window 'a week': ")) and "\n" not in line
    at.text_input(key="slo_review_window").input("2d")
    at.text_input(key="slo_review_end").input("yesterday").run()
    (line,) = _texts(at.error)
    assert line.startswith(inline_text("End: bad time 'yesterday'"))
    at.text_input(key="slo_review_end").input("")
    at.text_input(key="slo_review_step").input("1s").run()
    assert _texts(at.error) == [
        inline_text("Step 1s: the window would take 172,800 steps, more than 40,320; give a longer step", 1000)
    ]
    at.text_input(key="slo_review_step").input("5m").run()
    assert not _texts(at.error) and "2d" in at.caption[0].value
    assert "The data covers" not in " ".join(_texts(at.info))  # two days of three: all covered


def test_prometheus_nobody_listens_on_is_one_line(site, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    at = _review_app(site.root, monkeypatch, prometheus=url)
    want = f"Prometheus at {url} is unavailable (cannot connect); start it, or use --records"
    assert _texts(at.error) == [inline_text(want, 1000)]
    assert not at.dataframe and not _charts(at)


def test_paths_outside_the_root_are_refused(site, monkeypatch, tmp_path):
    write_dataset(_records().head(100), tmp_path / "elsewhere")
    at = _review_app(site.root, monkeypatch, records=str(tmp_path / "elsewhere"))
    (line,) = _texts(at.error)
    assert line == inline_text(
        f"Records {tmp_path / 'elsewhere'}: outside the report root {site.root.resolve()}; not read", 1000
    )
    at.text_input(key="slo_review_records").input("production")
    at.text_input(key="slo_review_decisions").input("../..").run()
    (line,) = _texts(at.error)
    assert line.startswith(inline_text("Decision records ../..: outside the report root"))
    link = site.root / "link-out"
    link.symlink_to(tmp_path / "elsewhere")
    try:
        at.text_input(key="slo_review_records").input("link-out").run()
        (line,) = _texts(at.error)
        assert "outside the report root" in line
        # a link out under the marker folders: their markers are left out, the review still shown
        at.text_input(key="slo_review_records").input("production")
        at.text_input(key="slo_review_decisions").input(str(site.root)).run()
        assert not _texts(at.error) and list(at.dataframe[0].value["SLO"])
        said = _texts(at.warning)
        assert [w.split(":")[0] for w in said] == ["Decision records", "Drift reports"]
        assert all("left out" in w for w in said)
        assert len(at.dataframe) == 1  # no markers table
        assert "No decision record or drift report falls in the window." in _texts(at.info)
    finally:
        link.unlink()


def test_the_spec_harness_dashboard_names_may_lie_outside_the_root(site, monkeypatch, tmp_path):
    outside = tmp_path / "spec.yaml"
    outside.write_text(yaml.safe_dump({"service": "captioner", "slos": SPEC["slos"][1:2]}))
    monkeypatch.setenv("HARNESS_REPORTS", str(site.root))
    monkeypatch.setenv("HARNESS_SLO_SPEC", str(outside))
    monkeypatch.delenv("HARNESS_PROMETHEUS", raising=False)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/slo_list.py").run()
    assert at.text_input(key="slo_review_spec").value == str(outside.resolve())
    at.text_input(key="slo_review_records").input("production").run()
    assert not at.exception and not _texts(at.error)
    assert list(at.dataframe[0].value["SLO"]) == ["latency-500ms"]
    other = tmp_path / "other.yaml"
    other.write_text(outside.read_text())
    at.text_input(key="slo_review_spec").input(str(other)).run()
    (line,) = _texts(at.error)
    assert "outside the report root" in line


def test_harness_dashboard_passes_prometheus_and_spec_on(tmp_path, monkeypatch):
    import harness.cli.dashboard as cli

    spec = tmp_path / "slo.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    seen = {}

    def execve(path, argv, env):
        seen.update(env)
        raise SystemExit(0)

    monkeypatch.setattr(cli.os, "execve", execve)
    from harness.cli import main

    with pytest.raises(SystemExit):
        main(["dashboard", "--reports", str(tmp_path), "--prometheus", "http://127.0.0.1:9", "--slo-spec", str(spec)])
    assert seen["HARNESS_PROMETHEUS"] == "http://127.0.0.1:9"
    assert seen["HARNESS_SLO_SPEC"] == str(spec.resolve())
    assert main(["dashboard", "--prometheus", "ftp://x"]) == 64
    assert main(["dashboard", "--slo-spec", str(tmp_path / "none.yaml")]) == 66
