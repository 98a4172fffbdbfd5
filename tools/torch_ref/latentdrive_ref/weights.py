"""Loading a weights folder (`manifest.ron` + safetensors) into the PyTorch models.

Like `src/weights/store.rs`, loading checks every key both ways: each parameter of the
model must be in the file of its part (spatial, or temporal when a path segment is
exactly `temporal`) with the same shape, and every tensor of each file must be used.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch
from safetensors.torch import load_file

from . import ron
from .config import UpsamplerConfig, from_ron
from .model import build

TEMPORAL_SEGMENT = "temporal"


class WeightsError(ValueError):
    pass


def is_temporal(name: str) -> bool:
    return TEMPORAL_SEGMENT in name.split(".")


def load_manifest(folder: str) -> ron.Struct:
    return ron.load(os.path.join(folder, "manifest.ron"))


def model_entry(manifest: ron.Struct, name: str) -> ron.Struct:
    for e in manifest["models"]:
        if e["name"] == name:
            return e
    raise WeightsError(f"manifest lists no model {name!r} (has {[e['name'] for e in manifest['models']]})")


def model_files(folder: str, entry: ron.Struct) -> tuple:
    """`(spatial path, temporal path or None)` of a manifest entry."""
    files = {f["role"]: os.path.join(folder, f["path"]) for f in entry["files"]}
    if "Spatial" not in files:
        raise WeightsError(f"model {entry['name']!r} has no spatial file")
    return files["Spatial"], files.get("Temporal")


def model_config(folder: str, name: str):
    """The config of `name` in `folder/manifest.ron`, as the Rust loader builds it: an
    upsampler without a temporal file is the image model (`pipeline/models.rs`)."""
    entry = model_entry(load_manifest(folder), name)
    cfg = from_ron(entry["config"])
    _, temporal = model_files(folder, entry)
    if isinstance(cfg, UpsamplerConfig) and temporal is None:
        cfg = replace(cfg, unet=cfg.unet.image_config())
    return cfg


def load_state(model: torch.nn.Module, spatial: str, temporal: str | None) -> None:
    """Loads the two files into `model`, checking names, shapes and parts."""
    want = model.state_dict()
    have = {}
    for path, part_temporal in ((spatial, False), (temporal, True)):
        if path is None:
            continue
        for k, v in load_file(path).items():
            if is_temporal(k) != part_temporal:
                raise WeightsError(f"{path}: tensor {k!r} belongs to the other part")
            have[k] = v
    missing = [k for k in want if k not in have]
    if missing:
        where = temporal if is_temporal(missing[0]) and temporal else spatial
        if is_temporal(missing[0]) and temporal is None:
            raise WeightsError(f"{spatial}: model has temporal parameters ({missing[0]!r}) but no temporal file")
        raise WeightsError(
            f"{where}: missing tensor {missing[0]!r} {list(want[missing[0]].shape)} ({len(missing)} missing)"
        )
    unused = [k for k in have if k not in want]
    if unused:
        raise WeightsError(
            f"tensor {unused[0]!r} {list(have[unused[0]].shape)} is not used by the model ({len(unused)} unused)"
        )
    for k, v in want.items():
        if tuple(have[k].shape) != tuple(v.shape):
            raise WeightsError(f"tensor {k!r}: file has {list(have[k].shape)}, model expects {list(v.shape)}")
    model.load_state_dict({k: have[k].to(v.dtype) for k, v in want.items()}, strict=True)


def load_model(folder: str, name: str, device="cpu") -> torch.nn.Module:
    """Builds model `name` from `folder/manifest.ron` and loads its weights."""
    entry = model_entry(load_manifest(folder), name)
    spatial, temporal = model_files(folder, entry)
    model = build(model_config(folder, name))
    load_state(model, spatial, temporal)
    return model.to(device).eval()
