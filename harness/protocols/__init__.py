"""The protocols the harness speaks, by name: ``v1`` (its own contract), ``openai-chat``,
``kserve-v2``, ``torchserve`` and ``hf-inference``, plus ``template`` adapters read from a file.

A protocol is an ``Adapter``: ``request`` builds the HTTP request for one image, ``parse`` reads a
2xx answer into a ``ParsedCaption``. ``ProtocolChoice`` is what a command line or a load run's
options choose (a name, an adapter file, a model name, credentials from the environment) and
``build`` turns it into the adapter every request goes through."""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.errors import DataError, InputMissingError, UsageError
from harness.protocols.base import Adapter, Auth, HttpRequest, InvalidResponse, ParsedCaption
from harness.protocols.hf_inference import HFInference
from harness.protocols.kserve_v2 import KServeV2
from harness.protocols.openai_chat import OpenAIChat
from harness.protocols.template import TemplateAdapter
from harness.protocols.torchserve import TorchServe
from harness.protocols.v1 import ContractV1Adapter

__all__ = [
    "PROTOCOLS",
    "Adapter",
    "Auth",
    "HttpRequest",
    "InvalidResponse",
    "ParsedCaption",
    "ProtocolChoice",
    "make_protocol",
    "load_adapter",
    "read_adapter_file",
]

PROTOCOLS: dict[str, type[Adapter]] = {
    cls.name: cls for cls in (ContractV1Adapter, OpenAIChat, KServeV2, TorchServe, HFInference)
}

_TEMPLATE_KEYS = {"request", "caption", "confidence", "model_version", "api_key_header", "auth"}
_REQUEST_KEYS = {"method", "path", "headers", "body", "request_id_header"}


def _parameters(cls: type[Adapter]) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def make_protocol(name: str, options: Mapping[str, Any] | None = None) -> Adapter:
    """The built-in protocol ``name`` with ``options`` (its constructor's keyword arguments)."""
    cls = PROTOCOLS.get(name)
    if cls is None:
        raise UsageError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)} (or an adapter file)")
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(_parameters(cls)))
    if unknown:
        raise UsageError(
            f"protocol {name} has no option {', '.join(unknown)} (its options: {', '.join(_parameters(cls))})"
        )
    try:
        return cls(**opts)
    except TypeError as exc:
        raise UsageError(f"protocol {name}: {exc}") from None


def read_adapter_file(path: str | Path) -> dict[str, Any]:
    """An adapter file (JSON or YAML) as a mapping; ``InputMissingError``/``DataError`` naming it."""
    p = Path(path)
    if not p.exists():
        raise InputMissingError(f"{p}: adapter file not found")
    text = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix in (".yaml", ".yml"):
        from harness.safe_yaml import load_yaml

        doc = load_yaml(text, str(p))
    else:
        try:
            doc = json.loads(text)
        except Exception as exc:  # a ValueError, or a RecursionError for JSON nested too deeply
            raise DataError(f"{p}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{p}: an adapter file must hold a mapping (protocol: NAME, or caption: JSON path)")
    return doc


def _auth(spec: Any) -> Auth | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise UsageError(
            "auth must be a mapping: {type: bearer, env: NAME} or {type: header, header: X-API-Key, env: NAME}"
        )
    unknown = sorted(set(spec) - {"type", "env", "header"})
    if unknown:
        raise UsageError(f"unknown auth field(s): {', '.join(unknown)} (known: type, env, header)")
    return Auth(
        env=spec.get("env") or "", type=spec.get("type", "bearer"), header=spec.get("header") or "Authorization"
    )


def _template(doc: dict[str, Any]) -> TemplateAdapter:
    if not isinstance(doc.get("caption"), str):
        raise UsageError("an adapter needs 'protocol: NAME' or a 'caption' JSON path (e.g. \"$.caption\")")
    unknown = sorted(set(doc) - _TEMPLATE_KEYS)
    if unknown:
        raise UsageError(f"unknown adapter field(s): {', '.join(unknown)}")
    req = doc.get("request") or {}
    if not isinstance(req, dict):
        raise UsageError("'request' must be an object (method, path, headers, body)")
    unknown = sorted(set(req) - _REQUEST_KEYS)
    if unknown:
        raise UsageError(f"unknown request field(s): {', '.join(unknown)}")
    return TemplateAdapter(
        doc["caption"],
        doc.get("confidence"),
        method=req.get("method", "POST"),
        path=req.get("path", "/"),
        headers=req.get("headers") or {},
        body=req.get("body", "raw"),
        model_version_path=doc.get("model_version"),
        request_id_header=req.get("request_id_header", "X-Request-Id"),
        api_key_header=doc.get("api_key_header", "Authorization"),
    )


class _StandIn(dict):
    """An environment in which every variable is set: to describe a choice without its secrets."""

    def get(self, key: str, default: Any = None) -> str:
        return "-"


@dataclass(frozen=True)
class ProtocolChoice:
    """How to speak to one target. ``protocol``: a built-in name; ``adapter``: an adapter file
    (a template, or ``protocol: NAME`` with that protocol's options); ``model``: the model name
    the protocol asks for (overrides the file's); ``auth_env``: the environment variable holding
    the credentials, sent as a bearer token or, with ``auth_header``, in that header (overrides
    the file's ``auth``). Nothing here is secret: credentials are read when ``build`` runs."""

    protocol: str | None = None
    adapter: str | None = None
    model: str | None = None
    auth_env: str | None = None
    auth_header: str | None = None

    def build(self, environ: Mapping[str, str] | None = None) -> Adapter:
        """The adapter; ``UsageError`` (or the file's ``DataError``) naming what is wrong."""
        doc: dict[str, Any] = {}
        where = ""
        if self.adapter:
            doc = dict(read_adapter_file(self.adapter))
            where = f"{self.adapter}: "
        named = doc.pop("protocol", None)
        if self.adapter and self.protocol and named != self.protocol:  # the command line contradicts the file
            said = f"says protocol: {named}" if named is not None else "is a template adapter"
            raise UsageError(f"--protocol {self.protocol} but {self.adapter} {said}: use one or the other")
        try:
            auth = _auth(doc.pop("auth", None))
            if self.auth_env:
                auth = Auth(
                    self.auth_env, "header" if self.auth_header else "bearer", self.auth_header or "Authorization"
                )
            if self.adapter and named is None:
                adapter: Adapter = _template(doc)
            else:
                name = self.protocol or named or "v1"
                if not isinstance(name, str):
                    raise UsageError(f"protocol must be a name (got {name!r})")
                if self.model and "model" in _parameters(PROTOCOLS.get(name, ContractV1Adapter)):
                    doc["model"] = self.model
                adapter = make_protocol(name, doc)
        except UsageError as exc:
            if self.adapter:
                raise DataError(f"{where}{exc}") from None
            raise
        return adapter.use_auth(auth, environ)  # an unset variable is a usage error, not the file's

    def describe(self) -> dict[str, Any]:
        """The protocol and its settings as reports show them (reads no credentials)."""
        return self.build(environ=_StandIn()).describe()

    def options(self) -> dict[str, str | None]:
        """As the harness's Locust options (``--protocol``, ``--adapter``, ``--model``, ``--auth-env``...)."""
        return asdict(self)


def load_adapter(path: str | Path) -> Adapter:
    """Read an adapter file: a template (``request``: method, path, headers, body; ``caption`` and
    optionally ``confidence`` and ``model_version`` JSON paths) or ``protocol: NAME`` with that
    protocol's options; either may hold ``auth: {type: bearer|header, env: NAME[, header: H]}``."""
    return ProtocolChoice(adapter=str(path)).build()
