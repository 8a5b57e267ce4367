"""The ``hf`` backend: any transformers image-to-text model from a local folder (or a hub id, where
the machine has it cached or may download). Confidence comes from the generation scores."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from reference_model.caption import Caption, Captioner
from reference_model.device import pick_device

__all__ = ["HFCaptioner"]


class HFCaptioner(Captioner):
    """VisionEncoderDecoder, BLIP, GIT and other ``AutoModelForImageTextToText``/Vision2Seq models."""

    def __init__(
        self, model_id: str, device: str | None = None, max_new_tokens: int = 30, local_only: bool | None = None
    ):
        import transformers
        from transformers import AutoProcessor

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()

        self.device = pick_device(device)
        local = Path(model_id).exists()
        if not local and model_id.startswith(("/", "./", "../", "~")):
            raise FileNotFoundError(f"model folder {model_id} not found")
        offline = local if local_only is None else local_only
        kw = {"local_files_only": offline}
        model = None
        errors = []
        for cls_name in ("AutoModelForVision2Seq", "AutoModelForImageTextToText", "AutoModelForCausalLM"):
            cls = getattr(transformers, cls_name, None)
            if cls is None:
                continue
            try:
                model = cls.from_pretrained(model_id, **kw)
                break
            except (ValueError, KeyError, OSError) as exc:
                errors.append(f"{cls_name}: {exc}")
        if model is None:
            raise ValueError(
                f"could not load {model_id!r} as an image-to-text model: {errors[-1] if errors else 'no loader'}"
            )
        try:
            self.processor = AutoProcessor.from_pretrained(model_id, **kw)
        except (ValueError, KeyError, OSError, TypeError):
            self.processor = None
        if self.processor is None or not hasattr(self.processor, "image_processor"):
            from transformers import AutoImageProcessor, AutoTokenizer

            self.image_processor = AutoImageProcessor.from_pretrained(model_id, **kw)
            self.tokenizer = AutoTokenizer.from_pretrained(model_id, **kw)
        else:
            self.image_processor = self.processor
            self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.model = model.to(self.device).eval()
        self.max_new_tokens = max_new_tokens
        self.input_side = _processor_side(self.image_processor)
        self.name = Path(model_id).name if local else model_id
        self.version = f"hf-{self.name}"

    def _pixels(self, images: Sequence[Image.Image]) -> dict:
        rgb = [i.convert("RGB") for i in images]
        inputs = self.image_processor(images=rgb, return_tensors="pt")
        return {k: v.to(self.device) for k, v in inputs.items()}

    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        if not images:
            return []
        inputs = self._pixels(images)
        gen = self.model.generate(
            **inputs,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            output_scores=True,
            return_dict_in_generate=True,
        )
        trans = self.model.compute_transition_scores(gen.sequences, gen.scores, normalize_logits=True)
        new = gen.sequences[:, -trans.shape[1] :]
        pad = getattr(self.model.generation_config, "pad_token_id", None)
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        emb = self._embedding(inputs)
        out = []
        for i, text in enumerate(texts):
            keep, kept_ids = [], []
            for tok, lp in zip(new[i].tolist(), trans[i].tolist()):
                if pad is not None and tok == pad and tok not in eos_ids:
                    break
                keep.append(lp)
                kept_ids.append(tok)
                if tok in eos_ids:
                    break
            conf = float(torch.tensor(keep).mean().exp()) if keep else 0.0
            n = len([t for t in new[i].tolist() if t not in eos_ids and t != pad])
            out.append(
                Caption(
                    text.strip(),
                    min(1.0, max(0.0, conf)),
                    n,
                    emb[i] if emb else [],
                    self._token_logprobs(kept_ids, keep, text.strip()),
                )
            )
        return out

    def _token_logprobs(self, ids: list[int], logps: list[float], text: str) -> tuple[tuple[str, float], ...]:
        """Each kept token's piece of ``text`` (decoding the prefix up to it, special tokens empty)
        with its log-probability; empty when the pieces do not join to ``text``."""
        pieces, prev = [], ""
        for k in range(len(ids)):
            cur = self.tokenizer.decode(ids[: k + 1], skip_special_tokens=True)
            if not cur.startswith(prev):
                return ()
            pieces.append(cur[len(prev) :])
            prev = cur
        lead = len(prev) - len(prev.lstrip())
        tail = len(prev.rstrip())
        if prev.strip() != text:
            return ()
        out, pos = [], 0
        for piece, lp in zip(pieces, logps):  # the caption is stripped: so are its first and last pieces
            start, end = max(pos, lead), min(pos + len(piece), tail)
            out.append((prev[start:end] if end > start else "", float(lp)))
            pos += len(piece)
        return tuple(out)

    def _embedding(self, inputs: dict) -> list[list[float]]:
        enc = getattr(self.model, "get_encoder", None)
        pix = inputs.get("pixel_values")
        if enc is None or pix is None:
            return []
        try:
            hidden = enc()(pixel_values=pix).last_hidden_state
        except (TypeError, ValueError, AttributeError):
            return []
        return [[round(float(v), 5) for v in row] for row in hidden.mean(dim=1).float().cpu()]


def _processor_side(processor) -> int | None:
    """The largest side the image processor resizes to (``size`` or ``crop_size``), if it says."""
    sides = []
    for attr in ("size", "crop_size"):
        size = getattr(processor, attr, None) or getattr(getattr(processor, "image_processor", None), attr, None)
        if isinstance(size, int):
            sides.append(size)
        elif isinstance(size, dict):
            sides += [v for v in size.values() if isinstance(v, int)]
    return max(sides) if sides else None
