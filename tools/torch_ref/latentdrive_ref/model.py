"""The denoising UNet (`unet.rs`: image LDM, and the Video LDM when `cfg.video` is set) and
the pixel-space upsampler (`upsampler.rs`), assembled from `layers`, `temporal` and
`conditioning` with the module tree of the Rust side, so that `state_dict()` keys are our
safetensors tensor names (see `layers.py` for the naming rules and the numerics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conditioning import NULL_CROWDEDNESS, NULL_TIME_OF_DAY, BoxEncoder, FpsEmbedding, LabelEmbedding, box_layout
from .config import UNetConfig, UpsamplerConfig
from .layers import Norm, ResBlock, SpatialTransformer, TimestepEmbedding, conv1x1, conv3x3
from .temporal import ContextEncoder, TemporalAttention, TemporalMix

__all__ = ["UNet", "Upsampler", "box_layout", "build"]

# ---------------------------------------------------------------------------------------
# the UNet (`unet.rs`)
# ---------------------------------------------------------------------------------------


class BlockTemporal(nn.Module):
    def __init__(self, res: TemporalMix, attn: TemporalAttention | None):
        super().__init__()
        self.res = res
        self.attn = attn


class Block(nn.Module):
    """ResBlock (+ spatial transformer), each followed by its temporal layer in video models."""

    def __init__(self, cfg: UNetConfig, cin: int, cout: int, attn: bool):
        super().__init__()
        emb = cfg.emb_dim
        self.res = ResBlock(cin, cout, emb, cfg.norm)
        token_dim = cfg.boxes.token_dim if cfg.boxes is not None else None
        self.attn = SpatialTransformer(cout, cfg.heads, token_dim, cfg.norm) if attn else None
        self.temporal = None
        if cfg.video is not None:
            # Context features enter the 3D-conv layers (or attention in attention-only models).
            ctx = cout if cfg.video.context_channels is not None else None
            self.temporal = BlockTemporal(
                TemporalMix(cfg.video.layers, cout, emb, cfg.heads, ctx, cfg.norm),
                TemporalAttention(cout, cfg.heads) if attn else None,
            )

    def forward(self, x, emb, tokens, frames: int, image_only: bool, context):
        x = self.res(x, emb)
        if self.temporal is not None:
            x = self.temporal.res(x, emb, frames, image_only, context)
        if self.attn is not None:
            x = self.attn(x, tokens)
            if self.temporal is not None and self.temporal.attn is not None:
                # Temporal attention after a transformer takes no context (`Block::forward`).
                x = self.temporal.attn(x, frames, image_only, None)
        return x


class DownLevel(nn.Module):
    def __init__(self, blocks: list, downsample: nn.Conv2d | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


class UpLevel(nn.Module):
    def __init__(self, blocks: list, upsample: nn.Conv2d | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.upsample = upsample


class UNetTemporal(nn.Module):
    def __init__(self, context: ContextEncoder | None, fps: FpsEmbedding | None):
        super().__init__()
        self.context = context
        self.fps = fps


class UNet(nn.Module):
    """LDM's UNet; the Video LDM when `cfg.video` is set; the upsampler's core."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        emb = cfg.emb_dim
        chans = cfg.level_channels
        layout_ch = 1 if cfg.boxes is not None else 0
        self.time_embed = TimestepEmbedding(cfg.base_channels, emb)
        self.labels = LabelEmbedding(emb) if cfg.global_cond == "DrivingLabels" else None
        self.noise_level = TimestepEmbedding(cfg.base_channels, emb) if cfg.global_cond == "NoiseLevel" else None
        self.box_encoder = BoxEncoder(cfg.boxes.token_dim) if cfg.boxes is not None else None
        self.conv_in = conv3x3(cfg.in_channels + cfg.extra_in_channels + layout_ch, chans[0])

        skips = [chans[0]]
        ch = chans[0]
        down = []
        for level, cout in enumerate(chans):
            attn = level in cfg.attention_levels
            blocks = []
            for _ in range(cfg.res_blocks):
                blocks.append(Block(cfg, ch, cout, attn))
                ch = cout
                skips.append(ch)
            ds = conv3x3(ch, ch, stride=2) if level + 1 < len(chans) else None
            if ds is not None:
                skips.append(ch)
            down.append(DownLevel(blocks, ds))
        self.down = nn.ModuleList(down)
        deepest_attn = len(cfg.attention_levels) > 0
        self.mid = nn.ModuleList([Block(cfg, ch, ch, deepest_attn), Block(cfg, ch, ch, False)])
        up = []
        for level in reversed(range(len(chans))):
            cout = chans[level]
            attn = level in cfg.attention_levels
            blocks = []
            for _ in range(cfg.res_blocks + 1):
                skip = skips.pop() if skips else cout
                blocks.append(Block(cfg, ch + skip, cout, attn))
                ch = cout
            up.append(UpLevel(blocks, conv3x3(ch, ch) if level > 0 else None))
        self.up = nn.ModuleList(up)
        self.norm_out = Norm(cfg.norm, ch)
        self.conv_out = conv3x3(ch, cfg.out_channels)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

        self.temporal = None
        v = cfg.video
        if v is not None:
            context = ContextEncoder(v.context_channels + 1, chans) if v.context_channels is not None else None
            fps = FpsEmbedding(emb) if v.fps_flag else None
            if context is not None or fps is not None:
                self.temporal = UNetTemporal(context, fps)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        frames: int = 1,
        time_of_day: torch.Tensor | None = None,
        crowdedness: torch.Tensor | None = None,
        box_coords: torch.Tensor | None = None,
        box_present: torch.Tensor | None = None,
        box_layout: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
        noise_level: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        fps_stage: torch.Tensor | None = None,
        image_only: bool = False,
    ) -> torch.Tensor:
        """`x`: `[b·t, in, h, w]`, `timesteps`: `[b·t]` → `[b·t, out, h, w]`. Labels `[b·t]`
        (None: null classes); boxes `[b·t, k, 4]`, `[b·t, k]`, `[b·t, 1, h, w]` (None: no
        boxes); `context` `[b·t, latent+1, h, w]` (None: all-zero mask); `fps_stage` `[b·t]`."""
        n, _, h, w = x.shape
        dev = x.device
        emb = self.time_embed(timesteps)
        if self.labels is not None:
            if time_of_day is None:
                time_of_day = torch.full((n,), NULL_TIME_OF_DAY, dtype=torch.long, device=dev)
                crowdedness = torch.full((n,), NULL_CROWDEDNESS, dtype=torch.long, device=dev)
            emb = emb + self.labels(time_of_day, crowdedness)
        if self.noise_level is not None and noise_level is not None:
            emb = emb + self.noise_level(noise_level)
        t_mod = self.temporal
        if t_mod is not None and t_mod.fps is not None and fps_stage is not None:
            emb = emb + t_mod.fps(fps_stage)
        parts = [x]
        if extra is not None:
            parts.append(extra)
        tokens = None
        if self.box_encoder is not None:
            if box_coords is None:
                k = self.cfg.boxes.slots
                box_coords = torch.zeros(n, k, 4, device=dev, dtype=x.dtype)
                box_present = torch.zeros(n, k, device=dev, dtype=x.dtype)
                box_layout = torch.zeros(n, 1, h, w, device=dev, dtype=x.dtype)
            parts.append(box_layout)
            tokens = self.box_encoder(box_coords, box_present)
        ctx_feats = None
        if t_mod is not None and t_mod.context is not None:
            if context is None:
                context = torch.zeros(n, t_mod.context.conv_in.in_channels, h, w, device=dev, dtype=x.dtype)
            ctx_feats = t_mod.context(context)

        def ctx_at(level: int):
            return None if ctx_feats is None else ctx_feats[min(level, len(ctx_feats) - 1)]

        x = self.conv_in(torch.cat(parts, dim=1))
        skips = [x]
        for level, d in enumerate(self.down):
            c = ctx_at(level)
            for b in d.blocks:
                x = b(x, emb, tokens, frames, image_only, c)
                skips.append(x)
            if d.downsample is not None:
                x = d.downsample(x)
                skips.append(x)
        deepest = len(self.down) - 1
        c = ctx_at(deepest)
        for b in self.mid:
            x = b(x, emb, tokens, frames, image_only, c)
        for i, u in enumerate(self.up):
            c = ctx_at(deepest - i)
            for b in u.blocks:
                x = b(torch.cat([x, skips.pop()], dim=1), emb, tokens, frames, image_only, c)
            if u.upsample is not None:
                x = u.upsample(F.interpolate(x, size=(2 * x.shape[2], 2 * x.shape[3]), mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(x)))


# ---------------------------------------------------------------------------------------
# the pixel-space upsampler (`upsampler.rs`)
# ---------------------------------------------------------------------------------------


def space_to_depth(x: torch.Tensor, r: int) -> torch.Tensor:
    """`[n, c, H, W]` → `[n, c·r², H/r, W/r]` (the channel order of `F.pixel_unshuffle`)."""
    if r == 1:
        return x
    n, c, h, w = x.shape
    return x.reshape(n, c, h // r, r, w // r, r).permute(0, 1, 3, 5, 2, 4).reshape(n, c * r * r, h // r, w // r)


def depth_to_space(x: torch.Tensor, r: int) -> torch.Tensor:
    """Inverse of `space_to_depth`."""
    if r == 1:
        return x
    n, crr, h, w = x.shape
    c = crr // (r * r)
    return x.reshape(n, c, r, r, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, h * r, w * r)


class Upsampler(nn.Module):
    """The 4× pixel-space upsampler: the UNet on `r×r` pixel blocks as channels, with the
    upsampled low-res frames concatenated and the augmentation level embedded."""

    def __init__(self, cfg: UpsamplerConfig):
        super().__init__()
        self.cfg = cfg
        self.unet = UNet(cfg.unet)
        u = cfg.unet
        # Linear 1×1 path from the input blocks to the output (see `Upsampler::bypass`).
        self.bypass = conv1x1(u.in_channels + u.extra_in_channels, u.out_channels)
        self.factor = cfg.factor
        self.unshuffle = cfg.unshuffle

    def upsample_condition(self, low: torch.Tensor) -> torch.Tensor:
        """`[n, 3, h, w]` → bilinear `[n, 3, f·h, f·w]`, align_corners = True as burn's default."""
        _, _, h, w = low.shape
        return F.interpolate(low, size=(self.factor * h, self.factor * w), mode="bilinear", align_corners=True)

    def forward(self, x_t, timesteps, cond, level, frames: int) -> torch.Tensor:
        """`x_t`, `cond`: `[b·t, 3, H, W]`, `timesteps`, `level`: `[b·t]` → `[b·t, 3, H, W]`."""
        r = self.unshuffle
        x_t, cond = space_to_depth(x_t, r), space_to_depth(cond, r)
        bypass = self.bypass(torch.cat([x_t, cond], dim=1))
        out = self.unet(
            x_t,
            timesteps,
            frames=frames,
            extra=cond,
            noise_level=level,
            image_only=frames == 1,
        )
        return depth_to_space(out + bypass, r)


def build(cfg):
    """A fresh model for a `UNetConfig` or `UpsamplerConfig`."""
    return Upsampler(cfg) if isinstance(cfg, UpsamplerConfig) else UNet(cfg)
