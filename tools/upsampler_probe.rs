//! The upsampler's DDIM step count against what it buys, on held-out 512×1024 clips at
//! 10 Hz: each clip is rendered at 512×1024, 4×4-averaged to 128×256 and upsampled back as
//! `generate` does (`Generator::upsample_frames`: video mode, augmentation level 20), once
//! per step count from the same seed. Per step count: PSNR against the render, sharpness
//! (mean |Laplacian| of the luma over the render's: 1 = as sharp as the truth, below 1 =
//! blurred), the temporal error (`mean |Δout − Δrender|` between consecutive frames, 8-bit
//! levels) and the wall time per frame. Bilinear is the floor.
//!
//! `cargo run --release --no-default-features --example upsampler_probe -- weights/tiny [clips] [frames] [steps,...] [grid.png]`
//!
//! `UPSAMPLER_PROBE_LEVEL=L` and `UPSAMPLER_PROBE_ETA=E` replace generation's augmentation
//! level (20) and DDIM eta (the scenario default's) for the upsampler;
//! `UPSAMPLER_PROBE_MODE=per-frame` runs its spatial layers frame by frame
//! (`generate --per-frame-upsampler`) instead of the video-fine-tuned upsampler;
//! `UPSAMPLER_PROBE_NOISE=R` sets the upsample noise (`generate --upsample-noise`, default
//! 0.9 since 2026-12-07; runs of the probe before measured 0): the start and augmentation
//! noises moved from frame to frame by the ego's travel in the clip's world.
//!
//! With a PNG path it also draws a 128×256 crop (around the horizon, in the middle) of the
//! first clip's first frame, three to a row in reading order: bilinear, one per step count,
//! then the render.

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::tensor::Tensor;
use burn::tensor::module::avg_pool2d;
use latentdrive::data::{EVAL_SEED_BASE, psnr, temporal_error};
use latentdrive::eval::sharpness::laplacian_energy as energy;
use latentdrive::pipeline::{GenerateOptions, Generator, Models, UpsampleMode};
use latentdrive::scenario::parse_str;
use latentdrive::train::{FrameSource, tensor_grid};
use std::path::PathBuf;
use std::time::Instant;

type B = Flex;

/// World seed of the first clip: held out, apart from the model card's upsampler renders
/// (`EVAL_SEED_BASE + 200..204`), the decoder clips (`+ 100..`) and the interpolator clips (`+ 300..`).
const CLIP_SEED: u64 = EVAL_SEED_BASE + 400;

/// Mean |4-neighbour Laplacian| of the luma of every frame, on [-1, 1] (`eval`'s sharpness
/// measure, [`latentdrive::eval::sharpness::laplacian_energy`]).
fn laplacian_energy(x: &Tensor<B, 4>) -> f64 {
    let [n, _, h, w] = x.dims();
    let v = x.clone().into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
    let plane = h * w;
    let (mut sum, mut count) = (0.0f64, 0usize);
    for k in 0..n {
        let at = |c: usize, y: usize, x: usize| v[(k * 3 + c) * plane + y * w + x];
        let (s, c) = energy(h, w, |y, x| 0.299 * at(0, y, x) + 0.587 * at(1, y, x) + 0.114 * at(2, y, x));
        (sum, count) = (sum + s, count + c);
    }
    sum / count.max(1) as f64
}

#[derive(Default)]
struct Score {
    psnr: Vec<f64>,
    sharpness: Vec<f64>,
    temporal: Vec<f64>,
    seconds: f64,
    frames: usize,
}

impl Score {
    fn add(&mut self, out: &Tensor<B, 4>, truth: &Tensor<B, 4>, seconds: f64) {
        self.psnr.extend(psnr(out.clone(), truth.clone()));
        self.sharpness.push(laplacian_energy(out) / laplacian_energy(truth));
        self.temporal.push(temporal_error(out, truth));
        self.seconds += seconds;
        self.frames += out.dims()[0];
    }

    fn row(&self, name: &str) -> String {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        format!(
            "| {name} | {:.2} | {:.3} | {:.2} | {:.1} |",
            mean(&self.psnr),
            mean(&self.sharpness),
            mean(&self.temporal),
            self.seconds / self.frames.max(1) as f64
        )
    }
}

fn main() -> Result<()> {
    let usage = "usage: upsampler_probe WEIGHTS_DIR [clips] [frames] [steps,...] [grid.png]";
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context(usage)?);
    let clips: u64 = args.next().map_or(Ok(2), |s| s.parse()).context("clips: a count")?;
    let frames: usize = args.next().map_or(Ok(4), |s| s.parse()).context("frames: a count")?;
    let steps: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "2,4,10".into())
        .split(',')
        .map(|s| s.trim().parse().with_context(|| format!("steps: counts separated by commas, not {s:?}")))
        .collect::<Result<_>>()?;
    let grid_path = args.next().map(PathBuf::from);
    let device = Default::default();
    let generator = Generator::new(Models::<B>::load(&dir, &device)?, device);
    let (h, w) = generator.models.frame_size();
    let source = FrameSource::new(4 * h, 4 * w, 0);
    // A default scenario's sampling settings (eta, upsampler mode and level).
    let defaults = "Scenario(name: \"probe\", seed: 0, conditions: (time_of_day: Day, crowdedness: 1))";
    let mut opts = GenerateOptions::from_scenario(&parse_str(defaults, "upsampler_probe".as_ref())?);
    if let Ok(level) = std::env::var("UPSAMPLER_PROBE_LEVEL") {
        opts.upsample_level =
            level.parse().context("UPSAMPLER_PROBE_LEVEL: a level in 0..350 (generation refuses higher)")?;
    }
    match std::env::var("UPSAMPLER_PROBE_MODE").as_deref() {
        Err(_) | Ok("video") => {}
        Ok("per-frame") => opts.upsample = UpsampleMode::PerFrame,
        Ok(other) => anyhow::bail!("UPSAMPLER_PROBE_MODE: video or per-frame, not {other:?}"),
    }
    if let Ok(eta) = std::env::var("UPSAMPLER_PROBE_ETA") {
        opts.eta = eta.parse().context("UPSAMPLER_PROBE_ETA: a number in [0, 1]")?;
    }
    if let Ok(share) = std::env::var("UPSAMPLER_PROBE_NOISE") {
        opts.upsample_noise = share.parse().context("UPSAMPLER_PROBE_NOISE: a share in [0, 1]")?;
    }

    let mut bilinear = Score::default();
    let mut scores: Vec<Score> = steps.iter().map(|_| Score::default()).collect();
    let mut crops = vec![];
    // Around the horizon, where the distant cars and lane marks are.
    let crop = |t: &Tensor<B, 4>| t.clone().slice([0..1, 0..3, 3 * h / 2..5 * h / 2, 3 * w / 2..5 * w / 2]);
    for i in 0..clips {
        let (truth, _) = source.clip::<B>(CLIP_SEED + i, frames, 10.0, &generator.device);
        let ego = source.clip_ego_motion(CLIP_SEED + i, 10.0, 0);
        let ego = ego.as_ref().map(|e| (e, e.speed_mps / 10.0));
        let low = avg_pool2d(truth.clone(), [4, 4], [4, 4], [0, 0], true, false);
        let started = Instant::now();
        let up = generator.models.upsampler.as_ref().context("the weights have no upsampler")?;
        let bi = up.upsample_condition(low.clone()).clamp(-1.0, 1.0);
        bilinear.add(&bi, &truth, started.elapsed().as_secs_f64());
        if i == 0 {
            crops.push(crop(&bi));
        }
        for (score, &n) in scores.iter_mut().zip(&steps) {
            opts.upsample_steps = n;
            let started = Instant::now();
            let out = generator.upsample_frames(low.clone(), ego, &opts, i)?.clamp(-1.0, 1.0);
            score.add(&out, &truth, started.elapsed().as_secs_f64());
            if i == 0 {
                crops.push(crop(&out));
            }
            eprint!(".");
        }
        if i == 0 {
            crops.push(crop(&truth));
        }
    }
    eprintln!();
    if let Some(path) = &grid_path {
        // Three crops a row, in reading order; a short last row is filled with grey.
        let blank = crops[0].zeros_like();
        crops.resize(crops.len().div_ceil(3) * 3, blank);
        let rows: Vec<_> = crops.chunks(3).map(|row| Tensor::cat(row.to_vec(), 0)).collect();
        tensor_grid(&rows).save(path).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "{}: {clips} held-out 10 Hz clips of {frames} frames at {}×{} from 4×4-averaged {h}×{w}, {:?} upsampler, \
         level {}, eta {}, upsample noise {}",
        dir.display(),
        4 * h,
        4 * w,
        opts.upsample,
        opts.upsample_level,
        opts.eta,
        opts.upsample_noise
    );
    println!();
    println!("| upsampling | PSNR (dB) | sharpness (1 = render) | temporal error | s per frame |");
    println!("|---|---|---|---|---|");
    println!("{}", bilinear.row("bilinear"));
    for (score, n) in scores.iter().zip(&steps) {
        println!("{}", score.row(&format!("{n} DDIM steps")));
    }
    Ok(())
}
