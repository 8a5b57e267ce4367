"""The ``hallucination`` SLI kind: captions of images whose objects a data set's ``instances.json``
says, good when they name no object the image lacks; counted exactly from records, through the
CLI, with its bad inputs refused in one line."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from cli_run import run_cli
from harness.datasets import generate_shapes, write_coco
from harness.errors import EXIT_DATA, EXIT_MISSING
from harness.load.proxy import flaw_caption
from harness.quality.chair import dataset_objects
from harness.records import COLUMNS
from harness.slo import evaluate_records
from harness.slo.spec import native_spec

SAMPLES = list(generate_shapes(12, seed=4))
T0 = 1_790_812_800.0


def _spec(objects: str, **extra):
    slo = {"name": "no-hallucination", "sli": "hallucination", "objective": 0.9, "objects": objects, **extra}
    return native_spec([{"service": "captioner", "slos": [slo]}], "inline")


def _records(flawed: set[int], outside: int = 2) -> pd.DataFrame:
    """Two answers per image of the set (the right caption, then the same again or one that adds an
    object no image holds for the images in ``flawed``), ``outside`` answers of images the set does
    not hold, and a failed request."""
    rng = random.Random(0)
    rows = []

    def row(i, image_id, caption, outcome="ok", status=200):
        r = dict.fromkeys(COLUMNS)
        r.update(
            run_id="h", target="production", request_id=f"r{i}", image_id=image_id, t_start=T0 + i,
            latency_s=0.05, status=status, outcome=outcome, caption=caption,
        )  # fmt: skip
        return r

    for s in SAMPLES:
        right = s.captions[0]
        rows.append(row(len(rows), str(s.image_id), right))
        second = flaw_caption(right, "add_object", rng) if s.image_id in flawed else right
        rows.append(row(len(rows), str(s.image_id), second))
    for j in range(outside):
        rows.append(row(len(rows), f"elsewhere-{j}", "a red circle and a blue hexagon"))
    rows.append(row(len(rows), str(SAMPLES[0].image_id), None, "http_error", 500))
    return pd.DataFrame(rows, columns=list(COLUMNS))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("set")
    write_coco(SAMPLES, folder, {"name": "shapes", "seed": 4})
    return folder


def test_each_caption_is_read_against_its_own_images_objects(dataset):
    objects = dataset_objects(dataset)
    ids = [str(SAMPLES[0].image_id), str(SAMPLES[1].image_id), "unknown"]
    caps = [SAMPLES[0].captions[0], SAMPLES[1].captions[0] + " and a red star", "a red star"]
    assert objects.hallucinated(ids, caps) == [False, True, None]


def test_hallucination_sli_counts_every_answered_caption_of_a_known_image(dataset):
    flawed = {SAMPLES[k].image_id for k in (1, 4, 7)}
    report = evaluate_records(_spec(str(dataset)), _records(flawed))
    (result,) = report.results
    # 12 images x 2 answers are events; the 2 images the set lacks and the failed request are not
    assert (result.sli.good, result.sli.total) == (21, 24)
    assert result.met is False and result.to_dict()["objects"] == str(dataset)


def test_a_relative_objects_folder_is_the_run_folders(dataset, tmp_path):
    records = _records(set())
    report = evaluate_records(_spec(dataset.name), records, folder=dataset.parent)
    assert (report.results[0].sli.good, report.results[0].sli.total) == (24, 24)


def test_no_known_image_is_no_data(dataset):
    records = _records(set(), outside=3)
    records = records[~records["image_id"].isin([str(s.image_id) for s in SAMPLES])]
    (result,) = evaluate_records(_spec(str(dataset)), records).results
    assert result.sli.total == 0 and "no caption of an image the objects folder holds" in result.sli.note


def test_bad_objects_folders_are_one_line_with_their_exit_code(dataset, tmp_path):
    records = tmp_path / "records.jsonl"
    _records(set()).to_json(records, orient="records", lines=True)
    spec = tmp_path / "slo.yaml"
    for objects, code, message in (
        (tmp_path / "nowhere", EXIT_MISSING, "objects folder was not found"),
        (tmp_path, EXIT_DATA, "no instances.json"),
    ):
        spec.write_text(
            json.dumps({"service": "s", "slos": [{"name": "h", "sli": "hallucination", "objective": 0.9,
                                                  "objects": str(objects)}]})
        )  # fmt: skip
        got, out, err = run_cli(["slo", "--spec", spec, "--records", records, "--out", tmp_path / "out"])
        assert got == code and err.count("\n") == 1 and message in err, err
    spec.write_text(json.dumps({"service": "s", "slos": [{"name": "h", "sli": "hallucination", "objective": 0.9}]}))
    got, _, err = run_cli(["slo", "--spec", spec, "--records", records, "--out", tmp_path / "out"])
    assert got == EXIT_DATA and "objects" in err and err.count("\n") == 1, err


def test_the_cli_reports_the_sli_from_records(dataset, tmp_path):
    records = tmp_path / "records.jsonl"
    _records({SAMPLES[2].image_id}).to_json(records, orient="records", lines=True)
    spec = tmp_path / "slo.yaml"
    spec.write_text(
        json.dumps({"service": "s", "slos": [{"name": "h", "sli": "hallucination", "objective": 0.99,
                                              "objects": str(dataset)}]})
    )  # fmt: skip
    code, out, err = run_cli(["slo", "--spec", spec, "--records", records, "--out", tmp_path / "out"])
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "slo.json").read_text())
    (slo,) = doc["slos"]
    assert (slo["sli"]["good"], slo["sli"]["total"]) == (23, 24) and slo["objects"] == str(dataset)
