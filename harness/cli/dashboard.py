"""``harness dashboard``: the Streamlit dashboard over the report folders (``streamlit run`` on the
app that ships with the harness)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from harness.errors import InputMissingError, UsageError, require_extra

__all__ = ["register", "run", "streamlit_argv"]


def register(sub) -> None:
    p = sub.add_parser(
        "dashboard",
        help="open the Streamlit dashboard over the report folders",
        description="Start the Streamlit dashboard over the run folders under --reports "
        "(each with its decision.json), with the SLO review of --slo-spec from --prometheus or records; "
        "stop it with Ctrl-C.",
    )
    p.add_argument(
        "--reports",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of run folders (default: $HARNESS_REPORTS, else ./reports)",
    )
    p.add_argument(
        "--prometheus",
        metavar="URL",
        default=None,
        help="Prometheus the SLO review reads by default, e.g. http://127.0.0.1:9090 (sets $HARNESS_PROMETHEUS)",
    )
    p.add_argument(
        "--slo-spec",
        type=Path,
        default=None,
        metavar="PATH",
        help="SLO spec the SLO review opens by default; may lie outside --reports (sets $HARNESS_SLO_SPEC; "
        "default: slo.yaml in the report folder)",
    )
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default: 8501)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--open-browser", action="store_true", help="open a browser tab (default: headless)")
    p.set_defaults(func=run)


def streamlit_argv(app: Path, port: int, address: str, open_browser: bool = False) -> list[str]:
    """The command line that serves ``app``: Streamlit run by this Python, so from this installation."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "false" if open_browser else "true",
        "--browser.gatherUsageStats",
        "false",
    ]


def run(args: argparse.Namespace) -> int:
    from harness.resources import dashboard_app_path

    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be 1..65535 (got {args.port})")
    env = dict(os.environ)
    if args.reports is not None:
        if not args.reports.is_dir():
            raise InputMissingError(f"--reports {args.reports}: no such folder (run folders go there)")
        env["HARNESS_REPORTS"] = str(args.reports.resolve())
    if args.prometheus is not None:
        if not re.match(r"^https?://[^/\s]+", args.prometheus):
            raise UsageError(f"--prometheus {args.prometheus!r}: give a URL such as http://127.0.0.1:9090")
        env["HARNESS_PROMETHEUS"] = args.prometheus
    if args.slo_spec is not None:
        if not args.slo_spec.is_file():
            raise InputMissingError(f"--slo-spec {args.slo_spec}: SLO spec not found")
        env["HARNESS_SLO_SPEC"] = str(args.slo_spec.resolve())
    require_extra("streamlit", "the dashboard")
    app = dashboard_app_path()
    if not app.is_file():
        raise InputMissingError(f"the dashboard app is missing: {app}; reinstall caption-slo-harness")
    argv = streamlit_argv(app, args.port, args.address, args.open_browser)
    print(f"dashboard over {env.get('HARNESS_REPORTS', 'reports')} at http://{args.address}:{args.port}", flush=True)
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # the process is Streamlit's from here on
