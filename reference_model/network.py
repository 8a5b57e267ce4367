"""The tiny captioning network: a CNN encoder over a grid with row and column positions, and a
transformer decoder whose generation uses a key/value cache."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NetConfig", "TinyCaptionNet", "INPUT_SIZE"]

INPUT_SIZE = 64


@dataclass(frozen=True)
class NetConfig:
    vocab_size: int
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    ffn: int = 384
    max_len: int = 24
    grid: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h = heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.o = nn.Linear(d, d)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.h, d // self.h).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        q = self.split(self.q(x))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        b, h, t, dh = y.shape
        return self.o(y.transpose(1, 2).reshape(b, t, h * dh))


class EncoderLayer(nn.Module):
    def __init__(self, c: NetConfig):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.att = Attention(c.d_model, c.n_heads)
        self.ff = nn.Sequential(nn.Linear(c.d_model, c.ffn), nn.GELU(), nn.Linear(c.ffn, c.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.n1(x)
        x = x + self.att.attend(h, *self.att.keys_values(h), causal=False)
        return x + self.ff(self.n2(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: NetConfig):
        super().__init__()
        self.n1, self.n2, self.n3 = (nn.LayerNorm(c.d_model) for _ in range(3))
        self.self_att = Attention(c.d_model, c.n_heads)
        self.cross_att = Attention(c.d_model, c.n_heads)
        self.ff = nn.Sequential(nn.Linear(c.d_model, c.ffn), nn.GELU(), nn.Linear(c.ffn, c.d_model))

    def forward(self, x, cross_kv, cache=None):
        """Full sequence when ``cache`` is None (training); otherwise one step, appending to it."""
        h = self.n1(x)
        k, v = self.self_att.keys_values(h)
        if cache is None:
            x = x + self.self_att.attend(h, k, v, causal=True)
        else:
            if cache:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
            x = x + self.self_att.attend(h, k, v, causal=False)
        x = x + self.cross_att.attend(self.n2(x), *cross_kv, causal=False)
        return x + self.ff(self.n3(x))


class TinyCaptionNet(nn.Module):
    def __init__(self, c: NetConfig):
        super().__init__()
        self.cfg = c
        d = c.d_model
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=2, padding=1),
            nn.GELU(),  # 32x32
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.GELU(),  # 16x16
            nn.Conv2d(64, 96, 3, stride=2, padding=1),
            nn.GELU(),  # 8x8
            nn.Conv2d(96, d, 1),
        )
        self.row = nn.Parameter(torch.zeros(c.grid, d))
        self.col = nn.Parameter(torch.zeros(c.grid, d))
        self.enc = EncoderLayer(c)
        self.enc_norm = nn.LayerNorm(d)
        self.tok = nn.Embedding(c.vocab_size, d)
        self.pos = nn.Embedding(c.max_len + 1, d)
        self.dec = nn.ModuleList(DecoderLayer(c) for _ in range(c.n_layers))
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, c.vocab_size)
        nn.init.normal_(self.row, std=0.1)
        nn.init.normal_(self.col, std=0.1)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 64, 64) in [-1, 1] -> memory (B, grid*grid, d)."""
        f = self.cnn(pixels)
        b, d, gh, gw = f.shape
        pos = (self.row[:, None, :] + self.col[None, :, :]).reshape(gh * gw, d)
        x = f.flatten(2).transpose(1, 2) + pos
        return self.enc_norm(self.enc(x))

    def cross_kvs(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [layer.cross_att.keys_values(memory) for layer in self.dec]

    def forward(self, pixels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits for ``tokens`` (B, T) that start with BOS."""
        memory = self.encode(pixels)
        t = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device))[None]
        for layer, kv in zip(self.dec, self.cross_kvs(memory)):
            x = layer(x, kv)
        return self.head(self.out_norm(x))

    @torch.inference_mode()
    def generate(self, pixels: torch.Tensor, bos: int, eos: int):
        """Greedy decoding with a key/value cache: each step costs one token, not the prefix.
        Returns token ids (B, T), their probabilities (B, T) and the pooled memory (B, d)."""
        memory = self.encode(pixels)
        kvs = self.cross_kvs(memory)
        b = pixels.shape[0]
        caches: list[list] = [[] for _ in self.dec]
        cur = torch.full((b,), bos, dtype=torch.long, device=pixels.device)
        done = torch.zeros(b, dtype=torch.bool, device=pixels.device)
        ids, probs = [], []
        for step in range(self.cfg.max_len):
            x = self.tok(cur)[:, None, :] + self.pos.weight[step][None, None, :]
            for layer, kv, cache in zip(self.dec, kvs, caches):
                x = layer(x, kv, cache)
            p = F.softmax(self.head(self.out_norm(x[:, -1])).float(), dim=-1)
            prob, nxt = p.max(dim=-1)
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
            prob = torch.where(done, torch.ones_like(prob), prob)
            ids.append(nxt)
            probs.append(prob)
            done = done | (nxt == eos)
            cur = nxt
            if bool(done.all()):
                break
        return torch.stack(ids, 1), torch.stack(probs, 1), memory.mean(dim=1)
