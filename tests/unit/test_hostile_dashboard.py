"""The dashboard reads nothing outside its report root: the folder box, run folders, the files a
decision record names and the images it shows all stay inside the root once links are resolved; a
refused path is a plain message, never followed. A damaged image is a message, not a crash. With
Streamlit's AppTest on report folders written by the harness's own writers."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from PIL import Image  # noqa: E402

import harness.report.run as run_module  # noqa: E402
from dashboard_fixture import T0, build_reports, open_app  # noqa: E402
from harness.report.markdown import inline_text  # noqa: E402
from harness.report.run import OutsideRoot, inside_root, list_runs  # noqa: E402

DASH = Path(__file__).resolve().parents[2] / "dashboards"
sys.path.insert(0, str(DASH))
from board import IMAGE_UNREADABLE  # noqa: E402


def _png(colour: tuple[int, int, int]) -> bytes:
    im = Image.new("RGB", (96, 96), colour)
    for x in range(96):
        for y in range(0, 96, 3):
            im.putpixel((x, y), (x * 2, y * 2, 40))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Site:
    """``outer/`` holds a run folder and an image that must never be read; the report root is
    ``outer/a/reports`` (run-a, run-b of the fixture, and run-c: worst captions whose images are
    good, truncated, a link out, ``/etc/passwd`` and a ``..`` path out)."""

    outer: Path
    root: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_reports(tmp_path_factory.mktemp("built") / "reports").root


def _worst(image_id: str, path: str) -> dict:
    return {
        "target": "canary",
        "image_id": image_id,
        "image_path": path,
        "caption": f"caption of {image_id}",
        "references": ["a circle"],
        "cider_d": 0.1,
        "confidence": 0.5,
    }


RUN_C_WORST = (
    ("passwd", "/etc/passwd"),
    ("link", "img/out.png"),
    ("up", "../../../secret.png"),
    ("cut", "img/cut.png"),
    ("good", "img/good.png"),
)


@pytest.fixture
def site(built: Path, tmp_path: Path) -> Site:
    outer = tmp_path / "outer"
    root = outer / "a" / "reports"
    shutil.copytree(built, root, symlinks=True)
    shutil.copytree(built / "run-a", outer / "decoy")  # a run that is not under the root
    (outer / "secret.png").write_bytes(_png((0, 200, 0)))
    run_c = root / "run-c"
    (run_c / "img").mkdir(parents=True)
    (run_c / "img" / "good.png").write_bytes(_png((200, 0, 0)))
    whole = _png((0, 0, 200))
    (run_c / "img" / "cut.png").write_bytes(whole[: len(whole) // 2])
    (run_c / "img" / "out.png").symlink_to(outer / "secret.png")
    rec = json.loads((built / "run-a" / "decision.json").read_text())
    rec.update(run_id="run-c", created_unix=T0 + 7200, worst_captions=[_worst(i, p) for i, p in RUN_C_WORST])
    (run_c / "decision.json").write_text(json.dumps(rec))
    return Site(outer, Path(os.path.realpath(root)))


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """Every decision record the dashboard reads (the real path)."""
    seen: list[Path] = []
    real = run_module.load_decision

    def spy(path):
        seen.append(Path(os.path.realpath(path)))
        return real(path)

    monkeypatch.setattr(run_module, "load_decision", spy)
    return seen


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def _outside(what: str, name: str, root: Path) -> str:
    return f"{what}: {inline_text(f'{name}: outside the report root {root}', 400)} (not opened)"


# -- the resolver ----------------------------------------------------------------------------------
def test_inside_root_follows_links_and_refuses_what_leaves(site: Site) -> None:
    root = site.root
    assert inside_root(root, "run-b/../run-a") == root / "run-a"
    assert inside_root(root, root) == root and inside_root(root, "img/good.png", root / "run-c") == (
        root / "run-c" / "img" / "good.png"
    )
    for name in ("/etc", "..", "../..", "run-b/../../x", str(site.outer / "secret.png"), "run-c/img/out.png"):
        with pytest.raises(OutsideRoot, match="outside the report root"):
            inside_root(root, name)
    for name in ("a\0b", 7, ["x"]):
        with pytest.raises(OutsideRoot, match="is not a path under the report root"):
            inside_root(root, name)


# -- the folder box --------------------------------------------------------------------------------
@pytest.mark.parametrize("typed", ["/etc", "../..", "{outer}", "run-b/../../.."])
def test_folder_box_outside_the_root_is_refused_and_nothing_is_read(site, monkeypatch, reads, typed) -> None:
    at = open_app(site.root, monkeypatch)
    assert at.text_input(key="report_root").value == str(site.root)
    assert at.selectbox(key="run").value == "run-c" and set(reads) == {
        site.root / r / "decision.json" for r in ("run-a", "run-b", "run-c")
    }
    reads.clear()
    text = typed.format(outer=site.outer)
    at.text_input(key="report_root").input(text).run()
    assert not at.exception
    assert _texts(at.sidebar.error) == [
        f"Report folder {inline_text(text, 200)} is outside the report root {inline_text(site.root, 200)}: not read."
    ]
    assert len(at.selectbox) == 0  # the decoy run under outer/ is not listed
    assert _texts(at.info) == ["No run to show: the report folder chosen in the sidebar is outside the report root."]
    assert reads == []


def test_folder_box_reads_a_folder_inside_the_root_relative_to_it(site, monkeypatch, reads) -> None:
    shutil.copytree(site.root / "run-a", site.root / "team" / "run-t")
    at = open_app(site.root, monkeypatch)
    reads.clear()
    at.text_input(key="report_root").input("team").run()
    assert not at.exception and not at.sidebar.error
    assert at.selectbox(key="run").value == "run-t" and at.selectbox(key="run").options == ["run-t · PROMOTE"]
    assert reads == [site.root / "team" / "run-t" / "decision.json"]


# -- run folders and the files a record names ------------------------------------------------------
def test_a_run_folder_or_record_linked_out_of_the_root_is_listed_unread(site, monkeypatch, reads) -> None:
    (site.root / "zz-link").symlink_to(site.outer / "decoy", target_is_directory=True)
    (site.root / "run-d").mkdir()
    (site.root / "run-d" / "decision.json").symlink_to(site.outer / "decoy" / "decision.json")
    runs = {r.name: r for r in list_runs(site.root)}
    assert runs["zz-link"].decision is None and runs["run-d"].decision is None
    assert runs["zz-link"].error == f"{site.root / 'zz-link'}: outside the report root {site.root} (not read)"
    assert runs["run-d"].error == (
        f"{site.root / 'run-d' / 'decision.json'}: outside the report root {site.root} (not read)"
    )
    reads.clear()
    at = open_app(site.root, monkeypatch)
    at.selectbox(key="run").select("zz-link").run()
    assert not at.exception
    assert _texts(at.sidebar.error) == ["Decision record unreadable"]
    assert _texts(at.main.error) == [f"zz-link: {inline_text(runs['zz-link'].error, 1000)}"]
    assert not [p for p in reads if site.outer / "decoy" in p.parents]


def test_files_a_record_names_outside_the_root_are_not_opened(site, monkeypatch) -> None:
    run_b = site.root / "run-b"
    outside = site.outer / "records.parquet"
    shutil.copy(run_b / "records.parquet", outside)
    (run_b / "records.parquet").unlink()
    (run_b / "records.jsonl").unlink()
    (run_b / "records.parquet").symlink_to(outside)
    shutil.copy(run_b / "drift.html", site.outer / "drift.html")
    (run_b / "drift.html").unlink()
    (run_b / "drift.html").symlink_to(site.outer / "drift.html")
    rec = json.loads((run_b / "decision.json").read_text())
    rec["artifacts"]["records"] = str(outside)
    (run_b / "decision.json").write_text(json.dumps(rec))
    at = open_app(site.root, monkeypatch)
    at.selectbox(key="run").select("run-b").run()
    at.switch_page("views/debug.py").run()
    assert not at.exception
    assert _texts(at.main.error) == [_outside("records", str(outside), site.root)]
    assert "Outcomes" not in json.dumps([c.proto.spec for c in at.get("vega_lite_chart")])
    at.switch_page("views/drift.py").run()
    assert not at.exception
    assert _texts(at.warning) == [_outside("drift_html", "drift.html", site.root)]
    assert "drift.html: not in this run" in _texts(at.info) and len(at.get("iframe")) == 0


# -- images --------------------------------------------------------------------------------------
def test_debug_page_shows_only_whole_images_inside_the_root(site, monkeypatch) -> None:
    at = open_app(site.root, monkeypatch, "debug")  # run-c, the newest
    assert len(at.image) == 1  # good.png only
    assert _texts(at.warning) == [
        _outside("image", "/etc/passwd", site.root),
        _outside("image", "img/out.png", site.root),
        _outside("image", "../../../secret.png", site.root),
        IMAGE_UNREADABLE,
    ]
    assert IMAGE_UNREADABLE == "image could not be read"
    shown = _texts(at.text)
    assert [f"caption of {i}" for i, _ in RUN_C_WORST] == [t for t in shown if t.startswith("caption of")]


def test_rate_page_offers_no_image_outside_the_root_and_survives_a_truncated_one(site, monkeypatch) -> None:
    at = open_app(site.root, monkeypatch, "rate")
    head = [t for t in _texts(at.markdown) if t.startswith("Caption **")]
    assert head == ["Caption **1** of 2 · image `cut`"]  # passwd, the link and the .. path are not offered
    assert _texts(at.warning) == [IMAGE_UNREADABLE] and len(at.image) == 0
    assert _texts(at.text) == ["caption of cut"]
    at.button(key="rate_next").click().run()
    assert not at.exception and not at.warning and len(at.image) == 1
    assert _texts(at.text) == ["caption of good"]


def test_a_ratings_file_linked_out_of_the_root_is_neither_read_nor_written(site, monkeypatch) -> None:
    target = site.outer / "elsewhere.csv"
    target.write_text("image_id,rater,rating,target,caption,time\n")
    (site.root / "run-c" / "ratings.csv").symlink_to(target)
    at = open_app(site.root, monkeypatch, "rate")
    assert _texts(at.warning) == [IMAGE_UNREADABLE, _outside("ratings", "ratings.csv", site.root)]
    at.text_input(key="rater").input("ana").run()
    at.feedback(key="rate_stars").set_value(2)
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert [t for t in _texts(at.error) if t.startswith("ratings.csv")] == [
        "ratings.csv: not saved (Too many levels of symbolic links)"
    ]
    assert target.read_text() == "image_id,rater,rating,target,caption,time\n"


def test_a_truncated_png_or_jpeg_is_a_message_and_the_page_goes_on(site, monkeypatch) -> None:
    run_c = site.root / "run-c"
    buf = io.BytesIO()
    Image.open(io.BytesIO(_png((9, 9, 9)))).save(buf, format="JPEG")
    (run_c / "img" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    rec = json.loads((run_c / "decision.json").read_text())
    rec["worst_captions"] = [
        _worst("cut", "img/cut.png"),
        _worst("cut-jpeg", "img/cut.jpg"),
        _worst("good", "img/good.png"),
    ]
    (run_c / "decision.json").write_text(json.dumps(rec))
    at = open_app(site.root, monkeypatch, "debug")
    assert _texts(at.warning) == [IMAGE_UNREADABLE, IMAGE_UNREADABLE] and len(at.image) == 1
    assert [t for t in _texts(at.text) if t.startswith("caption of")] == [
        "caption of cut",
        "caption of cut-jpeg",
        "caption of good",
    ]
