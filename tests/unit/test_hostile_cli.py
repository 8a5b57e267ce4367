"""Hostile inputs through the real command line: an --out nothing can be written in, a NUL in an
argument or in a log's target, COCO files with ids and file names of the wrong kind, a saved drift
reference or quality model that would reach numpy's arithmetic, an import of no rows, a scenario
file that is not Python, and a data set a load run cannot send. Each ends with a code of the shared
table and exactly one line on stderr, never 70 (a bug), and loses nothing already written."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_run import run_cli as _run_cli

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "slo.yaml"
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there

MAPPING = "columns: {ts: t_start, ms: latency_s, code: status, id: request_id, tg: target, text: caption}\n"
MAPPING += "units: {latency_s: ms}\nconstants: {run_id: r1}\n"


def run_cli(argv: list) -> tuple[int, str, str]:
    """``harness ARGV`` with every warning shown on stderr, as it would be outside pytest."""
    return _run_cli(argv, show_warnings=True)


def _needs_locust() -> None:
    # found, not imported: Locust's import patches this process's sockets and threads (gevent)
    if importlib.util.find_spec("locust") is None:
        pytest.skip("needs the 'load' extra (locust)")


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "Warning" not in err, err
    return lines[0]


def _records(path: Path, n: int = 30) -> Path:
    rows = [
        {
            "run_id": "r",
            "target": "canary",
            "scenario": "s",
            "request_id": f"q{i}",
            "image_id": str(i % 5),
            "t_start": 1.7e9 + i,
            "latency_s": 0.1 + i / 1000,
            "status": 200,
            "outcome": "ok",
            "caption": f"a red circle {i % 4}",
            "confidence": 0.5 + i / 100,
            "model_version": "m",
            "image_bytes": 100,
            "image_w": 64,
            "image_h": 64,
            "safety_flagged": False,
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _log(path: Path, targets: list[str]) -> Path:
    rows = [
        {"ts": 1.7e9 + i, "ms": 100, "code": 200, "id": f"r{i}", "tg": t, "text": "a red circle"}
        for i, t in enumerate(targets)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Inputs every command of the first group accepts: records, a log with its mapping, captions."""
    (tmp_path / "in").mkdir()
    d = tmp_path / "in"
    (d / "mapping.yaml").write_text(MAPPING)
    (d / "cands.json").write_text(json.dumps([{"image_id": 1, "caption": "a red circle"}]))
    (d / "refs.json").write_text(json.dumps({"annotations": [{"image_id": 1, "caption": "a red circle"}]}))
    return {
        "REC": _records(d / "records.jsonl"),
        "LOG": _log(d / "service.jsonl", ["production", "production"]),
        "MAP": d / "mapping.yaml",
        "CANDS": d / "cands.json",
        "REFS": d / "refs.json",
    }


# -- an --out that nothing can be written in ----------------------------------------------------------


@dataclass(frozen=True)
class Locked:
    """A folder in which no file can be made by whoever runs the tests, and the OS's reasons."""

    folder: Path
    file_reason: str  # making a file in it
    folder_reason: str  # making a folder in it


def _refusal(folder: Path) -> Locked | None:
    try:
        fd = os.open(folder / ".probe", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except OSError as exc:
        file_reason = exc.strerror
    else:
        os.close(fd)
        os.unlink(folder / ".probe")
        return None
    try:
        os.mkdir(folder / ".probe")
    except OSError as exc:
        return Locked(folder, file_reason, exc.strerror)
    os.rmdir(folder / ".probe")
    return None


@pytest.fixture
def locked(tmp_path: Path):
    """A folder of mode 0500 where permissions hold; as root (who ignores them) a kernel folder
    that refuses new entries even to root (sysfs, procfs)."""
    mine = tmp_path / "locked"
    mine.mkdir()
    mine.chmod(0o500)
    try:
        for folder in (mine, Path("/sys/kernel"), Path("/proc/sys")):
            found = folder.is_dir() and _refusal(folder)
            if found:
                yield found
                return
        pytest.skip("no folder here refuses new files to this user")
    finally:
        mine.chmod(0o700)


# (command as named on stderr, argv with OUT for the place written to, the option that names it)
WRITERS = [
    ("slo", ["slo", "--spec", str(SPEC), "--records", "REC", "--out", "OUT"], "--out"),
    ("rules", ["rules", "--spec", str(SPEC), "--out", "OUT/rules.yml"], "--out"),
    ("drift", ["drift", "--reference", "REC", "--current", "REC", "--out", "OUT"], "--out"),
    (
        "drift",
        ["drift", "--reference", "REC", "--current", "REC", "--out", "TMP/d", "--save-reference", "OUT"],
        "--save-reference",
    ),
    ("records", ["records", "import", "LOG", "--mapping", "MAP", "--out", "OUT"], "--out"),
    ("records", ["records", "import", "LOG", "--mapping", "MAP", "--out", "OUT/r.jsonl"], "--out"),
    ("records", ["records", "import", "LOG", "--mapping", "MAP", "--out", "OUT/r.parquet"], "--out"),
    ("dataset", ["dataset", "export", "--n", "2", "--out", "OUT"], "--out"),
    ("score", ["score", "--candidates", "CANDS", "--references", "REFS", "--bootstrap", "0", "--out", "OUT"], "--out"),
    ("evaluate", ["evaluate", "--target", CLOSED, "--dataset", "shapes:2", "--out", "OUT"], "--out"),
    ("gate", ["gate", "--baseline", CLOSED, "--canary", CLOSED, "--out", "OUT"], "--out"),
    ("judge", ["judge", "--baseline", "REC", "--canary", "REC", "--out", "OUT"], "--out"),
    ("demo", ["demo", "--out", "OUT"], "--out"),
    ("load", ["load", "--scenario", "steady", "--target", CLOSED, "--out", "OUT"], "--out"),
    ("serve", ["serve", "--port", "0", "--port-file", "OUT/port"], "--port-file"),
]


def _argv(argv: list[str], files: dict[str, Path], tmp_path: Path, out: Path) -> tuple[list[str], str]:
    done, shown = [], ""
    for a in argv:
        if a.startswith("OUT"):
            a = shown = str(out) + a[3:]
        elif a.startswith("TMP"):
            a = str(tmp_path) + a[3:]
        elif a in files:
            a = str(files[a])
        done.append(a)
    return done, shown


@pytest.mark.parametrize("command, argv, option", WRITERS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRITERS)])
def test_an_out_folder_that_takes_no_file_is_refused_before_any_work(
    tmp_path, files, locked, command, argv, option
) -> None:
    line_argv, shown = _argv(argv, files, tmp_path, locked.folder)
    code, _, err = run_cli(line_argv)
    assert code == 64, err
    assert one_line(err) == f"harness {command}: error: {option} {shown}: not writable ({locked.file_reason})"
    assert not (tmp_path / "d").exists()  # refused before the other outputs were written


@pytest.mark.parametrize("command, argv, option", WRITERS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRITERS)])
def test_an_out_folder_that_cannot_be_made_is_refused_before_any_work(
    tmp_path, files, locked, command, argv, option
) -> None:
    line_argv, shown = _argv(argv, files, tmp_path, locked.folder / "new" / "run")
    code, _, err = run_cli(line_argv)
    assert code == 64, err
    assert one_line(err) == (
        f"harness {command}: error: {option} {shown}: cannot be made in {locked.folder} ({locked.folder_reason})"
    )


def test_an_existing_out_file_that_does_not_open_for_writing_is_refused(tmp_path) -> None:
    rules = tmp_path / "rules.yml"
    os.mkfifo(rules)  # a pipe nobody reads: writing to it would wait for ever, root or not
    code, _, err = run_cli(["rules", "--spec", str(SPEC), "--out", str(rules)])
    assert code == 64
    assert one_line(err) == f"harness rules: error: --out {rules}: not writable (No such device or address)"


def test_a_log_imported_into_a_file_under_a_file_is_refused(tmp_path, files) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "records.jsonl"
    code, _, err = run_cli(["records", "import", str(files["LOG"]), "--mapping", str(files["MAP"]), "--out", str(out)])
    assert code == 64
    assert one_line(err) == f"harness records: error: --out {out}: {blocker} is a file, not a folder"
    assert not (tmp_path / "rejected.jsonl").exists()


# -- a NUL in an argument or in a target ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, prog, name",
    [
        (["records", "import", "LOG", "--mapping", "MAP", "--out", "TMP/a\0b"], "harness records import", "--out"),
        (
            ["records", "import", "TMP/log\0.jsonl", "--mapping", "MAP", "--out", "TMP/o"],
            "harness records import",
            "source",
        ),
        (
            ["records", "import", "LOG", "--mapping", "TMP/m\0.yaml", "--out", "TMP/o"],
            "harness records import",
            "--mapping",
        ),
        (["slo", "--spec", str(SPEC), "--records", "REC", "--out", "TMP/o\0"], "harness slo", "--out"),
        (
            ["load", "--scenario", "steady", "--target", CLOSED, "--dataset", "TMP/d\0", "--out", "TMP/o"],
            "harness load",
            "--dataset",
        ),
    ],
)
def test_a_nul_in_an_argument_is_refused_naming_it(tmp_path, files, argv, prog, name) -> None:
    line_argv, _ = _argv(argv, files, tmp_path, tmp_path)
    code, _, err = run_cli(line_argv)
    assert code == 64
    assert one_line(err) == f"{prog}: error: argument {name}: contains a NUL character (see {prog} --help)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written, under any name


@pytest.mark.parametrize(
    "target, reason",
    [
        ("can\0ary", "target: 'can\\x00ary' holds a NUL character, which no folder name can"),
        (
            "x" * 300,
            f"target: {'x' * 60!r} is too long to name a dataset folder (target=... takes 307 bytes, at most 255)",
        ),
        (
            "é" * 130,
            f"target: {'é' * 60!r} is too long to name a dataset folder (target=... takes 787 bytes, at most 255)",
        ),
    ],
)
def test_a_target_that_cannot_name_a_dataset_folder_is_a_rejected_row(tmp_path, files, target, reason) -> None:
    pytest.importorskip("great_expectations")
    from harness.records import load_records

    log = _log(tmp_path / "service.jsonl", ["production", target])
    out = tmp_path / "dataset"
    code, stdout, err = run_cli(
        ["records", "import", str(log), "--mapping", str(files["MAP"]), "--out", str(out), "--max-rejected", "1"]
    )
    assert code == 0, err
    assert one_line(err) == f"rejected {log}: line 2: {reason}"
    assert stdout.strip() == f"imported 1 of 2 rows into {out}; 1 rejected, listed in {out / 'rejected.jsonl'}"
    assert sorted(p.parent.name for p in out.rglob("*.parquet")) == ["target=production"]
    assert load_records(out)["target"].tolist() == ["production"]
    assert json.loads((out / "rejected.jsonl").read_text())["reason"] == reason


def test_a_log_whose_name_is_too_long_for_its_dataset_files_is_refused(tmp_path, files) -> None:
    log = _log(tmp_path / ("L" * 240 + ".jsonl"), ["production"])
    out = tmp_path / "dataset"
    code, _, err = run_cli(["records", "import", str(log), "--mapping", str(files["MAP"]), "--out", str(out)])
    assert code == 64
    assert one_line(err).startswith(f"harness records: error: {log}: the log's name is too long to name its files")
    assert not out.exists()


# -- COCO data sets with ids and file names of the wrong kind ------------------------------------------


def _coco(folder: Path, images: list, annotations: list | None = None) -> Path:
    (folder / "images" / "sub").mkdir(parents=True)
    Image.new("RGB", (32, 32), "red").save(folder / "images" / "a.png")
    if annotations is None:
        annotations = [{"id": 1, "image_id": 1, "caption": "a red square"}]
    (folder / "captions.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return folder / "captions.json"


@pytest.mark.parametrize(
    "images, annotations, message",
    [
        (
            [{"id": {"a": 1}, "file_name": "a.png"}],
            None,
            "images[0].id must be a whole number or a string, not a JSON object",
        ),
        ([{"id": [1], "file_name": "a.png"}], None, "images[0].id must be a whole number or a string, not a JSON list"),
        (
            [{"id": True, "file_name": "a.png"}],
            None,
            "images[0].id must be a whole number or a string, not true or false",
        ),
        (
            [{"id": 1.5, "file_name": "a.png"}],
            None,
            "images[0].id must be a whole number or a string, not a decimal number (1.5)",
        ),
        (
            [{"id": 1, "file_name": "a.png"}],
            [{"image_id": {"a": 1}, "caption": "x"}],
            "annotations[0].image_id must be a whole number or a string, not a JSON object",
        ),
        ([{"id": 1, "file_name": "sub"}], None, "images[0].file_name 'sub' is not a regular file"),
        (
            [{"id": 1, "file_name": "sub/.."}],
            None,
            "images[0].file_name 'sub/..' names the images folder itself, not a file in it",
        ),
        ([{"id": 1, "file_name": ""}], None, "images[0].file_name '' names the images folder itself, not a file in it"),
        ([{"id": 1, "file_name": "a.png\0.txt"}], None, "images[0].file_name 'a.png\\x00.txt' holds a NUL character"),
    ],
    ids=[
        "id-object",
        "id-list",
        "id-bool",
        "id-fraction",
        "annotation-id-object",
        "folder",
        "images-folder",
        "empty",
        "nul",
    ],
)
@pytest.mark.parametrize("command", ["load", "evaluate"])
def test_a_coco_entry_of_the_wrong_kind_is_bad_data_naming_file_entry_and_field(
    tmp_path, command, images, annotations, message
) -> None:
    ann = _coco(tmp_path / "set", images, annotations)
    out = tmp_path / "out"
    if command == "load":
        argv = ["load", "--scenario", "steady", "--target", CLOSED, "--dataset", str(ann.parent), "--out", str(out)]
    else:
        argv = ["evaluate", "--target", CLOSED, "--dataset", f"coco:{ann.parent}", "--out", str(out)]
    code, _, err = run_cli(argv)
    assert code == 65, err
    assert one_line(err) == f"harness {command}: error: {ann}: {message}"
    assert not out.exists() or not any(out.iterdir())


def _drift(reference, current, out, *more) -> list[str]:
    """``harness drift`` of ``current`` against ``reference`` without sentence embeddings."""
    return ["drift", "--reference", str(reference), "--current", str(current), "--out", str(out)] + [
        "--no-sentence-embeddings",
        *map(str, more),
    ]


# -- numpy's warnings never reach stderr ahead of the error line ---------------------------------------


@pytest.fixture
def saved_reference(tmp_path, files) -> Path:
    saved = tmp_path / "saved"
    code, _, err = run_cli(
        _drift(str(files["REC"]), str(files["REC"]), str(tmp_path / "d0"), "--save-reference", str(saved))
    )
    assert code == 0, err
    return saved


def _tamper(saved: Path, key: str, how: str) -> Path:
    npz = saved / "drift_reference.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = arrays[key][:0] if how == "empty" else np.full(arrays[key].shape, np.nan)
    np.savez_compressed(npz, **arrays)
    return npz


@pytest.mark.parametrize(
    "key, how",
    [
        ("plot/confidence", "empty"),  # was: "Mean of empty slice", then a report
        ("plot/caption_length", "nan"),  # was: a crash (exit 70)
        ("confidence.wasserstein/reference", "empty"),  # was: "divide by zero", "Mean of empty slice"
        ("confidence.ks/reference", "empty"),  # was: SmallSampleWarning, then a crash
        ("confidence.psi/edges", "nan"),
    ],
)
def test_a_saved_reference_with_empty_or_non_finite_arrays_is_one_line(
    tmp_path, files, saved_reference, key, how
) -> None:
    npz = _tamper(saved_reference, key, how)
    out = tmp_path / "d1"
    code, _, err = run_cli(_drift(str(saved_reference), str(files["REC"]), str(out)))
    assert code == 65
    assert one_line(err) == (
        f"harness drift: error: {npz}: {key} is empty or holds values that are not finite numbers; save the reference again"
    )
    assert not out.exists()


def test_the_installed_command_prints_only_the_error_line_for_a_saved_reference(
    tmp_path, files, saved_reference
) -> None:
    npz = _tamper(saved_reference, "plot/confidence", "empty")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "drift",
            "--reference",
            str(saved_reference),
            "--current",
            str(files["REC"]),
            "--out",
            str(tmp_path / "d1"),
            "--no-sentence-embeddings",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 65
    assert done.stderr.splitlines() == [
        f"harness drift: error: {npz}: plot/confidence is empty or holds values that are not finite numbers; "
        "save the reference again"
    ]


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"knots_x": [], "knots_y": []}, "knots_x and knots_y must be lists of numbers of the same, non-zero length"),
        (
            {"knots_x": [0.1], "knots_y": [0.2, 0.3]},
            "knots_x and knots_y must be lists of numbers of the same, non-zero length",
        ),
        (
            {"method": "binned", "knots_x": [], "knots_y": []},
            "knots_x and knots_y must be lists of numbers of the same, non-zero length",
        ),
        ({"knots_x": ["a"], "knots_y": ["b"]}, "the knots must be numbers (knots_y finite)"),
        ({"knots_x": [[1]], "knots_y": [[1]]}, "the knots must be numbers (knots_y finite)"),
        ({"knots_y": [float("nan"), 0.8]}, "the knots must be numbers (knots_y finite)"),
        ({"knots_x": [0.9, 0.1]}, "knots_x must be finite numbers in increasing order"),
        ({"confidence_range": [1]}, "confidence_range must be two finite numbers"),
        ({"method": "magic"}, "method must be isotonic or binned (got 'magic')"),
    ],
)
def test_a_quality_model_that_cannot_map_confidences_is_bad_data(tmp_path, files, change, problem) -> None:
    model = {
        "method": "isotonic",
        "knots_x": [0.1, 0.9],
        "knots_y": [0.2, 0.8],
        "n_reference": 100,
        "confidence_range": [0.1, 0.9],
        "reference_quality": 0.5,
        "held_out_mae": 0.1,
        "held_out_corpus_error": 0.05,
        "folds": 5,
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps({**model, **change}))
    code, _, err = run_cli(
        _drift(str(files["REC"]), str(files["REC"]), str(tmp_path / "d"), "--quality-model", str(path))
    )
    assert code == 65
    assert one_line(err) == f"harness drift: error: {path}: not a usable quality model: {problem}"


# -- an import of no rows ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dataset", "records.jsonl", "records.parquet"])
def test_an_import_of_no_rows_leaves_an_output_that_holds_no_records(tmp_path, files, name) -> None:
    pytest.importorskip("great_expectations")
    from harness.records import load_records

    empty = tmp_path / "service.jsonl"
    empty.write_text("")
    out = tmp_path / name
    code, stdout, err = run_cli(["records", "import", str(empty), "--mapping", str(files["MAP"]), "--out", str(out)])
    assert code == 0 and err == ""
    assert stdout.strip() == f"imported 0 of 0 rows into {out} (the log holds no rows, so the output holds no records)"
    assert out.exists() and len(load_records(out)) == 0
    # readers find a set of records with none in it, not a missing input
    code, _, err = run_cli(["drift", "--reference", str(out), "--current", str(out), "--out", str(tmp_path / "d")])
    assert code == 65 and one_line(err) == f"harness drift: error: {out}: no records"
    code, stdout, err = run_cli(["slo", "--spec", str(SPEC), "--records", str(out), "--out", str(tmp_path / "s")])
    assert code == 0, err
    assert stdout.strip().endswith(": 5 SLOs, all met or no data")


def test_importing_an_emptied_log_again_replaces_its_records_with_none(tmp_path, files) -> None:
    pytest.importorskip("great_expectations")
    from harness.records import load_records

    out = tmp_path / "dataset"
    other = _log(tmp_path / "other.jsonl", ["staging"])
    for log in (files["LOG"], other):
        assert run_cli(["records", "import", str(log), "--mapping", str(files["MAP"]), "--out", str(out)])[0] == 0
    assert sorted(load_records(out)["target"]) == ["production", "production", "staging"]
    files["LOG"].write_text("")  # the service's log, rotated away
    code, _, err = run_cli(["records", "import", str(files["LOG"]), "--mapping", str(files["MAP"]), "--out", str(out)])
    assert code == 0, err
    assert load_records(out)["target"].tolist() == ["staging"]  # the other source's records stay


# -- harness load: a scenario file that is not Python, a data set it cannot send ------------------------


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.txt", b"# shopping list\nmilk: 2 litres\n", "invalid syntax at line 2"),
        ("broken.py", b"from locust import task\n\ndef f(:\n    pass\n", "invalid syntax at line 3"),
        ("picture.py", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "null bytes"),  # Python's words vary by version
    ],
)
def test_a_scenario_file_that_is_not_python_is_bad_data_before_locust_starts(tmp_path, name, content, message) -> None:
    scenario = tmp_path / name
    scenario.write_bytes(content)
    out = tmp_path / "out"
    code, _, err = run_cli(["load", "--scenario", str(scenario), "--target", CLOSED, "--out", str(out)])
    assert code == 65, err
    line, prefix = one_line(err), f"harness load: error: {scenario.resolve()}: not a Python scenario file: "
    assert line == prefix + message if message != "null bytes" else line.startswith(prefix) and "null bytes" in line
    assert not out.exists()


def test_a_coco_set_the_load_cannot_send_is_refused_before_locust_starts(tmp_path) -> None:
    ann = _coco(tmp_path / "set", [{"id": 1, "file_name": "a.gif"}])
    Image.new("RGB", (32, 32), "red").save(ann.parent / "images" / "a.gif")
    out = tmp_path / "out"
    code, _, err = run_cli(
        ["load", "--scenario", "steady", "--target", CLOSED, "--dataset", str(ann.parent), "--out", str(out)]
    )
    assert code == 65
    gif = (ann.parent / "images" / "a.gif").resolve()
    assert one_line(err) == f"harness load: error: {gif}: unsupported image type '.gif' (png, jpeg or webp)"
    assert not out.exists()


@pytest.mark.slow
def test_a_data_set_refused_in_the_run_reaches_the_exit_code_and_stderr(tmp_path, monkeypatch) -> None:
    _needs_locust()
    ann = _coco(tmp_path / "set", [{"id": 1, "file_name": "a.gif"}])
    Image.new("RGB", (32, 32), "red").save(ann.parent / "images" / "a.gif")
    monkeypatch.setattr("harness.load.payload.check_dataset", lambda *a: None)  # as if it changed after the check
    out = tmp_path / "out"
    code, _, err = run_cli(
        [
            "load",
            "--scenario",
            "steady",
            "--target",
            CLOSED,
            "--duration",
            "2s",
            "--dataset",
            str(ann.parent),
            "--out",
            str(out),
        ]
    )
    gif = (ann.parent / "images" / "a.gif").resolve()
    why = f"{gif}: unsupported image type '.gif' (png, jpeg or webp)"
    assert code == 65
    assert one_line(err) == f"harness load: error: load run stopped: {why}; see {out.resolve() / 'locust.log'}"
    assert json.loads((out / "summary.json").read_text())["error"] == why  # what was recorded stays
    assert (out / "records.jsonl").exists()


@pytest.mark.slow
def test_a_scenario_that_fails_on_import_is_bad_data_in_one_line(tmp_path) -> None:
    _needs_locust()
    scenario = tmp_path / "needs.py"
    scenario.write_text("import harness_no_such_module_for_a_scenario\n")
    out = tmp_path / "out"
    code, _, err = run_cli(
        ["load", "--scenario", str(scenario), "--target", CLOSED, "--duration", "2s", "--out", str(out)]
    )
    assert code == 65
    assert one_line(err) == (
        f"harness load: error: load run failed: harness.load.run: error: {scenario.resolve()}: the scenario failed to "
        "load: ModuleNotFoundError: No module named 'harness_no_such_module_for_a_scenario'"
    )


# ------------------------------------------------------------------ references that hold no word


@pytest.mark.parametrize("blank", ["", "   ", ".", "\t!\n"])
def test_score_refuses_a_reference_caption_that_holds_no_word(tmp_path: Path, blank: str) -> None:
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"annotations": [{"image_id": 1, "caption": blank}, {"image_id": 2, "caption": "a"}]}))
    cands = tmp_path / "cands.json"
    cands.write_text(json.dumps([{"image_id": 1, "caption": "a red circle"}, {"image_id": 2, "caption": "a dog"}]))
    code, _out, err = run_cli(["score", "--candidates", str(cands), "--references", str(refs)])
    assert code == 65, err
    assert err.strip().splitlines() == [f"harness score: error: {refs}: annotations[0].caption holds no word"]
