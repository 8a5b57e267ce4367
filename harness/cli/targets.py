"""The options that say how to speak to a target, shared by ``evaluate``, ``load`` and ``gate``:
a built-in protocol or an adapter file, the model name, and credentials named by an environment
variable (the value itself is never on the command line, in a record or in a report)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_protocol_options", "protocol_choice"]


def add_protocol_options(p: argparse.ArgumentParser, prefix: str = "", adapter: bool = True) -> None:
    """``--[PREFIX-]protocol``, ``--[PREFIX-]adapter``, ``--[PREFIX-]model``, ``--[PREFIX-]auth-env``
    (and, without a prefix, ``--auth-header``)."""
    from harness.protocols import PROTOCOLS

    dash = f"{prefix}-" if prefix else ""

    def who(name: str) -> str:
        return f" for the {prefix} target (overrides --{name})" if prefix else ""

    p.add_argument(
        f"--{dash}protocol",
        choices=list(PROTOCOLS),
        default=None,
        help=f"protocol the target speaks{who('protocol')}: {', '.join(PROTOCOLS)} (default: v1)",
    )
    if adapter:
        p.add_argument(
            f"--{dash}adapter",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"adapter file (JSON/YAML): a template, or protocol: NAME with its options{who('adapter')}",
        )
    p.add_argument(
        f"--{dash}model",
        default=None,
        metavar="NAME",
        help=f"model name the protocol asks for (openai-chat, kserve-v2, torchserve, hf-inference){who('model')}",
    )
    p.add_argument(
        f"--{dash}auth-env",
        default=None,
        metavar="VAR",
        help=f"environment variable holding the target's token, sent as a bearer token{who('auth-env')}",
    )
    if not prefix:
        p.add_argument(
            "--auth-header",
            default=None,
            metavar="HEADER",
            help="send the --auth-env token in this header (e.g. X-API-Key) instead of as a bearer token",
        )


def protocol_choice(args: argparse.Namespace, prefix: str = ""):
    """The ``ProtocolChoice`` the options make, per-target options first."""
    from harness.protocols import ProtocolChoice

    def pick(name: str):
        own = getattr(args, f"{prefix}_{name}", None) if prefix else None
        return own if own is not None else getattr(args, name, None)

    adapter = pick("adapter")
    return ProtocolChoice(
        protocol=pick("protocol"),
        adapter=str(adapter) if adapter is not None else None,
        model=pick("model"),
        auth_env=pick("auth_env"),
        auth_header=getattr(args, "auth_header", None),
    )
