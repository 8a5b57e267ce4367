"""The reference captioner and server that ship with the harness (torch lives here only)."""

from reference_model.caption import Caption, Captioner

__all__ = ["Caption", "Captioner", "load_captioner"]


def load_captioner(spec: str = "tiny", device: str | None = None) -> Captioner:
    """Load a captioner by spec (see ``reference_model.backends``)."""
    from reference_model.backends import load_captioner as _load

    return _load(spec, device)
