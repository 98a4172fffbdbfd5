//! `eval`: the held-out scene set through the generator and the evaluators, into a
//! report folder (see `latentdrive::eval::run` and `::report`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;

use latentdrive::eval::{self, Ablations, DriftOptions, EvalError, EvalOptions, Evaluators};
use latentdrive::pipeline::{
    DecoderMode, GenerateOptions, Generator, KnownFrames, Models, PipelineError, UpsampleMode,
};

use crate::generate_cmd::DeviceArg;
use crate::{InputError, PlainProgress, progress_bar};
use latentdrive::scenario::InterpolationGuess;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Weights folder of the generator.
    #[arg(long, default_value = "weights/tiny")]
    weights: PathBuf,
    /// Report folder (report.md, metrics.json, PNG plots); must not exist unless --force.
    #[arg(long)]
    report: PathBuf,
    /// Write into an existing report folder, replacing files of the same name.
    #[arg(long)]
    force: bool,
    /// Evaluators folder written by `train detector|classifier` [default: weights/eval/<tier of --weights>].
    #[arg(long)]
    evaluators: Option<PathBuf>,
    /// Held-out scenes (world seeds 2^40 + 2^20 + i).
    #[arg(long, default_value_t = 8)]
    scenes: usize,
    /// Futures per scene (diversity needs at least 2).
    #[arg(long, default_value_t = 2)]
    futures: usize,
    /// Seconds per future (2.8 s = 8 key frames: one prediction window of the tiny tier).
    #[arg(long, default_value_t = 2.8)]
    seconds: f32,
    /// DDIM steps of the latent models.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// DDIM η.
    #[arg(long, default_value_t = 0.0)]
    eta: f64,
    /// Label (classifier-free) guidance scale.
    #[arg(long, default_value_t = 2.0)]
    label_guidance: f64,
    /// Box guidance scale of frame 0 (as `generate --box-guidance`) [default: the label guidance,
    /// boxes and labels guided together].
    #[arg(long)]
    box_guidance: Option<f64>,
    /// Context guidance scale (1 = off).
    #[arg(long, default_value_t = 1.5)]
    context_guidance: f64,
    /// Context frames carried between prediction windows (1 or 2).
    #[arg(long, default_value_t = 2)]
    context_frames: usize,
    /// Interpolate to 10 Hz (judged at 10 Hz against 10 Hz world renders).
    #[arg(long)]
    interpolate: bool,
    /// Decode frame by frame with the image decoder instead of the temporal decoder.
    #[arg(long)]
    per_frame_decoder: bool,
    /// Video models see their known frames through the context encoder only (as in the paper).
    #[arg(long)]
    context_only: bool,
    /// Upsample 4× with the video upsampler (frames are judged scaled back to key-frame size; slow on CPU).
    #[arg(long)]
    upsample: bool,
    /// DDIM steps of the upsampler.
    #[arg(long, default_value_t = latentdrive::pipeline::DEFAULT_UPSAMPLE_STEPS)]
    upsample_steps: usize,
    /// Share of each upsampled frame's noises (its start noise and its condition's augmentation
    /// noise) moved on from the frame before it by the ego's travel (as `generate
    /// --upsample-noise`; with --upsample).
    #[arg(long, default_value_t = latentdrive::pipeline::DEFAULT_UPSAMPLE_NOISE, value_parser = crate::generate_cmd::parse_share)]
    upsample_noise: f32,
    /// Also run one long future per scene of this many seconds and report Fréchet distance per segment.
    #[arg(long)]
    drift_seconds: Option<f32>,
    /// Segment length of the drift measurement in seconds.
    #[arg(long, default_value_t = 3.2)]
    drift_segment: f32,
    /// Ablation: DDIM step counts, e.g. `5,10,20`.
    #[arg(long, value_delimiter = ',')]
    ablate_steps: Vec<usize>,
    /// Ablation: label guidance scales, e.g. `0,1,2,4`.
    #[arg(long, value_delimiter = ',')]
    ablate_label_guidance: Vec<f64>,
    /// Ablation: box guidance scales of frame 0, e.g. `2,4,6`.
    #[arg(long, value_delimiter = ',')]
    ablate_box_guidance: Vec<f64>,
    /// Share of the interpolator's steps started from the blend of its keys (as `generate
    /// --interpolation-guide`; with --interpolate).
    #[arg(long, default_value_t = latentdrive::scenario::DEFAULT_INTERPOLATION_GUIDE, value_parser = crate::generate_cmd::parse_share)]
    interpolation_guide: f32,
    /// What the interpolation guide holds the in-between frames to, `ego` or `blend` (as
    /// `generate --interpolation-guess`).
    #[arg(long, default_value = latentdrive::scenario::DEFAULT_INTERPOLATION_GUESS.name())]
    interpolation_guess: InterpolationGuess,
    /// Share of the prediction model's steps started from the last context frame moved on by
    /// the ego's travel (as `generate --prediction-guide`).
    #[arg(long, default_value_t = latentdrive::scenario::DEFAULT_PREDICTION_GUIDE, value_parser = crate::generate_cmd::parse_share)]
    prediction_guide: f32,
    /// Ablation: prediction guide shares, e.g. `0,0.3,0.6`.
    #[arg(long, value_delimiter = ',', value_parser = crate::generate_cmd::parse_share)]
    ablate_prediction_guide: Vec<f32>,
    /// How the prediction guide's hold falls off where its guess is poor (as `generate
    /// --prediction-guide-falloff`).
    #[arg(long, default_value_t = latentdrive::scenario::DEFAULT_PREDICTION_GUIDE_FALLOFF, value_parser = crate::generate_cmd::parse_falloff)]
    prediction_guide_falloff: f32,
    /// Ablation: prediction guide falloffs, e.g. `0,0.25,0.5`.
    #[arg(long, value_delimiter = ',', value_parser = crate::generate_cmd::parse_falloff)]
    ablate_prediction_guide_falloff: Vec<f32>,
    /// Share of each new frame's start noise moved on from the last context frame's by the
    /// ego's travel (as `generate --prediction-noise`).
    #[arg(long, default_value_t = latentdrive::scenario::DEFAULT_PREDICTION_NOISE, value_parser = crate::generate_cmd::parse_share)]
    prediction_noise: f32,
    /// Share of each interpolated in-between frame's start noise moved on from the key's before
    /// it by the ego's travel (as `generate --interpolation-noise`).
    #[arg(long, default_value_t = latentdrive::scenario::DEFAULT_INTERPOLATION_NOISE, value_parser = crate::generate_cmd::parse_share)]
    interpolation_noise: f32,
    /// Ablation: prediction noise shares, e.g. `0,0.5,0.9`.
    #[arg(long, value_delimiter = ',', value_parser = crate::generate_cmd::parse_share)]
    ablate_prediction_noise: Vec<f32>,
    /// Ablation: context guidance scales, 1 = off, e.g. `1,1.5,3`.
    #[arg(long, value_delimiter = ',')]
    ablate_context_guidance: Vec<f64>,
    /// Ablation: temporal decoder vs per-frame image decoder.
    #[arg(long)]
    ablate_decoder: bool,
    /// Ablation: video-fine-tuned vs per-frame upsampler (expensive: 4× frames on the CPU).
    #[arg(long)]
    ablate_upsampler: bool,
    /// Ablation: known frames held in the sample vs given through the context encoder only.
    #[arg(long)]
    ablate_known_frames: bool,
    /// Principal components of frame features for the Fréchet distance (needs more frames than this).
    #[arg(long, default_value_t = 16)]
    frame_components: usize,
    /// Principal components of clip features for the Fréchet distance (needs more videos than this).
    #[arg(long, default_value_t = 8)]
    clip_components: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

static CANCEL: AtomicBool = AtomicBool::new(false);

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    let _ = ctrlc::set_handler(|| CANCEL.store(true, Ordering::Relaxed));
    let finite = |v: f64| v.is_finite() && v >= 0.0;
    let guidance = [a.label_guidance, a.context_guidance].into_iter().chain(a.box_guidance);
    let ablated = [&a.ablate_label_guidance, &a.ablate_box_guidance, &a.ablate_context_guidance];
    if !guidance.chain(ablated.into_iter().flatten().copied()).all(finite) {
        return Err(InputError("guidance scales must be finite and ≥ 0".into()).into());
    }
    if a.steps == 0 || a.ablate_steps.contains(&0) || a.futures == 0 {
        return Err(InputError("--steps, --futures and every --ablate-steps value must be at least 1".into()).into());
    }
    if a.report.exists() && !a.force {
        return Err(InputError(format!(
            "report folder {} already exists (use --force to write into it)",
            a.report.display()
        ))
        .into());
    }
    let opts = EvalOptions {
        scenes: a.scenes,
        generate: GenerateOptions {
            futures: a.futures,
            seconds: a.seconds,
            context_frames: a.context_frames,
            steps: a.steps,
            eta: a.eta,
            label_guidance: a.label_guidance,
            box_guidance: a.box_guidance,
            context_guidance: a.context_guidance,
            interpolate: a.interpolate,
            decoder: if a.per_frame_decoder { DecoderMode::PerFrame } else { DecoderMode::Temporal },
            upsample: if a.upsample { UpsampleMode::Video } else { UpsampleMode::Off },
            upsample_steps: a.upsample_steps,
            upsample_level: 20,
            known_frames: if a.context_only { KnownFrames::ContextOnly } else { KnownFrames::Replace },
            interpolation_guide: a.interpolation_guide,
            interpolation_guess: a.interpolation_guess,
            prediction_guide: a.prediction_guide,
            prediction_guide_falloff: a.prediction_guide_falloff,
            prediction_noise: a.prediction_noise,
            interpolation_noise: a.interpolation_noise,
            upsample_noise: a.upsample_noise,
        },
        drift: a.drift_seconds.map(|seconds| DriftOptions { seconds, segment_s: a.drift_segment }),
        ablations: Ablations {
            steps: a.ablate_steps.clone(),
            label_guidance: a.ablate_label_guidance.clone(),
            box_guidance: a.ablate_box_guidance.clone(),
            context_guidance: a.ablate_context_guidance.clone(),
            prediction_guide: a.ablate_prediction_guide.clone(),
            prediction_noise: a.ablate_prediction_noise.clone(),
            prediction_guide_falloff: a.ablate_prediction_guide_falloff.clone(),
            decoder: a.ablate_decoder,
            upsampler: a.ablate_upsampler,
            known_frames: a.ablate_known_frames,
        },
        components: (a.frame_components, a.clip_components),
    };
    match a.device {
        DeviceArg::Cpu => run::<burn::backend::Flex>(&a, &opts, Default::default()),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda => {
            latentdrive::app::Device::Cuda.ready().map_err(anyhow::Error::msg)?;
            run::<burn::backend::Cuda>(&a, &opts, Default::default())
        }
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda => Err(InputError(latentdrive::app::NO_CUDA.into()).into()),
    }
}

fn run<B: Backend>(a: &EvalArgs, opts: &EvalOptions, device: B::Device) -> Result<ExitCode> {
    let input = |e: PipelineError| -> anyhow::Error {
        if e.is_input_error() { InputError(e.to_string()).into() } else { e.into() }
    };
    let models = Models::<B>::load(&a.weights, &device).map_err(input)?;
    let evaluators_dir = a.evaluators.clone().unwrap_or_else(|| eval::default_evaluators_dir(models.tier));
    let evaluators = Evaluators::<B>::load(&evaluators_dir, &device).map_err(|e| {
        InputError(format!(
            "evaluators in {}: {e}\n(train them with `latentdrive train detector --tier {t}` and `latentdrive train \
             classifier --tier {t}`, or pass --evaluators DIR)",
            evaluators_dir.display(),
            t = models.tier.dir_name()
        ))
    })?;
    let generator = Generator::new(models, device);
    let bar = progress_bar(1, "eval");
    let mut lines = PlainProgress::without_terminal("eval", 1);
    let mut on_progress = |p: eval::EvalProgress<'_>| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(p.what.to_string());
        if let Some(lines) = lines.as_mut() {
            lines.set_steps(p.total as u64);
            lines.print_step(p.done as u64, p.what);
        }
    };
    let results = eval::evaluate(&generator, &evaluators, evaluators_dir, opts, &CANCEL, &mut on_progress);
    bar.finish_and_clear();
    let results = match results {
        Err(EvalError::Pipeline(PipelineError::Cancelled)) => {
            eprintln!("cancelled: no report written");
            return Ok(ExitCode::from(130));
        }
        Err(EvalError::Options(m)) => return Err(InputError(m).into()),
        Err(EvalError::Pipeline(e)) => return Err(input(e)),
        other => other?,
    };
    let command = command_line();
    let files = eval::write_report(&results, &a.report, &command)?;
    let g = &results.generated;
    let show = |v: Option<f32>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"));
    let show64 = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"));
    println!(
        "eval: {} scenes × {} futures in {:.0} s: layout AP50 {} (world renders {}), day/night {}, crowdedness ±1 {}, \
         Fréchet² frames {} clips {}, flicker {}, continuity {}",
        opts.scenes,
        opts.generate.futures,
        results.wall_time_s,
        show(g.layout_ap50),
        show(results.reference.layout_ap50),
        show(g.day_night),
        show(g.crowdedness_within_one),
        show64(g.frechet_frames),
        show64(g.frechet_clips),
        show(g.flicker_static),
        show(g.track_continuity)
    );
    println!("report: {} ({} files)", a.report.join("report.md").display(), files.len());
    Ok(ExitCode::SUCCESS)
}

/// The command as typed (arguments with spaces quoted), for the report's header.
fn command_line() -> String {
    std::env::args()
        .enumerate()
        .map(|(i, arg)| {
            let arg = if i == 0 { "latentdrive".to_string() } else { arg };
            if arg.contains(char::is_whitespace) { format!("'{arg}'") } else { arg }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
