"""The options that tell people a verdict, shared by ``gate`` and ``judge``: a Prometheus
Pushgateway to push the decision's gauges to and a Slack-compatible incoming webhook to post it to,
after every judgement (each look of an interval analysis too). What is sent:
``harness.report.notify``."""

from __future__ import annotations

import argparse

from harness.errors import UsageError

__all__ = ["add_notify_options", "notify_options"]


def add_notify_options(p: argparse.ArgumentParser) -> None:
    """``--pushgateway``, ``--push-group`` and ``--notify``."""
    p.add_argument(
        "--pushgateway",
        default=None,
        metavar="URL",
        help="after every judgement, push the verdict, score and each metric's classification as gauges to this "
        "Prometheus Pushgateway (job caption_harness); a failure is a warning",
    )
    p.add_argument(
        "--push-group",
        default=None,
        metavar="NAME",
        help="the pushes' grouping key instance (default: the run id): one name per canary makes each push "
        "replace the last",
    )
    p.add_argument(
        "--notify",
        default=None,
        metavar="URL",
        help="after every judgement, post the verdict to this Slack-compatible incoming webhook; a failure is a "
        "warning",
    )
    p.add_argument(
        "--notify-env",
        default=None,
        metavar="VAR",
        help="the same, the webhook's URL read from this environment variable (a webhook's URL holds its token: "
        "kept off the command line that ps shows)",
    )


def notify_options(args: argparse.Namespace):
    """The ``Notify`` the options ask for, or None; a bad value is a ``UsageError`` (exit 64)."""
    import os

    from harness.cli.checks import http_url
    from harness.report.notify import Notify

    http_url("pushgateway", args.pushgateway)
    if args.notify_env is not None:
        if args.notify is not None:
            raise UsageError("--notify and --notify-env go one at a time")
        args.notify = os.environ.get(args.notify_env) or None
        if args.notify is None:
            raise UsageError(f"--notify-env {args.notify_env}: the variable is not set or empty")
    http_url("notify", args.notify, secret=True)  # a webhook's URL holds its token
    if args.push_group is not None:
        if args.pushgateway is None:
            raise UsageError("--push-group goes with --pushgateway")
        if not args.push_group.strip():
            raise UsageError("--push-group must not be blank")
    how = Notify(args.pushgateway, args.notify, args.push_group)
    return how if how else None
