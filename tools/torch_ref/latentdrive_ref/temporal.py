"""Temporal layers of the Video LDM (`temporal.rs`): α blend, 3D-conv residual block,
temporal attention, context encoder. Naming and numerics as in `layers.py`."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    Attention,
    FeedForward,
    LayerNorm,
    Linear,
    Norm,
    conv1x1,
    conv3x3,
    from_frame_tokens,
    from_video,
    sinusoidal,
    to_frame_tokens,
    to_video,
)

# ---------------------------------------------------------------------------------------
# temporal layers (`temporal.rs`)
# ---------------------------------------------------------------------------------------


class AlphaBlend(nn.Module):
    """`α·spatial + (1−α)·temporal`, α = sigmoid(mix); `image_only` keeps the spatial path."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Parameter(torch.zeros(1))

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor, image_only: bool) -> torch.Tensor:
        if image_only:
            return spatial
        a = torch.sigmoid(self.mix)
        return spatial * a + temporal * (1.0 - a)


def zero_conv1x1(cin: int, cout: int) -> nn.Conv2d:
    c = conv1x1(cin, cout)
    nn.init.zeros_(c.weight)
    nn.init.zeros_(c.bias)
    return c


class TemporalResBlock(nn.Module):
    """3D-conv residual block over `[b, c, t, h, w]` (kernel (3, 1, 1)), then the α blend.
    Context features are added to its input; the residual includes them."""

    def __init__(self, channels: int, emb_dim: int | None, context_channels: int | None, norm: tuple, kernel=(3, 1, 1)):
        super().__init__()
        c = channels
        pad = tuple(k // 2 for k in kernel)
        self.context_proj = zero_conv1x1(context_channels, c) if context_channels is not None else None
        self.norm1 = Norm(norm, c)
        self.conv1 = nn.Conv3d(c, c, kernel, padding=pad)
        self.emb_proj = Linear(emb_dim, c) if emb_dim is not None else None
        self.norm2 = Norm(norm, c)
        self.conv2 = nn.Conv3d(c, c, kernel, padding=pad)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.alpha = AlphaBlend()

    def forward(self, x, emb, frames: int, image_only: bool, context: torch.Tensor | None):
        inp = x
        if self.context_proj is not None and context is not None:
            inp = inp + self.context_proj(context)
        v = to_video(inp, frames)
        h = self.conv1(F.silu(self.norm1(v)))
        if self.emb_proj is not None and emb is not None:
            h = h + to_video(self.emb_proj(F.silu(emb))[:, :, None, None], frames)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.alpha(x, from_video(v + h), image_only)


class TemporalAttention(nn.Module):
    """Self-attention over the frames of each pixel; the frame-position embedding enters the
    attention's input only, not the residual stream. Then feed-forward and the α blend."""

    def __init__(self, channels: int, heads: int, context_channels: int | None = None):
        super().__init__()
        c = channels
        self.context_proj = zero_conv1x1(context_channels, c) if context_channels is not None else None
        self.pos_mlp1 = Linear(c, 4 * c)
        self.pos_mlp2 = Linear(4 * c, c)
        self.norm_attn = LayerNorm(c)
        self.attn = Attention(c, heads, zero_out=True)
        self.norm_ff = LayerNorm(c)
        self.ff = FeedForward(c, zero_out=True)
        self.alpha = AlphaBlend()
        self.channels = c

    def forward(self, x, frames: int, image_only: bool, context: torch.Tensor | None):
        _, c, h, w = x.shape
        inp = x
        if self.context_proj is not None and context is not None:
            inp = inp + self.context_proj(context)
        tokens = to_frame_tokens(inp, frames)
        idx = torch.arange(frames, device=x.device, dtype=x.dtype)
        pos = self.pos_mlp2(F.silu(self.pos_mlp1(sinusoidal(idx, self.channels)))).reshape(1, frames, c)
        z = tokens + self.attn(self.norm_attn(tokens + pos))
        z = z + self.ff(self.norm_ff(z))
        return self.alpha(x, from_frame_tokens(z, h, w), image_only)


class TemporalMix(nn.Module):
    """`TemporalMix::{Conv, Attention}`: the child is named after the variant."""

    def __init__(self, layers: str, channels: int, emb_dim: int, heads: int, context: int | None, norm: tuple):
        super().__init__()
        if layers == "ConvAndAttention":
            self.Conv = TemporalResBlock(channels, emb_dim, context, norm)
        elif layers == "AttentionOnly":
            self.Attention = TemporalAttention(channels, heads, context)
        else:
            raise ValueError(f"unknown TemporalLayers {layers!r}")

    def forward(self, x, emb, frames, image_only, context):
        if hasattr(self, "Conv"):
            return self.Conv(x, emb, frames, image_only, context)
        return self.Attention(x, frames, image_only, context)


class ContextEncoder(nn.Module):
    """`c_S = (m∘z, m)` → features per UNet level (conv_in, then stride-2 convs; SiLU)."""

    def __init__(self, in_channels: int, level_channels: list):
        super().__init__()
        self.conv_in = conv3x3(in_channels, level_channels[0])
        self.levels = nn.ModuleList([conv3x3(a, b, stride=2) for a, b in itertools.pairwise(level_channels)])

    def forward(self, c: torch.Tensor) -> list:
        h = F.silu(self.conv_in(c))
        out = [h]
        for conv in self.levels:
            h = F.silu(conv(h))
            out.append(h)
        return out
