#!/usr/bin/env python3
"""Speed of the PyTorch reference: one denoiser training step (forward + backward + gradient
clipping + AdamW + EMA, as `src/train/fit.rs` does) and one sampling step (a forward pass
without gradients), in eager mode and with `torch.compile`. Prints one JSON object with
it/s, ms per step and peak memory per mode.

    python3 tools/torch_ref/bench.py --tier base --model video_ldm --batch 2 --device cuda
    python3 tools/torch_ref/bench.py --tier micro --model video_ldm --device cpu --steps 2

Inputs have the shapes our training stages use (`src/train/stages/`): latents at 1/8 of the
tier's key frames; image LDM: `batch` frames with labels and boxes; video LDM: `batch`
clips of T frames with context (spatial weights frozen, as stage 4 trains only temporal
layers); interpolator: `batch` clips of T + 1 frames with the fps flag; upsampler: `batch`
clips of `--frames` high-resolution patches (temporal layers trained, spatial frozen, as in
the `upsampler-video` stage) or single patches with `--frames 1` (spatial training).
Sampling uses the same shapes, times `--branches` for guidance branches batched together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from latentdrive_ref import tier_configs
from latentdrive_ref.config import UpsamplerConfig
from latentdrive_ref.model import box_layout, build
from latentdrive_ref.weights import (
    is_temporal,
    load_manifest,
    load_state,
    model_config,
    model_entry,
    model_files,
)


def make_inputs(
    cfg, model_name: str, tier_name: str, tier, batch: int, frames_arg: int | None, device, branches: int = 1
):
    """Keyword arguments of one training / sampling call and the target's shape."""
    fh, fw = tier.frame_size
    g = torch.Generator().manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g).to(device)
    if isinstance(cfg, UpsamplerConfig):
        t = frames_arg or 2
        # Training patches: a quarter of the 512×1024 frame for tiny, a half otherwise (`tiers.rs`).
        ph, pw = (fh, fw) if tier_name == "tiny" else (2 * fh, 2 * fw)
        n = batch * t * branches
        return {
            "x_t": rnd(n, 3, ph, pw),
            "timesteps": torch.full((n,), 500.0, device=device),
            "cond": rnd(n, 3, ph, pw).clamp(-1, 1),
            "level": torch.full((n,), 0.1, device=device),
            "frames": t,
        }, (n, 3, ph, pw)
    h, w = fh // 8, fw // 8
    c = cfg.in_channels
    if model_name == "image_ldm":
        t = 1
    elif model_name == "interpolator":
        t = frames_arg or tier.window + 1
    else:
        t = frames_arg or tier.window
    n = batch * t * branches
    kw = {
        "x": rnd(n, c, h, w),
        "timesteps": torch.full((n,), 500.0, device=device),
        "frames": t,
        "time_of_day": torch.randint(0, 2, (n,), generator=g).to(device),
        "crowdedness": torch.randint(0, 4, (n,), generator=g).to(device),
    }
    if cfg.boxes is not None and model_name == "image_ldm":
        boxes = [[[0.1, 0.5, 0.35, 0.8], [0.55, 0.45, 0.7, 0.62]] for _ in range(n)]
        coords, present, layout = box_layout(boxes, cfg.boxes.slots, h, w)
        kw.update(box_coords=coords.to(device), box_present=present.to(device), box_layout=layout.to(device))
    if cfg.video is not None and cfg.video.context_channels is not None:
        m = torch.zeros(n, 1, h, w)
        m[::t] = 1.0  # frame 0 of each clip known
        z = torch.randn(n, cfg.video.context_channels, h, w, generator=g)
        kw["context"] = torch.cat([z * m, m], 1).to(device)
    if cfg.video is not None and cfg.video.fps_flag:
        kw["fps_stage"] = torch.zeros(n, dtype=torch.long, device=device)
    return kw, (n, cfg.out_channels, h, w)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def time_steps(fn, steps: int, warmup: int, device) -> dict:
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    return {"ms": dt * 1e3, "it_s": 1.0 / dt}


def bench_mode(args, cfg, tier, device, compiled: bool) -> dict:
    torch.manual_seed(0)
    model = build(cfg).to(device)
    if args.weights:
        spatial, temporal = model_files(args.weights, model_entry(load_manifest(args.weights), args.model))
        has_temporal = any(is_temporal(k) for k in model.state_dict())
        load_state(model, spatial, temporal if has_temporal else None)
    video = (cfg.unet.video if isinstance(cfg, UpsamplerConfig) else cfg.video) is not None
    freeze = video if args.freeze_spatial == "auto" else args.freeze_spatial == "on"
    for name, p in model.named_parameters():
        p.requires_grad_(is_temporal(name) or not freeze)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=device.type == "cuda")
    ema = [p.detach().clone() for p in params] if args.ema else None
    amp = args.dtype != "fp32"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.dtype)
    scaler = torch.amp.GradScaler(device.type) if args.dtype == "fp16" else None

    kw, out_shape = make_inputs(cfg, args.model, args.tier, tier, args.batch, args.frames, device)
    target = torch.randn(*out_shape, device=device)
    fwd = torch.compile(model, mode=args.compile_mode) if compiled else model

    def train_step():
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            loss = F.mse_loss(fwd(**kw).float(), target)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - 0.999)

    res = {"mode": "compile" if compiled else "eager"}
    try:
        t0 = time.perf_counter()
        model.train()
        train_step()  # first call: compilation for torch.compile
        sync(device)
        res["first_train_step_s"] = time.perf_counter() - t0
        peak_reset(device)
        r = time_steps(train_step, args.steps, args.warmup, device)
        res.update(train_ms=r["ms"], train_it_s=r["it_s"], train_peak_mib=peak_mib(device))

        skw, _ = make_inputs(cfg, args.model, args.tier, tier, args.batch, args.frames, device, args.branches)
        model.eval()

        def sample_step():
            with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                return fwd(**skw)

        t0 = time.perf_counter()
        sample_step()
        sync(device)
        res["first_sample_step_s"] = time.perf_counter() - t0
        peak_reset(device)
        r = time_steps(sample_step, args.steps, args.warmup, device)
        res.update(sample_ms=r["ms"], sample_it_s=r["it_s"], sample_peak_mib=peak_mib(device))
    except Exception as e:  # noqa: BLE001 -- torch.compile may not work on every setup: report, do not hide
        res["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    res["params_total"] = sum(p.numel() for p in model.parameters())
    res["params_trained"] = sum(p.numel() for p in params)
    res["batch_shape"] = list(out_shape)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tier", default="base", choices=["micro", "tiny", "base"])
    ap.add_argument("--model", default="video_ldm", choices=["image_ldm", "video_ldm", "interpolator", "upsampler"])
    ap.add_argument("--weights", help="take the config (and weights) from this folder's manifest instead of the preset")
    ap.add_argument("--batch", type=int, default=2, help="frames (image LDM) or clips (video models, upsampler)")
    ap.add_argument(
        "--frames", type=int, help="frames per clip (default: T, T+1 for the interpolator, 2 for the upsampler)"
    )
    ap.add_argument("--branches", type=int, default=1, help="guidance branches batched into one sampling call")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="fp32, or autocast to bf16/fp16")
    ap.add_argument(
        "--tf32",
        choices=["on", "off"],
        default="off",
        help="TF32 for matmuls and convolutions (off: true f32, as burn's f32)",
    )
    ap.add_argument(
        "--compile", choices=["off", "on", "both"], default="both", help="eager only, compiled only, or both (default)"
    )
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default, reduce-overhead, max-autotune)")
    ap.add_argument(
        "--freeze-spatial",
        choices=["auto", "on", "off"],
        default="auto",
        help="train temporal parameters only (auto: for video models, as our stages do)",
    )
    ap.add_argument("--no-ema", dest="ema", action="store_false", help="skip the EMA update")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()

    device = torch.device(args.device)
    tf32 = args.tf32 == "on"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    tier = tier_configs(args.tier)
    cfg = model_config(args.weights, args.model) if args.weights else getattr(tier, args.model)
    if isinstance(cfg, UpsamplerConfig) and args.frames == 1:
        # Single patches: the spatial `upsampler` stage, a model without temporal layers.
        cfg = replace(cfg, unet=cfg.unet.image_config())

    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    out = {
        "what": "latentdrive torch reference: denoiser training step and sampling step",
        "tier": args.tier,
        "model": args.model,
        "config": asdict(cfg),
        "batch": args.batch,
        "branches": args.branches,
        "dtype": args.dtype,
        "tf32": tf32,
        "steps": args.steps,
        "warmup": args.warmup,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "results": [bench_mode(args, cfg, tier, device, c) for c in modes],
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0 if all("error" not in r for r in out["results"] if r["mode"] == "eager") else 1


if __name__ == "__main__":
    sys.exit(main())
