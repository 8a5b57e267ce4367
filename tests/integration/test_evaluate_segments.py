"""``harness evaluate`` by segment, against a stub contract-v1 service that captions the shapes world
right, bar its low-light images (``shapes:40:low_light@0.1``: every tenth image), which it gives
another image's caption: ``quality.json`` holds every figure per segment beside the corpus's, the
records name each image's segment, and stdout shows the table."""

import hashlib
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from cli_run import run_cli
from harness.quality.evaluation import parse_dataset

pytestmark = pytest.mark.slow  # a data contract check and scoring: seconds

DATASET = "shapes:40:low_light@0.1"


@contextmanager
def _stub(answers: dict[bytes, str]):
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status, doc):
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            self._send(200, {"name": "stub", "version": "stub-1", "device": "cpu", "status": "ok"})

        def do_POST(self):  # noqa: N802
            image = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            caption = answers[hashlib.sha256(image).digest()]
            doc = {
                "request_id": self.headers.get("X-Request-Id"),
                "caption": caption,
                "confidence": 0.9,
                "model_version": "stub-1",
                "server_latency_ms": 1.0,
                "safety": {"flagged": False, "reasons": []},
            }
            self._send(200, doc)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_evaluate_gives_every_quality_figure_per_segment(tmp_path):
    images = list(parse_dataset(DATASET).images())
    answers = {}
    for i, im in enumerate(images):
        wrong = next(c for j in range(1, 40) if (c := images[(i + j) % 40].references[0]) not in im.references)
        answers[hashlib.sha256(im.content).digest()] = wrong if im.segment == "low_light" else im.references[0]
    with _stub(answers) as url:
        code, out, err = run_cli(
            ["evaluate", "--target", url, "--dataset", DATASET, "--out", tmp_path, "--metrics", "bleu,cider"]
        )
    assert code == 0, err
    q = json.loads((tmp_path / "quality.json").read_text())
    seg = q["segments"]
    assert list(seg) == ["low_light", "unshifted"]
    low, day = seg["low_light"], seg["unshifted"]
    assert (low["n_images"], day["n_images"]) == (4, 36) and low["n_scored"] == 4
    assert low["metrics"]["CIDEr-D"]["corpus"] < 1.0 < day["metrics"]["CIDEr-D"]["corpus"]
    assert low["metrics"]["CIDEr-D"]["ci"]["level"] == 0.95 and "BLEU-4" in low["metrics"]
    # the corpus's CIDEr-D is the images' mean: the segments' weighted by their images
    mean = (4 * low["metrics"]["CIDEr-D"]["corpus"] + 36 * day["metrics"]["CIDEr-D"]["corpus"]) / 40
    assert q["metrics"]["CIDEr-D"]["corpus"] == pytest.approx(mean, rel=1e-9)
    assert low["chair"]["chair_s"] > day["chair"]["chair_s"] == 0.0  # captions of other scenes name absent objects
    records = pd.read_parquet(tmp_path / "records.parquet")
    assert records.set_index("image_id")["segment"].to_dict() == {
        str(i): ("low_light" if i % 10 == 9 else "unshifted") for i in range(40)
    }
    assert "Quality by segment (2 segments)" in out
    assert "| figure | corpus | segment low_light | segment unshifted |" in out and "| CHAIR_s |" in out
