"""Hostile inputs, generated: data-set paths, YAML, numbers, times, images, JSON depth and HTTP
framing. Whatever a command is given, it ends with a documented code (never 70, never 1), at most
one line on stderr and no traceback, writes nothing outside its --out and nothing half-written in
it; whatever a request carries, the reference server answers it below 500 and keeps serving.

Seeded: the `ci` profile (tests/conftest.py) runs each family's share of about a minute of
examples; `--hypothesis-profile=long` runs twenty times as many (and `--hypothesis-seed=N` another
sequence)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import struct
import zlib
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_run import run_cli
from harness.datasets import generate_shapes, write_coco
from harness.errors import EXIT_CODES, EXIT_SOFTWARE

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "examples" / "slo.yaml").read_text(encoding="utf-8")
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
SECRET = "the-secret-never-leaves"


def examples(share: int) -> int:
    """This family's number of examples: ``share`` under the `ci` profile (100 examples), scaled
    with the loaded profile's ``max_examples``."""
    return max(1, share * settings.default.max_examples // 100)


def fuzz(share: int):
    return settings(
        max_examples=examples(share),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@contextlib.contextmanager
def contained(work: Path, out: Path, crash_dir: Path):
    """Assert that what runs inside writes nothing in ``work`` but under ``out``, and no crash file."""
    before, crashes = _tree(work), set(crash_dir.iterdir())
    yield
    after = {p for p in _tree(work) - before if not p.startswith(out.name)}
    assert not after, f"written outside --out: {sorted(after)}"
    new = set(crash_dir.iterdir()) - crashes
    assert not new, next(iter(new)).read_text()[-1500:]


def check_ending(argv: list[str], code: int, err: str, out: Path, allowed=frozenset({0, 64, 65, 66})) -> None:
    assert code in EXIT_CODES and code not in (1, EXIT_SOFTWARE), (argv, code, err)
    assert code in allowed, (argv, code, err)
    assert "Traceback" not in err, err
    if code != 0:
        assert len(err.strip().splitlines()) == 1, (argv, err)
        # Nothing half-written: no temporary file is left, and what is there reads back.
        for p in out.rglob("*") if out.is_dir() else ():
            assert not p.name.endswith((".tmp", ".part", ".partial")), p
            if p.suffix == ".json":
                json.loads(p.read_text(encoding="utf-8"))


def _fresh(tmp_path: Path, name: str) -> Path:
    """A new empty folder per example (Hypothesis reuses the test's tmp_path)."""
    n = 0
    while (tmp_path / f"{name}{n}").exists():
        n += 1
    folder = tmp_path / f"{name}{n}"
    folder.mkdir()
    return folder


# ------------------------------------------------------------------------------------------ paths

HOSTILE_NAMES = {
    "absolute": lambda d, secret: str(secret),
    "dotdot": lambda d, secret: "../../" + secret.name,
    "deep-dotdot": lambda d, secret: "a/b/../../../../" + secret.name,
    "symlink-out": lambda d, secret: (d / "images" / "l.png").symlink_to(secret) or "l.png",
    "symlink-dir-out": lambda d, secret: (d / "images" / "ld").symlink_to(secret.parent) or f"ld/{secret.name}",
    "device": lambda d, secret: "/dev/zero",
    "fifo": lambda d, secret: os.mkfifo(d / "images" / "p.png") or "p.png",
    "folder": lambda d, secret: (d / "images" / "sub").mkdir() or "sub",
    "empty": lambda d, secret: "",
    "dot": lambda d, secret: ".",
    "oversize": lambda d, secret: _sparse(d / "images" / "big.png") or "big.png",
    "nul": lambda d, secret: "a\x00b.png",
    "too-long": lambda d, secret: "x" * 300 + ".png",
}
HOSTILE_IDS = [{"a": 1}, [1, 2], None, True, 1.5, "", 10**40, -1]


def _sparse(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(21 * 1024 * 1024)


@fuzz(40)
@given(
    name=st.sampled_from(sorted(HOSTILE_NAMES)),
    entry=st.integers(0, 2),
    bad_id=st.none() | st.sampled_from(range(len(HOSTILE_IDS))),
)
def test_fuzzed_data_set_paths_are_refused_before_anything_is_read_or_sent(tmp_path, crash_dir, name, entry, bad_id):
    work = _fresh(tmp_path, "w")
    secret = work / "secret.txt"
    secret.write_text(SECRET)
    coco = work / "set"
    write_coco(generate_shapes(3, seed=entry), coco)
    doc = json.loads((coco / "captions.json").read_text())
    doc["images"][entry]["file_name"] = HOSTILE_NAMES[name](coco, secret)
    if bad_id is not None:
        doc["images"][2 - entry]["id"] = HOSTILE_IDS[bad_id]
    (coco / "captions.json").write_text(json.dumps(doc))
    out = work / "out"
    argv = ["evaluate", "--target", CLOSED, "--dataset", f"coco:{coco}", "--out", str(out)]
    with contained(work, out, crash_dir):
        code, _, err = run_cli(argv)
    check_ending(argv, code, err, out, allowed={65, 66})
    assert "captions.json" in err, err


# ----------------------------------------------------------------------------------- YAML, numbers

NUMBERS = st.sampled_from(
    ["9" * 5000, "-" + "9" * 5000, "1e400", "-1e400", ".nan", ".inf", "-.inf", "0x1F", "0o17", "1_000", "1e-400"]
    + ["99999999999999999999d", "-1", "0", "1.0000000000000002", "~", "''", "[]", "{}", "!!binary aGk=", "yes"]
)


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + f"\nslos: *a{levels - 1}\n"


@st.composite
def hostile_specs(draw) -> str:
    kind = draw(st.sampled_from(["number", "bomb", "deep", "duplicate", "bytes", "labels-bomb", "structure"]))
    if kind == "number":
        field = draw(st.sampled_from(["objective: 0.999", "period: 30d", "threshold: 0.5", "traffic_rps: 20"]))
        return SPEC.replace(field, field.split(":")[0] + ": " + draw(NUMBERS), 1)
    if kind == "bomb":
        return _bomb(draw(st.integers(3, 9)))
    if kind == "labels-bomb":
        return _bomb(draw(st.integers(3, 9))).replace("slos: ", "labels: ") + SPEC.split("slos:", 1)[1].join(
            ["slos:", ""]
        )
    if kind == "deep":
        depth = draw(st.integers(50, 20_000))
        return "slos: " + "[" * depth + "]" * depth + "\n"
    if kind == "duplicate":
        return SPEC.replace("objective: 0.999", "objective: 0.999\n    objective: 0.1", 1)
    if kind == "bytes":
        return draw(st.text(max_size=200))
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
        max_leaves=20,
    )
    import yaml

    return yaml.safe_dump({"version": 1, "service": "s", "slos": [draw(values)]})


@fuzz(90)
@given(text=hostile_specs(), command=st.sampled_from(["slo", "rules"]))
def test_fuzzed_specs_end_with_a_documented_code_in_one_line(tmp_path, crash_dir, text, command):
    work = _fresh(tmp_path, "w")
    spec = work / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    records = work / "records.jsonl"
    records.write_text(_record_lines([(1_700_000_000.0 + i, 0.1, 200) for i in range(5)]))
    out = work / "out"
    argv = ["slo", "--spec", str(spec), "--records", str(records), "--out", str(out)]
    if command == "rules":
        argv = ["rules", "--spec", str(spec), "--out", str(out / "rules.yml")]
    with contained(work, out, crash_dir):
        code, _, err = run_cli(argv)
    check_ending(argv, code, err, out)


@st.composite
def hostile_mappings(draw) -> str:
    base = "columns:\n  t_start: ts\n  latency_s: lat\n  status: code\n"
    kind = draw(st.sampled_from(["bomb", "deep", "duplicate", "number", "bytes"]))
    if kind == "bomb":
        return _bomb(draw(st.integers(3, 9))).replace("slos:", "columns:")
    if kind == "deep":
        depth = draw(st.integers(50, 20_000))
        return "columns: " + "{a: " * depth + "b" + "}" * depth + "\n"
    if kind == "duplicate":
        return base + "  status: other\n"
    if kind == "number":
        return base + "constants:\n  target: " + draw(NUMBERS) + "\n"
    return draw(st.text(max_size=200))


@fuzz(50)
@given(text=hostile_mappings())
def test_fuzzed_import_mappings_end_with_a_documented_code_in_one_line(tmp_path, crash_dir, text):
    work = _fresh(tmp_path, "w")
    mapping = work / "mapping.yaml"
    mapping.write_text(text, encoding="utf-8")
    log = work / "log.jsonl"
    log.write_text("".join(json.dumps({"ts": 1_700_000_000 + i, "lat": 0.1, "code": 200}) + "\n" for i in range(3)))
    out = work / "out"
    argv = ["records", "import", str(log), "--mapping", str(mapping), "--out", str(out)]
    with contained(work, out, crash_dir):
        code, _, err = run_cli(argv)
    check_ending(argv, code, err, out)


# ------------------------------------------------------------------------------------------- times


def _record_lines(rows) -> str:
    lines = []
    for i, (t, latency, status) in enumerate(rows):
        rec = {
            "run_id": "r",
            "target": "t",
            "scenario": "s",
            "request_id": f"q{i}",
            "image_id": str(i),
            "t_start": t,
            "latency_s": latency,
            "status": status,
            "outcome": "ok" if status == 200 else "http_error",
        }
        lines.append(json.dumps(rec, allow_nan=True))
    return "\n".join(lines) + "\n"


TIMES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e400, -1.0, 0.0, 1_700_000_000.0, 1_700_000_000.0 + 365 * 86400, 253402300800.0, 1e18]),
)
TIME_TEXT = st.sampled_from(
    ["nan", "inf", "-inf", "1e400", "-1", "0", "1700000000", "2023-11-14T22:13:20Z", "9999-12-31T23:59:59Z"]
    + ["10000-01-01", "yesterday", "", "1h", "-1h", "NaN", "1e18", "2023-02-30"]
)


@fuzz(80)
@given(
    rows=st.lists(
        st.tuples(TIMES, st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([200, 500, 0])),
        min_size=1,
        max_size=6,
    ),
    since=st.none() | TIME_TEXT,
    until=st.none() | TIME_TEXT,
)
def test_fuzzed_times_in_records_and_options_end_with_a_documented_code(tmp_path, crash_dir, rows, since, until):
    work = _fresh(tmp_path, "w")
    spec = work / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    records = work / "records.jsonl"
    records.write_text(_record_lines([(1_700_000_000.0 + i, 0.1, 500) for i in range(20)] + rows))
    out = work / "out"
    argv = ["slo", "--spec", str(spec), "--records", str(records), "--out", str(out)]
    argv += ["--start", since] if since is not None else []
    argv += ["--end", until] if until is not None else []
    with contained(work, out, crash_dir):
        code, _, err = run_cli(argv)
    check_ending(argv, code, err, out)
    bad = any(not (0 <= t < 253_402_300_800) or not (latency >= 0) for t, latency, _ in rows)
    if code == 0 and since is None and until is None:  # (records outside a range given are not read)
        assert not bad, (rows, err)  # a negative, NaN or impossible value is bad data, never a result


# ------------------------------------------------------------------------------ the server's inputs


def _png(width: int, height: int, body: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = body or zlib.compress(b"\x00" + b"\x80" * (3 * min(width, 64)))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


def _good_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


IMAGES = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda n: _good_png()[:n], st.integers(0, 120)),
    st.builds(_png, st.sampled_from([0, 1, 65535, 2**31 - 1]), st.sampled_from([0, 1, 65535, 2**31 - 1])),
    st.builds(lambda junk: _good_png() + junk, st.binary(max_size=64)),
    st.builds(lambda junk: b"\xff\xd8\xff\xe1" + junk, st.binary(max_size=256)),  # JPEG with a broken EXIF
)


def _alive(url: str) -> None:
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


@fuzz(40)
@given(
    image=IMAGES, content_type=st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", "text/plain"])
)
def test_fuzzed_images_are_answered_below_500(reference_server, image, content_type):
    r = httpx.post(
        f"{reference_server.url}/v1/caption", content=image, headers={"content-type": content_type}, timeout=30
    )
    assert r.status_code < 500, (r.status_code, r.text[:200])
    if r.status_code >= 400:
        assert "error" in r.json()


def _nested(depth: int, kind: str) -> str:
    opener, closer = ("[", "]") if kind == "list" else ('{"a":', "}")
    return opener * depth + "1" + closer * depth


JSON_ROUTES = ["/v1/chat/completions", "/v2/models/tiny/infer", "/v1/caption:async", "/admin/faults"]


@fuzz(30)
@given(
    route=st.sampled_from(JSON_ROUTES),
    depth=st.integers(1, 200_000),
    kind=st.sampled_from(["list", "object"]),
    wrap=st.booleans(),
)
def test_fuzzed_json_depth_is_the_clients_error(reference_server, route, depth, kind, wrap):
    body = _nested(depth, kind)
    if wrap:
        body = '{"messages": ' + body + "}"
    headers = {"content-type": "application/json", "authorization": "Bearer test-admin-token"}
    r = httpx.post(f"{reference_server.url}{route}", content=body, headers=headers, timeout=30)
    assert r.status_code < 500, (route, depth, r.status_code, r.text[:200])


REQUEST_LINES = st.sampled_from(
    ["GET /healthz HTTP/1.1", "GET / HTTP/9.9", "BREW /healthz HTTP/1.1", "GET  HTTP/1.1", "GET /\x00 HTTP/1.1"]
    + ["POST /v1/caption HTTP/1.1", "GET /" + "a" * 70_000 + " HTTP/1.1", "\x16\x03\x01\x02\x00", ""]
)
HEADERS = st.lists(
    st.sampled_from(
        [
            "Host: 127.0.0.1",
            "Content-Length: -1",
            "Content-Length: 99999999999999999999",
            "Content-Length: 5",
            "Content-Length: 1, 2",
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked",
            "X-Big: " + "b" * 70_000,
            "Bad Header: x",
            "X-Ctl: a\x01b",
            ":path: /",
            "Content-Type: image/png",
            "Expect: 100-continue",
            "Connection: close",
        ]
    ),
    max_size=5,
)


@fuzz(40)
@given(line=REQUEST_LINES, headers=HEADERS, body=st.binary(max_size=64), chunked_junk=st.booleans())
def test_fuzzed_http_framing_never_gets_a_5xx_and_the_server_keeps_serving(
    reference_server, line, headers, body, chunked_junk
):
    head = "\r\n".join([line, *headers]) + "\r\n\r\n"
    payload = head.encode("latin-1", "replace") + (b"zz\r\n" + body if chunked_junk else body)
    with socket.create_connection(("127.0.0.1", reference_server.port), timeout=10) as s:
        s.sendall(payload)
        with contextlib.suppress(ConnectionResetError):
            s.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionResetError, socket.timeout):
            while len(answer) < 16 and (data := s.recv(4096)):
                answer += data
    if answer.startswith(b"HTTP/1."):
        status = int(answer.split(b" ", 2)[1])
        assert status < 500, (payload[:200], answer[:200])
    _alive(reference_server.url)
