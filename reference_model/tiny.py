"""The ``tiny`` backend: the small captioner trained on the shapes world and shipped with the repo."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from reference_model.caption import Caption, Captioner, Preparation
from reference_model.device import pick_device
from reference_model.network import INPUT_SIZE, NetConfig, TinyCaptionNet
from reference_model.preprocess import fit, to_tensor
from reference_model.vocab import Vocab

__all__ = ["TinyCaptioner", "WEIGHTS_DIR", "save_checkpoint", "load_checkpoint"]

WEIGHTS_DIR = Path(__file__).parent / "weights"


def save_checkpoint(net: TinyCaptionNet, vocab: Vocab, path: Path, meta: dict) -> None:
    """Write ``path`` (.safetensors) and its sidecar ``.json`` (config, vocabulary, training)."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(state, str(path))
    side = {"config": net.cfg.to_dict(), "vocab": vocab.itos, **meta}
    path.with_suffix(".json").write_text(json.dumps(side, indent=1) + "\n")


def load_checkpoint(path: Path) -> tuple[TinyCaptionNet, Vocab, dict]:
    path = Path(path)
    side = json.loads(path.with_suffix(".json").read_text())
    net = TinyCaptionNet(NetConfig(**side["config"]))
    net.load_state_dict(load_file(str(path)))
    net.eval()
    return net, Vocab(side["vocab"][4:]), side


class TinyCaptioner(Captioner):
    """Captions images with a checkpoint from ``reference_model/weights`` (``tiny`` by default).

    ``quantize=True`` applies dynamic int8 quantization to the linear layers (CPU only)."""

    def __init__(self, checkpoint: str | Path = "tiny", device: str | None = None, quantize: bool = False):
        path = Path(checkpoint)
        if path.suffix != ".safetensors":
            path = WEIGHTS_DIR / f"{checkpoint}.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"model checkpoint {path} not found")
        self.device = pick_device(device)
        net, self.vocab, meta = load_checkpoint(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        self.name = path.stem
        self.version = f"{path.stem}-{digest}"
        if quantize:
            if self.device != "cpu":
                raise ValueError("int8 dynamic quantization runs on the CPU only")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the quantized-tensor API warns of its own future
                net = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
            self.version += "-int8"
        self.net = net.to(self.device)
        self.meta = meta

    input_side = INPUT_SIZE

    def prepare(self, image: Image.Image) -> Image.Image:
        return fit(image)

    def preparation(self) -> Preparation:
        return Preparation(INPUT_SIZE, square=True)  # what ``fit`` does

    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        if not images:
            return []
        pixels = to_tensor(images).to(self.device)
        ids, probs, pooled = self.net.generate(pixels, self.vocab.bos_id, self.vocab.eos_id)
        ids, probs = ids.cpu(), probs.cpu()
        # Tokens up to and including the first end-of-sequence (all of them when there is none).
        is_eos = ids == self.vocab.eos_id
        has_eos = is_eos.any(dim=1)
        steps = ids.shape[1]
        length = torch.where(has_eos, is_eos.int().argmax(dim=1) + 1, torch.full_like(has_eos, steps, dtype=torch.long))
        mask = torch.arange(steps)[None, :] < length[:, None]
        logp = torch.log(probs.clamp_min(1e-12)) * mask
        conf = torch.exp(logp.sum(dim=1) / length).tolist()
        tokens = (length - has_eos.long()).tolist()
        embs = pooled.float().cpu().tolist()
        out = []
        for row, c, n, emb, lps, k in zip(ids.tolist(), conf, tokens, embs, logp.tolist(), length.tolist()):
            out.append(
                Caption(
                    self.vocab.decode(row),
                    float(c),
                    int(n),
                    [round(v, 5) for v in emb],
                    self._token_logprobs(row[:k], lps[:k]),
                )
            )
        return out

    def _token_logprobs(self, ids: list[int], logps: list[float]) -> tuple[tuple[str, float], ...]:
        """Each chosen token's text as ``Vocab.decode`` joins it (a space before a word, none
        before punctuation, empty for the end of sequence) with its log-probability."""
        out, words = [], 0
        for i, lp in zip(ids, logps):
            if i in (self.vocab.eos_id, self.vocab.pad_id, self.vocab.bos_id):
                text = ""
            else:
                tok = self.vocab.itos[i]
                text = tok if tok in (",", ":") and words else (" " + tok if words else tok)
                words += tok not in (",", ":") or not words
            out.append((text, float(lp)))
        return tuple(out)
