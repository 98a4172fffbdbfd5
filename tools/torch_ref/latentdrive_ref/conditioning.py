"""Conditioning (`conditioning.rs`): day/night and crowdedness labels with null classes,
GLIGEN-style box tokens and layout maps, the interpolator's fps flag."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import Linear

# ---------------------------------------------------------------------------------------
# conditioning (`conditioning.rs`)
# ---------------------------------------------------------------------------------------

NULL_TIME_OF_DAY = 2
NULL_CROWDEDNESS = 4
BOX_FREQS = 8


class LabelEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.time_of_day = nn.Embedding(NULL_TIME_OF_DAY + 1, dim)
        self.crowdedness = nn.Embedding(NULL_CROWDEDNESS + 1, dim)

    def forward(self, time_of_day: torch.Tensor, crowdedness: torch.Tensor) -> torch.Tensor:
        return self.time_of_day(time_of_day) + self.crowdedness(crowdedness)


class BoxEncoder(nn.Module):
    """`MLP([Fourier(xyxy); class])` per box, a learned null token in empty slots."""

    def __init__(self, token_dim: int):
        super().__init__()
        d = token_dim
        self.register_parameter("class", nn.Parameter(torch.randn(d) * 0.02))
        self.null = nn.Parameter(torch.randn(d) * 0.02)
        self.mlp1 = Linear(4 * 2 * BOX_FREQS + d, d)
        self.mlp2 = Linear(d, d)
        # 100^(j/8) in f32, as `100f32.powf(j as f32 / 8.0)`.
        freqs = np.power(np.float32(100.0), np.arange(BOX_FREQS, dtype=np.float32) / np.float32(BOX_FREQS))
        self.register_buffer("freqs", torch.from_numpy(freqs.astype(np.float32)), persistent=False)

    def forward(self, coords: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        n, k, _ = coords.shape
        cls = getattr(self, "class")
        d = cls.shape[0]
        args = coords[..., None] * self.freqs  # [n, k, 4, F]
        fourier = torch.cat([args.sin(), args.cos()], dim=3).reshape(n, k, 4 * 2 * BOX_FREQS)
        tokens = self.mlp2(F.silu(self.mlp1(torch.cat([fourier, cls.expand(n, k, d)], dim=2))))
        p = present[..., None]
        return tokens * p + self.null * (1.0 - p)


class FpsEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.table = nn.Embedding(2, dim)

    def forward(self, stage: torch.Tensor) -> torch.Tensor:
        return self.table(stage)


def box_layout(boxes: list, slots: int, h: int, w: int):
    """`Boxes::new`: per-sample lists of normalised `[x1, y1, x2, y2]` (None: dropped) →
    `(coords [n, k, 4], present [n, k], layout [n, 1, h, w])` as float32 tensors. The layout
    holds the exact covered fraction of each latent cell, clamped to 1 (f32 arithmetic)."""
    n = len(boxes)
    coords = np.zeros((n, slots, 4), np.float32)
    present = np.zeros((n, slots), np.float32)
    layout = np.zeros((n, 1, h, w), np.float32)
    f32 = np.float32
    for i, sample in enumerate(boxes):
        for j, b in enumerate((sample or [])[:slots]):
            coords[i, j] = b
            present[i, j] = 1.0
            b = [f32(v) for v in b]
            x1, y1, x2, y2 = b[0] * f32(w), b[1] * f32(h), b[2] * f32(w), b[3] * f32(h)
            for y in range(int(max(math.floor(y1), 0)), int(min(math.ceil(y2), h))):
                cy = max(min(y2, f32(y + 1)) - max(y1, f32(y)), f32(0))
                for x in range(int(max(math.floor(x1), 0)), int(min(math.ceil(x2), w))):
                    cx = max(min(x2, f32(x + 1)) - max(x1, f32(x)), f32(0))
                    layout[i, 0, y, x] = min(layout[i, 0, y, x] + f32(cx * cy), f32(1.0))
    return torch.from_numpy(coords), torch.from_numpy(present), torch.from_numpy(layout)
