"""PyTorch reference of latentdrive's denoisers (image LDM, video LDM, interpolator,
pixel-space upsampler), reading the Rust side's `manifest.ron` configs and safetensors
weights with their exact tensor names. See `tools/torch_ref/README.md`."""

from .config import BoxEncoderConfig, UNetConfig, UpsamplerConfig, VideoConfig, tier_configs
from .model import UNet, Upsampler, box_layout
from .weights import load_manifest, load_model

__all__ = [
    "BoxEncoderConfig",
    "UNet",
    "UNetConfig",
    "Upsampler",
    "UpsamplerConfig",
    "VideoConfig",
    "box_layout",
    "load_manifest",
    "load_model",
    "tier_configs",
]
