"""Choosing a captioner from a model spec: ``tiny``, ``tiny-undertrained``, ``tiny:int8``, a
``.safetensors`` checkpoint path, ``hf:PATH_OR_ID``, or ``null`` (a model that answers at once:
the server's own cost, measured without a model)."""

from __future__ import annotations

from reference_model.caption import Captioner

__all__ = ["load_captioner"]


def load_captioner(spec: str = "tiny", device: str | None = None) -> Captioner:
    if spec == "null":
        from reference_model.null import NullCaptioner

        return NullCaptioner()
    if spec.startswith("hf:"):
        from reference_model.hf import HFCaptioner

        return HFCaptioner(spec[3:], device=device)
    from reference_model.tiny import TinyCaptioner

    name, _, option = spec.partition(":")
    if option not in ("", "int8"):
        raise ValueError(f"unknown option {option!r} in model spec {spec!r} (known: int8)")
    return TinyCaptioner(name, device=device, quantize=option == "int8")
