"""The options that say how to speak to a target, declared once for every parser that takes them
(``harness evaluate``, ``load`` and ``gate``, and the Locust processes of a load run): a built-in
protocol or an adapter file, the model name, and credentials named by an environment variable (the
value itself is never on the command line, in a record or in a report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["add_protocol_options", "protocol_choice"]


def add_protocol_options(p: Any, prefix: str = "", adapter: bool = True, env_var: bool = False) -> None:
    """``--[PREFIX-]protocol``, ``--[PREFIX-]adapter``, ``--[PREFIX-]model``, ``--[PREFIX-]auth-env``
    (and, without a prefix, ``--auth-header``) on ``p``, an argparse parser or group. ``env_var``:
    each also read from ``HARNESS_<NAME>`` (Locust's parser, ``harness.load.settings``)."""
    from harness.protocols import PROTOCOLS

    dash = f"{prefix}-" if prefix else ""

    def who(name: str) -> str:
        return f" for the {prefix} target (overrides --{name})" if prefix else ""

    def add(flag: str, **kw: Any) -> None:
        if env_var:
            kw["env_var"] = "HARNESS_" + flag.lstrip("-").replace("-", "_").upper()
        p.add_argument(flag, **kw)

    add(
        f"--{dash}protocol",
        choices=list(PROTOCOLS),
        default=None,
        help=f"protocol the target speaks{who('protocol')}: {', '.join(PROTOCOLS)} (default: v1)",
    )
    if adapter:
        add(
            f"--{dash}adapter",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"adapter file (JSON/YAML): a template, or protocol: NAME with its options{who('adapter')}",
        )
    add(
        f"--{dash}model",
        default=None,
        metavar="NAME",
        help=f"model name the protocol asks for (openai-chat, kserve-v2, torchserve, hf-inference){who('model')}",
    )
    add(
        f"--{dash}auth-env",
        default=None,
        metavar="VAR",
        help=f"environment variable holding the target's token, sent as a bearer token{who('auth-env')}",
    )
    if not prefix:
        add(
            "--auth-header",
            default=None,
            metavar="HEADER",
            help="send the --auth-env token in this header (e.g. X-API-Key) instead of as a bearer token",
        )


def protocol_choice(options: Any, prefix: str = ""):
    """The ``ProtocolChoice`` that ``options`` (parsed options, or a load run's settings) make,
    per-target options (``PREFIX_protocol`` ...) first."""
    from harness.protocols import ProtocolChoice

    def pick(name: str):
        own = getattr(options, f"{prefix}_{name}", None) if prefix else None
        return own if own is not None else getattr(options, name, None)

    adapter = pick("adapter")
    return ProtocolChoice(
        protocol=pick("protocol"),
        adapter=str(adapter) if adapter is not None else None,
        model=pick("model"),
        auth_env=pick("auth_env"),
        auth_header=getattr(options, "auth_header", None),
    )
