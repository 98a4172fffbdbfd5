//! `train <stage>`: runs a stage's task through `fit`, then writes the EMA weights
//! into the weights folder and records them (config, hashes, training facts) in its
//! manifest, replacing that stage's earlier entry. Later stages read what earlier
//! ones wrote (the frozen autoencoder, the image LDM's spatial weights).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::fit::{Event, FitSummary, Fitted, LoopConfig, fit};
use super::stages::{
    AutoencoderTask, FrameSource, GuessNoise, ImageLdmTask, TemporalDecoderTask, UpsamplerPhase, UpsamplerTask,
    VideoLdmTask, VideoTask, held_out_psnr, temporal_decoder_rates,
};
use crate::diffusion::{DiffusionConfig, LatentNorm, NoiseSchedule};
use crate::model::{Autoencoder, AutoencoderConfig, ModelTier, TierConfig};
use crate::scenario::InterpolationGuess;
use crate::weights::{
    FileEntry, Manifest, ModelEntry, Part, TemporalInit, TrainingFacts, WeightsError, load_parts, save_parts,
};

/// Stages that `train` can run today, in training order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Autoencoder,
    /// The autoencoder's decoder fine-tuned with its encoder frozen: sharper frames for
    /// the same latent space, so every later stage's weights stay valid.
    Decoder,
    ImageLdm,
    /// The decoder with temporal layers, fine-tuned on clips against a 3D discriminator.
    TemporalDecoder,
    VideoLdm,
    Interpolator,
    /// The upsampler's spatial layers on single-frame patches.
    Upsampler,
    /// The upsampler's temporal layers on clips of patches (spatial frozen).
    UpsamplerVideo,
}

impl Stage {
    /// Every stage, in training order (each needs the weights of those before it).
    pub const ALL: [Stage; 7] = [
        Stage::Autoencoder,
        Stage::TemporalDecoder,
        Stage::ImageLdm,
        Stage::VideoLdm,
        Stage::Interpolator,
        Stage::Upsampler,
        Stage::UpsamplerVideo,
    ];

    /// Whether `manifest` already holds this stage's weights.
    pub fn is_done(self, manifest: &Manifest) -> bool {
        let entry = manifest.model(self.model_name());
        match self {
            // A refinement of a finished stage, never needed to go on.
            Stage::Decoder => true,
            // The upsampler's entry gains its temporal file in the video phase.
            Stage::UpsamplerVideo => entry.is_some_and(|e| e.file(Part::Temporal).is_some()),
            _ => entry.is_some(),
        }
    }

    /// Model name in the manifest and the weights file stem.
    pub fn model_name(self) -> &'static str {
        match self {
            Stage::Autoencoder | Stage::Decoder => "autoencoder",
            Stage::ImageLdm => "image_ldm",
            Stage::TemporalDecoder => "temporal_decoder",
            Stage::VideoLdm => "video_ldm",
            Stage::Interpolator => "interpolator",
            Stage::Upsampler | Stage::UpsamplerVideo => "upsampler",
        }
    }

    /// Whether `train --init-from` can start this stage from trained weights: the
    /// autoencoder, image LDM, temporal decoder and the upsampler's image phase (every
    /// parameter), the video LDM, interpolator and the upsampler's video phase (their
    /// temporal layers; the spatial ones are the weights folder's, frozen). Not the
    /// decoder, which always starts from the weights folder's autoencoder.
    pub fn can_init_from(self) -> bool {
        self != Stage::Decoder
    }

    /// Name of the stage's run folder.
    pub fn run_name(self) -> &'static str {
        match self {
            Stage::UpsamplerVideo => "upsampler_video",
            Stage::Decoder => "autoencoder_decoder",
            other => other.model_name(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub stage: Stage,
    pub tier: ModelTier,
    pub loop_config: LoopConfig,
    /// Frames (or clips, for video stages) per batch.
    pub batch: usize,
    pub seed: u64,
    /// Checkpoints and logs.
    pub run_dir: PathBuf,
    /// Where the finished weights and manifest go (`weights/<tier>`).
    pub weights_dir: PathBuf,
    pub resume: bool,
    /// Train on this on-disk dataset (`synth` output) instead of rendering frames.
    pub data: Option<PathBuf>,
    /// Start from this weights folder's trained model of the stage instead of a seeded
    /// init (a longer run continuing shipped weights); see [`Stage::can_init_from`].
    pub init_from: Option<PathBuf>,
    /// Latent channels of a new autoencoder (autoencoder stage only; default: the tier's).
    /// The stages after it take the latent channels of the weights folder's autoencoder.
    pub latent_channels: Option<usize>,
    /// The image LDM's noise schedule and parameterisation (image-ldm stage only; default:
    /// LDM's ε on scaled-linear). The video LDM and interpolator take the image LDM's.
    pub diffusion: Option<DiffusionConfig>,
    /// How the image LDM normalises the autoencoder's latents (image-ldm stage only;
    /// default: [`LatentNormKind::Global`]). The video LDM and interpolator take the image LDM's.
    pub latent_norm: Option<LatentNormKind>,
    /// The step from which the temporal decoder's 3D discriminator trains and its
    /// adversarial loss reaches the decoder (temporal-decoder stage only; default: a
    /// quarter of the steps, as LDM's `disc_start` waits for the reconstruction).
    pub disc_start: Option<u64>,
    /// Share of the video stages' training clips noised at a timestep from the noisier half
    /// of the schedule (video-ldm and interpolator only; default 0: uniform timesteps).
    pub high_noise: Option<f64>,
    /// Share of the video stages' training clips whose new frames are noised from
    /// generation's guess instead of from the clip: the prediction guide's (video-ldm,
    /// rendered data only) or the interpolation guide's (interpolator); default 0.
    pub guess_share: Option<f64>,
    /// Where the guessed clips are noised (video-ldm and interpolator, with a guess share;
    /// default: the middle half of the schedule); see [`GuessNoise`].
    pub guess_noise: Option<GuessNoise>,
    /// The interpolator's guess for its guessed clips (with a guess share; default: generation's
    /// default, [`crate::scenario::DEFAULT_INTERPOLATION_GUESS`]; runs recorded before the
    /// option resume with [`InterpolationGuess::Blend`], what they trained on).
    pub interpolation_guess: Option<InterpolationGuess>,
    /// Extra training-loss weight inside car boxes (image-ldm stage only; default 0, a
    /// uniform loss); see [`ImageLdmTask::box_weight`].
    pub box_weight: Option<f64>,
    /// Weight of the edge loss on the upsampler's x̂_0 (upsampler and upsampler-video stages
    /// only; default 0, the plain diffusion loss); see [`UpsamplerTask::edge_weight`].
    pub edge_weight: Option<f64>,
}

/// How the image LDM maps the autoencoder's latents to its own (`train image-ldm
/// --latent-norm`); see [`LatentNorm`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LatentNormKind {
    /// Every channel times the autoencoder's one latent scale (LDM's).
    #[default]
    Global,
    /// Zero mean and unit variance per channel, measured on the held-out frames when the
    /// run starts and recorded in the image LDM's manifest entry (EDM2's).
    Channel,
}

impl LatentNormKind {
    /// Lower-case name, as in `--latent-norm`.
    pub fn name(self) -> &'static str {
        match self {
            LatentNormKind::Global => "global",
            LatentNormKind::Channel => "channel",
        }
    }
}

/// Held-out frames the per-channel latent statistics are measured on.
const LATENT_NORM_FRAMES: usize = 32;

/// What a finished (or interrupted) run produced.
#[derive(Debug, Clone)]
pub struct StageReport {
    pub summary: FitSummary,
    /// The weights file written (absent when interrupted before any step).
    pub weights: Option<PathBuf>,
    /// A quality measured on the saved weights, for the console (e.g. the autoencoder's PSNR).
    pub quality: Option<String>,
}

/// Classifier-free guidance needs the model to see dropped conditions this often.
const LABEL_DROP_P: f64 = 0.1;

/// Runs one stage on the CPU (`Autodiff<Flex>`; bit-identical reruns and resumes).
pub fn train_stage(
    opts: &TrainOptions,
    cancel: &AtomicBool,
    on_event: impl FnMut(Event),
) -> Result<StageReport, TrainError> {
    train_stage_on::<Autodiff<Flex>>(opts, &Default::default(), cancel, on_event)
}

/// Runs one stage on any autodiff backend and device (e.g. `Autodiff<Cuda>`).
pub fn train_stage_on<B: AutodiffBackend>(
    opts: &TrainOptions,
    device: &B::Device,
    cancel: &AtomicBool,
    on_event: impl FnMut(Event),
) -> Result<StageReport, TrainError> {
    let device = device.clone();
    let opts = &remembered_options(opts)?;
    let cfg = stage_config(opts)?;
    let (lc, run, resume) = (&opts.loop_config, &opts.run_dir, opts.resume);
    // Read (and checked) up front: stages that cannot start from trained weights refuse it.
    let start = initial_weights(opts)?;
    match opts.stage {
        Stage::Autoencoder => {
            let mut task = AutoencoderTask::new(cfg.autoencoder.clone(), cfg.frame_size, opts.batch, opts.seed)
                .with_crop(cfg.autoencoder_crop);
            task.frames = frame_source(opts, cfg.frame_size, &[])?;
            task.init_from = start.as_ref().map(|s| s.spatial.clone());
            let Fitted { ema, summary, .. } = fit::<B, _>(&task, lc, run, resume, &device, cancel, on_event)?;
            if summary.last_step == 0 {
                return Ok(StageReport { summary, weights: None, quality: None });
            }
            let scale = latent_scale(&ema.model, &task.frames, &device);
            let quality = psnr_note(&ema.model, &task.frames, &device);
            let path = save_stage(opts, &cfg.autoencoder, &ema.model, &summary, |e| {
                e.latent_scale = Some(scale);
                continued(e, start.as_ref(), &summary, &opts.weights_dir);
                add_note(e, &quality);
            })?;
            Ok(StageReport { summary, weights: Some(path), quality: Some(quality) })
        }
        Stage::Decoder => {
            let manifest = Manifest::read(&opts.weights_dir)?;
            let before = manifest
                .model(Stage::Autoencoder.model_name())
                .cloned()
                .ok_or_else(|| missing_stage(opts, Stage::Autoencoder))?;
            let weights = stage_file(opts, Stage::Autoencoder, Part::Spatial)?;
            let mut task = AutoencoderTask::new(cfg.autoencoder.clone(), cfg.frame_size, opts.batch, opts.seed)
                .with_crop(cfg.autoencoder_crop)
                .decoder_only(weights);
            task.frames = frame_source(opts, cfg.frame_size, &[])?;
            let (original, _) = load_autoencoder::<B::InnerBackend>(opts, &device)?;
            let Fitted { ema, summary, .. } = fit::<B, _>(&task, lc, run, resume, &device, cancel, on_event)?;
            if summary.last_step == 0 {
                return Ok(StageReport { summary, weights: None, quality: None });
            }
            // The encoder as loaded, whatever the checkpoint's average holds for it.
            let model = Autoencoder { encoder: original.encoder, decoder: ema.model.decoder };
            let quality = psnr_note(&model, &task.frames, &device);
            let path = save_stage(opts, &cfg.autoencoder, &model, &summary, |e| {
                fine_tuned(e, &before, &summary);
                add_note(e, &quality);
            })?;
            Ok(StageReport { summary, weights: Some(path), quality: Some(quality) })
        }
        Stage::ImageLdm => {
            let (autoencoder, latent_scale) = load_autoencoder(opts, &device)?;
            let diffusion = opts.diffusion.unwrap_or_default();
            let frames = frame_source(opts, cfg.frame_size, &[])?;
            // A continued image LDM keeps the latents it was trained on.
            let started_on = start.as_ref().map(|s| match s.latent_norm {
                Some(_) => LatentNormKind::Channel,
                None => LatentNormKind::Global,
            });
            let kind = match (opts.latent_norm, started_on) {
                (Some(asked), Some(was)) if asked != was => {
                    return Err(TrainError::Options(format!(
                        "--latent-norm {}: the image LDM in --init-from {} was trained with {} (a continued image \
                         LDM keeps its latents; leave the flag out)",
                        asked.name(),
                        start.as_ref().map_or(String::new(), |s| s.dir.display().to_string()),
                        was.name(),
                    )));
                }
                (asked, was) => asked.or(was).unwrap_or_default(),
            };
            let latent = match (kind, start.as_ref().and_then(|s| s.latent_norm.clone())) {
                (LatentNormKind::Global, _) => LatentNorm::uniform(latent_scale, cfg.autoencoder.latent_channels),
                (LatentNormKind::Channel, Some(recorded)) => recorded,
                (LatentNormKind::Channel, None) => {
                    let (mean, _) = autoencoder.encoder.forward(frames.held_out(LATENT_NORM_FRAMES, &device));
                    LatentNorm::per_channel(mean)
                }
            };
            latent.check(cfg.autoencoder.latent_channels).map_err(TrainError::Options)?;
            let recorded = (kind == LatentNormKind::Channel).then(|| latent.clone());
            let task = ImageLdmTask {
                config: cfg.image_ldm.clone(),
                autoencoder,
                latent,
                diffusion,
                schedule: diffusion.schedule().map_err(|e| TrainError::Options(e.to_string()))?,
                frames,
                batch: opts.batch,
                drop_p: LABEL_DROP_P,
                box_weight: opts.box_weight.unwrap_or(0.0),
                init_from: start.as_ref().map(|s| s.spatial.clone()),
            };
            let Fitted { ema, summary, .. } = fit::<B, _>(&task, lc, run, resume, &device, cancel, on_event)?;
            if summary.last_step == 0 {
                return Ok(StageReport { summary, weights: None, quality: None });
            }
            let path = save_stage(opts, &cfg.image_ldm, &ema.model, &summary, |e| {
                continued(e, start.as_ref(), &summary, &opts.weights_dir);
                e.diffusion = Some(diffusion);
                e.latent_norm = recorded;
            })?;
            Ok(StageReport { summary, weights: Some(path), quality: None })
        }
        Stage::TemporalDecoder => {
            let autoencoder_weights = stage_file(opts, Stage::Autoencoder, Part::Spatial)?;
            let (autoencoder, _) = load_autoencoder(opts, &device)?;
            let config = cfg.autoencoder.clone().with_temporal_decoder(true);
            let task = TemporalDecoderTask {
                config: config.clone(),
                discriminator: cfg.discriminator.clone(),
                autoencoder_weights,
                encoder: autoencoder.encoder,
                frames: frame_source(opts, cfg.frame_size, &temporal_decoder_rates().map(|fps| (cfg.window, fps)))?,
                window: cfg.window,
                clips: opts.batch,
                // Reconstruction first, adversary after a warm-up (LDM's disc_start).
                disc_start: effective_disc_start(opts).unwrap_or_default(),
                // LDM's `disc_weight` in its KL-autoencoder configs.
                gan_weight: 0.5,
                edge_weight: 0.5,
                temporal_weight: 1.0,
                adaptive: Default::default(),
                init_from: start.as_ref().map(|s| (s.spatial.clone(), s.temporal.clone())),
            };
            let Fitted { ema, summary, .. } = fit::<B, _>(&task, lc, run, resume, &device, cancel, on_event)?;
            if summary.last_step == 0 {
                return Ok(StageReport { summary, weights: None, quality: None });
            }
            std::fs::create_dir_all(&opts.weights_dir).map_err(|e| TrainError::io(&opts.weights_dir, e))?;
            let name = opts.stage.model_name();
            let (spatial, temporal) = (format!("{name}.safetensors"), format!("{name}.temporal.safetensors"));
            save_parts(&ema.model.decoder, &opts.weights_dir.join(&spatial), Some(&opts.weights_dir.join(&temporal)))?;
            let files = vec![
                FileEntry::describe(&opts.weights_dir, &spatial, Part::Spatial)?,
                FileEntry::describe(&opts.weights_dir, &temporal, Part::Temporal)?,
            ];
            let [key, interpolated] = temporal_decoder_rates();
            let adversary = match summary.last_step > task.disc_start {
                true => {
                    let stats = task.adaptive.lock().map(|s| *s).unwrap_or_default();
                    let used = match stats.mean() {
                        Some(mean) => format!(
                            " (λ mean {mean:.3}, {:.3} to {:.3} over {} batches of this run)",
                            stats.min, stats.max, stats.batches
                        ),
                        None => String::new(),
                    };
                    format!(
                        "hinge GAN from step {} with {}× LDM's adaptive weight λ{used}",
                        task.disc_start, task.gan_weight
                    )
                }
                false => format!("reconstruction only (the adversary's step {} not reached)", task.disc_start),
            };
            let note = format!(
                "clips at {interpolated} Hz (3 in 4) and {key} Hz; L1 + {}·edge + {}·temporal reconstruction; {adversary}",
                task.edge_weight, task.temporal_weight
            );
            record::<B::InnerBackend, _>(opts, &config, files, &summary, |e| {
                add_note(e, &note);
                continued(e, start.as_ref(), &summary, &opts.weights_dir);
            })?;
            Ok(StageReport { summary, weights: Some(opts.weights_dir.join(temporal)), quality: None })
        }
        Stage::Upsampler => {
            let task = upsampler_task(opts, UpsamplerPhase::Image, None, start.as_ref().map(|s| s.spatial.clone()))?;
            let Fitted { ema, summary, .. } = fit::<B, _>(&task, lc, run, resume, &device, cancel, on_event)?;
            if summary.last_step == 0 {
                return Ok(StageReport { summary, weights: None, quality: None });
            }
            let path = save_stage(opts, &cfg.upsampler, &ema.model, &summary, |e| {
                if let Some(start) = &start {
                    let what = format!("{CONTINUED_IMAGE_PHASE} {}", start.dir.display());
                    match image_phase_facts(start.training.as_ref(), start.temporal.is_some()) {
                        None => add_note(e, &format!("{what} {UNRECORDED}")),
                        before => {
                            add_base_training(e, before, Before::of(&start.dir, &opts.weights_dir), &summary, &what)
                        }
                    }
                }
            })?;
            Ok(StageReport { summary, weights: Some(path), quality: None })
        }
        Stage::UpsamplerVideo => {
            let spatial = stage_file(opts, Stage::Upsampler, Part::Spatial)?;
            let temporal_from = match &start {
                Some(s) => Some(s.temporal.clone().ok_or_else(|| {
                    TrainError::Options(format!(
                        "--init-from {}: its upsampler has no temporal layers yet (train upsampler-video there first)",
                        s.dir.display()
                    ))
                })?),
                None => None,
            };
            let image_phase = Manifest::read(&opts.weights_dir)?
                .model(Stage::Upsampler.model_name())
                .and_then(|e| image_phase_facts(e.training.as_ref(), e.file(Part::Temporal).is_some()).cloned());
            let task = upsampler_task(opts, UpsamplerPhase::Video, Some(spatial.clone()), temporal_from)?;
            let Fitted { ema, summary, .. } = fit::<B, _>(&task, lc, run, resume, &device, cancel, on_event)?;
            if summary.last_step == 0 {
                return Ok(StageReport { summary, weights: None, quality: None });
            }
            let temporal = save_temporal(opts, &ema.model, &spatial, &cfg.upsampler, &summary, |e| {
                let what = "temporal layers video-fine-tuned on the image phase's frozen spatial layers";
                // Read as the image phase's facts, never this run's interim entry.
                add_base_training(e, image_phase.as_ref(), Before::Fixed, &summary, what);
                if let Some(start) = &start {
                    let steps =
                        start.training.as_ref().map_or(String::new(), |t| format!(" ({} steps in all there)", t.steps));
                    add_note(e, &format!("{TEMPORAL_LAYERS_STARTED} {}{steps}", start.dir.display()));
                }
            })?;
            Ok(StageReport { summary, weights: Some(temporal), quality: None })
        }
        Stage::VideoLdm | Stage::Interpolator => {
            let (autoencoder, _) = load_autoencoder(opts, &device)?;
            let image_weights = stage_file(opts, Stage::ImageLdm, Part::Spatial)?;
            // The frozen spatial layers were trained on the image LDM's diffusion and
            // latents: keep both.
            let manifest = Manifest::read(&opts.weights_dir)?;
            let image_ldm = Stage::ImageLdm.model_name();
            let diffusion = manifest.model(image_ldm).and_then(|e| e.diffusion).unwrap_or_default();
            let latent = manifest.latent_norm(
                &opts.weights_dir,
                image_ldm,
                Stage::Autoencoder.model_name(),
                cfg.autoencoder.latent_channels,
            )?;
            let recorded = manifest.model(image_ldm).and_then(|e| e.latent_norm.clone());
            let (kind, config) = match opts.stage {
                Stage::Interpolator => (VideoTask::Interpolation, cfg.interpolator.clone()),
                _ => (VideoTask::Prediction, cfg.video_ldm.clone()),
            };
            let task = VideoLdmTask {
                kind,
                config: config.clone(),
                image_weights: image_weights.clone(),
                autoencoder,
                latent,
                diffusion,
                schedule: diffusion.schedule().map_err(|e| TrainError::Options(e.to_string()))?,
                // Prediction clips at 2.5 Hz; interpolation clips at 10 and 40 Hz (fps flag 0, 1).
                frames: frame_source(
                    opts,
                    cfg.frame_size,
                    &match kind {
                        VideoTask::Prediction => vec![(cfg.window, KEYFRAME_FPS)],
                        VideoTask::Interpolation => {
                            vec![(cfg.window + 1, 4.0 * KEYFRAME_FPS), (cfg.window + 1, 16.0 * KEYFRAME_FPS)]
                        }
                    },
                )?,
                window: cfg.window,
                fps: KEYFRAME_FPS,
                clips: opts.batch,
                drop_p: LABEL_DROP_P,
                high_noise: opts.high_noise.unwrap_or(0.0),
                guess_share: opts.guess_share.unwrap_or(0.0),
                guess_noise: opts.guess_noise.unwrap_or_default(),
                interpolation_guess: opts.interpolation_guess.unwrap_or(InterpolationGuess::Blend),
                temporal_from: start.as_ref().and_then(|s| s.temporal.clone()),
            };
            let Fitted { ema, summary, .. } = fit::<B, _>(&task, lc, run, resume, &device, cancel, on_event)?;
            if summary.last_step == 0 {
                return Ok(StageReport { summary, weights: None, quality: None });
            }
            let temporal = save_temporal(opts, &ema.model, &image_weights, &config, &summary, |e| {
                continued(e, start.as_ref(), &summary, &opts.weights_dir);
                e.diffusion = Some(diffusion);
                e.latent_norm = recorded;
            })?;
            Ok(StageReport { summary, weights: Some(temporal), quality: None })
        }
    }
}

/// The manifest entry of a decoder fine-tuned from `before`: the encoder and its latent
/// scale are `before`'s (later stages were trained on them); the training facts add up.
fn fine_tuned(entry: &mut ModelEntry, before: &ModelEntry, summary: &FitSummary) {
    entry.latent_scale = before.latent_scale;
    add_base_training(
        entry,
        before.training.as_ref(),
        Before::Own,
        summary,
        "decoder fine-tuned with the encoder frozen (latent scale kept)",
    );
}

/// Records in `entry` that its run started from `start`'s trained weights; the run
/// writes into `weights_dir`.
fn continued(entry: &mut ModelEntry, start: Option<&InitialWeights>, summary: &FitSummary, weights_dir: &Path) {
    if let Some(start) = start {
        let what = format!("{CONTINUED_WEIGHTS} {}", start.dir.display());
        match &start.training {
            Some(before) => add_base_training(entry, Some(before), Before::of(&start.dir, weights_dir), summary, &what),
            None => add_note(entry, &format!("{what} {UNRECORDED}")),
        }
    }
}

/// How the notes of a manifest's training facts say a run continued trained weights
/// (`--init-from`); [`continuation`] reads them back.
const CONTINUED_WEIGHTS: &str = "continued from the weights in";
const CONTINUED_IMAGE_PHASE: &str = "continued from the image phase's weights in";
const UNRECORDED: &str = "(their earlier training is not recorded there)";
const TEMPORAL_LAYERS_STARTED: &str = "temporal layers started from the ones in";

/// What a stage's training facts say about the trained weights its run started from
/// (`train --init-from`), as [`train_stage`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// The weights went on training from earlier trained ones, whose training is the
    /// facts' `base` (steps and time add up).
    Recorded,
    /// The weights went on training from earlier trained ones whose training was not
    /// recorded where they came from: the facts count this run alone.
    Unrecorded,
    /// A video phase whose temporal layers started from trained ones: the facts' `base`
    /// is the image phase it fine-tuned on, and the note names where the layers came from.
    TemporalLayers,
}

/// Reads back how `facts` continued earlier training; `None` for a run from scratch (or
/// one that fine-tuned, like the decoder, rather than continued).
pub fn continuation(facts: &TrainingFacts) -> Option<Continuation> {
    let notes = facts.notes.as_str();
    let leads = notes.starts_with(CONTINUED_WEIGHTS) || notes.starts_with(CONTINUED_IMAGE_PHASE);
    if leads && facts.base.is_some() {
        Some(Continuation::Recorded)
    } else if notes.contains(CONTINUED_WEIGHTS) || notes.contains(CONTINUED_IMAGE_PHASE) {
        Some(Continuation::Unrecorded)
    } else if notes.contains(TEMPORAL_LAYERS_STARTED) {
        Some(Continuation::TemporalLayers)
    } else {
        None
    }
}

/// Where the facts a run builds on were read, which decides what a resumed run counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before {
    /// Another folder's entry, unchanged while the run goes on.
    Fixed,
    /// The entry of the folder the run writes into: once the run has been stopped it is
    /// the run's own interim entry (holding its steps so far), whose `base` is what the
    /// run started from.
    Own,
}

impl Before {
    /// [`Before::Own`] when `read_from` is the folder the run writes into.
    fn of(read_from: &Path, weights_dir: &Path) -> Before {
        let same = match (read_from.canonicalize(), weights_dir.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => read_from == weights_dir,
        };
        if same { Before::Own } else { Before::Fixed }
    }
}

/// Adds `before`'s training to `entry`'s facts (steps and wall time sum up, `before`'s
/// own facts kept as `base`) with a note saying `what` was done on top of it.
///
/// A fresh run adds all of `before` (itself possibly a continuation), and so does a
/// resumed one whose `before` is [`Before::Fixed`]; a resumed run's [`Before::Own`] entry
/// is its interim one, so it counts that entry's `base`.
fn add_base_training(
    entry: &mut ModelEntry,
    before: Option<&TrainingFacts>,
    read: Before,
    summary: &FitSummary,
    what: &str,
) {
    let Some(prev) = before else { return };
    let base = match (summary.first_step, read, &prev.base) {
        (1.., Before::Own, Some(start)) => start.clone(),
        _ => Box::new(prev.clone()),
    };
    if let Some(facts) = entry.training.as_mut() {
        let mut notes = format!(
            "{what}: {} steps ({:.0} s) on top of {} steps of earlier training",
            summary.last_step, facts.wall_time_s, base.steps
        );
        if !facts.notes.is_empty() {
            notes = format!("{notes}; {}", facts.notes);
        }
        facts.notes = notes;
        facts.steps = base.steps + summary.last_step;
        facts.wall_time_s += base.wall_time_s;
        facts.base = Some(base);
    }
}

/// Trained weights a stage starts from (`--init-from`).
#[derive(Debug, Clone)]
struct InitialWeights {
    dir: PathBuf,
    spatial: PathBuf,
    temporal: Option<PathBuf>,
    training: Option<TrainingFacts>,
    /// The per-channel latent normalisation a latent denoiser was trained on, if any.
    latent_norm: Option<LatentNorm>,
}

/// The flags that shape a stage's model and its training facts, kept in the run folder
/// (`options.json`) when a run starts, so that `--resume` rebuilds the same model without
/// them being given again (and counts the training of the weights it started from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ModelOptions {
    latent_channels: Option<usize>,
    diffusion: Option<DiffusionConfig>,
    init_from: Option<PathBuf>,
    #[serde(default)]
    latent_norm: Option<LatentNormKind>,
    /// The temporal decoder's first adversarial step (its default depends on `--steps`,
    /// which a resumed run may change).
    #[serde(default)]
    disc_start: Option<u64>,
    /// The video stages' high-noise share (`--high-noise`).
    #[serde(default)]
    high_noise: Option<f64>,
    /// The prediction model's guess share (`--guess-share`).
    #[serde(default)]
    guess_share: Option<f64>,
    /// Where the guessed clips are noised (`--guess-noise`).
    #[serde(default)]
    guess_noise: Option<GuessNoise>,
    /// The interpolator's guess (`--interpolation-guess`).
    #[serde(default)]
    interpolation_guess: Option<InterpolationGuess>,
    /// The image LDM's box weight (`--box-weight`).
    #[serde(default)]
    box_weight: Option<f64>,
    /// The upsampler's edge-loss weight (`--edge-weight`).
    #[serde(default)]
    edge_weight: Option<f64>,
}

const MODEL_OPTIONS: &str = "options.json";

/// The temporal decoder's first adversarial step: `--disc-start`, or a quarter of the
/// steps (as LDM's `disc_start` waits for the reconstruction).
fn effective_disc_start(opts: &TrainOptions) -> Option<u64> {
    (opts.stage == Stage::TemporalDecoder).then(|| opts.disc_start.unwrap_or(opts.loop_config.steps / 4))
}

/// Whether `stage` with `guess_share` noises clips from the interpolation guide's guess.
fn interpolator_guesses(stage: Stage, guess_share: Option<f64>) -> bool {
    stage == Stage::Interpolator && guess_share.is_some_and(|s| s > 0.0)
}

/// The interpolator's guess for its guessed clips: `--interpolation-guess`, or generation's
/// default guess for a new run with a guess share.
fn effective_interpolation_guess(opts: &TrainOptions) -> Option<InterpolationGuess> {
    let guessing = interpolator_guesses(opts.stage, opts.guess_share);
    opts.interpolation_guess.or(guessing.then_some(crate::scenario::DEFAULT_INTERPOLATION_GUESS))
}

/// `opts` with the model options of the run it resumes (`--latent-channels`, the
/// diffusion and `--disc-start` given again must agree; `--init-from` is the run's own, as
/// the checkpoint holds the weights); a fresh run records its own. Runs checkpointed before
/// the record existed resume with the flags as given.
fn remembered_options(opts: &TrainOptions) -> Result<TrainOptions, TrainError> {
    let path = opts.run_dir.join(MODEL_OPTIONS);
    let given = ModelOptions {
        latent_channels: opts.latent_channels,
        diffusion: opts.diffusion,
        init_from: opts.init_from.clone(),
        latent_norm: opts.latent_norm,
        disc_start: opts.disc_start,
        high_noise: opts.high_noise,
        guess_share: opts.guess_share,
        guess_noise: opts.guess_noise,
        interpolation_guess: opts.interpolation_guess,
        box_weight: opts.box_weight,
        edge_weight: opts.edge_weight,
    };
    if !opts.resume {
        std::fs::create_dir_all(&opts.run_dir).map_err(|e| TrainError::io(&opts.run_dir, e))?;
        let record = ModelOptions {
            disc_start: effective_disc_start(opts),
            interpolation_guess: effective_interpolation_guess(opts),
            ..given
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| TrainError::Record(e.to_string()))?;
        crate::export::write_atomic(&path, &json)?;
        // Other stages keep the flag as given, for the check that refuses it.
        return Ok(TrainOptions {
            disc_start: record.disc_start.or(opts.disc_start),
            interpolation_guess: record.interpolation_guess,
            ..opts.clone()
        });
    }
    let saved: ModelOptions = match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| TrainError::Record(format!("{}: {e}", path.display())))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(opts.clone()),
        Err(e) => return Err(TrainError::io(&path, e)),
    };
    let clash = |flag: &str, was: String, now: String| {
        TrainError::Options(format!(
            "--resume: the run in {} was started with {flag} {was}, not {now} (leave the flag out to continue it)",
            opts.run_dir.display()
        ))
    };
    if let (Some(now), Some(was)) = (given.latent_channels, saved.latent_channels)
        && now != was
    {
        return Err(clash("--latent-channels", was.to_string(), now.to_string()));
    }
    if let (Some(now), Some(was)) = (given.diffusion, saved.diffusion)
        && now != was
    {
        return Err(clash("the diffusion", format!("{was:?}"), format!("{now:?}")));
    }
    if let (Some(now), Some(was)) = (given.latent_norm, saved.latent_norm)
        && now != was
    {
        return Err(clash("--latent-norm", was.name().into(), now.name().into()));
    }
    if let (Some(now), Some(was)) = (given.disc_start, saved.disc_start)
        && now != was
    {
        return Err(clash("--disc-start", was.to_string(), now.to_string()));
    }
    if let (Some(now), Some(was)) = (given.high_noise, saved.high_noise)
        && now != was
    {
        return Err(clash("--high-noise", was.to_string(), now.to_string()));
    }
    if let (Some(now), Some(was)) = (given.guess_share, saved.guess_share)
        && now != was
    {
        return Err(clash("--guess-share", was.to_string(), now.to_string()));
    }
    if let (Some(now), Some(was)) = (given.guess_noise, saved.guess_noise)
        && now != was
    {
        return Err(clash("--guess-noise", was.name().into(), now.name().into()));
    }
    // An interpolator run with a guess share recorded before the option trained on the
    // straight line.
    let guessing = interpolator_guesses(opts.stage, given.guess_share.or(saved.guess_share));
    let saved_guess = saved.interpolation_guess.or(guessing.then_some(InterpolationGuess::Blend));
    if let (Some(now), Some(was)) = (given.interpolation_guess, saved_guess)
        && now != was
    {
        return Err(clash("--interpolation-guess", was.name().into(), now.name().into()));
    }
    if let (Some(now), Some(was)) = (given.box_weight, saved.box_weight)
        && now != was
    {
        return Err(clash("--box-weight", was.to_string(), now.to_string()));
    }
    if let (Some(now), Some(was)) = (given.edge_weight, saved.edge_weight)
        && now != was
    {
        return Err(clash("--edge-weight", was.to_string(), now.to_string()));
    }
    // The checkpoint holds the weights; what the run started from only counts its training.
    if given.init_from.is_some() && given.init_from != saved.init_from {
        tracing::warn!(
            "--resume: --init-from is ignored; the run's training facts count what it started from ({})",
            saved.init_from.as_deref().map_or("fresh weights".into(), |p| p.display().to_string())
        );
    }
    let mut opts = opts.clone();
    opts.latent_channels = given.latent_channels.or(saved.latent_channels);
    opts.diffusion = given.diffusion.or(saved.diffusion);
    opts.latent_norm = given.latent_norm.or(saved.latent_norm);
    // A run recorded before `disc_start` was kept resumes with the flag or the default.
    opts.disc_start = given.disc_start.or(saved.disc_start);
    opts.high_noise = given.high_noise.or(saved.high_noise);
    opts.guess_share = given.guess_share.or(saved.guess_share);
    opts.guess_noise = given.guess_noise.or(saved.guess_noise);
    opts.interpolation_guess = given.interpolation_guess.or(saved_guess);
    opts.box_weight = given.box_weight.or(saved.box_weight);
    opts.edge_weight = given.edge_weight.or(saved.edge_weight);
    opts.init_from = saved.init_from;
    Ok(opts)
}

/// The stage's files in `opts.init_from`, checked against this tier; `None` without it.
fn initial_weights(opts: &TrainOptions) -> Result<Option<InitialWeights>, TrainError> {
    let Some(dir) = &opts.init_from else { return Ok(None) };
    if !opts.stage.can_init_from() {
        return Err(TrainError::Options(
            "--init-from is not supported for the decoder stage: it always fine-tunes the weights folder's autoencoder"
                .into(),
        ));
    }
    let manifest = Manifest::read(dir)?;
    if manifest.tier != opts.tier {
        return Err(TrainError::Options(format!(
            "--init-from {}: its weights are tier {:?}, this run trains {:?}",
            dir.display(),
            manifest.tier,
            opts.tier
        )));
    }
    let name = opts.stage.model_name();
    let missing = || TrainError::Weights(WeightsError::MissingFile { path: dir.join(format!("{name}.safetensors")) });
    let entry = manifest.model(name).ok_or_else(missing)?;
    let spatial = entry.file_path(dir, Part::Spatial)?.ok_or_else(missing)?;
    let temporal = entry.file_path(dir, Part::Temporal)?;
    Ok(Some(InitialWeights {
        dir: dir.clone(),
        spatial,
        temporal,
        training: entry.training.clone(),
        latent_norm: entry.latent_norm.clone(),
    }))
}

/// The tier's configuration for this run: the autoencoder stage takes `--latent-channels`;
/// the latent stages after it follow the weights folder's autoencoder (its latent channels).
fn stage_config(opts: &TrainOptions) -> Result<TierConfig, TrainError> {
    let cfg = opts.tier.config();
    if opts.diffusion.is_some() && opts.stage != Stage::ImageLdm {
        return Err(TrainError::Options(
            "--prediction and --zero-terminal-snr apply to the image-ldm stage only \
             (the video LDM and interpolator take the image LDM's)"
                .into(),
        ));
    }
    if opts.latent_norm.is_some() && opts.stage != Stage::ImageLdm {
        return Err(TrainError::Options(
            "--latent-norm applies to the image-ldm stage only (the video LDM and interpolator take the image LDM's)"
                .into(),
        ));
    }
    if opts.disc_start.is_some() && opts.stage != Stage::TemporalDecoder {
        return Err(TrainError::Options("--disc-start applies to the temporal-decoder stage only".into()));
    }
    // The video stages' shares: their stages only, and a share in [0, 1].
    for (flag, share) in [("--high-noise", opts.high_noise), ("--guess-share", opts.guess_share)] {
        let Some(share) = share else { continue };
        if !matches!(opts.stage, Stage::VideoLdm | Stage::Interpolator) {
            return Err(TrainError::Options(format!("{flag} applies to the video-ldm and interpolator stages only")));
        }
        if !(0.0..=1.0).contains(&share) {
            return Err(TrainError::Options(format!("{flag} takes a share in [0, 1], not {share}")));
        }
    }
    if opts.guess_noise.is_some() && !opts.guess_share.is_some_and(|s| s > 0.0) {
        return Err(TrainError::Options("--guess-noise needs a --guess-share above 0".into()));
    }
    if opts.interpolation_guess.is_some() {
        if opts.stage != Stage::Interpolator {
            return Err(TrainError::Options("--interpolation-guess applies to the interpolator stage only".into()));
        }
        if !opts.guess_share.is_some_and(|s| s > 0.0) {
            return Err(TrainError::Options("--interpolation-guess needs a --guess-share above 0".into()));
        }
    }
    if let Some(weight) = opts.box_weight {
        if opts.stage != Stage::ImageLdm {
            return Err(TrainError::Options("--box-weight applies to the image-ldm stage only".into()));
        }
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(TrainError::Options(format!("--box-weight takes a weight ≥ 0, not {weight}")));
        }
    }
    if let Some(weight) = opts.edge_weight {
        if !matches!(opts.stage, Stage::Upsampler | Stage::UpsamplerVideo) {
            return Err(TrainError::Options(
                "--edge-weight applies to the upsampler and upsampler-video stages only".into(),
            ));
        }
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(TrainError::Options(format!("--edge-weight takes a weight ≥ 0, not {weight}")));
        }
    }
    if opts.guess_share.is_some_and(|s| s > 0.0) && opts.data.is_some() && opts.stage == Stage::VideoLdm {
        return Err(TrainError::Options(
            "--guess-share needs the ego's motion, which only rendered clips record (leave out --data)".into(),
        ));
    }
    if opts.latent_channels.is_some_and(|z| z == 0 || opts.stage != Stage::Autoencoder) {
        return Err(TrainError::Options(
            "--latent-channels takes a positive count and applies to the autoencoder stage only \
             (later stages follow the autoencoder in the weights folder)"
                .into(),
        ));
    }
    Ok(match opts.stage {
        // A continued autoencoder keeps the design it was trained with (latent width,
        // shortcuts), whatever the tier's preset has become since.
        Stage::Autoencoder => match (&opts.init_from, opts.latent_channels) {
            (Some(dir), z) => {
                let (_, config) = autoencoder_entry_in(dir)?;
                if let Some(z) = z
                    && z != config.latent_channels
                {
                    return Err(TrainError::Options(format!(
                        "--latent-channels {z}: the autoencoder in --init-from {} has {} (a continued \
                         autoencoder keeps its latent width)",
                        dir.display(),
                        config.latent_channels
                    )));
                }
                cfg.with_autoencoder(config)
            }
            (None, Some(z)) => cfg.with_latent_channels(z),
            (None, None) => cfg,
        },
        Stage::Upsampler | Stage::UpsamplerVideo => cfg,
        _ => cfg.with_autoencoder(autoencoder_entry(opts)?.1),
    })
}

/// The weights folder's autoencoder: its manifest entry and configuration.
fn autoencoder_entry(opts: &TrainOptions) -> Result<(ModelEntry, AutoencoderConfig), TrainError> {
    autoencoder_entry_in(&opts.weights_dir)
}

/// The autoencoder of the weights folder `dir`: its manifest entry and configuration.
fn autoencoder_entry_in(dir: &Path) -> Result<(ModelEntry, AutoencoderConfig), TrainError> {
    let manifest = Manifest::read(dir)?;
    let name = Stage::Autoencoder.model_name();
    let missing = || TrainError::Weights(WeightsError::MissingFile { path: dir.join(format!("{name}.safetensors")) });
    let entry = manifest.model(name).ok_or_else(missing)?;
    let config = entry.config(&Manifest::path(dir))?;
    Ok((entry.clone(), config))
}

/// The upsampler's training task for `opts` (high-resolution frames are 4× the key frames).
fn upsampler_task(
    opts: &TrainOptions,
    phase: UpsamplerPhase,
    image_weights: Option<PathBuf>,
    init_from: Option<PathBuf>,
) -> Result<UpsamplerTask, TrainError> {
    let cfg = opts.tier.config();
    let frame_size = (4 * cfg.frame_size.0, 4 * cfg.frame_size.1);
    let clips = match phase {
        UpsamplerPhase::Image => vec![],
        UpsamplerPhase::Video => vec![(cfg.window, 4.0 * KEYFRAME_FPS)],
    };
    Ok(UpsamplerTask {
        phase,
        config: cfg.upsampler.clone(),
        image_weights,
        schedule: NoiseSchedule::ldm(),
        // SD x4-upscaler's augmentation schedule and level range.
        augmentation: crate::model::upsampler::augmentation_schedule(),
        max_level: crate::model::upsampler::AUGMENTATION_LEVELS,
        frames: frame_source(opts, frame_size, &clips)?,
        // Patches: the network is fully convolutional (see model/upsampler.rs).
        patch: cfg.upsampler_patch,
        frame_size,
        window: cfg.window,
        batch: opts.batch,
        edge_weight: opts.edge_weight.unwrap_or(0.0),
        init_from,
    })
}

/// The image phase's training among an upsampler entry's facts: the facts themselves for
/// an image-phase entry (no temporal file), their base for a video-phase one, which
/// records the image phase it fine-tuned as its base (`None` where an older manifest did not).
fn image_phase_facts(facts: Option<&TrainingFacts>, has_temporal: bool) -> Option<&TrainingFacts> {
    match has_temporal {
        true => facts?.base.as_deref(),
        false => facts,
    }
}

/// The frames a stage trains on at `size`: rendered by the world, or read from
/// `opts.data`, checked for the `(frames, fps)` clips the stage cuts.
fn frame_source(opts: &TrainOptions, size: (usize, usize), clips: &[(usize, f32)]) -> Result<FrameSource, TrainError> {
    let source = FrameSource::new(size.0, size.1, opts.seed);
    match &opts.data {
        Some(dir) => source.with_dataset(dir, clips),
        None => Ok(source),
    }
}

/// Key frames are 2.5 Hz (ARCHITECTURE.md, "Frame rates").
pub const KEYFRAME_FPS: f32 = 2.5;

/// Held-out frames for the autoencoder's PSNR (the model card measures 32).
const PSNR_FRAMES: usize = 16;

/// The saved autoencoder's mean PSNR on the held-out renders, as a note.
fn psnr_note<IB: Backend>(ae: &Autoencoder<IB>, frames: &FrameSource, device: &IB::Device) -> String {
    let db = held_out_psnr(ae, frames, PSNR_FRAMES, device);
    format!("saved weights: held-out PSNR {db:.2} dB ({PSNR_FRAMES} whole frames, posterior mean)")
}

/// Appends `note` to an entry's training notes.
fn add_note(e: &mut ModelEntry, note: &str) {
    if let Some(t) = e.training.as_mut() {
        t.notes = if t.notes.is_empty() { note.to_string() } else { format!("{}; {note}", t.notes) };
    }
}

/// `1 / std` of the posterior means of the held-out frames (LDM's scale factor).
fn latent_scale<IB: Backend>(ae: &Autoencoder<IB>, frames: &FrameSource, device: &IB::Device) -> f32 {
    use burn::tensor::ElementConversion;
    let x = frames.held_out::<IB>(16, device);
    let (mean, _) = ae.encoder.forward(x);
    let std: f32 = mean.var(0).mean().sqrt().into_scalar().elem();
    if std.is_finite() && std > 1e-6 { 1.0 / std } else { 1.0 }
}

/// The trained autoencoder of this weights folder and its latent scale.
fn load_autoencoder<IB: Backend>(
    opts: &TrainOptions,
    device: &IB::Device,
) -> Result<(Autoencoder<IB>, f32), TrainError> {
    let (entry, config) = autoencoder_entry(opts)?;
    let path = stage_file(opts, Stage::Autoencoder, Part::Spatial)?;
    let ae = load_parts(config.init::<IB>(device), &path, None, TemporalInit::Require)?;
    Ok((ae, entry.latent_scale.unwrap_or(1.0)))
}

/// The file of an earlier stage, as its manifest entry names it.
fn stage_file(opts: &TrainOptions, stage: Stage, part: Part) -> Result<PathBuf, TrainError> {
    let manifest = Manifest::read(&opts.weights_dir)?;
    let entry = manifest.model(stage.model_name()).ok_or_else(|| missing_stage(opts, stage))?;
    entry.file_path(&opts.weights_dir, part)?.ok_or_else(|| missing_stage(opts, stage))
}

fn missing_stage(opts: &TrainOptions, stage: Stage) -> TrainError {
    TrainError::Weights(WeightsError::MissingFile {
        path: opts.weights_dir.join(format!("{}.safetensors", stage.model_name())),
    })
}

/// Saves a video stage whose spatial layers were frozen: the manifest entry points at
/// the spatial file it was built on, and only the temporal parameters are written anew.
fn save_temporal<IB: Backend, M: Module<IB>, C: Serialize>(
    opts: &TrainOptions,
    model: &M,
    spatial: &Path,
    config: &C,
    summary: &FitSummary,
    extra: impl FnOnce(&mut ModelEntry),
) -> Result<PathBuf, TrainError> {
    let temporal_name = format!("{}.temporal.safetensors", opts.stage.model_name());
    let temporal = opts.weights_dir.join(&temporal_name);
    save_parts(model, &opts.run_dir.join("spatial-copy.safetensors"), Some(&temporal))?;
    let spatial_name = spatial.file_name().map(PathBuf::from).unwrap_or_default();
    let files = vec![
        FileEntry::describe(&opts.weights_dir, spatial_name, Part::Spatial)?,
        FileEntry::describe(&opts.weights_dir, &temporal_name, Part::Temporal)?,
    ];
    record::<IB, _>(opts, config, files, summary, extra)?;
    Ok(temporal)
}

/// Saves a single-file stage's EMA weights and records it in the manifest.
fn save_stage<IB: Backend, M: Module<IB>, C: Serialize>(
    opts: &TrainOptions,
    config: &C,
    model: &M,
    summary: &FitSummary,
    extra: impl FnOnce(&mut ModelEntry),
) -> Result<PathBuf, TrainError> {
    std::fs::create_dir_all(&opts.weights_dir).map_err(|e| TrainError::io(&opts.weights_dir, e))?;
    let name = format!("{}.safetensors", opts.stage.model_name());
    let path = opts.weights_dir.join(&name);
    save_parts(model, &path, None)?;
    let files = vec![FileEntry::describe(&opts.weights_dir, &name, Part::Spatial)?];
    record::<IB, _>(opts, config, files, summary, extra)?;
    Ok(path)
}

/// Replaces the stage's manifest entry (creating the manifest if needed).
fn record<IB: Backend, C: Serialize>(
    opts: &TrainOptions,
    config: &C,
    files: Vec<FileEntry>,
    summary: &FitSummary,
    extra: impl FnOnce(&mut ModelEntry),
) -> Result<(), TrainError> {
    let cfg = opts.tier.config();
    let facts = TrainingFacts {
        steps: summary.last_step,
        // Every part of a resumed run, not only the last.
        wall_time_s: super::plot::log_wall_seconds(&opts.run_dir.join("log.csv")).unwrap_or(summary.seconds),
        hardware: hardware::<IB>(),
        data: format!(
            "{}, {}, batch {}{}{}{}{}",
            match &opts.data {
                Some(dir) => format!("dataset {}", dir.display()),
                None => format!("procedural world, world seeds from run seed {} (training range < 2^40)", opts.seed),
            },
            match opts.stage {
                // Crops of the 4× frames, their 4×4 averages as the input.
                Stage::Upsampler | Stage::UpsamplerVideo => format!(
                    "{}×{} crops of {}×{} frames",
                    cfg.upsampler_patch.0,
                    cfg.upsampler_patch.1,
                    4 * cfg.frame_size.0,
                    4 * cfg.frame_size.1
                ),
                _ => format!("{}×{} frames", cfg.frame_size.0, cfg.frame_size.1),
            },
            opts.batch,
            match opts.high_noise {
                Some(share) if share > 0.0 => format!(", timesteps with high-noise share {share}"),
                _ => String::new(),
            },
            match opts.guess_share {
                Some(share) if share > 0.0 => format!(
                    "{}{}",
                    match opts.stage {
                        Stage::Interpolator => format!(
                            ", {share} of the clips noised from the interpolation guide's guess ({})",
                            opts.interpolation_guess.unwrap_or(InterpolationGuess::Blend).name()
                        ),
                        _ => format!(", {share} of the clips with context noised from the prediction guide's guess"),
                    },
                    match opts.guess_noise.unwrap_or_default() {
                        GuessNoise::Middle => "",
                        GuessNoise::Low => " at low noise (timesteps 10-99, x̂_0 loss)",
                    }
                ),
                _ => String::new(),
            },
            match opts.box_weight {
                Some(weight) if weight > 0.0 => format!(", loss weight 1 + {weight} on car boxes"),
                _ => String::new(),
            },
            match opts.edge_weight {
                Some(weight) if weight > 0.0 => format!(", x̂_0 squared error + {weight}·edge loss"),
                _ => String::new(),
            }
        ),
        notes: match summary.held_out.last() {
            Some((step, loss)) => format!(
                "held-out loss {loss:.4} of the live weights at step {step}; the file holds their EMA (decay {})",
                opts.loop_config.ema_decay
            ),
            None => String::new(),
        },
        base: None,
    };
    let mut entry = ModelEntry::new(opts.stage.model_name(), config, files)?;
    entry.training = Some(facts);
    extra(&mut entry);
    Manifest::upsert(&opts.weights_dir, opts.tier, entry)?;
    Ok(())
}

/// The training facts' hardware line for backend `IB`: its name and the CPU threads.
pub fn hardware<IB: Backend>() -> String {
    format!(
        "burn {} backend, {} CPU threads available",
        std::any::type_name::<IB>().rsplit("::").next().unwrap_or("?").split('<').next().unwrap_or("?"),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// Where `train` keeps a stage's run by default.
pub fn default_run_dir(tier: ModelTier, stage: Stage) -> PathBuf {
    Path::new("runs/train").join(tier.dir_name()).join(stage.run_name())
}
