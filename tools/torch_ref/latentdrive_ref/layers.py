"""Building blocks of the denoisers (`norm.rs`, `embedding.rs`, `layout.rs`, `resnet.rs`,
`attention.rs`) in PyTorch, op for op, with the same module tree so that
`state_dict()` keys are the tensor names of our safetensors files.

Where the names come from (burn-store's paths):
- struct fields are attributes; `Vec`s are `nn.ModuleList`s (`down.0.blocks.0`);
- enum variants are a child named after the variant: `Norm::Group(GroupNorm)` is
  `norm1.Group.gamma`, `TemporalMix::Conv(..)` is `temporal.res.Conv.conv1.weight`;
- `Option` fields that are `None` are simply absent.

Two layouts follow burn rather than PyTorch: `Linear.weight` is `[in, out]`, and the norms
call their parameters `gamma` / `beta`. Convolutions and embeddings match PyTorch.

Numerics that must match (each taken from the Rust source or burn 0.21):
- group norm and the per-pixel channel norm use ε = 1e-6 (`norm.rs`); the layer norms
  inside attention blocks use burn's default ε = 1e-5;
- GELU is the exact (erf) one; SiLU everywhere else;
- attention scale 1/√(head dim) (burn's default), no mask;
- sinusoidal features are `[cos, sin]` with f_k = 10000^(−k/(dim/2)) (`embedding.rs`);
- box Fourier features are `[sin, cos]` per coordinate with f_j = 100^(j/8) (`conditioning.rs`);
- α = sigmoid(mix), out = α·spatial + (1−α)·temporal; `image_only` forces α = 1;
- nearest ×2 upsampling; the upsampler's condition is bilinear with align_corners = True
  (burn's `InterpolateOptions::new` default).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------
# burn-layout building blocks
# ---------------------------------------------------------------------------------------


class Linear(nn.Module):
    """burn's `Linear`: `weight` is `[in, out]`."""

    def __init__(self, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(d_out).uniform_(-bound, bound)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.t(), self.bias)


class LayerNorm(nn.Module):
    """burn's `LayerNorm` over the last axis (`gamma`, `beta`)."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(d))
        self.beta = nn.Parameter(torch.zeros(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.gamma, self.beta, self.eps)


class GroupNorm(nn.Module):
    """burn's `GroupNorm` (`gamma`, `beta`); statistics over the group's channels and all
    trailing axes (space, and time for `[b, c, t, h, w]`)."""

    def __init__(self, groups: int, channels: int, eps: float):
        super().__init__()
        self.groups = groups
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.groups, self.gamma, self.beta, self.eps)


class Norm(nn.Module):
    """`norm.rs`: `Group(g)` (g → gcd(g, channels)) or `Channel` (layer norm per pixel)."""

    def __init__(self, kind: tuple, channels: int):
        super().__init__()
        if kind[0] == "group":
            self.Group = GroupNorm(math.gcd(kind[1], channels), channels, 1e-6)
        else:
            self.Channel = LayerNorm(channels, 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "Group"):
            return self.Group(x)
        return self.Channel(x.movedim(1, -1)).movedim(-1, 1)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1)


def sinusoidal(values: torch.Tensor, dim: int) -> torch.Tensor:
    """`[n]` → `[n, dim]`: `[cos(v·f_k), sin(v·f_k)]`, f_k = 10000^(−k/(dim/2)) (`embedding.rs`)."""
    half = dim // 2
    # Frequencies in f64, then f32, as the Rust side computes them.
    k = np.arange(half, dtype=np.float64)
    dtype = values.dtype if values.is_floating_point() else torch.float32
    freqs = torch.from_numpy(np.exp(-math.log(10000.0) * k / half).astype(np.float32)).to(values.device, dtype)
    args = values.to(dtype)[:, None] * freqs[None, :]
    return torch.cat([args.cos(), args.sin()], dim=1)


class TimestepEmbedding(nn.Module):
    """`sinusoidal(t) → Linear → SiLU → Linear`."""

    def __init__(self, freq_dim: int, dim: int):
        super().__init__()
        self.linear_1 = Linear(freq_dim, dim)
        self.linear_2 = Linear(dim, dim)
        self.freq_dim = freq_dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(sinusoidal(t, self.freq_dim))))


# ---------------------------------------------------------------------------------------
# layouts (`layout.rs`)
# ---------------------------------------------------------------------------------------


def to_video(x: torch.Tensor, t: int) -> torch.Tensor:
    """`[b·t, c, h, w]` → `[b, c, t, h, w]`."""
    bt, c, h, w = x.shape
    return x.reshape(bt // t, t, c, h, w).transpose(1, 2)


def from_video(x: torch.Tensor) -> torch.Tensor:
    """`[b, c, t, h, w]` → `[b·t, c, h, w]`."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def to_frame_tokens(x: torch.Tensor, t: int) -> torch.Tensor:
    """`[b·t, c, h, w]` → `[b·h·w, t, c]`."""
    bt, c, h, w = x.shape
    b = bt // t
    return x.reshape(b, t, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, t, c)


def from_frame_tokens(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """`[b·h·w, t, c]` → `[b·t, c, h, w]`."""
    bhw, t, c = x.shape
    b = bhw // (h * w)
    return x.reshape(b, h * w, t, c).permute(0, 2, 3, 1).reshape(b * t, c, h, w)


def to_pixel_tokens(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, c, h * w).transpose(1, 2)


def from_pixel_tokens(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    n, _, c = x.shape
    return x.transpose(1, 2).reshape(n, c, h, w)


# ---------------------------------------------------------------------------------------
# spatial blocks (`resnet.rs`, `attention.rs`)
# ---------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """`skip(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))) + emb_proj(SiLU(emb)))))`."""

    def __init__(self, cin: int, cout: int, emb_dim: int | None, norm: tuple):
        super().__init__()
        self.norm1 = Norm(norm, cin)
        self.conv1 = conv3x3(cin, cout)
        self.emb_proj = Linear(emb_dim, cout) if emb_dim is not None else None
        self.norm2 = Norm(norm, cout)
        self.conv2 = conv3x3(cout, cout)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = conv1x1(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb_proj is not None and emb is not None:
            h = h + self.emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class Attention(nn.Module):
    """Multi-head scaled dot-product attention, scale 1/√(head dim)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, zero_out: bool = False):
        super().__init__()
        ctx = context_dim or dim
        self.to_q = Linear(dim, dim, bias=False)
        self.to_k = Linear(ctx, dim, bias=False)
        self.to_v = Linear(ctx, dim, bias=False)
        self.to_out = Linear(dim, dim)
        if zero_out:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)
        self.heads = heads

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        ctx = x if context is None else context
        n, s, d = x.shape
        m = ctx.shape[1]
        dh = d // self.heads
        q = self.to_q(x).reshape(n, s, self.heads, dh).transpose(1, 2)
        k = self.to_k(ctx).reshape(n, m, self.heads, dh).transpose(1, 2)
        v = self.to_v(ctx).reshape(n, m, self.heads, dh).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(o.transpose(1, 2).reshape(n, s, d))


class FeedForward(nn.Module):
    """`Linear(d, 4d) → GELU (exact) → Linear(4d, d)`."""

    def __init__(self, dim: int, zero_out: bool = False):
        super().__init__()
        self.fc1 = Linear(dim, 4 * dim)
        self.fc2 = Linear(4 * dim, dim)
        if zero_out:
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class GatedBoxAttention(nn.Module):
    """GLIGEN's gated self-attention over `[visual; box tokens]`, gates tanh(γ)."""

    def __init__(self, dim: int, heads: int, token_dim: int):
        super().__init__()
        self.box_proj = Linear(token_dim, dim)
        self.norm = LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.gate_attn = nn.Parameter(torch.zeros(1))
        self.norm_ff = LayerNorm(dim)
        self.ff = FeedForward(dim)
        self.gate_ff = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        s = x.shape[1]
        joint = self.norm(torch.cat([x, self.box_proj(boxes)], dim=1))
        visual = self.attn(joint)[:, :s]
        x = x + visual * self.gate_attn.tanh()
        return x + self.ff(self.norm_ff(x)) * self.gate_ff.tanh()


class SpatialTransformer(nn.Module):
    """`x + proj_out(block(proj_in(norm(x))))` over each frame's pixels."""

    def __init__(self, channels: int, heads: int, box_token_dim: int | None, norm: tuple):
        super().__init__()
        c = channels
        self.norm = Norm(norm, c)
        self.proj_in = conv1x1(c, c)
        self.norm_attn = LayerNorm(c)
        self.attn = Attention(c, heads)
        self.boxes = GatedBoxAttention(c, heads, box_token_dim) if box_token_dim is not None else None
        self.norm_ff = LayerNorm(c)
        self.ff = FeedForward(c)
        self.proj_out = Linear(c, c)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
        _, _, h, w = x.shape
        t = to_pixel_tokens(self.proj_in(self.norm(x)))
        t = t + self.attn(self.norm_attn(t))
        if self.boxes is not None and boxes is not None:
            t = self.boxes(t, boxes)
        t = t + self.ff(self.norm_ff(t))
        return x + from_pixel_tokens(self.proj_out(t), h, w)
