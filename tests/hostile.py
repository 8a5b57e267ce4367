"""A hostile captioning service for the tests: a real HTTP server on a free loopback port that
speaks contract v1 and answers with captions, a model name, versions and error messages built to
break out of whatever shows them (HTML, markdown, tables, code spans, terminals), and a loopback
"tracker" that records every request a payload manages to make."""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

__all__ = ["Tracker", "Corpus", "hostile_corpus", "hostile_service", "tracker"]

BIG_CAPTION_BYTES = 100_000


@dataclass(frozen=True)
class Corpus:
    """What the service answers: captions (chosen per image), its model's name and version, and
    the error it answers with now and then."""

    captions: tuple[str, ...]
    name: str
    version: str
    error_code: str
    error_message: str


def hostile_corpus(t: str, tag: str) -> Corpus:
    """Payloads aimed at the tracker URL ``t``; each, if it ran, would set ``window.__pwned`` or
    fetch from ``t`` (``tag`` tells two services apart in the tracker's log)."""
    captions = (
        ("a red circle " * (BIG_CAPTION_BYTES // 13 + 1))[: BIG_CAPTION_BYTES - 120]
        + f"<img src={t}/{tag}/big.png onerror=\"window.__pwned='big'\">",
        f'<script>window.__pwned="script";fetch("{t}/{tag}/script")</script> a red circle',
        f"<img src={t}/{tag}/img.png onerror=\"window.__pwned='img'\"> a blue square",
        f'<svg onload="window.__pwned=\'svg\'"><image href="{t}/{tag}/svg.png"/></svg> a green triangle',
        f'"><iframe src="{t}/{tag}/iframe"></iframe><b onmouseover="window.__pwned=\'attr\'">x</b>',
        f"![tracking pixel]({t}/{tag}/track.png) a small red circle",
        f"[click me](javascript:window.__pwned='link') <{t}/{tag}/autolink> www.example.com {t}/{tag}/bare",
        "a `tick` and ``double`` and ``` fence ``` backticks `",
        f"| a | b |\n|---|---|\n| <b onclick=\"window.__pwned='cell'\">x</b> | ![c]({t}/{tag}/cell.png) |",
        f"$\\href{{{t}/{tag}/katex}}{{x}}$ :red[alert] :material/warning: **bold** _em_ ~~gone~~ # heading",
        f'<style>@import url("{t}/{tag}/import.css");body{{background:url("{t}/{tag}/bg.png")}}</style>',
        f'<link rel=stylesheet href="{t}/{tag}/link.css"><object data="{t}/{tag}/object"></object> a circle',
        f'mail me@evil.example <a href="{t}/{tag}/a">here</a> a blue circle',
        f"\x1b]8;;{t}/{tag}/osc\x07click\x1b]8;;\x07 \x1b[31mred\x1b[0m \u202eelcric a\u202c \x00 a circle",
    )
    return Corpus(
        captions=captions,
        name=f"<script>window.__pwned='name'</script>![n]({t}/{tag}/name.png)",
        version=f"v1`|{tag}|`` <img src={t}/{tag}/v onerror=__pwned=1>![v]({t}/{tag}/m)\x1b[2J",
        error_code="<b onmouseover=window.__pwned=1>boom</b>",
        error_message=f"![e]({t}/{tag}/error.png) <script>window.__pwned='error'</script>\n| injected | row |",
    )


class _Handler(BaseHTTPRequestHandler):
    corpus: Corpus
    salt: bytes
    error_every: int
    lock: threading.Lock
    count: list[int]

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path == "/v1/model":
            self._send(200, {"name": self.corpus.name, "version": self.corpus.version, "device": "cpu"})
        elif self.path in ("/healthz", "/readyz"):
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": {"code": "not_found", "message": self.path}})

    def do_POST(self):  # noqa: N802
        image = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.count[0] += 1
            n = self.count[0]
        if n % self.error_every == 0:  # now and then, whatever the image: a retry gets a caption
            self._send(500, {"error": {"code": self.corpus.error_code, "message": self.corpus.error_message}})
            return
        digest = hashlib.sha256(self.salt + image).digest()
        caption = self.corpus.captions[(n - 1) % len(self.corpus.captions)]
        doc = {
            "request_id": self.headers.get("X-Request-Id"),
            "caption": caption,
            "confidence": round(0.3 + 0.6 * digest[4] / 255, 4),
            "model_version": self.corpus.version,
            "server_latency_ms": 1.0,
            "safety": {"flagged": False, "reasons": []},
        }
        if "return_embedding=true" in self.path:
            doc["embedding"] = [b / 255 for b in digest[5:21]]
        self._send(200, doc)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def hostile_service(corpus: Corpus, salt: str = "", error_every: int = 9) -> Iterator[str]:
    """Serve ``corpus`` on a free loopback port; yields the base URL. Captions are answered in
    turn, so every one of them is seen; confidence and embedding are functions of the image's bytes
    and ``salt``; every ``error_every``-th request answers 500."""
    handler = type(
        "Hostile",
        (_Handler,),
        {"corpus": corpus, "salt": salt.encode(), "error_every": error_every, "lock": threading.Lock(), "count": [0]},
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class Tracker:
    """Every request that reached the tracker: (method, path)."""

    def __init__(self, url: str, hits: list[tuple[str, str]]):
        self.url, self.hits = url, hits


@contextmanager
def tracker() -> Iterator[Tracker]:
    """A loopback HTTP server that records and answers every request; a payload that loads or
    calls anything from it shows up in ``hits``."""
    hits: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _hit(self) -> None:
            hits.append((self.command, self.path))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_HEAD = do_OPTIONS = _hit  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield Tracker(f"http://127.0.0.1:{httpd.server_address[1]}", hits)
    finally:
        httpd.shutdown()
        httpd.server_close()
