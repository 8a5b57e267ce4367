"""What recording costs the load generator: requests per second of a plain Locust FastHttpUser
and of the harness's recording user (scenarios/steady.py: adapter, classification, one record
per request written to records.jsonl) against the same fixed-answer loopback endpoint, and their
ratio (goal: recording costs at most 5%, a ratio of at least 0.95).

Both runs are measured the same way, over the same steady window: from 2 s after the Locust
process has set up its stats (its users all started) to 1 s before the run's end, the endpoint
counts the answers it sends and /proc/PID/stat gives the CPU time (user + system) the Locust
process spent, so requests per second and CPU per request come from one window that holds no
start-up, spawning, stopping or record compaction. Locust's own whole-run figure (requests over
the time its stats ran, which the two runs start and stop differently) is printed beside it.

The endpoint is served from a thread of this process (which otherwise sleeps); each Locust run
is one process (one core); rounds alternate plain/recording and the median of each is reported.

    python benchmarks/load.py [--duration 10] [--users 8] [--rounds 3]

``--profile`` measures instead where the recording user's own microseconds go, in one process and
without a network: the user's request goes through Locust's HTTP session with a stand-in transport
that hands back the fixed answer at once, beside a plain FastHttpUser's through the same session;
the difference is what the recording user adds, and each step of it is timed alone (thread CPU
time, best of 7 passes).

    python benchmarks/load.py --profile [--requests 20000]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.load.calibration import FixedResponseServer  # noqa: E402


def _rps(csv_path: Path) -> tuple[float, int]:
    with open(csv_path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Name"] == "Aggregated"]
    return float(rows[0]["Requests/s"]), int(rows[0]["Request Count"])


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (``None`` without /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


WARMUP_S, TAIL_S = 2.0, 1.0


def _run(
    locustfile: Path, url: str, out: Path, duration: float, users: int, harness: bool, answered
) -> dict[str, float]:
    """One Locust run; its figures over the steady window and Locust's whole-run requests per second."""
    argv = [
        sys.executable,
        "-m",
        "harness.load.run",
        "-f",
        str(locustfile),
        "--host",
        url,
        "-u",
        str(users),
        "--csv",
        str(out / "locust"),
        "--loglevel",
        "ERROR",
    ]
    if harness:
        argv += ["--duration", f"{duration:g}", "--out", str(out)]
    else:
        argv += ["-t", f"{int(duration)}s"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
    window = None
    try:
        deadline = time.monotonic() + 60.0
        while not (out / "locust_stats.csv").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(WARMUP_S)
        n0, c0, t0 = answered(), _cpu_s(proc.pid), time.monotonic()
        time.sleep(duration - WARMUP_S - TAIL_S)
        n1, c1, t1 = answered(), _cpu_s(proc.pid), time.monotonic()
        if proc.poll() is None and c0 is not None and c1 is not None and n1 > n0:
            window = {"rps": (n1 - n0) / (t1 - t0), "us": (c1 - c0) / (n1 - n0) * 1e6, "cpu": (c1 - c0) / (t1 - t0)}
    finally:
        rc = proc.wait(duration + 120.0)
    if rc != 0:
        raise SystemExit(f"the Locust run ({locustfile.name}) exited with status {rc}")
    if window is None:
        raise SystemExit(f"the Locust run ({locustfile.name}) ended before its measuring window did (or no /proc)")
    rps, n = _rps(out / "locust_stats.csv")
    if harness:
        records = sum(1 for _ in open(out / "records.jsonl"))
        if records != n:
            raise SystemExit(f"records ({records}) and Locust's count ({n}) differ")
    return {**window, "locust_rps": rps, "requests": n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (at least 5)")
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="where the recording user's microseconds go, in process")
    p.add_argument("--requests", type=int, default=20000, help="--profile: requests per timed pass")
    p.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.profile_child:
        return _profile(args.requests)
    if args.profile:  # in a child process: importing Locust monkey-patches it with gevent
        return subprocess.call(
            [sys.executable, __file__, "--profile-child", "--requests", str(args.requests)], cwd=ROOT
        )
    if args.duration < 5.0:
        p.error("--duration must be at least 5 s (2 s of warm-up and 1 s of tail are left out)")

    server = FixedResponseServer()
    url = server.start()
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "recording": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for kind in ("plain", "recording"):
                    out = Path(tmp) / f"{kind}-{r}"
                    out.mkdir()
                    f = ROOT / ("benchmarks/plain_locustfile.py" if kind == "plain" else "scenarios/steady.py")
                    fig = _run(f, url, out, args.duration, args.users, kind == "recording", lambda: server.answered)
                    runs[kind].append(fig)
                    print(
                        f"round {r + 1} {kind:9} {fig['rps']:9.1f} req/s, {fig['us']:6.1f} us CPU/request, "
                        f"Locust busy {100 * fig['cpu']:.0f}% of a core (whole run per Locust: "
                        f"{fig['locust_rps']:.1f} req/s, {fig['requests']} requests)",
                        flush=True,
                    )
                    time.sleep(0.5)
    finally:
        server.stop()

    def med(kind: str, key: str) -> float:
        return statistics.median(f[key] for f in runs[kind])

    p_med, r_med = med("plain", "rps"), med("recording", "rps")
    ratio = r_med / p_med if p_med else float("nan")
    c_p, c_r = med("plain", "us"), med("recording", "us")
    l_p, l_r = med("plain", "locust_rps"), med("recording", "locust_rps")
    window = args.duration - WARMUP_S - TAIL_S
    print(f"\nsteady window of {window:g} s per run, counted by the endpoint (median of {args.rounds}):")
    print(f"plain FastHttpUser      {p_med:9.1f} req/s, {c_p:6.1f} us CPU/request")
    print(f"harness recording user  {r_med:9.1f} req/s, {c_r:6.1f} us CPU/request")
    print(f"ratio recording/plain   {ratio:9.3f}  (recording costs {100 * (1 - ratio):.1f}%; goal <= 5%)")
    print(f"CPU per request         recording adds {c_r - c_p:.1f} us ({100 * (c_r / c_p - 1):.1f}%)")
    print(
        f"whole run, Locust's own figure: plain {l_p:.1f}, recording {l_r:.1f} req/s, ratio "
        f"{l_r / l_p if l_p else float('nan'):.3f} (start-up and stopping differ between the two runs)"
    )
    print(
        f"setup: {args.users} users, {args.duration:g} s per run, one Locust process, endpoint in a thread of "
        f"the benchmark's process, {os.cpu_count()} cores"
    )
    return 0


FLUSH_EVERY = 1600
"""Records per flush in ``--profile``: what the flusher finds every 0.2 s at 8,000 requests a second."""


def _profile(n: int) -> int:
    """Where the recording user's microseconds go, each figure per request (see the module's doc)."""
    import locust  # noqa: F401 - Locust and gevent's monkey-patching first, as in a Locust process
    from locust import FastHttpUser
    from locust.argument_parser import get_parser
    from locust.env import Environment
    from locust.util.load_locustfile import load_locustfile

    from harness.client import result_from_response
    from harness.load.calibration import CONTRACT_V1_BODY

    class Answer:  # what Locust's session and the user read of a FastResponse
        status_code = 200
        content = CONTRACT_V1_BODY
        headers = {"content-type": "application/json", "content-length": str(len(CONTRACT_V1_BODY))}

        def raise_for_status(self) -> None:
            pass

    answer = Answer()

    def transport(method, url, payload=None, headers=None, **kw):  # FastHttpSession._send_request_safe_mode
        return answer

    scenario = ROOT / "scenarios" / "steady.py"
    with tempfile.TemporaryDirectory() as tmp:
        users, _ = load_locustfile(str(scenario))
        opts = get_parser(default_config_files=[]).parse_args(
            ["-f", str(scenario), "--host", "http://127.0.0.1:9", "--out", tmp, "--loglevel", "ERROR"]
        )
        env = Environment(
            user_classes=list(users.values()),
            events=locust.events,
            host=opts.host,
            parsed_options=opts,
            locustfile=scenario.name,
        )
        runner = env.create_local_runner()  # Locust's statistics listen to the request event
        env.events.init.fire(environment=env, runner=runner, web_ui=None)
        user_class = list(users.values())[0]
        user_class.host = opts.host
        user = user_class(env)
        user.client._send_request_safe_mode = transport

        class PlainUser(FastHttpUser):
            host = opts.host

        plain = PlainUser(env)
        plain.client._send_request_safe_mode = transport
        rec, adapter = user.recorder, user.recorder.adapter
        body = user.choose().body
        plain_headers = {"Content-Type": "image/png", "X-Request-Id": "plain"}
        result = result_from_response(adapter, rec.next_request_id(), time.time(), 0.002, 200, None, CONTRACT_V1_BODY)
        result_args = (adapter, result.request_id, result.t_start, result.latency_s, 200, None, CONTRACT_V1_BODY)
        adapter.request(body, "image/png", result.request_id)  # its trace id is then known, as after a request
        fresh = iter([f"profile-{i:07d}" for i in range(7 * n + FLUSH_EVERY)])  # ids never hashed before

        def per_request(step, flush=None) -> float:
            """Thread CPU seconds per call of ``step``, best of 7 passes of ``n`` calls."""
            best = float("inf")
            for _ in range(7):
                t0 = time.thread_time()
                for i in range(n):
                    step()
                    if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                        (flush or rec.drain)()
                (flush or rec.drain)()
                best = min(best, time.thread_time() - t0)
            return best / n * 1e6

        def write_only() -> float:
            """Thread CPU seconds per record of ``flush``, best of 7 passes of 5 flushes."""
            best = float("inf")
            for _ in range(7):
                spent = 0.0
                for _ in range(5):
                    for _ in range(FLUSH_EVERY):
                        rec.record(result, "1", len(body), 128, 128)
                    t0 = time.thread_time()
                    rec.flush()
                    spent += time.thread_time() - t0
                best = min(best, spent)
            return best / (5 * FLUSH_EVERY) * 1e6

        rows = [
            ("picking the payload, the request id", per_request(lambda: (user.choose(), rec.next_request_id()))),
            (
                "the request: headers, traceparent (SHA-256)",
                per_request(lambda: adapter.request(body, "image/png", next(fresh), False, None)),
            ),
            ("reading the answer: JSON, checks, the result", per_request(lambda: result_from_response(*result_args))),
            ("the record: its row, its JSON line", per_request(lambda: rec.record(result, "1", len(body), 128, 128))),
            ("writing records.jsonl, per record", write_only()),
        ]
        plain_us = per_request(lambda: plain.client.post("/v1/caption", data=body, headers=plain_headers))
        user_us = per_request(user.caption, rec.flush)
        rec.writer.close()
    added = user_us - plain_us
    rest = added - sum(us for _, us in rows)
    print(f"per request, in process, stand-in transport ({n} requests a pass, best of 7, thread CPU time):")
    print(f"  Locust's HTTP session, plain FastHttpUser       {plain_us:6.2f} us")
    print(f"  the same session, recording user               {user_us:6.2f} us")
    print(f"  what the recording user adds                   {added:6.2f} us, of which:")
    for label, us in rows:
        print(f"    {label:45}{us:6.2f} us")
    print(f"    {'the user and its classifier, the rest':45}{rest:6.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
