//! The `latentdrive` command line: parses arguments and calls one library function
//! per subcommand. Exit codes: 0 success, 2 bad input (scenario, arguments), 1 other failures.

mod eval_cmd;
mod generate_cmd;
mod import_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use latentdrive::data::{self, SynthOptions};
use latentdrive::eval;
use latentdrive::export::{self, ReferenceOptions};
use latentdrive::model::ModelTier;
use latentdrive::scenario::{self, ScenarioError};
use latentdrive::train;
use std::sync::atomic::{AtomicBool, Ordering};

/// mimalloc instead of the system allocator: burn-flex allocates a fresh buffer for
/// nearly every op, and the upsampler's activations (32 MiB per 8-frame chunk) are past
/// glibc's mmap threshold, so each op paid page faults for new zero pages; mimalloc
/// reuses the freed memory. Measured: 8-frame upsampler forward 8.7 s → 6.6 s on one core.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 2's `mi_option_purge_delay`: its index in `mi_option_e` (mimalloc.h); the
/// `mimalloc` crates name no constant for it.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
/// mimalloc 2's default purge delay (milliseconds), read back to check the index above.
const MI_PURGE_DELAY_DEFAULT: std::ffi::c_long = 10;

unsafe extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Keeps the memory burn-flex frees for its next ops instead of handing it back to the OS
/// 10 ms later (mimalloc's purge), which made every op fault its pages in again; what is
/// kept is reused. Measured: `train temporal-decoder --batch 2 --data-parallel 2` 7–8 s →
/// 5–6 s per step, same losses; `generate scenarios/quickstart.ron --futures 1 --seconds
/// 0.4 --threads 1` 2.79 M → 0.33 M page faults, CPU time 130.7 s → 111.7 s (sys 30.0 s →
/// 14.1 s), peak RSS 524 → 584 MB, frames bit-identical. A
/// `MIMALLOC_PURGE_DELAY` in the environment wins; the option is left alone if it does not
/// hold mimalloc 2's default (another mimalloc, another index).
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reads and writes one option of the linked mimalloc; options are plain
    // integers, and no other thread runs yet.
    unsafe {
        if mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT {
            mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

/// Driving-scene simulation with latent video diffusion.
#[derive(Parser, Debug)]
#[command(name = "latentdrive", version, about, propagate_version = true)]
struct Cli {
    /// Without a subcommand the desktop app starts (`gui`).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check scenario files (RON); prints every problem with file:line:column and field.
    Validate {
        /// Scenario files, folders of `*.ron`, or `.txt` lists of paths.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Render a scenario with the procedural world: PNG frames plus KITTI, COCO and BDD100K labels.
    Render {
        /// Scenario file (RON).
        scenario: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
        /// Seconds to render [default: the scenario's rollout.seconds].
        #[arg(long)]
        seconds: Option<f32>,
        /// Frames per second (the world ticks at 40 Hz; divisors of 40 are exact).
        #[arg(long, default_value_t = 10.0)]
        fps: f32,
        #[command(flatten)]
        size: SizeArgs,
        /// Seed of the traffic's decisions [default: derived from the scenario's seed].
        #[arg(long)]
        behaviour_seed: Option<u64>,
    },
    /// Write an on-disk dataset of procedural clips with labels and an index of conditions.
    Synth {
        #[command(flatten)]
        out: OutputArgs,
        /// Number of clips.
        #[arg(long, default_value_t = 100)]
        clips: usize,
        /// Frames per clip.
        #[arg(long, default_value_t = 8)]
        frames: usize,
        /// Frames per second.
        #[arg(long, default_value_t = 2.5)]
        fps: f32,
        #[command(flatten)]
        size: SizeArgs,
        /// Seed of the first clip; clip i uses first_seed + i.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
    },
    /// Import real driving data (KITTI tracking or object labels, BDD100K JSON) into a dataset
    /// folder in `synth`'s layout, for `train --data`.
    Import(import_cmd::ImportArgs),
    /// The desktop app: compose a scene, generate futures, play, save, replay and export.
    Gui(GuiArgs),
    /// Generate multi-future rollouts from scenario files into run folders (frames,
    /// previews, contact sheet, labels, metadata).
    Generate(generate_cmd::GenerateArgs),
    /// Regenerate a run folder from its metadata.json and check every file is bit-identical.
    Replay(generate_cmd::ReplayArgs),
    /// Evaluate a weights folder on held-out procedural scenes: layout fidelity, condition
    /// accuracy, Fréchet distances, flicker, diversity, drift and ablations, into a report folder.
    Eval(eval_cmd::EvalArgs),
    /// Train a model stage (or an evaluator) on clips streamed from the procedural world (CPU).
    Train {
        /// Which stage (`all`: every stage the weights folder lacks, in order).
        #[arg(value_enum)]
        stage: StageArg,
        #[command(flatten)]
        args: TrainArgs,
    },
    /// Weights folders: convert their storage precision.
    Weights {
        #[command(subcommand)]
        action: WeightsAction,
    },
}

#[derive(Subcommand, Debug)]
enum WeightsAction {
    /// Copy a weights folder with its tensors stored as F16 (half the bytes) or F32; the
    /// new manifest records the new files' sizes and hashes. Models compute in F32 either way.
    Convert {
        /// The weights folder to read (with manifest.ron); it is verified first and not changed.
        from: PathBuf,
        /// The new folder (created; must not hold a manifest.ron).
        to: PathBuf,
        #[arg(long, value_enum, default_value = "f16")]
        dtype: DtypeArg,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum GuessNoiseArg {
    Middle,
    Low,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum DtypeArg {
    F16,
    F32,
}

/// Options of `gui`.
#[derive(Args, Debug, Default)]
struct GuiArgs {
    /// A scenario file to open.
    file: Option<PathBuf>,
    /// Weights folder [default: the scenario's, else weights/<tier>].
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: generate_cmd::DeviceArg,
    /// Where runs are written [default: runs/gui].
    #[arg(long)]
    runs: Option<PathBuf>,
    /// Perform the actions of a driver script (RON list; see `app::drive`), e.g. for
    /// headless tests and screenshots.
    #[arg(long)]
    drive: Option<PathBuf>,
}

#[cfg(feature = "gui")]
fn gui(a: GuiArgs) -> Result<ExitCode> {
    let device = match a.device {
        generate_cmd::DeviceArg::Cpu => latentdrive::app::Device::Cpu,
        generate_cmd::DeviceArg::Cuda => latentdrive::app::Device::Cuda,
    };
    let opts =
        latentdrive::gui::GuiOptions { file: a.file, drive: a.drive, weights: a.weights, device, runs_dir: a.runs };
    latentdrive::gui::run(opts).map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "gui"))]
fn gui(_: GuiArgs) -> Result<ExitCode> {
    Err(InputError(
        "this binary was built without the desktop app: build with the default features (`cargo build --release`), \
         or run a subcommand (see --help)"
            .into(),
    )
    .into())
}

/// Stages `train` runs today.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum StageArg {
    /// Every stage whose weights the weights folder lacks, in order.
    All,
    /// KL autoencoder on single frames (L1 + edge + KL).
    Autoencoder,
    /// Fine-tunes the trained autoencoder's decoder, encoder frozen: sharper frames in the
    /// same latent space (every later stage stays valid; not part of `all`).
    Decoder,
    /// Box- and label-conditioned image LDM on the frozen autoencoder's latents.
    ImageLdm,
    /// Decoder with temporal layers, fine-tuned on clips against a 3D discriminator.
    TemporalDecoder,
    /// Prediction model: frozen image LDM + temporal layers, context frames S ∈ {0, 1, 2}.
    VideoLdm,
    /// Interpolation ×4 with the fps flag: every 4th frame known.
    Interpolator,
    /// Pixel-space 4× upsampler, spatial layers on single-frame patches.
    Upsampler,
    /// Upsampler temporal layers on clips of patches (video fine-tuning).
    UpsamplerVideo,
    /// Evaluator: CenterNet-style car detector on world renders [weights: weights/eval/<tier>].
    Detector,
    /// Evaluator: day/night + crowdedness classifier on world renders [weights: weights/eval/<tier>].
    Classifier,
    /// Evaluator: clip encoder reading the ego's speed and lane changes off 4 key frames of world
    /// renders; its features are `eval`'s clip features [weights: weights/eval/<tier>].
    ClipEncoder,
}

/// Model tiers.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum TierArg {
    /// Test-size models (16×32 frames), trained in seconds.
    Micro,
    /// Laptop-CPU models (128×256 key frames).
    Tiny,
    /// Wide models for a GPU.
    Base,
}

/// What a latent denoiser predicts (`train image-ldm --prediction`).
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum PredictionArg {
    /// The added noise ε (DDPM, LDM).
    Epsilon,
    /// The velocity v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans & Ho 2022).
    V,
}

impl From<PredictionArg> for latentdrive::diffusion::Prediction {
    fn from(p: PredictionArg) -> Self {
        match p {
            PredictionArg::Epsilon => latentdrive::diffusion::Prediction::Epsilon,
            PredictionArg::V => latentdrive::diffusion::Prediction::V,
        }
    }
}

/// How the image LDM normalises the autoencoder's latents (`train image-ldm --latent-norm`).
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum LatentNormArg {
    /// Every channel times the autoencoder's one latent scale (LDM's).
    Global,
    /// Zero mean and unit variance per channel, measured on held-out frames (EDM2's).
    Channel,
}

impl From<LatentNormArg> for train::LatentNormKind {
    fn from(a: LatentNormArg) -> Self {
        match a {
            LatentNormArg::Global => train::LatentNormKind::Global,
            LatentNormArg::Channel => train::LatentNormKind::Channel,
        }
    }
}

/// The learning rate after the warm-up (`train --lr-decay`).
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum LrDecayArg {
    /// Stays at --lr.
    Constant,
    /// Half a cosine from --lr down to --final-lr × --lr at the last of --steps.
    Cosine,
}

/// Options of `train`.
#[derive(Args, Debug, Clone)]
struct TrainArgs {
    /// Model tier.
    #[arg(long, value_enum, default_value = "tiny")]
    tier: TierArg,
    /// Total optimiser steps (a resumed run continues towards it).
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Frames (or clips) per batch.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Peak learning rate (AdamW, after a linear warm-up).
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Learning rate after the warm-up. The cosine follows --steps: a run that --minutes
    /// stops early has not decayed yet, and a run resumed with another --steps reshapes it.
    #[arg(long, value_enum, default_value = "constant")]
    lr_decay: LrDecayArg,
    /// Cosine decay only: the last step's learning rate as a fraction of --lr [default: 0.1].
    #[arg(long)]
    final_lr: Option<f64>,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f32,
    /// EMA decay of the weights that are saved. The decay used after step t is
    /// min(this, (1 + t)/(10 + t)), so a short run (at 0.999: under about 9,000 steps) averages
    /// its own recent steps whatever this is.
    #[arg(long, default_value_t = 0.999)]
    ema: f64,
    /// Steps between checkpoints (also written on Ctrl-C and at the end).
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Steps between held-out evaluations.
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// Run seed (world seeds, noise and initial weights are drawn from it and the step).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoints, log.csv and loss.png [default: runs/train/<tier>/<stage>].
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Weights folder to write [default: weights/<tier>; evaluators: weights/eval/<tier>].
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Continue from the run folder's checkpoint.
    #[arg(long)]
    resume: bool,
    /// Train on an on-disk dataset written by `synth` instead of rendering frames (its frames
    /// must be at least the stage's size; video stages need whole-frame strides to their rates).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Start the stage from the same model in this trained weights folder (e.g. weights/tiny)
    /// instead of fresh weights, to continue training it longer: autoencoder, temporal-decoder,
    /// image-ldm and upsampler whole, the temporal layers of video-ldm, interpolator and
    /// upsampler-video (on the spatial layers in --weights); not decoder. A resumed run keeps the one it started
    /// with (recorded in its run folder), as do --latent-channels and the diffusion flags.
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Latent channels of a new autoencoder (default: the tier's, 4 as in LDM's f=8 z=4). Only
    /// for the autoencoder stage: the later stages follow the autoencoder in --weights.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    latent_channels: Option<u16>,
    /// Image LDM only: what the denoiser predicts [default: epsilon, as LDM]. The video LDM and
    /// interpolator take the image LDM's (recorded in the manifest), as their spatial layers are its.
    #[arg(long, value_enum)]
    prediction: Option<PredictionArg>,
    /// Image LDM only: rescale the noise schedule to zero terminal SNR (Lin et al. 2024), so the
    /// noisiest level holds no signal and sampling from pure noise matches training; needs
    /// `--prediction v`. Generation then samples with trailing timesteps.
    #[arg(long)]
    zero_terminal_snr: bool,
    /// Image LDM only: how the autoencoder's latents are normalised for the denoisers [default:
    /// global]. `channel` gives each latent channel zero mean and unit variance (measured on 32
    /// held-out frames, recorded in the manifest) — for wide latents whose variance sits in a few
    /// channels. The video LDM and interpolator take the image LDM's.
    #[arg(long, value_enum)]
    latent_norm: Option<LatentNormArg>,
    /// Temporal decoder only: the step from which the 3D discriminator trains and its
    /// adversarial loss reaches the decoder [default: a quarter of --steps]. Set it past
    /// --steps for reconstruction only.
    #[arg(long)]
    disc_start: Option<u64>,
    /// Video LDM and interpolator only: the share of training clips noised at a timestep from
    /// the noisier half of the schedule, where the context frames decide the layout [default:
    /// 0, uniform timesteps]. 0.5 puts 3 of 4 clips there. Held-out losses stay uniform.
    #[arg(long)]
    high_noise: Option<f64>,
    /// Video LDM and interpolator only: the share of training clips with context frames whose
    /// new frames are noised from generation's guess at a timestep from the middle half of
    /// the schedule, with the true clip as the target: the model learns to correct the guess
    /// [default: 0]. The video LDM's guess is the prediction guide's (the last context frame
    /// moved on by the ego's travel, its cars held in their boxes, as `generate
    /// --prediction-guide` starts them; rendered clips only, not with --data), the
    /// interpolator's the interpolation guide's (the straight line between the known frames'
    /// latents). Held-out losses never use it.
    #[arg(long)]
    guess_share: Option<f64>,
    /// With --guess-share: where the guessed clips are noised. `middle`: timesteps from the
    /// middle half of the schedule, where a guide share below 1 hands over to free sampling;
    /// `low`: timesteps 10-99 of 1000, where the default guide share of 1 leaves the model its
    /// one (last) DDIM step, with those clips' loss taken on x̂_0 [default: middle].
    #[arg(long, value_enum)]
    guess_noise: Option<GuessNoiseArg>,
    /// Interpolator, with --guess-share: the guess its guessed clips are noised from, as
    /// `generate --interpolation-guess` makes it. `ego`: the known frames moved towards each
    /// other by the ego car's travel and blended (rendered clips; with --data, which records
    /// no ego motion, the straight line); `blend`: the straight line between the known frames'
    /// latents [default: blend, generation's default; a resumed run keeps its own].
    #[arg(long)]
    interpolation_guess: Option<latentdrive::scenario::InterpolationGuess>,
    /// Image LDM only: extra training-loss weight on car boxes. Each latent cell's squared
    /// error counts 1 + W × the fraction of it the frame's car boxes cover, normalised so the
    /// loss keeps its scale: the model spends more of its width on the cars [default: 0, a
    /// uniform loss]. Held-out losses stay uniform, so runs compare.
    #[arg(long, value_name = "W")]
    box_weight: Option<f64>,
    /// Upsampler and upsampler-video only: weight of an edge loss added to the squared error,
    /// the mean absolute difference between the neighbour differences of the prediction's
    /// x̂_0 and of the high-resolution frame. The squared error alone is minimised by the
    /// conditional mean, which blurs what the low-resolution input leaves uncertain; the edge
    /// term asks for the target's edges [default: 0]. Held-out losses stay the squared error.
    #[arg(long, value_name = "W")]
    edge_weight: Option<f64>,
    /// Backend: the CPU (bit-identical reruns) or CUDA (a binary built with `--features cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    device: generate_cmd::DeviceArg,
    /// Data-parallel replicas: each step's batch is split over N copies of the model, one per
    /// device (CUDA: GPUs 0..N) and thread (CPU: one core each), gradients averaged.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    data_parallel: u16,
    /// Wall-time budget per stage in minutes: when it runs out the stage stops as on
    /// Ctrl-C (checkpoint and EMA weights written; continue later with --resume).
    #[arg(long)]
    minutes: Option<f64>,
}

#[derive(Args, Debug)]
struct OutputArgs {
    /// Output folder (created; must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Write into an existing output folder, replacing files of the same name.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct SizeArgs {
    /// Image size as WIDTHxHEIGHT.
    #[arg(long, default_value = "256x128", value_parser = parse_size)]
    size: (u32, u32),
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("expected WIDTHxHEIGHT, found {s:?}"))?;
    let parse =
        |v: &str| v.trim().parse::<u32>().map_err(|_| format!("expected WIDTHxHEIGHT with whole numbers, found {s:?}"));
    let (w, h) = (parse(w)?, parse(h)?);
    if !(8..=4096).contains(&w) || !(8..=4096).contains(&h) {
        return Err(format!("width and height must be in 8..=4096, found {w}x{h}"));
    }
    Ok((w, h))
}

/// Errors in what the user gave us exit with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InputError(String);

fn main() -> ExitCode {
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            let input = err.chain().any(|e| e.is::<ScenarioError>() || e.is::<InputError>());
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let Some(command) = cli.command else { return gui(GuiArgs::default()) };
    match command {
        Command::Gui(args) => gui(args),
        Command::Validate { inputs } => validate(&inputs),
        Command::Train { stage, args } => train(stage, args),
        Command::Generate(args) => generate_cmd::generate(args),
        Command::Replay(args) => generate_cmd::replay(args),
        Command::Eval(args) => eval_cmd::eval(args),
        Command::Import(args) => import_cmd::import(args),
        Command::Weights { action: WeightsAction::Convert { from, to, dtype } } => convert_weights(&from, &to, dtype),
        Command::Render { scenario, out, seconds, fps, size, behaviour_seed } => {
            let s = scenario::load(&scenario)?;
            if !(fps.is_finite() && fps > 0.0 && fps <= 40.0) {
                return Err(InputError(format!("--fps must be in (0, 40], found {fps}")).into());
            }
            let seconds = seconds.unwrap_or(s.rollout.seconds);
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= 600.0) {
                return Err(InputError(format!("--seconds must be in (0, 600], found {seconds}")).into());
            }
            prepare_out(&out)?;
            let opts = ReferenceOptions { seconds, fps, width: size.size.0, height: size.size.1, behaviour_seed };
            let frames = (seconds * fps).round().max(1.0) as u64;
            let bar = progress_bar(frames, "render");
            let t0 = Instant::now();
            let summary = export::render_reference(&s, &opts, &out.out, |done| bar.set_position(done as u64))?;
            bar.finish_and_clear();
            let dt = t0.elapsed().as_secs_f64();
            println!(
                "rendered {} frames ({} labelled objects) to {} in {:.1} s ({:.0} frames/s incl. PNG encoding)",
                summary.frames,
                summary.objects,
                out.out.display(),
                dt,
                summary.frames as f64 / dt
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Synth { out, clips, frames, fps, size, first_seed } => {
            if clips == 0 || frames == 0 {
                return Err(InputError("--clips and --frames must be at least 1".into()).into());
            }
            if !(fps.is_finite() && fps > 0.0 && fps <= 40.0) {
                return Err(InputError(format!("--fps must be in (0, 40], found {fps}")).into());
            }
            prepare_out(&out)?;
            let opts = SynthOptions { clips, frames, fps, width: size.size.0, height: size.size.1, first_seed };
            let bar = progress_bar(clips as u64, "synth");
            let t0 = Instant::now();
            let index = data::write_dataset(&out.out, &opts, |p| bar.set_position(p.clips_done as u64))?;
            bar.finish_and_clear();
            println!(
                "wrote {} clips × {} frames to {} in {:.1} s",
                index.clips.len(),
                frames,
                out.out.display(),
                t0.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn convert_weights(from: &Path, to: &Path, dtype: DtypeArg) -> Result<ExitCode> {
    use latentdrive::weights::{StorageDtype, WeightsError, convert_folder};
    let dtype = match dtype {
        DtypeArg::F16 => StorageDtype::F16,
        DtypeArg::F32 => StorageDtype::F32,
    };
    let report = match convert_folder(from, to, dtype) {
        Ok(report) => report,
        // A missing source or an occupied target is the caller's input.
        Err(e @ (WeightsError::MissingFile { .. } | WeightsError::Store { .. })) => {
            return Err(InputError(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    for (path, file) in &report.files {
        println!(
            "{}: {} of {} tensors to {}, {} → {} bytes, largest rounding error {:.2e}",
            path.display(),
            file.converted,
            file.tensors,
            dtype.name(),
            file.bytes_before,
            file.bytes_after,
            file.max_abs_error
        );
    }
    let copied: Vec<String> = report.copied.iter().map(|p| p.display().to_string()).collect();
    println!(
        "wrote {} ({} tensor files, {:.1} → {:.1} MB; copied as they are: {})",
        to.display(),
        report.files.len(),
        report.bytes_before() as f64 / 1e6,
        report.bytes_after() as f64 / 1e6,
        if copied.is_empty() { "nothing".to_string() } else { copied.join(", ") }
    );
    Ok(ExitCode::SUCCESS)
}

fn train(stage: StageArg, args: TrainArgs) -> Result<ExitCode> {
    let tier = tier_of(args.tier);
    let stages = match stage {
        StageArg::All => {
            let dir = args.weights.clone().unwrap_or_else(|| PathBuf::from("weights").join(tier.dir_name()));
            let manifest = match latentdrive::weights::Manifest::read(&dir) {
                Ok(m) => Some(m),
                Err(latentdrive::weights::WeightsError::MissingFile { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let missing: Vec<_> =
                train::Stage::ALL.into_iter().filter(|s| !manifest.as_ref().is_some_and(|m| s.is_done(m))).collect();
            if missing.is_empty() {
                println!("every stage is already trained in {}", dir.display());
                return Ok(ExitCode::SUCCESS);
            }
            missing
        }
        StageArg::Detector => return train_evaluator(eval::Evaluator::Detector, tier, &args),
        StageArg::Classifier => return train_evaluator(eval::Evaluator::Classifier, tier, &args),
        StageArg::ClipEncoder => return train_evaluator(eval::Evaluator::ClipEncoder, tier, &args),
        other => vec![stage_of(other)],
    };
    if args.run_dir.is_some() && stages.len() > 1 {
        return Err(InputError("--run-dir names one stage's folder; leave it out with `train all`".into()).into());
    }
    let several = stages.len() > 1;
    for stage in stages {
        // With `all`, --resume continues the stage that has a checkpoint; the rest start fresh.
        let resume =
            args.resume && (!several || train::default_run_dir(tier, stage).join("checkpoint/state.json").exists());
        if train_one(stage, tier, &args, resume, several)?.interrupted {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tier_of(tier: TierArg) -> ModelTier {
    match tier {
        TierArg::Micro => ModelTier::Micro,
        TierArg::Tiny => ModelTier::Tiny,
        TierArg::Base => ModelTier::Base,
    }
}

fn stage_of(stage: StageArg) -> train::Stage {
    match stage {
        StageArg::All | StageArg::Autoencoder => train::Stage::Autoencoder,
        StageArg::Decoder => train::Stage::Decoder,
        StageArg::TemporalDecoder => train::Stage::TemporalDecoder,
        StageArg::ImageLdm => train::Stage::ImageLdm,
        StageArg::VideoLdm => train::Stage::VideoLdm,
        StageArg::Interpolator => train::Stage::Interpolator,
        StageArg::Upsampler => train::Stage::Upsampler,
        StageArg::UpsamplerVideo => train::Stage::UpsamplerVideo,
        StageArg::Detector | StageArg::Classifier | StageArg::ClipEncoder => {
            unreachable!("evaluators are trained by train_evaluator")
        }
    }
}

/// `Ok($body)` with `$b` bound to the autodiff backend of `--device` (on its default
/// device), or the error of a binary built without CUDA.
macro_rules! on_training_backend {
    ($device:expr, |$b:ident| $body:expr) => {
        match $device {
            generate_cmd::DeviceArg::Cpu => {
                type $b = burn::backend::Autodiff<burn::backend::Flex>;
                Ok($body)
            }
            #[cfg(feature = "cuda")]
            generate_cmd::DeviceArg::Cuda => {
                latentdrive::app::Device::Cuda.ready().map_err(anyhow::Error::msg)?;
                type $b = burn::backend::Autodiff<burn::backend::Cuda>;
                Ok($body)
            }
            #[cfg(not(feature = "cuda"))]
            generate_cmd::DeviceArg::Cuda => Err(cuda_missing()),
        }
    };
}

/// Trains `stage`. Of `train all`'s stages (`several`), each gets only the flags that apply
/// to it (`--latent-channels` the autoencoder, the diffusion flags and `--latent-norm` the image
/// LDM, `--init-from` the stages that can start from trained weights); a single stage is
/// refused a flag that does not apply to it.
fn train_one(
    stage: train::Stage,
    tier: ModelTier,
    a: &TrainArgs,
    resume: bool,
    several: bool,
) -> Result<train::FitSummary> {
    let run_dir = a.run_dir.clone().unwrap_or_else(|| train::default_run_dir(tier, stage));
    let applies = |owner: bool| !several || owner;
    let image_ldm = applies(stage == train::Stage::ImageLdm);
    let opts = train::TrainOptions {
        stage,
        tier,
        loop_config: loop_config(a)?,
        batch: a.batch,
        seed: a.seed,
        weights_dir: a.weights.clone().unwrap_or_else(|| PathBuf::from("weights").join(tier.dir_name())),
        run_dir,
        resume,
        data: a.data.clone(),
        init_from: a.init_from.clone().filter(|_| applies(stage.can_init_from())),
        latent_channels: a.latent_channels.map(usize::from).filter(|_| applies(stage == train::Stage::Autoencoder)),
        diffusion: (image_ldm && (a.prediction.is_some() || a.zero_terminal_snr)).then(|| {
            latentdrive::diffusion::DiffusionConfig {
                prediction: a.prediction.map_or(latentdrive::diffusion::Prediction::Epsilon, Into::into),
                zero_terminal_snr: a.zero_terminal_snr,
                ..Default::default()
            }
        }),
        latent_norm: a.latent_norm.filter(|_| image_ldm).map(Into::into),
        disc_start: a.disc_start.filter(|_| applies(stage == train::Stage::TemporalDecoder)),
        high_noise: a
            .high_noise
            .filter(|_| applies(matches!(stage, train::Stage::VideoLdm | train::Stage::Interpolator))),
        guess_share: a
            .guess_share
            .filter(|_| applies(matches!(stage, train::Stage::VideoLdm | train::Stage::Interpolator))),
        guess_noise: a
            .guess_noise
            .filter(|_| applies(matches!(stage, train::Stage::VideoLdm | train::Stage::Interpolator)))
            .map(|g| match g {
                GuessNoiseArg::Middle => train::GuessNoise::Middle,
                GuessNoiseArg::Low => train::GuessNoise::Low,
            }),
        interpolation_guess: a.interpolation_guess.filter(|_| applies(stage == train::Stage::Interpolator)),
        box_weight: a.box_weight.filter(|_| image_ldm),
        edge_weight: a
            .edge_weight
            .filter(|_| applies(matches!(stage, train::Stage::Upsampler | train::Stage::UpsamplerVideo))),
    };
    let report = with_training_loop(stage.run_name(), a, &opts.run_dir, resume, |cancel, on_event| {
        on_training_backend!(a.device, |B| train::train_stage_on::<B>(&opts, &Default::default(), cancel, on_event))
    })?;
    let report = report.map_err(|e| match e {
        train::TrainError::Data(m) => anyhow::Error::from(InputError(format!("training data: {m}"))),
        train::TrainError::Options(m) => anyhow::Error::from(InputError(m)),
        other => other.into(),
    })?;
    print_fit(stage.run_name(), &report.summary, &opts.run_dir);
    if let Some(q) = &report.quality {
        println!("{q}");
    }
    if let Some(w) = &report.weights {
        println!("EMA weights: {} (manifest updated)", w.display());
    }
    Ok(report.summary)
}

/// `train detector|classifier`: an evaluator through the same loop, into the evaluators folder.
fn train_evaluator(evaluator: eval::Evaluator, tier: ModelTier, a: &TrainArgs) -> Result<ExitCode> {
    if a.data.is_some() {
        return Err(InputError("--data: evaluators train on world renders only".into()).into());
    }
    let opts = eval::EvaluatorTrainOptions {
        evaluator,
        tier,
        loop_config: loop_config(a)?,
        batch: a.batch,
        seed: a.seed,
        run_dir: a.run_dir.clone().unwrap_or_else(|| eval::default_evaluator_run_dir(tier, evaluator)),
        weights_dir: a.weights.clone().unwrap_or_else(|| eval::default_evaluators_dir(tier)),
        resume: a.resume,
    };
    let report = with_training_loop(evaluator.name(), a, &opts.run_dir, a.resume, |cancel, on_event| {
        on_training_backend!(a.device, |B| eval::train_evaluator_on::<B>(&opts, &Default::default(), cancel, on_event))
    })??;
    print_fit(evaluator.name(), &report.summary, &opts.run_dir);
    if let Some(acc) = &report.accuracy {
        println!("{} (EMA weights)", acc);
    }
    if let Some(w) = &report.weights {
        println!("EMA weights: {} (manifest updated)", w.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "cuda"))]
fn cuda_missing() -> anyhow::Error {
    InputError(latentdrive::app::NO_CUDA.into()).into()
}

/// The loop settings of `train`'s flags, checked.
fn loop_config(a: &TrainArgs) -> Result<train::LoopConfig> {
    if a.batch == 0 || a.steps == 0 || a.checkpoint_every == 0 || a.eval_every == 0 {
        return Err(
            InputError("--steps, --batch, --checkpoint-every and --eval-every must be at least 1".into()).into()
        );
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if a.minutes.is_some_and(|m| !positive(m)) {
        return Err(InputError("--minutes must be positive".into()).into());
    }
    if !(positive(a.lr) && positive(a.grad_clip as f64) && (0.0..1.0).contains(&a.ema)) {
        return Err(InputError("--lr and --grad-clip must be positive, --ema in [0, 1)".into()).into());
    }
    let lr_decay = match (a.lr_decay, a.final_lr) {
        (LrDecayArg::Constant, None) => train::LrDecay::Constant,
        (LrDecayArg::Constant, Some(_)) => {
            return Err(InputError("--final-lr applies to --lr-decay cosine only".into()).into());
        }
        (LrDecayArg::Cosine, Some(f)) if !(0.0..=1.0).contains(&f) => {
            return Err(InputError("--final-lr is a fraction of --lr: in [0, 1]".into()).into());
        }
        (LrDecayArg::Cosine, f) => train::LrDecay::Cosine { final_fraction: f.unwrap_or(0.1) },
    };
    Ok(train::LoopConfig {
        steps: a.steps,
        lr: a.lr,
        warmup_steps: a.warmup,
        grad_clip: a.grad_clip,
        ema_decay: a.ema,
        checkpoint_every: a.checkpoint_every,
        eval_every: a.eval_every,
        init_seed: a.seed,
        data_parallel: usize::from(a.data_parallel),
        lr_decay,
    })
}

/// Runs `job` (one call of the shared loop) with Ctrl-C, the `--minutes` budget and a
/// progress bar wired to its events.
fn with_training_loop<R>(
    name: &str,
    a: &TrainArgs,
    run_dir: &Path,
    resume: bool,
    job: impl FnOnce(&AtomicBool, &mut dyn FnMut(train::Event)) -> Result<R>,
) -> Result<R> {
    if resume && !run_dir.join("checkpoint/state.json").exists() {
        return Err(InputError(format!("--resume: no checkpoint in {}", run_dir.display())).into());
    }
    // Ctrl-C: finish the current step, checkpoint, stop.
    static CANCEL: AtomicBool = AtomicBool::new(false);
    let _ = ctrlc::set_handler(|| CANCEL.store(true, Ordering::Relaxed));
    let stage_done = std::sync::Arc::new(AtomicBool::new(false));
    if let Some(minutes) = a.minutes {
        let done = stage_done.clone();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(minutes * 60.0);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if std::time::Instant::now() >= deadline {
                    CANCEL.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        });
    }
    let bar = progress_bar(a.steps, name);
    // Without a terminal (nohup, a batch job) the bar draws nothing: a plain line a minute instead.
    let mut lines = PlainProgress::without_terminal(name, a.steps);
    let mut held_out = String::new();
    let mut on_event = |event| match event {
        train::Event::Step { step, loss, lr, .. } => {
            bar.set_position(step);
            bar.set_message(format!("loss {loss:.4} lr {lr:.1e} {held_out}"));
            if let Some(line) = lines.as_mut().and_then(|l| l.step(step, Instant::now())) {
                eprintln!(
                    "{line}, loss {loss:.4}, lr {lr:.1e}{}{held_out}",
                    if held_out.is_empty() { "" } else { ", " }
                );
            }
        }
        train::Event::HeldOut { loss, .. } => held_out = format!("held-out {loss:.4}"),
        train::Event::Checkpoint { .. } => {}
    };
    let result = job(&CANCEL, &mut on_event);
    stage_done.store(true, Ordering::Relaxed);
    bar.finish_and_clear();
    result
}

/// Progress of a long command (training, generation, replay, evaluation) as plain lines, at
/// most one per [`PlainProgress::EVERY`] and at the last step: without a terminal (nohup, a
/// batch job, output piped to a log) indicatif's bars draw nothing.
pub(crate) struct PlainProgress {
    name: String,
    steps: u64,
    /// The first step seen and when: the rate counts from there (a resumed run starts midway).
    start: Option<(u64, Instant)>,
    last_line: Option<Instant>,
}

impl PlainProgress {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);

    fn new(name: &str, steps: u64) -> Self {
        PlainProgress { name: name.to_string(), steps, start: None, last_line: None }
    }

    /// A `PlainProgress` where stderr is not a terminal (the bars draw there otherwise).
    pub(crate) fn without_terminal(name: &str, steps: u64) -> Option<Self> {
        (!std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| Self::new(name, steps))
    }

    /// Changes the number of steps the run will take (an evaluation learns it as it goes).
    pub(crate) fn set_steps(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// Prints the line for `step`, if one is due, with what is being done in brackets.
    pub(crate) fn print_step(&mut self, step: u64, what: &str) {
        if let Some(line) = self.step(step, Instant::now()) {
            eprintln!("{line} ({what})");
        }
    }

    /// The line for `step`, done at `now`, if one is due: `name step k/n, s/step, ETA`.
    fn step(&mut self, step: u64, now: Instant) -> Option<String> {
        let &mut (first, t0) = self.start.get_or_insert((step, now));
        let due = step >= self.steps || self.last_line.unwrap_or(t0) + Self::EVERY <= now;
        if !due || step == first {
            return None;
        }
        self.last_line = Some(now);
        let per_step = now.duration_since(t0).as_secs_f64() / (step - first) as f64;
        let eta = (per_step * self.steps.saturating_sub(step) as f64).round() as u64;
        let (h, m, s) = (eta / 3600, eta / 60 % 60, eta % 60);
        let eta = if h > 0 { format!("{h}h{m:02}m") } else { format!("{m}m{s:02}s") };
        Some(format!("{} step {step}/{}, {per_step:.2} s/step, ETA {eta}", self.name, self.steps))
    }
}

fn print_fit(name: &str, s: &train::FitSummary, run_dir: &Path) {
    println!(
        "{} steps {}..{} in {:.1} s ({:.2} it/s){}; log {}",
        name,
        s.first_step,
        s.last_step,
        s.seconds,
        (s.last_step - s.first_step) as f64 / s.seconds.max(1e-9),
        if s.interrupted { ", interrupted (checkpoint saved; continue with --resume)" } else { "" },
        run_dir.join("log.csv").display()
    );
    if let Some((step, loss)) = s.held_out.last() {
        println!("held-out loss {loss:.4} at step {step}");
    }
}

fn validate(inputs: &[PathBuf]) -> Result<ExitCode> {
    let mut files = Vec::new();
    for input in inputs {
        files.extend(scenario::collect_scenario_files(input)?);
    }
    if files.is_empty() {
        return Err(
            InputError("no scenario files found (expected .ron files, folders of them, or .txt lists)".into()).into()
        );
    }
    let mut bad = 0;
    for (path, result) in scenario::load_many(&files) {
        match result {
            Ok(s) => println!("ok    {} ({}, {} boxes)", path.display(), s.name, s.boxes.len()),
            Err(e) => {
                bad += 1;
                eprintln!("{e}");
            }
        }
    }
    println!("{} valid, {} invalid", files.len() - bad, bad);
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// Creates the output folder; an existing one is refused unless `--force`.
fn prepare_out(out: &OutputArgs) -> Result<()> {
    let path: &Path = &out.out;
    if path.exists() && !out.force {
        return Err(InputError(format!(
            "output folder {} already exists (use --force to write into it)",
            path.display()
        ))
        .into());
    }
    std::fs::create_dir_all(path).with_context(|| format!("cannot create output folder {}", path.display()))?;
    Ok(())
}

fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {per_sec} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn plain_progress_prints_a_line_a_minute_and_at_the_end() {
        let t0 = Instant::now();
        let mut p = PlainProgress::new("video-ldm", 100);
        // A resumed run's first step sets the origin and prints nothing.
        assert_eq!(p.step(40, t0), None);
        assert_eq!(p.step(45, t0 + Duration::from_secs(30)), None);
        let line = p.step(50, t0 + Duration::from_secs(60)).expect("a line after a minute");
        assert_eq!(line, "video-ldm step 50/100, 6.00 s/step, ETA 5m00s");
        // The next minute counts from that line.
        assert_eq!(p.step(55, t0 + Duration::from_secs(100)), None);
        let line = p.step(60, t0 + Duration::from_secs(120)).expect("a line a minute after the last");
        assert!(line.ends_with("ETA 4m00s"), "{line}");
        let mut long = PlainProgress::new("image-ldm", 2000);
        long.step(0, t0);
        let line = long.step(1, t0 + Duration::from_secs(61)).expect("a line");
        assert!(line.ends_with("61.00 s/step, ETA 33h52m"), "{line}");
        let last = p.step(100, t0 + Duration::from_secs(121)).expect("the last step always prints");
        assert!(last.starts_with("video-ldm step 100/100, ") && last.ends_with("ETA 0m00s"), "{last}");
    }

    #[test]
    fn plain_progress_takes_a_total_learnt_on_the_way() {
        // `eval` knows its number of steps only from its first progress report.
        let t0 = Instant::now();
        let mut p = PlainProgress::new("eval", 1);
        p.set_steps(100);
        assert_eq!(p.step(1, t0), None);
        let line = p.step(11, t0 + Duration::from_secs(60)).expect("a line after a minute");
        assert_eq!(line, "eval step 11/100, 6.00 s/step, ETA 8m54s");
    }
}
