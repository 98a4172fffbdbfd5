//! Per-channel statistics of an autoencoder's latent on held-out renders, and how much
//! the decoder's output moves per unit of each latent channel — why a latent is easy or
//! hard for a small denoiser ("diffusability"): a channel with little variance but a
//! large decoder gain turns small denoising errors into visible texture.
//!
//! `cargo run --release --no-default-features --example latent_stats -- weights/tiny [frames]`
//!
//! Prints, per channel: the mean and std of the posterior mean `z · latent_scale` over 32
//! held-out frames (world seeds from the evaluation range), and the decoder gain: the mean
//! absolute pixel change (8-bit levels) when N(0, 0.1²) noise is added to that channel
//! alone, in scaled-latent units (what a denoiser's error of 0.1 costs).

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use latentdrive::model::AutoencoderConfig;
use latentdrive::train::FrameSource;
use latentdrive::weights::{Manifest, Part, TemporalInit, load_parts};
use std::path::PathBuf;

type B = Flex;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: latent_stats WEIGHTS_DIR [frames]")?);
    let n: usize = args.next().map_or(Ok(32), |s| s.parse()).context("frames: a count")?;
    let device = Default::default();
    let manifest = Manifest::read(&dir)?;
    let entry = manifest.model("autoencoder").context("the folder has no autoencoder")?;
    let config: AutoencoderConfig = entry.config(&Manifest::path(&dir))?;
    let file = entry.file_path(&dir, Part::Spatial)?.context("no spatial file")?;
    let ae = load_parts(config.init::<B>(&device), &file, None, TemporalInit::Require)?;
    let scale = entry.latent_scale.unwrap_or(1.0);
    let (h, w) = manifest.tier.config().frame_size;
    let x = FrameSource::new(h, w, 0).held_out::<B>(n, &device);
    let (mean, _) = ae.encoder.forward(x);
    let z = mean * scale;
    let [_, c, zh, zw] = z.dims();
    let base = ae.decoder.forward(z.clone() / scale, 1);
    println!("{} — latent {c}×{zh}×{zw}, scale {scale}", dir.display());
    println!("channel |   mean |    std | decoder gain (8-bit levels per 0.1 of noise)");
    let mut stds = Vec::new();
    for ch in 0..c {
        let zc = z.clone().narrow(1, ch, 1);
        let m: f32 = zc.clone().mean().into_scalar();
        let s: f32 = zc.clone().var(0).mean().sqrt().into_scalar();
        let noise = Tensor::<B, 4>::random([n, 1, zh, zw], Distribution::Normal(0.0, 0.1), &device);
        let bumped = z.clone().slice_assign([0..n, ch..ch + 1, 0..zh, 0..zw], zc + noise);
        let out = ae.decoder.forward(bumped / scale, 1);
        let gain: f32 = (out - base.clone()).abs().mean().into_scalar();
        println!("{ch:7} | {m:6.3} | {s:6.3} | {:.2}", gain * 127.5);
        stds.push(s);
    }
    let (lo, hi) = stds.iter().fold((f32::MAX, f32::MIN), |(a, b), &s| (a.min(s), b.max(s)));
    println!("std range {lo:.3}–{hi:.3}");
    Ok(())
}
