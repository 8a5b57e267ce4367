"""Word-level vocabulary of the shapes world's canonical captions."""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["Vocab", "PAD", "BOS", "EOS", "UNK"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
_TOKEN = re.compile(r"[a-z]+|[,:]")


class Vocab:
    """Maps caption words to ids and back; punctuation (``,`` ``:``) is a token of its own."""

    def __init__(self, words: list[str]):
        self.itos = [PAD, BOS, EOS, UNK] + [w for w in words if w not in (PAD, BOS, EOS, UNK)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return _TOKEN.findall(text.lower())

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(t, self.unk_id) for t in self.tokenize(text)]

    def decode(self, ids: list[int]) -> str:
        out: list[str] = []
        for i in ids:
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            tok = self.itos[i]
            if tok in (",", ":") and out:
                out[-1] += tok
            else:
                out.append(tok)
        return " ".join(out)

    @classmethod
    def from_captions(cls, captions: list[str]) -> "Vocab":
        words = sorted({t for c in captions for t in cls.tokenize(c)})
        return cls(words)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"itos": self.itos}, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        itos = json.loads(Path(path).read_text())["itos"]
        return cls(itos[4:])
