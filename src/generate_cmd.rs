//! `generate` and `replay`: scenario files in, run folders out (see `pipeline::output`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};

use latentdrive::pipeline::{
    self, DecoderMode, Event, GenerateOptions, Generator, KnownFrames, Models, Needs, PipelineError, RunRequest,
    UpsampleMode,
};
use latentdrive::scenario::{self, InterpolationGuess, Scenario};

use crate::{InputError, PlainProgress, progress_bar};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DeviceArg {
    /// burn's Flex CPU backend (bit-identical reruns).
    #[default]
    Cpu,
    /// burn-cuda (needs a binary built with `--features cuda`).
    Cuda,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Scenario files, folders of `*.ron`, or `.txt` lists of paths.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output root: each scenario goes to OUT/<scenario name>/.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing run folder of the same name.
    #[arg(long)]
    force: bool,
    /// Futures per scenario [default: the scenario's rollout.futures].
    #[arg(long)]
    futures: Option<usize>,
    /// Seconds per future [default: the scenario's rollout.seconds].
    #[arg(long)]
    seconds: Option<f32>,
    /// DDIM steps of the latent models [default: the scenario's sampling.steps].
    #[arg(long)]
    steps: Option<usize>,
    /// DDIM steps of the 4× upsampler (10 measured 2% sharper than 4 at 2.5 times the time; see the README).
    #[arg(long, default_value_t = latentdrive::pipeline::DEFAULT_UPSAMPLE_STEPS)]
    upsample_steps: usize,
    /// Noise level (0 to 349) added to the upsampler's low-resolution input before it samples,
    /// as its training augments it: higher draws sharper but less faithful frames that flicker
    /// more (measured in the README, Generate step 4).
    #[arg(long, default_value_t = latentdrive::pipeline::DEFAULT_UPSAMPLE_LEVEL, value_parser = parse_level)]
    upsample_level: usize,
    /// Share (0 to 1) of each upsampled frame's noises (its start noise and its condition's
    /// augmentation noise) taken from the frame before it, moved on by the ego car's travel, so
    /// that the details the upsampler draws move with the road (README, Generate, "Upsample
    /// noise"); 0 draws each frame's own.
    #[arg(long, default_value_t = latentdrive::pipeline::DEFAULT_UPSAMPLE_NOISE, value_parser = parse_share)]
    upsample_noise: f32,
    /// Stop at key-frame size (128×256 for tiny): a quick preview.
    #[arg(long)]
    no_upsample: bool,
    /// Keep the 2.5 Hz key frames (no interpolation to 10 Hz).
    #[arg(long)]
    no_interpolate: bool,
    /// Guidance scale of the car boxes in frame 0 apart from the conditions (≥ 0; on the shipped
    /// tiny weights scales above the label guidance found fewer of the requested cars, README
    /// "Box guidance") [default: the scenario's sampling.box_guidance; absent, its label_guidance,
    /// which guides boxes and conditions together].
    #[arg(long, value_parser = parse_guidance)]
    box_guidance: Option<f64>,
    /// Share of the interpolator's DDIM steps (0 to 1) for which each in-between frame is held
    /// to the straight line between its two keys' latents, so that sampling starts from that
    /// blend (SDEdit) instead of from noise; 0 samples as the paper does [default: the
    /// scenario's sampling.interpolation_guide, which defaults to 1].
    #[arg(long, value_parser = parse_share)]
    interpolation_guide: Option<f32>,
    /// What the interpolation guide holds the in-between frames to: `blend` (the straight line
    /// between the keys' latents) or `ego` (the two keys moved towards each other by the ego
    /// car's travel, fitted to how far they moved, and blended) [default: the scenario's
    /// sampling.interpolation_guess, which defaults to blend].
    #[arg(long)]
    interpolation_guess: Option<InterpolationGuess>,
    /// Share of the prediction model's DDIM steps (0 to 1) for which each new frame is held to
    /// the window's last context frame moved on by the ego car's travel (road and roadside
    /// geometry, requested boxes kept in place), so that sampling starts from that guess
    /// (SDEdit) instead of from noise; 0 samples as the paper does [default: the scenario's
    /// sampling.prediction_guide, which defaults to 0.5].
    #[arg(long, value_parser = parse_share)]
    prediction_guide: Option<f32>,
    /// How the prediction guide's hold falls off where its guess is poor (0 to 4): each latent
    /// cell of a new frame is held for seen · min(1, J)^falloff of the guide's steps, J being
    /// the area of the last context frame the warp pulls it from (below 1 where it magnifies
    /// that frame's blur); 0 holds every cell for all the steps [default: the scenario's
    /// sampling.prediction_guide_falloff, which defaults to 0.25].
    #[arg(long, value_parser = parse_falloff)]
    prediction_guide_falloff: Option<f32>,
    /// Share (0 to 1) of each new frame's start noise in a prediction window taken from the last
    /// context frame's noise moved on by the ego car's travel, so that the details drawn from it
    /// move with the road; 0 draws every frame's noise on its own, as the paper does [default:
    /// the scenario's sampling.prediction_noise, which defaults to 0].
    #[arg(long, value_parser = parse_share)]
    prediction_noise: Option<f32>,
    /// Share (0 to 1) of each interpolated in-between frame's start noise taken from the noise
    /// of the key before it moved on by the ego car's travel [default: the scenario's
    /// sampling.interpolation_noise, which defaults to 0.9].
    #[arg(long, value_parser = parse_share)]
    interpolation_noise: Option<f32>,
    /// Decode frame by frame with the image decoder instead of the temporal decoder.
    #[arg(long)]
    per_frame_decoder: bool,
    /// Upsample frame by frame (spatial layers only) instead of the video upsampler.
    #[arg(long)]
    per_frame_upsampler: bool,
    /// Give the video models their context and key frames through the context encoder only, as
    /// in the paper, instead of also holding them in the sample at every step.
    #[arg(long)]
    context_only: bool,
    /// Weights folder [default: the scenario's model.weights, else weights/<tier>].
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Generate only the scenarios i, i+n, i+2n, … of the sorted input list (0-based `i/n`).
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Futures sampled at once, one thread each [default: one per CPU core]. The frames
    /// are bit-identical for any value.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A run folder written by `generate`.
    run: PathBuf,
    /// Weights folder [default: the one recorded in metadata.json].
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("expected i/n with 0 <= i < n, found {s:?}");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (i.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// A share from 0 to 1 (`--interpolation-guide`, `--prediction-guide`).
pub(crate) fn parse_share(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to 1, found {s:?}")),
    }
}

/// A prediction guide falloff (`--prediction-guide-falloff`): from 0 to
/// [`latentdrive::scenario::MAX_PREDICTION_GUIDE_FALLOFF`].
pub(crate) fn parse_falloff(s: &str) -> Result<f32, String> {
    let max = latentdrive::scenario::MAX_PREDICTION_GUIDE_FALLOFF;
    match s.trim().parse::<f32>() {
        Ok(v) if (0.0..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to {max}, found {s:?}")),
    }
}

/// A guidance scale (`--box-guidance`): a finite number ≥ 0.
pub(crate) fn parse_guidance(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a number ≥ 0, found {s:?}")),
    }
}

/// An upsampler augmentation level it trained on (`--upsample-level`).
fn parse_level(s: &str) -> Result<usize, String> {
    let levels = latentdrive::pipeline::UPSAMPLE_LEVELS;
    match s.trim().parse::<usize>() {
        Ok(v) if v < levels => Ok(v),
        _ => Err(format!("expected a level from 0 to {}, found {s:?}", levels - 1)),
    }
}

/// Maps pipeline errors on the user's input to exit code 2.
fn classify(e: PipelineError) -> anyhow::Error {
    if e.is_input_error() { InputError(e.to_string()).into() } else { e.into() }
}

static CANCEL: AtomicBool = AtomicBool::new(false);

/// Runs `$body` with `B` bound to the requested backend and `$device` to its device.
macro_rules! on_backend {
    ($arg:expr, |$device:ident: $b:ident, $name:ident| $body:expr) => {
        match $arg {
            DeviceArg::Cpu => {
                type $b = burn::backend::Flex;
                let $device: burn::tensor::Device<$b> = Default::default();
                let $name = "cpu (burn Flex)";
                $body
            }
            #[cfg(feature = "cuda")]
            DeviceArg::Cuda => {
                latentdrive::app::Device::Cuda.ready().map_err(anyhow::Error::msg)?;
                type $b = burn::backend::Cuda;
                let $device: burn::tensor::Device<$b> = Default::default();
                let $name = "cuda:0 (burn-cuda)";
                $body
            }
            #[cfg(not(feature = "cuda"))]
            DeviceArg::Cuda => Err(InputError(latentdrive::app::NO_CUDA.into()).into()),
        }
    };
}

pub fn generate(a: GenerateArgs) -> Result<ExitCode> {
    let _ = ctrlc::set_handler(|| CANCEL.store(true, Ordering::Relaxed));
    let mut files = Vec::new();
    for input in &a.inputs {
        files.extend(scenario::collect_scenario_files(input)?);
    }
    if files.is_empty() {
        return Err(
            InputError("no scenario files found (expected .ron files, folders of them, or .txt lists)".into()).into()
        );
    }
    if let Some((i, n)) = a.shard {
        files = files.into_iter().enumerate().filter(|(j, _)| j % n == i).map(|(_, f)| f).collect();
        if files.is_empty() {
            println!("shard {i}/{n}: no scenarios");
            return Ok(ExitCode::SUCCESS);
        }
    }
    // Every scenario is checked before the first one starts.
    let mut scenarios = Vec::new();
    let mut bad = 0;
    for (path, result) in scenario::load_many(&files) {
        match result {
            Ok(s) => scenarios.push((path, s)),
            Err(e) => {
                bad += 1;
                eprintln!("{e}");
            }
        }
    }
    if bad > 0 {
        return Err(InputError(format!("{bad} invalid scenario file(s); nothing generated")).into());
    }
    for (_, s) in &scenarios {
        let dir = a.out.join(&s.name);
        if dir.exists() && !a.force {
            return Err(InputError(format!(
                "run folder {} already exists (use --force to replace it, or another --out)",
                dir.display()
            ))
            .into());
        }
    }
    std::fs::create_dir_all(&a.out)
        .map_err(|e| InputError(format!("cannot create output folder {}: {e}", a.out.display())))?;
    on_backend!(a.device, |device: B, name| generate_all::<B>(&a, &scenarios, device, name))
}

fn options(a: &GenerateArgs, s: &Scenario) -> GenerateOptions {
    let mut o = GenerateOptions::from_scenario(s);
    o.futures = a.futures.unwrap_or(o.futures);
    o.seconds = a.seconds.unwrap_or(o.seconds);
    o.steps = a.steps.unwrap_or(o.steps);
    o.upsample_steps = a.upsample_steps;
    o.upsample_level = a.upsample_level;
    o.upsample_noise = a.upsample_noise;
    o.interpolate = !a.no_interpolate;
    o.box_guidance = a.box_guidance.or(o.box_guidance);
    o.interpolation_guide = a.interpolation_guide.unwrap_or(o.interpolation_guide);
    o.interpolation_guess = a.interpolation_guess.unwrap_or(o.interpolation_guess);
    o.prediction_guide = a.prediction_guide.unwrap_or(o.prediction_guide);
    o.prediction_guide_falloff = a.prediction_guide_falloff.unwrap_or(o.prediction_guide_falloff);
    o.prediction_noise = a.prediction_noise.unwrap_or(o.prediction_noise);
    o.interpolation_noise = a.interpolation_noise.unwrap_or(o.interpolation_noise);
    o.decoder = if a.per_frame_decoder { DecoderMode::PerFrame } else { DecoderMode::Temporal };
    if a.context_only {
        o.known_frames = KnownFrames::ContextOnly;
    }
    o.upsample = match (a.no_upsample, a.per_frame_upsampler) {
        (true, _) => UpsampleMode::Off,
        (false, true) => UpsampleMode::PerFrame,
        (false, false) => UpsampleMode::Video,
    };
    o
}

fn weights_dir(a: &GenerateArgs, s: &Scenario) -> PathBuf {
    a.weights
        .clone()
        .or_else(|| s.model.weights.clone())
        .unwrap_or_else(|| Path::new("weights").join(s.model.tier.dir_name()))
}

fn generate_all<B: Backend>(
    a: &GenerateArgs,
    scenarios: &[(PathBuf, Scenario)],
    device: B::Device,
    device_name: &str,
) -> Result<ExitCode> {
    let mut loaded: Option<(PathBuf, Generator<B>)> = None;
    for (path, s) in scenarios {
        let dir = weights_dir(a, s);
        if loaded.as_ref().is_none_or(|(d, _)| *d != dir) {
            // The switches (not the scenario) decide which optional models a run uses.
            let needs = Needs::of(&options(a, s));
            let models = Models::<B>::load_for(&dir, &device, needs).map_err(classify)?;
            let mut generator = Generator::new(models, device.clone());
            if let Some(n) = a.threads {
                generator = generator.with_threads(n.into());
            }
            loaded = Some((dir.clone(), generator));
        }
        let generator = &loaded.as_ref().expect("loaded above").1;
        let request = RunRequest { scenario: s.clone(), options: options(a, s), scenario_file: Some(path.clone()) };
        let plan = generator.plan(s, &request.options).map_err(classify).with_context(|| path.display().to_string())?;
        let out = a.out.join(&s.name);
        if out.exists() {
            std::fs::remove_dir_all(&out).with_context(|| format!("cannot replace {}", out.display()))?;
        }
        // One bar for frame 0 and one per future, each with its current stage.
        let bars = indicatif::MultiProgress::new();
        let frame0 = bars.add(progress_bar(plan.first_frame_units as u64, &format!("{} frame 0", s.name)));
        let futures = request.options.futures;
        let future_bars: Vec<_> = (0..futures)
            .map(|k| bars.add(progress_bar(plan.future_units as u64, &format!("future {}/{futures}", k + 1))))
            .collect();
        let mut lines = PlainProgress::without_terminal(&s.name, plan.total_units as u64);
        let mut on_event = |e: Event| {
            if let Event::Step { future, phase, done, .. } = e {
                let bar = future.map_or(&frame0, |k| &future_bars[k]);
                bar.inc(1);
                bar.set_message(phase.name());
                if let Some(lines) = lines.as_mut() {
                    lines.print_step(done as u64, phase.name());
                }
            }
        };
        let summary = pipeline::generate_to_dir(generator, &request, &out, device_name, &mut on_event, &CANCEL);
        for bar in std::iter::once(&frame0).chain(&future_bars) {
            bar.finish_and_clear();
        }
        let summary = match summary {
            Err(PipelineError::Cancelled) => {
                eprintln!("cancelled: {} is incomplete (no metadata.json)", out.display());
                return Ok(ExitCode::from(130));
            }
            other => other.map_err(classify)?,
        };
        let p = &summary.plan;
        println!(
            "{}: {} future(s) × {} frames ({}×{} at {} Hz) in {:.1} s → {}",
            s.name,
            futures,
            p.frames_per_future,
            p.frame_size.1,
            p.frame_size.0,
            p.fps,
            summary.timings.total,
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn replay(a: ReplayArgs) -> Result<ExitCode> {
    let _ = ctrlc::set_handler(|| CANCEL.store(true, Ordering::Relaxed));
    let meta = pipeline::output::read_metadata(&a.run).map_err(|e| InputError(e.to_string()))?;
    let bar = progress_bar(meta.plan.total_units as u64, "replay");
    let mut lines = PlainProgress::without_terminal("replay", meta.plan.total_units as u64);
    let mut on_event = |e: Event| {
        if let Event::Step { done, phase, .. } = e {
            bar.set_position(done as u64);
            bar.set_message(phase.name());
            if let Some(lines) = lines.as_mut() {
                lines.print_step(done as u64, phase.name());
            }
        }
    };
    let report = on_backend!(a.device, |device: B, name| {
        pipeline::replay::<B>(&a.run, a.weights.as_deref(), device, name, &mut on_event, &CANCEL).map_err(classify)
    })?;
    bar.finish_and_clear();
    if report.identical() {
        println!("replay of {}: all {} files bit-identical", a.run.display(), report.compared);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "replay of {}: {} of {} files differ, {} missing from the replay, {} extra",
        a.run.display(),
        report.differing.len(),
        report.compared,
        report.missing.len(),
        report.extra.len()
    );
    for p in report.differing.iter().take(20) {
        println!("  differs: {}", p.display());
    }
    for p in report.missing.iter().take(20) {
        println!("  missing: {}", p.display());
    }
    // Bit-identical replays hold for the same build on the CPU; say when this is another.
    let this = (env!("CARGO_PKG_VERSION"), pipeline::output::git_commit());
    if (meta.latentdrive_version.as_str(), meta.git_commit.clone()) != this {
        let commit = |c: &Option<String>| c.as_deref().map_or("unknown".to_string(), |c| c.chars().take(12).collect());
        println!(
            "note: the run was made by latentdrive {} (commit {}); this is {} (commit {}). Another build may round \
             differently (a changed kernel, a new model path); replay with the build that made the run to check it.",
            meta.latentdrive_version,
            commit(&meta.git_commit),
            this.0,
            commit(&this.1)
        );
    }
    Ok(ExitCode::from(1))
}
