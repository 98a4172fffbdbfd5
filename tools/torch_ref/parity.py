#!/usr/bin/env python3
"""Parity of the PyTorch reference with the Rust models.

Runs the Rust dump (`cargo run --release --no-default-features --example torch_parity_dump`)
or reads a folder it wrote, loads the same weights into `latentdrive_ref`, runs every case
on the same inputs and prints max abs / relative differences per case. Exits 1 if any case
is over tolerance, if the reference's box rasteriser or bilinear condition disagrees, or
if the tier presets copied into `config.py` differ from the configs the Rust side wrote.

    python3 tools/torch_ref/parity.py                      # micro tier, random weights
    python3 tools/torch_ref/parity.py --tier tiny --weights weights/tiny
    python3 tools/torch_ref/parity.py --dump /tmp/parity   # a folder already dumped
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.dirname(os.path.dirname(HERE))

from latentdrive_ref import tier_configs
from latentdrive_ref.config import from_ron
from latentdrive_ref.model import box_layout
from latentdrive_ref.weights import load_manifest, load_model


def run_dump(out: str, tier: str, weights: str | None, seed: int) -> None:
    cmd = [
        "cargo",
        "run",
        "--release",
        "--no-default-features",
        "--example",
        "torch_parity_dump",
        "--",
        out,
        "--tier",
        tier,
        "--seed",
        str(seed),
    ]
    if weights:
        cmd += ["--weights", weights]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def diff(got: torch.Tensor, want: torch.Tensor) -> dict:
    d = (got.double() - want.double()).abs()
    scale = want.double().abs().max().item()
    return {
        "max_abs": d.max().item(),
        "mean_abs": d.mean().item(),
        "max_ref": scale,
        "rel": d.max().item() / max(scale, 1e-12),
    }


def run_case(model, case: dict, t: dict, dtype: torch.dtype, device="cpu"):
    """The case's output (and the upsampler's condition) from the reference model on `device`, returned on the CPU."""
    name = case["name"]
    g = lambda k: None if t.get(f"{name}.{k}") is None else t[f"{name}.{k}"].to(device)
    f = lambda k: None if g(k) is None else g(k).to(dtype)
    with torch.no_grad():
        if case["model"] == "upsampler":
            cond = model.upsample_condition(f("low"))
            out = model(f("x"), f("timesteps"), cond, f("noise_level"), case["frames"])
            return out.cpu(), cond.cpu()
        out = model(
            f("x"),
            f("timesteps"),
            frames=case["frames"],
            time_of_day=g("time_of_day"),
            crowdedness=g("crowdedness"),
            box_coords=f("box_coords"),
            box_present=f("box_present"),
            box_layout=f("box_layout"),
            context=f("context"),
            fps_stage=g("fps_stage"),
            image_only=case["image_only"],
        )
        return out.cpu(), None


def check_presets(dump: str, tier: str) -> list:
    """Configs in the dump's manifest vs `tier_configs(tier)`: the copy must not drift."""
    presets = tier_configs(tier)
    problems = []
    for entry in load_manifest(dump)["models"]:
        want = getattr(presets, entry["name"], None)
        got = from_ron(entry["config"])
        if want is not None and got != want:
            problems.append(f"{entry['name']}: manifest {got} != preset {want}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", help="a folder written by torch_parity_dump (default: run it into a temp folder)")
    ap.add_argument("--tier", default="micro", choices=["micro", "tiny", "base"])
    ap.add_argument("--weights", help="weights folder whose models replace the random ones (passed to the dump)")
    ap.add_argument("--seed", type=int, default=9)
    # Measured: ≤ 3.7e-6 abs, ≤ 2.6e-6 relative (micro, tiny, base; docs/benchmarks.md). The
    # defaults leave a margin of ~4× and still fail a tanh-approximate GELU (≈ 4e-5 relative
    # on micro), which 1e-3 would let through.
    ap.add_argument("--atol", type=float, default=1e-4, help="max abs difference allowed (f32)")
    ap.add_argument("--rtol", type=float, default=1e-5, help="max abs difference / max |reference| allowed")
    ap.add_argument("--device", default="cpu", help="where the reference runs (cpu, cuda); TF32 is off")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    tmp = None
    dump = args.dump
    if dump is None:
        tmp = tempfile.TemporaryDirectory(prefix="latentdrive-parity-")
        dump = tmp.name
        run_dump(dump, args.tier, args.weights, args.seed)
    with open(os.path.join(dump, "cases.json")) as fh:
        meta = json.load(fh)
    tensors = load_file(os.path.join(dump, "cases.safetensors"))
    tier = meta["tier"]
    failures = []

    # The configs the Rust side wrote vs the presets copied into config.py.
    for p in check_presets(dump, tier):
        failures.append(f"preset drift: {p}")

    models = {}
    results = []
    print(f"torch {torch.__version__} on {args.device}, dump {dump} (tier {tier}, seed {meta['seed']})")
    header = f"{'case':<18} {'model':<13} {'shape':<18} {'max|ref|':>9} {'max abs':>12} {'rel':>9} {'abs vs f64':>12}"
    print(header)
    print("-" * len(header))
    for case in meta["cases"]:
        name, mname = case["name"], case["model"]
        if mname not in models:
            models[mname] = load_model(dump, mname, args.device)
        model = models[mname]
        want = tensors[f"{name}.out"]
        got, cond = run_case(model, case, tensors, torch.float32, args.device)
        got64, _ = run_case(model.double(), case, tensors, torch.float64, args.device)
        model.float()
        r = diff(got, want)
        r64 = diff(got64, want)
        row = {"case": name, "model": mname, "shape": list(want.shape), **r, "max_abs_f64": r64["max_abs"]}
        ok = r["max_abs"] <= args.atol and r["rel"] <= args.rtol
        if cond is not None:
            c = diff(cond, tensors[f"{name}.cond"])
            row["cond_max_abs"] = c["max_abs"]
            if c["max_abs"] > 1e-5 * max(1.0, c["max_ref"]):
                failures.append(f"{name}: bilinear condition differs by {c['max_abs']:.3g}")
        if not ok:
            failures.append(
                f"{name}: max abs {r['max_abs']:.3g} (atol {args.atol}), rel {r['rel']:.3g} (rtol {args.rtol})"
            )
        results.append(row)
        print(
            f"{name:<18} {mname:<13} {list(want.shape)!s:<18} {r['max_ref']:>9.3f} {r['max_abs']:>12.3e} "
            f"{r['rel']:>9.2e} {r64['max_abs']:>12.3e}  {'ok' if ok else 'FAIL'}"
        )
        if cond is not None:
            print(f"{'':<18} bilinear condition (align_corners=True): max abs {row['cond_max_abs']:.3e}")
        if case.get("boxes") is not None:
            k = tensors[f"{name}.box_coords"].shape[1]
            h, w = tensors[f"{name}.box_layout"].shape[2:]
            boxes = [None if b is None else [list(map(float, x)) for x in b] for b in case["boxes"]]
            coords, present, layout = box_layout(boxes, k, h, w)
            bd = max(
                (coords - tensors[f"{name}.box_coords"]).abs().max().item(),
                (present - tensors[f"{name}.box_present"]).abs().max().item(),
                (layout - tensors[f"{name}.box_layout"]).abs().max().item(),
            )
            row["box_layout_max_abs"] = bd
            print(f"{'':<18} box tokens inputs and layout map from the reference's rasteriser: max abs {bd:.3e}")
            if bd > 1e-6:
                failures.append(f"{name}: box layout differs by {bd:.3g}")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "tier": tier,
                    "seed": meta["seed"],
                    "torch": torch.__version__,
                    "cases": results,
                    "failures": failures,
                },
                fh,
                indent=2,
            )
    if tmp is not None:
        tmp.cleanup()
    if failures:
        print("\nFAIL:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nPASS: {len(results)} cases within atol {args.atol}, rtol {args.rtol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
