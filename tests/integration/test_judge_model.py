"""The model judge over real HTTP: a stand-in OpenAI-compatible chat server on a loopback port
answers scripted replies per caption (scored JSON, a fenced one, refusals, garbage, a 500, an answer
slower than the timeout), and ``harness grade`` and ``judge_captions`` must count each status
exactly, never make up a score, ask nothing a second time from the cache, record usage and cost,
compare with people's ratings and escape the model's text in judge.md."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli_run import run_cli
from harness.datasets import shapes_sample
from harness.errors import ServiceUnavailableError
from harness.quality.judge_model import ModelJudge, find_images, judge_captions
from markup import markdown_html

MODEL = "judge-vl"
TOKEN = "judge-secret-token-123"
MARK = "Caption to rate (a JSON string): "
USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
SLOW_S, TIMEOUT_S = 1.5, 0.5

# caption -> (HTTP status, content or a whole message, usage); the order is the captions file's
SCRIPT = {
    "a red circle": (200, '{"score": 5, "reason": "Accurate <b>bold</b> [link](http://evil.example) `x`"}', USAGE),
    "a fenced caption": (200, '```json\n{"score": 3, "reason": "Misses the square."}\n```', USAGE),
    "a caption without usage": (200, '{"score": 2, "reason": "Wrong colour."}', None),
    "refuse me": (200, '{"score": null, "reason": "The image cannot be seen."}', USAGE),
    "refuse by field": (200, {"role": "assistant", "content": None, "refusal": "I can't help with that."}, None),
    "garbage": (200, "What a lovely caption!!! 10/10 <script>alert(1)</script>", USAGE),
    "half a point": (200, '{"score": 4.5, "reason": "Nearly."}', USAGE),
    "server error": (500, None, None),
    "slow": (200, '{"score": 4, "reason": "Late."}', USAGE),
}


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    shapes_sample(i, 0).image.save(buf, "PNG")
    return buf.getvalue()


class StandIn:
    """An OpenAI-compatible chat endpoint answering ``SCRIPT`` by the caption in the prompt; it
    keeps every request it got. ``flaky``: captions whose first request gets a 503."""

    def __init__(self, flaky=()):
        self.requests: list[dict] = []
        self.flaky = set(flaky)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                content = body["messages"][0]["content"]
                prompt = next(c["text"] for c in content if c["type"] == "text")
                caption = json.loads(prompt.split(MARK, 1)[1])
                with outer.lock:
                    seen = sum(r["caption"] == caption for r in outer.requests)
                    outer.requests.append(
                        {"caption": caption, "body": body, "path": self.path, "auth": self.headers.get("Authorization")}
                    )
                status, reply, usage = SCRIPT[caption]
                if caption in outer.flaky and seen == 0:
                    status = 503
                if caption == "slow":
                    time.sleep(SLOW_S)
                if status != 200:
                    data = json.dumps(
                        {"error": {"code": "boom", "message": f"echo {self.headers.get('Authorization')}"}}
                    )
                else:
                    message = reply if isinstance(reply, dict) else {"role": "assistant", "content": reply}
                    doc = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": MODEL,
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    }
                    if usage is not None:
                        doc["usage"] = usage
                    data = json.dumps(doc)
                raw = data.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:  # the client gave up waiting (the slow answer)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def sent(self, caption=None) -> int:
        with self.lock:
            return sum(caption is None or r["caption"] == caption for r in self.requests)


@pytest.fixture
def stand_in():
    made = []

    def make(**kw):
        s = StandIn(**kw)
        s.thread.start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.httpd.shutdown()
        s.httpd.server_close()


def _images(tmp_path, captions: list[str]):
    """A folder of images named by id, and the captions file (ids 1..n in the order given)."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for i in range(1, len(captions) + 1):
        (folder / f"{i}.png").write_bytes(_png(i))
    cap = tmp_path / "captions.json"
    cap.write_text(json.dumps([{"image_id": i, "caption": c} for i, c in enumerate(captions, 1)]))
    return folder, cap


def _judge(url, **kw) -> ModelJudge:
    return ModelJudge(url, MODEL, timeout_s=TIMEOUT_S, **{"retries": 0, "concurrency": 3, **kw})


def test_statuses_are_counted_exactly_and_no_score_is_made_up(tmp_path, stand_in):
    srv = stand_in()
    folder, _ = _images(tmp_path, list(SCRIPT))
    items = find_images(dict(enumerate(SCRIPT, 1)), folder)
    run = judge_captions(_judge(srv.url, price_per_1k_tokens=0.5), items)
    by = {j.caption: j for j in run.judgements}
    assert [j.caption for j in run.judgements] == list(SCRIPT)  # in the order given
    assert run.counts() == {"scored": 3, "refused": 2, "unparsable": 2, "error": 1, "timeout": 1}
    assert {c: by[c].score for c in SCRIPT} == {
        "a red circle": 5,
        "a fenced caption": 3,
        "a caption without usage": 2,
        "refuse me": None,
        "refuse by field": None,
        "garbage": None,
        "half a point": None,
        "server error": None,
        "slow": None,
    }
    assert by["refuse me"].reason == "The image cannot be seen."
    assert by["refuse by field"].status == "refused" and by["refuse by field"].reason == "I can't help with that."
    assert by["garbage"].status == "unparsable" and by["garbage"].detail.startswith("What a lovely caption")
    assert by["server error"].detail.startswith("HTTP 500") and by["server error"].http_status == 500
    assert by["slow"].status == "timeout" and by["slow"].http_status == 0
    assert TIMEOUT_S <= by["slow"].latency_s < SLOW_S
    # usage and cost: five answers reported 100 + 20 tokens; two reported none
    assert (by["a red circle"].prompt_tokens, by["a red circle"].completion_tokens) == (100, 20)
    assert by["a red circle"].cost == pytest.approx(0.06)
    assert by["a caption without usage"].cost is None and by["a caption without usage"].prompt_tokens is None
    assert (run.prompt_tokens, run.completion_tokens, run.without_usage) == (500, 100, 2)
    assert run.cost == pytest.approx(0.3)
    assert run.requests_sent == len(SCRIPT) == srv.sent() and run.from_cache == 0

    # what went over the wire: the openai-chat shape, the image as a data URL, the rubric, temperature 0
    body = next(r for r in srv.requests if r["caption"] == "a red circle")["body"]
    assert srv.requests[0]["path"] == "/v1/chat/completions"
    assert body["model"] == MODEL and body["temperature"] == 0.0 and "logprobs" not in body
    image = next(c for c in body["messages"][0]["content"] if c["type"] == "image_url")["image_url"]["url"]
    assert base64.b64decode(image.removeprefix("data:image/png;base64,")) == _png(1)


def test_the_cache_makes_a_second_run_send_nothing(tmp_path, stand_in):
    srv = stand_in()
    answerable = [c for c in SCRIPT if c not in ("server error", "slow")]
    folder, _ = _images(tmp_path, answerable)
    items = find_images(dict(enumerate(answerable, 1)), folder)
    first = judge_captions(_judge(srv.url), items, _cache(tmp_path))
    assert srv.sent() == len(answerable) == first.requests_sent
    second = judge_captions(_judge(srv.url), items, _cache(tmp_path))
    assert srv.sent() == len(answerable)  # not one request more
    assert second.requests_sent == 0 and second.from_cache == len(answerable)
    assert second.counts() == first.counts()
    assert [(j.status, j.score, j.reason) for j in second.judgements] == [
        (j.status, j.score, j.reason) for j in first.judgements
    ]
    assert all(j.cached for j in second.judgements)
    # another model, or another caption of the same image, is asked anew
    judge_captions(ModelJudge(srv.url, "another-model", retries=0), items[:1], _cache(tmp_path))
    assert srv.sent() == len(answerable) + 1


def _cache(tmp_path):
    from harness.quality.judge_model import AnswerCache

    return AnswerCache(tmp_path / "cache")


def test_failures_are_not_cached_and_are_asked_again(tmp_path, stand_in):
    srv = stand_in()
    folder, _ = _images(tmp_path, list(SCRIPT))
    items = find_images(dict(enumerate(SCRIPT, 1)), folder)
    judge_captions(_judge(srv.url), items, _cache(tmp_path))
    n = srv.sent()
    again = judge_captions(_judge(srv.url), items, _cache(tmp_path))
    assert srv.sent() - n == 2 == again.requests_sent  # the 500 and the timeout, nothing else
    assert again.from_cache == len(SCRIPT) - 2


def test_one_retry_of_a_5xx(tmp_path, stand_in):
    srv = stand_in(flaky={"a red circle"})
    folder, _ = _images(tmp_path, ["a red circle", "server error"])
    items = find_images({1: "a red circle", 2: "server error"}, folder)
    run = judge_captions(_judge(srv.url, retries=1, sleep=lambda s: None), items)
    by = {j.caption: j for j in run.judgements}
    assert (by["a red circle"].status, by["a red circle"].score, by["a red circle"].attempts) == ("scored", 5, 2)
    assert (by["server error"].status, by["server error"].attempts) == ("error", 2)
    assert srv.sent("a red circle") == 2 and srv.sent("server error") == 2 and run.requests_sent == 4


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_judge_stops_early(tmp_path):
    folder, _ = _images(tmp_path, ["a red circle"])
    items = find_images({1: "a red circle"}, folder) * 50
    with pytest.raises(ServiceUnavailableError, match=r"could not be reached by any of the first \d+ requests") as err:
        judge_captions(_judge(f"http://127.0.0.1:{_closed_port()}", concurrency=2), items)
    # early: a few requests (how many were in flight when the first failures came back), not the 50
    assert int(re.search(r"first (\d+) requests", str(err.value)).group(1)) < 10


def _ratings(tmp_path):
    path = tmp_path / "ratings.csv"
    rows = [
        ("1", "ana", 5, "a red circle"),
        ("1", "bo", 4, "a red circle"),  # the mean, 4.5, rounds to 5
        ("2", "ana", 3, "a fenced caption"),
        ("3", "ana", 2, "a caption without usage"),
        ("4", "ana", 4, "refuse me"),  # rated, but the judge did not score it
        ("1", "cy", 1, "a green circle"),  # another target's caption of image 1
    ]
    lines = ["image_id,rater,rating,target,caption,time"]
    lines += [f"{i},{r},{v},canary,{c},2024-05-01T00:00:00Z" for i, r, v, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_harness_grade_writes_the_report_with_agreement_and_escapes_the_model(tmp_path, stand_in, monkeypatch):
    srv = stand_in()
    folder, cap = _images(tmp_path, list(SCRIPT))
    monkeypatch.setenv("JUDGE_TOKEN", TOKEN)
    args = [
        "grade",
        "--captions", cap, "--images", folder, "--judge", srv.url, "--model", MODEL,
        "--auth-env", "JUDGE_TOKEN", "--ratings", _ratings(tmp_path), "--cache", tmp_path / "cache",
        "--out", tmp_path / "out", "--timeout", TIMEOUT_S, "--retries", 0, "--concurrency", 3,
        "--price-per-1k-tokens", 0.5, "--bootstrap", 200, "--seed", 3,
    ]  # fmt: skip
    code, out, err = run_cli(args)
    assert code == 0, err
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in srv.requests)
    assert "3 scored, 2 refused, 2 unparsable, 1 error, 1 timeout" in out
    assert "not gating: only 3 captions both judged and rated by people (at least 30 needed)" in out

    doc = json.loads((tmp_path / "out" / "judge.json").read_text())
    assert doc["counts"] == {"scored": 3, "refused": 2, "unparsable": 2, "error": 1, "timeout": 1}
    assert doc["usage"] == {"prompt_tokens": 500, "completion_tokens": 100, "cost": 0.3, "answers_without_usage": 2}
    assert doc["requests_sent"] == 9 and doc["from_cache"] == 0
    a = doc["agreement"]
    assert (a["n_pairs"], a["ratings_used"], a["rated_not_scored"], a["ratings_unmatched"]) == (3, 4, 1, 1)
    assert a["kendall_tau_b"]["value"] == pytest.approx(1.0)
    assert a["weighted_kappa"]["value"] == pytest.approx(1.0)
    assert a["weighted_kappa"]["ci"]["seed"] == 3 and a["weighted_kappa"]["ci"]["n_resamples"] == 200
    assert doc["gating"]["allowed"] is False and doc["gating"]["min_pairs"] == 30
    assert [j["score"] for j in doc["judgements"] if j["status"] != "scored"] == [None] * 6
    assert doc["judge"]["model"] == MODEL and doc["judge"]["auth"] == {"type": "bearer", "env": "JUDGE_TOKEN"}

    text = (tmp_path / "out" / "judge.json").read_text() + (tmp_path / "out" / "judge.md").read_text() + out + err
    assert TOKEN not in text  # the 500's body echoed it: redacted
    assert "[REDACTED]" in next(j["detail"] for j in doc["judgements"] if j["status"] == "error")

    md = (tmp_path / "out" / "judge.md").read_text()
    html = markdown_html(md)
    assert "b" not in html.tags and "a" not in html.tags and "script" not in html.tags
    shown = "".join(html.text)
    assert "Accurate <b>bold</b> [link](http://evil.example) `x`" in shown  # shown as written, inert
    assert "<script>alert(1)</script>" in shown
    assert "**Not gating**" in md

    # with enough pairs for the user's threshold, the same judge may gate; the rerun costs nothing
    n = srv.sent()
    code, out, err = run_cli([*args, "--min-pairs", 3, "--min-kappa", 0.6])
    assert code == 0, err
    assert srv.sent() - n == 2  # only the failures are asked again
    assert "may gate: weighted kappa 1.000 is at least 0.6 on 3 pairs" in out
    assert json.loads((tmp_path / "out" / "judge.json").read_text())["from_cache"] == 7


def test_harness_grade_exit_codes(tmp_path, stand_in):
    srv = stand_in()
    folder, cap = _images(tmp_path, ["a red circle", "a fenced caption"])
    base = ["grade", "--images", folder, "--model", MODEL, "--out", tmp_path / "out"]

    code, _, err = run_cli([*base, "--captions", cap, "--judge", f"http://127.0.0.1:{_closed_port()}"])
    assert code == 69 and len(err.strip().splitlines()) == 1, err
    assert "the judge answered none of 2 captions (first: ConnectError" in err

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run_cli([*base, "--captions", bad, "--judge", srv.url])
    assert code == 65 and "malformed JSON" in err and len(err.strip().splitlines()) == 1

    code, _, err = run_cli([*base, "--captions", tmp_path / "none.json", "--judge", srv.url])
    assert code == 66 and "not found" in err

    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps([{"image_id": 1, "caption": "a red circle"}, {"image_id": 99, "caption": "x"}]))
    code, _, err = run_cli([*base, "--captions", extra, "--judge", srv.url])
    assert code == 66 and "no image for 1 of 2 captions (first: image_id 99)" in err

    for more in (["--retries", "2"], ["--judge", "ftp://x"], ["--timeout", "0"], ["--min-kappa", "2"]):
        judge = [] if "--judge" in more else ["--judge", srv.url]
        code, _, err = run_cli([*base, "--captions", cap, *judge, *more])
        assert code == 64, (more, err)
    assert srv.sent() == 0


def test_images_from_a_data_set_folder(tmp_path):
    from harness.datasets import generate_shapes, write_coco

    write_coco(generate_shapes(3, 1), tmp_path / "set")
    items = find_images({0: "a", "2": "b"}, tmp_path / "set")  # ids match as text
    assert [(i.image_id, i.path.name) for i in items] == [(0, "000000.png"), ("2", "000002.png")]
    assert items[1].read() == (tmp_path / "set" / "images" / "000002.png").read_bytes()
