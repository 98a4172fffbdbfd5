"""Model configs, mirroring `src/model/unet.rs` (`UNetConfig`, `VideoConfig`),
`conditioning.rs` (`BoxEncoderConfig`) and `upsampler.rs` (`UpsamplerConfig`).

They are read from a manifest's RON (`from_ron`), so a weights folder describes its own
models. `tier_configs` copies the presets of `src/model/tiers.rs` for benchmarks that run
without a weights folder; `parity.py` checks the copy against the manifest the Rust side
writes, so a drifted preset fails there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .ron import Variant

LATENT_CHANNELS = 4


@dataclass(frozen=True)
class BoxEncoderConfig:
    token_dim: int
    slots: int


@dataclass(frozen=True)
class VideoConfig:
    # "ConvAndAttention" or "AttentionOnly" (`TemporalLayers`).
    layers: str
    context_channels: int | None = None
    fps_flag: bool = False


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int
    out_channels: int
    base_channels: int
    channel_mult: tuple
    res_blocks: int
    attention_levels: tuple
    heads: int
    # ("group", groups) or ("channel",) (`NormKind`).
    norm: tuple = ("group", 32)
    # "None", "DrivingLabels" or "NoiseLevel" (`GlobalCondition`).
    global_cond: str = "None"
    boxes: BoxEncoderConfig | None = None
    video: VideoConfig | None = None
    extra_in_channels: int = 0

    @property
    def emb_dim(self) -> int:
        return 4 * self.base_channels

    @property
    def level_channels(self) -> list:
        return [m * self.base_channels for m in self.channel_mult]

    def image_config(self) -> UNetConfig:
        """The same network without temporal layers."""
        return replace(self, video=None)


@dataclass(frozen=True)
class UpsamplerConfig:
    unet: UNetConfig
    factor: int = 4
    unshuffle: int = 1


def _norm(v) -> tuple:
    if isinstance(v, Variant) and v.name == "Group":
        return ("group", int(v.args[0]))
    if v == "Channel":
        return ("channel",)
    raise ValueError(f"unknown NormKind {v!r}")


def unet_from_ron(c: dict) -> UNetConfig:
    boxes = c.get("boxes")
    video = c.get("video")
    return UNetConfig(
        in_channels=c["in_channels"],
        out_channels=c["out_channels"],
        base_channels=c["base_channels"],
        channel_mult=tuple(c["channel_mult"]),
        res_blocks=c["res_blocks"],
        attention_levels=tuple(c["attention_levels"]),
        heads=c["heads"],
        norm=_norm(c.get("norm", Variant("Group", (32,)))),
        global_cond=c.get("global", "None"),
        boxes=BoxEncoderConfig(boxes["token_dim"], boxes["slots"]) if boxes is not None else None,
        video=VideoConfig(video["layers"], video.get("context_channels"), bool(video.get("fps_flag", False)))
        if video is not None
        else None,
        extra_in_channels=c.get("extra_in_channels", 0),
    )


def upsampler_from_ron(c: dict) -> UpsamplerConfig:
    return UpsamplerConfig(unet_from_ron(c["unet"]), c.get("factor", 4), c.get("unshuffle", 1))


def from_ron(c) -> UNetConfig | UpsamplerConfig:
    """A model config from its RON value (`UNetConfigSerde(…)` or `UpsamplerConfigSerde(…)`)."""
    name = getattr(c, "name", "")
    if name.startswith("UpsamplerConfig") or "unet" in c:
        return upsampler_from_ron(c)
    if name.startswith("UNetConfig") or "base_channels" in c:
        return unet_from_ron(c)
    raise ValueError(f"not a UNet or upsampler config: {name or c!r}")


@dataclass
class _Widths:
    unet: int
    unet_mult: tuple
    heads: int
    attn: tuple
    tokens: int
    slots: int
    up: int
    up_mult: tuple
    groups: int
    unshuffle: int
    frame_size: tuple = (128, 256)
    window: int = 8


# Copied from `src/model/tiers.rs` (`ModelTier::config`); only what the denoisers use.
_TIERS = {
    "micro": _Widths(8, (1, 2), 2, (1,), 8, 4, 8, (1, 2), 4, 2, frame_size=(16, 32), window=4),
    "tiny": _Widths(48, (1, 2, 2), 4, (1, 2), 48, 16, 32, (1, 2, 2), 8, 4, window=8),
    "base": _Widths(128, (1, 2, 4), 8, (1, 2), 256, 16, 128, (1, 1, 2, 4), 32, 4, window=16),
}


@dataclass(frozen=True)
class TierConfigs:
    frame_size: tuple
    window: int
    image_ldm: UNetConfig
    video_ldm: UNetConfig
    interpolator: UNetConfig
    upsampler: UpsamplerConfig


def tier_configs(tier: str) -> TierConfigs:
    """The denoiser configs of `tier` ("micro", "tiny", "base"), as `tiers.rs` builds them."""
    w = _TIERS[tier]
    image = UNetConfig(
        LATENT_CHANNELS,
        LATENT_CHANNELS,
        w.unet,
        w.unet_mult,
        1,
        w.attn,
        w.heads,
        norm=("group", w.groups),
        global_cond="DrivingLabels",
        boxes=BoxEncoderConfig(w.tokens, w.slots),
    )
    video = replace(image, video=VideoConfig("ConvAndAttention", LATENT_CHANNELS, False))
    interp = replace(image, video=VideoConfig("ConvAndAttention", LATENT_CHANNELS, True))
    rr = 3 * w.unshuffle * w.unshuffle
    up_unet = UNetConfig(
        rr,
        rr,
        w.up,
        w.up_mult,
        1,
        (),
        w.heads,
        norm=("channel",),
        global_cond="NoiseLevel",
        video=VideoConfig("ConvAndAttention"),
        extra_in_channels=rr,
    )
    return TierConfigs(w.frame_size, w.window, image, video, interp, UpsamplerConfig(up_unet, 4, w.unshuffle))
