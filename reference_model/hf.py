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

    def __init__(self, model_id: str, device: str | None = None, max_new_tokens: int = 30, local_only: bool | None = None):
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
            raise ValueError(f"could not load {model_id!r} as an image-to-text model: {errors[-1] if errors else 'no loader'}")
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
            **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
            output_scores=True, return_dict_in_generate=True,
        )
        trans = self.model.compute_transition_scores(gen.sequences, gen.scores, normalize_logits=True)
        new = gen.sequences[:, -trans.shape[1]:]
        pad = getattr(self.model.generation_config, "pad_token_id", None)
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        emb = self._embedding(inputs)
        out = []
        for i, text in enumerate(texts):
            keep = []
            for tok, lp in zip(new[i].tolist(), trans[i].tolist()):
                if pad is not None and tok == pad and tok not in eos_ids:
                    break
                keep.append(lp)
                if tok in eos_ids:
                    break
            conf = float(torch.tensor(keep).mean().exp()) if keep else 0.0
            n = len([t for t in new[i].tolist() if t not in eos_ids and t != pad])
            out.append(Caption(text.strip(), min(1.0, max(0.0, conf)), n, emb[i] if emb else []))
        return out

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
