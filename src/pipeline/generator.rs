//! Scenario in, frames out: frame 0 from the box-conditioned image LDM, then for each
//! future an iterative prediction rollout whose windows stream through interpolation,
//! decoding and upsampling to a [`FrameSink`] as soon as they are ready. Only the
//! latents of the chunk in flight are held, so memory does not grow with the rollout.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::denoise::{ImageCond, ImageDenoiser, UpsampleCond, UpsampleDenoiser, VideoCond, VideoDenoiser};
use super::ego::EgoMotion;
use super::models::Models;
use super::{FrameSink, PipelineError};
use crate::data::tensor_to_images;
use crate::diffusion::{
    Cancelled, Ddim, Denoiser, Guidance, Guide, Known, NoiseSchedule, Prediction, Progress, Sampler, gaussian,
};
use crate::model::{Boxes, Labels, UNet};
use crate::scenario::{Conditions, InterpolationGuess, MAX_PREDICTION_GUIDE_FALLOFF, Scenario};
use crate::world::{FrameLabels, Renderer, World, mix};

/// Key frames per second (ARCHITECTURE.md, "Frame rates").
pub const KEYFRAME_FPS: f32 = crate::train::KEYFRAME_FPS;
/// The interpolator's first stage multiplies the frame rate by this.
pub const INTERPOLATION_FACTOR: usize = 4;
/// DDIM steps of the 4× upsampler unless asked otherwise: on held-out 512×1024 clips
/// (`tools/upsampler_probe.rs`, 2026-12-05) 4, 10 and 20 steps measured the same PSNR (30.58,
/// 30.57, 30.56 dB) and within 2% of each other's sharpness (0.382, 0.388, 0.390 of the
/// render's); 4 take 40% of 10's time.
pub const DEFAULT_UPSAMPLE_STEPS: usize = 4;
/// Noise-augmentation level of the upsampler's low-resolution input at sampling unless asked
/// otherwise (SD x4-upscaler's default). Measured on the tiny weights (`upsampler_probe`, 3
/// clips, 4 steps, 2026-12-05): level 0 30.65 dB / sharpness 0.400 / temporal error 2.70,
/// 20 30.62 / 0.406 / 2.82, 50 30.51 / 0.424 / 3.14, 100 30.19 / 0.459 / 3.75.
pub const DEFAULT_UPSAMPLE_LEVEL: usize = 20;
/// Share of the upsampler's noises moved on from frame to frame unless asked otherwise
/// ([`GenerateOptions::upsample_noise`]). Measured on the tiny weights (`upsampler_probe`, 6
/// held-out 10 Hz clips of 8 frames, 4 steps, 2026-12-07): 0 30.16 dB / sharpness 0.374 /
/// temporal error 3.17, 0.9 30.15 / 0.375 / 3.11, 1 the same as 0.9; no measurable cost in time.
pub const DEFAULT_UPSAMPLE_NOISE: f32 = 0.9;
/// The upsampler's augmentation levels: sampling takes one below this, as training did.
pub const UPSAMPLE_LEVELS: usize = crate::model::upsampler::AUGMENTATION_LEVELS;

/// How latents become frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecoderMode {
    /// The video-fine-tuned decoder over each chunk of frames.
    Temporal,
    /// The image decoder, frame by frame (the paper's baseline).
    PerFrame,
}

/// How decoded frames are brought to 4× their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpsampleMode {
    /// The video-fine-tuned upsampler over each chunk.
    Video,
    /// The upsampler's spatial layers only, frame by frame.
    PerFrame,
    /// No upsampling: frames stay at key-frame size (a quick preview).
    Off,
}

/// How a video model's sampler treats the frames it is given (context or key frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KnownFrames {
    /// Through the context encoder only, as in the paper; the sampler draws the known
    /// positions like any other frame (what runs before this option existed did).
    #[default]
    ContextOnly,
    /// Also held in the sample: before every DDIM step the known positions are set to their
    /// latents noised to that step's level, as the models saw them in training
    /// ([`Known`]).
    Replace,
}

/// Everything a run depends on besides the scenario's world (recorded in metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    pub futures: usize,
    /// Real time covered by each future.
    pub seconds: f32,
    /// Context frames `S` carried from one prediction window to the next (1 or 2).
    pub context_frames: usize,
    /// DDIM steps of the latent models.
    pub steps: usize,
    pub eta: f64,
    /// Guidance scale of the conditions (day/night, crowdedness) in every latent model, and of
    /// the boxes unless `box_guidance` is set.
    pub label_guidance: f64,
    /// Guidance scale of the car boxes in frame 0 (image LDM), composed with the labels' as
    /// [`Guidance`] composes context and labels, the boxes in the context's place:
    /// `ε(∅,∅) + w_box·(ε(∅,b) − ε(∅,∅)) + w_lab·(ε(l,b) − ε(∅,b))`. `None` guides boxes and
    /// labels jointly at `label_guidance`, as runs made before the option did (their metadata
    /// lacks the field).
    #[serde(default)]
    pub box_guidance: Option<f64>,
    pub context_guidance: f64,
    /// Raise 2.5 Hz key frames to 10 Hz with the interpolator.
    pub interpolate: bool,
    pub decoder: DecoderMode,
    pub upsample: UpsampleMode,
    /// DDIM steps of the upsampler.
    pub upsample_steps: usize,
    /// Noise-augmentation level of the upsampler's condition at sampling (0..350).
    pub upsample_level: usize,
    /// Context and key frames in the video models' samplers.
    #[serde(default)]
    pub known_frames: KnownFrames,
    /// Share of the interpolator's DDIM steps (0..=1) for which each in-between frame is
    /// held, like a known frame, to the straight line between its two keys' latents: the
    /// interpolator then starts from that blend noised to the level of the first free step
    /// (SDEdit) instead of from noise. 0 samples as the paper does, and is what runs made
    /// before the option did (their metadata lacks the field).
    #[serde(default)]
    pub interpolation_guide: f32,
    /// What the interpolation guide holds the in-between frames to. Runs made before the
    /// option held them to the straight line between the keys (their metadata lacks the field).
    #[serde(default)]
    pub interpolation_guess: InterpolationGuess,
    /// Share of the prediction model's DDIM steps (0..=1) for which each new frame of a window
    /// is held, like a known frame, to the window's last context frame moved on by the ego's
    /// travel ([`super::ego`]): prediction then starts from that guess noised to the level of
    /// the first free step (SDEdit) instead of from noise. 0 samples as the paper does, and is
    /// what runs made before the option did (their metadata lacks the field); 1 leaves the
    /// model only its last step.
    #[serde(default)]
    pub prediction_guide: f32,
    /// How the prediction guide's hold falls off where its guess is poor (0..=4): each latent
    /// cell of a new frame is held for `seen · min(1, J)^falloff` of the guide's steps
    /// ([`super::ego::EgoMotion::guess_confidence`]: `J` is the area of the last context frame
    /// the warp pulls the cell from, below 1 where the warp magnifies it). 0 holds every cell
    /// for all the guide's steps, as runs made before the option did (their metadata lacks
    /// the field).
    #[serde(default)]
    pub prediction_guide_falloff: f32,
    /// Share (0..=1) of each new frame's start noise in a prediction window that is the
    /// window's last context frame's noise moved on with the scene by the ego's travel
    /// ([`super::ego::EgoMotion::moved_noise`]: a point's noise split between the entries it
    /// moves to, mixed with each entry's own so that every entry stays an independent unit
    /// Gaussian): the details the sampler draws move with the road instead of being drawn anew
    /// in every frame. 0 draws every frame's noise on its own, as the paper
    /// does and as runs made before the option did (their metadata lacks the field).
    #[serde(default)]
    pub prediction_noise: f32,
    /// Share (0..=1) of each in-between frame's start noise in an interpolated chunk that is
    /// the noise of the key before it, moved on by the ego's travel up to the frame
    /// ([`super::ego::EgoMotion::moved_noise`], as [`Self::prediction_noise`] does for the
    /// keys). The interpolation guide holds those frames to its guess noised with this noise,
    /// so with it the noise of their last steps moves with the road instead of changing from
    /// frame to frame. 0 draws every frame's noise on its own, as runs made before the option
    /// did (their metadata lacks the field).
    #[serde(default)]
    pub interpolation_noise: f32,
    /// Share (0..=1) of each upsampled frame's noises (at 4× the key-frame size: the sampler's
    /// start noise and the augmentation noise added to the low-resolution condition) that is
    /// the noise of the frame before it, moved on by the ego's travel between the two
    /// ([`super::ego::EgoMotion::moved_noise`]), carried from chunk to chunk of a future: the
    /// details the upsampler draws move with the road instead of being drawn anew in every
    /// frame. 0 draws every frame's noise on its own, as runs made before the option did
    /// (their metadata lacks the field).
    #[serde(default)]
    pub upsample_noise: f32,
}

impl GenerateOptions {
    /// The image LDM's guidance (its condition is `ImageCond`): equal weights are the joint
    /// guidance of labels and boxes, `ε(∅,∅) + w·(ε(l,b) − ε(∅,∅))`.
    pub fn first_frame_guidance(&self) -> Guidance {
        Guidance::new(self.label_guidance, self.box_guidance.unwrap_or(self.label_guidance))
    }

    /// The scenario's rollout and sampling settings with the full chain switched on.
    pub fn from_scenario(s: &Scenario) -> Self {
        GenerateOptions {
            futures: s.rollout.futures as usize,
            seconds: s.rollout.seconds,
            // A window without context would start a new scene: keep at least frame 0.
            context_frames: (s.rollout.context_frames as usize).max(1),
            steps: s.sampling.steps as usize,
            eta: s.sampling.eta as f64,
            label_guidance: s.sampling.label_guidance as f64,
            box_guidance: s.sampling.box_guidance.map(f64::from),
            context_guidance: s.sampling.context_guidance as f64,
            interpolate: true,
            decoder: DecoderMode::Temporal,
            upsample: UpsampleMode::Video,
            upsample_steps: DEFAULT_UPSAMPLE_STEPS,
            upsample_level: DEFAULT_UPSAMPLE_LEVEL,
            known_frames: KnownFrames::Replace,
            interpolation_guide: s.sampling.interpolation_guide,
            interpolation_guess: s.sampling.interpolation_guess,
            prediction_guide: s.sampling.prediction_guide,
            prediction_guide_falloff: s.sampling.prediction_guide_falloff,
            prediction_noise: s.sampling.prediction_noise,
            interpolation_noise: s.sampling.interpolation_noise,
            upsample_noise: DEFAULT_UPSAMPLE_NOISE,
        }
    }
}

/// The seeds of a run, all derived from the scenario's seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seeds {
    pub frame0: u64,
    pub futures: Vec<u64>,
}

impl Seeds {
    pub fn derive(scenario_seed: u64, futures: usize) -> Self {
        Seeds {
            frame0: mix(scenario_seed ^ 0xF0F0_0000),
            futures: (0..futures as u64).map(|k| mix(scenario_seed ^ mix(0xF17E_0000 + k))).collect(),
        }
    }
}

/// Which model a progress step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    FirstFrame,
    Prediction,
    Interpolation,
    Decoding,
    Upsampling,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::FirstFrame => "frame 0",
            Phase::Prediction => "prediction",
            Phase::Interpolation => "interpolation",
            Phase::Decoding => "decoding",
            Phase::Upsampling => "upsampling",
        }
    }
}

/// What the generator reports while it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// A sampling step (or a decode) finished; `done` counts every unit of the run so far.
    Step { future: Option<usize>, phase: Phase, done: usize, total: usize },
    /// Frame 0 is in the sink.
    FirstFrame,
    /// A future's frame `index` is in the sink.
    Frame { future: usize, index: usize, frames: usize },
}

/// Sizes and counts of a run, known before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub key_frames: usize,
    /// Frames written per future (frame 0 included).
    pub frames_per_future: usize,
    pub fps: f32,
    /// Output frame `(height, width)`.
    pub frame_size: (usize, usize),
    /// Prediction windows per future.
    pub windows: usize,
    /// Progress units of frame 0 and of each future; their sum over the run is
    /// `total_units` (what `Event::Step::total` counts to).
    pub first_frame_units: usize,
    pub future_units: usize,
    pub total_units: usize,
}

impl Plan {
    /// One clip of `frames` frames (`key_frames` of them key frames) at `fps`, made in
    /// `steps` units of progress by one stage of the chain on its own.
    fn one_clip(key_frames: usize, frames: usize, fps: f32, frame_size: (usize, usize), steps: usize) -> Self {
        Plan {
            key_frames,
            frames_per_future: frames,
            fps,
            frame_size,
            windows: 0,
            first_frame_units: 0,
            future_units: steps,
            total_units: steps,
        }
    }
}

/// Wall time per phase, seconds. When futures run on several threads, the phases sum
/// over the threads and may add up to more than `total` (wall time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub first_frame: f64,
    pub prediction: f64,
    pub interpolation: f64,
    pub decoding: f64,
    pub upsampling: f64,
    pub total: f64,
}

impl Timings {
    fn add_all(&mut self, other: &Timings) {
        self.first_frame += other.first_frame;
        self.prediction += other.prediction;
        self.interpolation += other.interpolation;
        self.decoding += other.decoding;
        self.upsampling += other.upsampling;
    }

    fn add(&mut self, phase: Phase, seconds: f64) {
        *match phase {
            Phase::FirstFrame => &mut self.first_frame,
            Phase::Prediction => &mut self.prediction,
            Phase::Interpolation => &mut self.interpolation,
            Phase::Decoding => &mut self.decoding,
            Phase::Upsampling => &mut self.upsampling,
        } += seconds;
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub plan: Plan,
    pub seeds: Seeds,
    pub timings: Timings,
}

/// The inference chain over loaded models.
pub struct Generator<B: Backend> {
    pub models: Models<B>,
    pub device: B::Device,
    schedule: NoiseSchedule,
    augmentation: NoiseSchedule,
    /// Futures sampled at once, each on its own thread.
    threads: usize,
}

impl<B: Backend> Generator<B> {
    pub fn new(models: Models<B>, device: B::Device) -> Self {
        Generator {
            models,
            device,
            schedule: NoiseSchedule::ldm(),
            // The upsampler's augmentation schedule, as in training (SD's x4 upscaler).
            augmentation: crate::model::upsampler::augmentation_schedule(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// Samples up to `threads` futures at once, each on its own thread (at least 1;
    /// [`Self::new`] takes one per available core).
    /// Every future has its own seed and each burn operation stays on one thread, so
    /// the frames are bit-identical for any thread count; only their order of arrival
    /// at the sink (across futures) changes. On the CPU backend the futures then share
    /// the cores (README, generate bench); on a GPU their kernels share one device (not
    /// measured).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The number of futures sampled at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Checks that these models can run `scenario` with `opts`, and returns the plan.
    pub fn plan(&self, scenario: &Scenario, opts: &GenerateOptions) -> Result<Plan, PipelineError> {
        let m = &self.models;
        let unsupported = |what: String| Err(PipelineError::Unsupported(what));
        let slots = m.image_ldm.box_slots();
        if scenario.boxes.len() > slots {
            return unsupported(format!(
                "{} boxes requested, the {} tier's image model takes at most {slots}",
                scenario.boxes.len(),
                m.tier.dir_name()
            ));
        }
        let window = m.window();
        if opts.futures == 0 || opts.steps == 0 {
            return unsupported("futures and steps must be at least 1".into());
        }
        self.check_upsample_options(opts)?;
        if !(1..window).contains(&opts.context_frames) || opts.context_frames > 2 {
            return unsupported(format!(
                "context frames must be 1 or 2 (window of {window}), got {}",
                opts.context_frames
            ));
        }
        if !(opts.seconds.is_finite() && opts.seconds > 0.0) {
            return unsupported(format!("seconds must be positive, got {}", opts.seconds));
        }
        let guidance = [
            ("label", Some(opts.label_guidance)),
            ("box", opts.box_guidance),
            ("context", Some(opts.context_guidance)),
        ];
        for (name, w) in guidance {
            if let Some(w) = w
                && !(w.is_finite() && w >= 0.0)
            {
                return unsupported(format!("{name} guidance must be a finite number ≥ 0, not {w}"));
            }
        }
        let shares = [
            ("interpolation guide", opts.interpolation_guide),
            ("prediction guide", opts.prediction_guide),
            ("prediction noise", opts.prediction_noise),
            ("interpolation noise", opts.interpolation_noise),
        ];
        for (name, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return unsupported(format!("{name} must be from 0 to 1, not {share}"));
            }
        }
        let falloff = opts.prediction_guide_falloff;
        if !(0.0..=MAX_PREDICTION_GUIDE_FALLOFF).contains(&falloff) {
            return unsupported(format!(
                "prediction guide falloff must be from 0 to {MAX_PREDICTION_GUIDE_FALLOFF}, not {falloff}"
            ));
        }
        let missing = |model, stage, flag| self.missing_model(model, stage, flag);
        if opts.interpolate && m.interpolator.is_none() {
            return Err(missing("interpolator", "interpolator", "--no-interpolate"));
        }
        if opts.decoder == DecoderMode::Temporal && m.temporal_decoder.is_none() {
            return Err(missing("temporal_decoder", "temporal-decoder", "--per-frame-decoder"));
        }
        match opts.upsample {
            UpsampleMode::Off => {}
            _ if m.upsampler.is_none() => return Err(missing("upsampler", "upsampler", "--no-upsample")),
            UpsampleMode::Video if !m.upsampler_video => {
                return Err(missing("upsampler", "upsampler-video", "--per-frame-upsampler"));
            }
            _ => {}
        }
        let key_frames = (opts.seconds * KEYFRAME_FPS).round().max(1.0) as usize + 1;
        let intervals = key_frames - 1;
        let (frames_per_future, fps) = if opts.interpolate {
            (intervals * INTERPOLATION_FACTOR + 1, KEYFRAME_FPS * INTERPOLATION_FACTOR as f32)
        } else {
            (key_frames, KEYFRAME_FPS)
        };
        let (h, w) = m.frame_size();
        let frame_size = if opts.upsample == UpsampleMode::Off { (h, w) } else { (4 * h, 4 * w) };
        // Windows: the first brings T − 1 new key frames (frame 0 is its context), the
        // others T − S.
        let mut windows = 0;
        let mut have = 1;
        while have < key_frames {
            have += if windows == 0 { window - 1 } else { window - opts.context_frames };
            windows += 1;
        }
        let chunks = self.chunks(key_frames, opts.interpolate);
        let upsample_units = if opts.upsample == UpsampleMode::Off { 0 } else { opts.upsample_steps };
        let per_chunk = usize::from(opts.interpolate) * opts.steps + 1 + upsample_units;
        let first_frame_units = opts.steps + 1 + upsample_units;
        let future_units = windows * opts.steps + chunks * per_chunk;
        let total_units = first_frame_units + opts.futures * future_units;
        Ok(Plan {
            key_frames,
            frames_per_future,
            fps,
            frame_size,
            windows,
            first_frame_units,
            future_units,
            total_units,
        })
    }

    /// Chunks of key frames that pass through decoding together.
    fn chunks(&self, key_frames: usize, interpolate: bool) -> usize {
        let intervals = key_frames - 1;
        if interpolate { intervals.div_ceil(2) } else { intervals.div_ceil(self.models.window()) }
    }

    /// Frame 0 alone (image LDM, image decoder, spatial upsampler unless upsampling is
    /// off): what an editor shows first. Identical to the frame 0 of [`Self::run`].
    pub fn first_frame(
        &self,
        scenario: &Scenario,
        opts: &GenerateOptions,
        on_event: &mut dyn FnMut(Event),
        cancel: &AtomicBool,
    ) -> Result<RgbImage, PipelineError> {
        let plan = self.plan(scenario, opts)?;
        let seeds = Seeds::derive(scenario.seed, opts.futures);
        let abort = AtomicBool::new(false);
        let mut run = Run::new(self, opts, &plan, on_event, cancel, &abort);
        run.frame0(scenario, seeds.frame0).map(|(_, image, _)| image)
    }

    /// The error for a model these weights lack, with the flag that does without it.
    fn missing_model(&self, model: &'static str, stage: &'static str, flag: &str) -> PipelineError {
        let m = &self.models;
        PipelineError::MissingModel {
            dir: m.dir.clone().unwrap_or_default(),
            model,
            stage,
            tier: m.tier.dir_name(),
            hint: String::new(),
        }
        .with_hint(flag)
    }

    /// The interpolator alone, as [`Self::run`] uses it: normalised key latents `a, b, c`
    /// (`[1, z, h, w]` each, two key-frame intervals apart, `a` at the start of `ego`'s
    /// motion) → the 9 latents at 10 Hz from `a` to `c`, the keys in place, sampled with
    /// `opts`' steps, eta, known-frame handling and interpolation guide from `seed`. Without
    /// `ego` the guide's guess is the straight line between the keys whatever
    /// `opts.interpolation_guess` says. For measuring the interpolator on rendered clips
    /// ([`crate::eval::compare_interpolation`]).
    pub fn interpolate_keys(
        &self,
        keys: [&Tensor<B, 4>; 3],
        conditions: Conditions,
        ego: Option<&EgoMotion>,
        opts: &GenerateOptions,
        seed: u64,
    ) -> Result<Vec<Tensor<B, 4>>, PipelineError> {
        if self.models.interpolator.is_none() {
            return Err(self.missing_model("interpolator", "interpolator", "--no-interpolate"));
        }
        let f = INTERPOLATION_FACTOR;
        let plan = Plan::one_clip(3, 2 * f + 1, KEYFRAME_FPS * f as f32, self.models.frame_size(), opts.steps);
        self.one_stage(opts, &plan, |run| {
            run.interpolate(0, keys, conditions, ego.map(|e| (e, 0)), &mut ChaCha8Rng::seed_from_u64(seed))
        })
    }

    /// The interpolation guide's guess by `guess` for normalised key latents `keys`
    /// (`[1, z, h, w]` each, one key-frame interval apart; the first `first_key` intervals
    /// after the start of `ego`'s motion): `(keys − 1)·4 + 1` latents at 10 Hz, the keys in
    /// place. [`InterpolationGuess::Blend`] is the straight line between each pair;
    /// [`InterpolationGuess::Ego`] adds to it the motion of the pair moved towards each other
    /// by the ego's travel, fitted to them ([`EgoMotion::between_latents`], through the
    /// per-frame decoder and the encoder); without `ego` it is the straight line too.
    pub fn interpolation_guess(
        &self,
        keys: &[&Tensor<B, 4>],
        guess: InterpolationGuess,
        ego: Option<(&EgoMotion, usize)>,
    ) -> Vec<Tensor<B, 4>> {
        let f = INTERPOLATION_FACTOR;
        let (InterpolationGuess::Ego, Some((ego, first_key))) = (guess, ego) else {
            return blend_keys(keys, f);
        };
        let m = &self.models;
        let step_m = ego.key_interval_m();
        let keys: Vec<_> = keys.iter().map(|&z| z.clone()).collect();
        ego.between_latents(&keys, first_key as f32 * step_m, step_m, f, |z| m.decode_frames(z), |x| m.encode_frames(x))
    }

    /// `opts`' upsampler steps (at least 1), augmentation level (below the trained ones' end) and
    /// upsample noise (0 to 1).
    fn check_upsample_options(&self, opts: &GenerateOptions) -> Result<(), PipelineError> {
        let levels = UPSAMPLE_LEVELS.min(self.augmentation.train_steps());
        if opts.upsample_steps == 0 || opts.upsample_level >= levels {
            return Err(PipelineError::Unsupported(format!(
                "upsample steps must be at least 1 and the upsample level below {levels}, not {} and {}",
                opts.upsample_steps, opts.upsample_level
            )));
        }
        if !(0.0..=1.0).contains(&opts.upsample_noise) {
            return Err(PipelineError::Unsupported(format!(
                "upsample noise must be from 0 to 1, not {}",
                opts.upsample_noise
            )));
        }
        Ok(())
    }

    /// Runs `stage` on a [`Run`] of `plan` that reports to no one and is never cancelled:
    /// one stage of the chain on its own, for the measurements above.
    fn one_stage<R>(&self, opts: &GenerateOptions, plan: &Plan, stage: impl FnOnce(&mut Run<'_, B>) -> R) -> R {
        let (never, abort) = (AtomicBool::new(false), AtomicBool::new(false));
        let mut ignore = |_: Event| {};
        stage(&mut Run::new(self, opts, plan, &mut ignore, &never, &abort))
    }

    /// The upsampler alone, as [`Self::run`] uses it: one clip of frames `[n, 3, h, w]` on
    /// [-1, 1] at key-frame size → `[n, 3, 4h, 4w]` on [-1, 1], with `opts`' upsampler mode,
    /// steps, augmentation level, eta and upsample noise, from `seed`. `ego`: the motion the
    /// clip starts at and the ego's travel from frame to frame in metres, which the upsample
    /// noise moves the noise by (without it every frame's noise is its own). For measuring the
    /// upsampler on rendered clips (`tools/upsampler_probe.rs`).
    pub fn upsample_frames(
        &self,
        frames: Tensor<B, 4>,
        ego: Option<(&EgoMotion, f32)>,
        opts: &GenerateOptions,
        seed: u64,
    ) -> Result<Tensor<B, 4>, PipelineError> {
        if self.models.upsampler.is_none() {
            return Err(self.missing_model("upsampler", "upsampler", "--no-upsample"));
        }
        self.check_upsample_options(opts)?;
        let [n, _, h, w] = frames.dims();
        let plan = Plan::one_clip(n, n, KEYFRAME_FPS, (h, w), opts.upsample_steps);
        let mut track = ego.map(|(ego, step_m)| NoiseTrack::new(ego, 0.0, step_m));
        self.one_stage(opts, &plan, |run| {
            run.upsample(frames, opts.upsample, Some(0), track.as_mut(), &mut ChaCha8Rng::seed_from_u64(seed))
        })
    }

    /// Runs the whole chain for `scenario`, streaming frames into `sink`.
    /// `cancel` is polled after every sampling step.
    pub fn run(
        &self,
        scenario: &Scenario,
        opts: &GenerateOptions,
        sink: &mut dyn FrameSink,
        on_event: &mut dyn FnMut(Event),
        cancel: &AtomicBool,
    ) -> Result<RunSummary, PipelineError> {
        let plan = self.plan(scenario, opts)?;
        let seeds = Seeds::derive(scenario.seed, opts.futures);
        let start = Instant::now();
        let abort = AtomicBool::new(false);
        let mut run = Run::new(self, opts, &plan, on_event, cancel, &abort);

        let (z0, frame0, ego) = run.frame0(scenario, seeds.frame0)?;
        sink.frame0(&frame0)?;
        (run.on_event)(Event::FirstFrame);

        let shared =
            Shared { conditions: scenario.conditions, seeds: &seeds.futures, z0: &z0, frame0: &frame0, ego: &ego };
        let workers = self.threads.min(opts.futures);
        let mut timings = if workers > 1 {
            let first = run.timings;
            let done = run.done;
            let mut timings = self.futures_in_parallel(workers, opts, &plan, &shared, sink, on_event, cancel, done)?;
            timings.add_all(&first);
            timings
        } else {
            for k in 0..opts.futures {
                run.future(k, &shared, sink)?;
                sink.future_done(k, plan.frames_per_future)?;
            }
            run.timings
        };
        timings.total = start.elapsed().as_secs_f64();
        Ok(RunSummary { plan, seeds, timings })
    }

    /// The futures on `workers` threads, each taking the next future when it finishes
    /// one. Frames and events come back over a bounded channel to this thread, which
    /// alone talks to `sink` and `on_event` (and renumbers the progress steps).
    #[allow(clippy::too_many_arguments)]
    fn futures_in_parallel(
        &self,
        workers: usize,
        opts: &GenerateOptions,
        plan: &Plan,
        shared: &Shared<'_, B>,
        sink: &mut dyn FrameSink,
        on_event: &mut dyn FnMut(Event),
        cancel: &AtomicBool,
        mut done: usize,
    ) -> Result<Timings, PipelineError> {
        let next = AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        let (tx, rx) = mpsc::sync_channel::<Message>(4 * workers);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (next, abort) = (&next, &abort);
                scope.spawn(move || self.worker(opts, plan, shared, next, cancel, abort, tx));
            }
            drop(tx);
            // Drain until every worker has hung up, so none blocks on a full channel;
            // after the first error, only collect.
            let mut first_error = None;
            let mut timings = Timings::default();
            for message in rx {
                let failed = first_error.is_some();
                let outcome = match message {
                    Message::Timings(t) => {
                        timings.add_all(&t);
                        Ok(())
                    }
                    Message::Failed(e) => Err(e),
                    _ if failed => Ok(()),
                    Message::Event(Event::Step { future, phase, total, .. }) => {
                        done += 1;
                        on_event(Event::Step { future, phase, done, total });
                        Ok(())
                    }
                    Message::Event(event) => {
                        on_event(event);
                        Ok(())
                    }
                    Message::Frame { future, index, image } => sink.frame(future, index, &image),
                    Message::FutureDone(k) => sink.future_done(k, plan.frames_per_future),
                };
                if let Err(e) = outcome {
                    abort.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(timings),
            }
        })
    }

    /// One worker thread of [`Self::futures_in_parallel`].
    #[allow(clippy::too_many_arguments)]
    fn worker(
        &self,
        opts: &GenerateOptions,
        plan: &Plan,
        shared: &Shared<'_, B>,
        next: &AtomicUsize,
        cancel: &AtomicBool,
        abort: &AtomicBool,
        tx: SyncSender<Message>,
    ) {
        let mut send_event = |event| {
            // The receiver lives until every worker is gone.
            let _ = tx.send(Message::Event(event));
        };
        let mut run = Run::new(self, opts, plan, &mut send_event, cancel, abort);
        let mut sink = ChannelSink(tx.clone());
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= shared.seeds.len() || abort.load(Ordering::Relaxed) {
                break;
            }
            match run.future(k, shared, &mut sink) {
                Ok(()) => {
                    let _ = tx.send(Message::FutureDone(k));
                }
                Err(e) => {
                    abort.store(true, Ordering::Relaxed);
                    let _ = tx.send(Message::Failed(e));
                    break;
                }
            }
        }
        let _ = tx.send(Message::Timings(run.timings));
    }
}

/// What every future starts from.
struct Shared<'a, B: Backend> {
    conditions: Conditions,
    seeds: &'a [u64],
    z0: &'a Tensor<B, 4>,
    frame0: &'a RgbImage,
    /// What the prediction guide moves the last context frame by, and the interpolation
    /// guide's ego guess the keys.
    ego: &'a EgoMotion,
}

/// From a worker thread to the thread that owns the sink.
enum Message {
    Event(Event),
    Frame { future: usize, index: usize, image: RgbImage },
    FutureDone(usize),
    Failed(PipelineError),
    Timings(Timings),
}

/// A worker's sink: frames go to the owning thread.
struct ChannelSink(SyncSender<Message>);

impl FrameSink for ChannelSink {
    fn frame0(&mut self, _: &RgbImage) -> Result<(), PipelineError> {
        unreachable!("frame 0 is written before the futures start")
    }

    fn frame(&mut self, future: usize, index: usize, image: &RgbImage) -> Result<(), PipelineError> {
        self.0.send(Message::Frame { future, index, image: image.clone() }).map_err(|_| PipelineError::Cancelled)
    }
}

/// The requested cars of `scenario` as the world places them, at `width × height`:
/// image boxes keep exactly the requested rectangle, road placements get the box the
/// world renders.
pub fn requested_labels(scenario: &Scenario, width: u32, height: u32) -> Result<FrameLabels, PipelineError> {
    Ok(labels_in(&World::from_scenario(scenario)?, scenario, width, height))
}

/// [`requested_labels`] in `world`, the scenario's.
fn labels_in(world: &World, scenario: &Scenario, width: u32, height: u32) -> FrameLabels {
    let (_, mut labels) = Renderer::new(width, height).render(world, 0);
    let tracks = &world.scenario_tracks;
    labels.objects.retain(|o| tracks.contains(&o.track_id));
    for o in &mut labels.objects {
        let Some(i) = tracks.iter().position(|&t| t == o.track_id) else { continue };
        if let Some(b) = scenario.boxes[i].image {
            let (w, h) = (width as f32, height as f32);
            o.box2d.x1 = b.x1 * w;
            o.box2d.y1 = b.y1 * h;
            o.box2d.x2 = b.x2 * w;
            o.box2d.y2 = b.y2 * h;
        }
    }
    labels
}

/// Normalised `[x1, y1, x2, y2]` of labelled objects, largest first (as in training).
fn normalised_boxes(labels: &FrameLabels) -> Vec<[f32; 4]> {
    let (w, h) = (labels.width as f32, labels.height as f32);
    let mut boxes: Vec<(f32, [f32; 4])> = labels
        .objects
        .iter()
        .map(|o| (o.box2d.area(), [o.box2d.x1 / w, o.box2d.y1 / h, o.box2d.x2 / w, o.box2d.y2 / h]))
        .collect();
    boxes.sort_by(|a, b| b.0.total_cmp(&a.0));
    boxes.into_iter().map(|(_, b)| b).collect()
}

/// One run in progress: progress counting, timings and cancellation.
struct Run<'a, B: Backend> {
    g: &'a Generator<B>,
    opts: &'a GenerateOptions,
    plan: &'a Plan,
    on_event: &'a mut dyn FnMut(Event),
    cancel: &'a AtomicBool,
    /// Set when another thread of the run failed.
    abort: &'a AtomicBool,
    done: usize,
    timings: Timings,
}

impl<'a, B: Backend> Run<'a, B> {
    fn new(
        g: &'a Generator<B>,
        opts: &'a GenerateOptions,
        plan: &'a Plan,
        on_event: &'a mut dyn FnMut(Event),
        cancel: &'a AtomicBool,
        abort: &'a AtomicBool,
    ) -> Self {
        Run { g, opts, plan, on_event, cancel, abort, done: 0, timings: Timings::default() }
    }

    /// Frame 0's latent and image: the requested boxes under the scenario's labels; and the
    /// ego motion of the scenario's world, the requested boxes held.
    fn frame0(&mut self, scenario: &Scenario, seed: u64) -> Result<(Tensor<B, 4>, RgbImage, EgoMotion), PipelineError> {
        let (h, w) = self.g.models.frame_size();
        let world = World::from_scenario(scenario)?;
        let boxes = normalised_boxes(&labels_in(&world, scenario, w as u32, h as u32));
        let ego = EgoMotion::from_world(&world, boxes.clone());
        let z0 = self.first_frame(scenario.conditions, boxes, seed)?;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x0950));
        // A single image: image decoder, spatial upsampler.
        let up = if self.opts.upsample == UpsampleMode::Off { UpsampleMode::Off } else { UpsampleMode::PerFrame };
        let image = self.render(std::slice::from_ref(&z0), DecoderMode::PerFrame, up, None, None, &mut rng)?;
        Ok((z0, image.into_iter().next().expect("one latent gives one frame"), ego))
    }

    fn tick(&mut self, future: Option<usize>, phase: Phase) -> ControlFlow<()> {
        self.done += 1;
        (self.on_event)(Event::Step { future, phase, done: self.done, total: self.plan.total_units });
        if self.cancel.load(Ordering::Relaxed) || self.abort.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Samples with `denoiser`, reporting each step as `phase`.
    #[allow(clippy::too_many_arguments)]
    fn sample<M: Denoiser<B, 4>>(
        &mut self,
        phase: Phase,
        future: Option<usize>,
        sampler: &Sampler,
        denoiser: &M,
        x_start: Tensor<B, 4>,
        known: Option<&Known<B, 4>>,
        cond: &M::Cond,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor<B, 4>, PipelineError> {
        let started = Instant::now();
        let result =
            sampler.sample_known_with_progress(denoiser, x_start, known, cond, rng, |_: &Progress<'_, B, 4>| {
                self.tick(future, phase)
            });
        self.timings.add(phase, started.elapsed().as_secs_f64());
        result.map_err(|Cancelled { .. }| PipelineError::Cancelled)
    }

    fn latent_noise(&self, n: usize, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
        let (z, h, w) = self.g.models.latent_shape();
        gaussian::<B, 4, _>([n, z, h, w], rng, &self.g.device)
    }

    /// DDIM for the latent denoisers, with the schedule and prediction they were trained on.
    fn sampler(&self, steps: usize, guidance: Guidance) -> Result<Sampler, PipelineError> {
        Ok(Sampler::new(Ddim::for_model(&self.g.models.diffusion, steps, self.opts.eta)?, guidance))
    }

    fn sampler_for(&self, prediction: Prediction, steps: usize, guidance: Guidance) -> Result<Sampler, PipelineError> {
        Ok(Sampler::new(Ddim::new(&self.g.schedule, prediction, steps, self.opts.eta)?, guidance))
    }

    /// The frame-0 latent `[1, z, h, w]`.
    fn first_frame(
        &mut self,
        conditions: Conditions,
        boxes: Vec<[f32; 4]>,
        seed: u64,
    ) -> Result<Tensor<B, 4>, PipelineError> {
        let device = &self.g.device;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = self.latent_noise(1, &mut rng);
        let [_, _, h, w] = x.dims();
        let cond = ImageCond {
            labels: Some(Labels::new(&[Some(conditions)], device)),
            boxes: Some(Boxes::new(&[Some(boxes)], self.g.models.image_ldm.box_slots(), h, w, device)),
        };
        let sampler = self.sampler(self.opts.steps, self.opts.first_frame_guidance())?;
        self.sample(
            Phase::FirstFrame,
            None,
            &sampler,
            &ImageDenoiser(&self.g.models.image_ldm),
            x,
            None,
            &cond,
            &mut rng,
        )
    }

    /// Context `(m ∘ z, m)` for `frames` positions, with `known[i]` at position `i`.
    fn context(&self, frames: usize, known: &[(usize, Tensor<B, 4>)]) -> Tensor<B, 4> {
        let [_, c, h, w] = known[0].1.dims();
        let device = &self.g.device;
        let mut z = vec![Tensor::<B, 4>::zeros([1, c, h, w], device); frames];
        let mut m = vec![Tensor::<B, 4>::zeros([1, 1, h, w], device); frames];
        for (i, latent) in known {
            z[*i] = latent.clone();
            m[*i] = Tensor::ones([1, 1, h, w], device);
        }
        Tensor::cat(vec![Tensor::cat(z, 0), Tensor::cat(m, 0)], 1)
    }

    /// Samples a clip of `t` latents with `model` from the start noise `x` (`[t, z, h, w]`), the
    /// `known` latents given as context at their positions and put back in place in the result.
    #[allow(clippy::too_many_arguments)]
    fn sample_clip(
        &mut self,
        phase: Phase,
        future: usize,
        model: &UNet<B>,
        t: usize,
        known: Vec<(usize, Tensor<B, 4>)>,
        conditions: Conditions,
        fps_stage: Option<i64>,
        guidance: Guidance,
        guess: Option<HeldGuess<B>>,
        x: Tensor<B, 4>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Tensor<B, 4>>, PipelineError> {
        let device = &self.g.device;
        let context = self.context(t, &known);
        // The latents held in the sample are the context's `(m ∘ z, m)`, the mask over every channel.
        let c = context.dims()[1] - 1;
        let mask = context.clone().narrow(1, c, 1).repeat_dim(1, c);
        let mut held = match self.opts.known_frames {
            KnownFrames::Replace => Some(Known::new(mask.clone(), context.clone().narrow(1, 0, c))),
            KnownFrames::ContextOnly => None,
        };
        // A guess for the free frames, held for its first steps (`GenerateOptions::interpolation_guide`).
        if let Some(guess) = guess.filter(|g| g.steps > 0) {
            let k = held.unwrap_or_else(|| Known::new(mask.zeros_like(), mask.zeros_like()));
            let free = mask.clone().neg() + 1.0;
            let values = k.values.clone() * mask + Tensor::cat(guess.frames, 0) * free.clone();
            let steps = match guess.trust {
                None => free.mul_scalar(guess.steps as f32),
                Some(trust) => trust.repeat_dim(1, c).mul_scalar(guess.steps as f32).round() * free,
            };
            held = Some(Known { values, guide: Some(Guide { steps }), ..k });
        }
        let cond = VideoCond {
            frames: t,
            labels: Some(Labels::new(&vec![Some(conditions); t], device)),
            context: Some(context),
            fps_stage: fps_stage.map(|s| Tensor::<B, 1, Int>::from_data(TensorData::new(vec![s; t], [t]), device)),
        };
        let sampler = self.sampler(self.opts.steps, guidance)?;
        let out = self.sample(phase, Some(future), &sampler, &VideoDenoiser(model), x, held.as_ref(), &cond, rng)?;
        let mut frames: Vec<_> = out.chunk(t, 0);
        for (i, z) in known {
            frames[i] = z;
        }
        Ok(frames)
    }

    /// One prediction window: `context` latents at its first positions, `T` latents out.
    fn predict_window(
        &mut self,
        future: usize,
        context: &[Tensor<B, 4>],
        last_key: usize,
        conditions: Conditions,
        ego: &EgoMotion,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Tensor<B, 4>>, PipelineError> {
        let g = self.g;
        let known = context.iter().cloned().enumerate().collect();
        let guidance = Guidance::new(self.opts.label_guidance, self.opts.context_guidance);
        let t = g.models.window();
        let steps = self.guide_steps(self.opts.prediction_guide);
        let started = Instant::now();
        let guess = (steps > 0).then(|| self.ego_guess(context, last_key, t, ego, steps));
        let x = self.prediction_start_noise(context.len(), last_key, t, ego, rng);
        // The guess's decoding, warp and encoding count as the phase's, and so does moving the noise.
        self.timings.add(Phase::Prediction, started.elapsed().as_secs_f64());
        self.sample_clip(
            Phase::Prediction,
            future,
            &g.models.video_ldm,
            t,
            known,
            conditions,
            None,
            guidance,
            guess,
            x,
            rng,
        )
    }

    /// The start noise of a prediction window of `t` latents whose first `c` are context
    /// (the last of them key frame `last_key`): each frame's own, and for `prediction_noise`
    /// ρ > 0 each new frame's mixed with the last context frame's moved on to it
    /// ([`EgoMotion::moved_noise`], [`GenerateOptions::prediction_noise`]). Draws the same
    /// numbers from `rng` whatever ρ.
    fn prediction_start_noise(
        &self,
        c: usize,
        last_key: usize,
        t: usize,
        ego: &EgoMotion,
        rng: &mut ChaCha8Rng,
    ) -> Tensor<B, 4> {
        let x = self.latent_noise(t, rng);
        let rho = self.opts.prediction_noise;
        if rho <= 0.0 || c == 0 || c >= t {
            return x;
        }
        let (from_m, travels) = window_travels(ego, last_key, t - c);
        let last = x.clone().narrow(0, c - 1, 1);
        let new = ego.moved_noise(last, x.clone().narrow(0, c, t - c), rho, from_m, &travels);
        Tensor::cat(vec![x.narrow(0, 0, c), new], 0)
    }

    /// The prediction guide's guess (`GenerateOptions::prediction_guide`): a window of `t`
    /// latents that starts with `context` and continues with its last frame (key frame
    /// `last_key`) moved on by the ego's travel up to each new frame. The frame is moved in
    /// pixels (decoded, warped, encoded again): a latent cell holds an 8×8 patch's appearance,
    /// which resampling the latent grid would smear. Held for `steps`, or with a
    /// `prediction_guide_falloff` for fewer where the guess is poor.
    fn ego_guess(
        &self,
        context: &[Tensor<B, 4>],
        last_key: usize,
        t: usize,
        ego: &EgoMotion,
        steps: usize,
    ) -> HeldGuess<B> {
        let m = &self.g.models;
        let last = context.last().expect("a prediction window has at least one context frame");
        let image = m.decode_frames(last.clone());
        let [_, _, ih, _] = image.dims();
        let (from_m, travels) = window_travels(ego, last_key, t - context.len());
        let [_, _, lh, lw] = last.dims();
        let falloff = self.opts.prediction_guide_falloff;
        let (warped, trust) = if falloff > 0.0 {
            let (warped, new) = ego.warp_with_confidence(image, from_m, &travels, ih / lh, falloff);
            let device = &self.g.device;
            let known = Tensor::<B, 4>::ones([context.len(), 1, lh, lw], device);
            let new = Tensor::<B, 4>::from_data(TensorData::new(new, [travels.len(), 1, lh, lw]), device);
            (warped, Some(Tensor::cat(vec![known, new], 0)))
        } else {
            (ego.warp(image, from_m, &travels), None)
        };
        let ahead = m.encode_frames(warped).chunk(travels.len(), 0);
        HeldGuess { frames: context.iter().cloned().chain(ahead).collect(), steps, trust }
    }

    /// The DDIM steps a guide of `share` holds its guess for.
    fn guide_steps(&self, share: f32) -> usize {
        (share.clamp(0.0, 1.0) * self.opts.steps as f32).round() as usize
    }

    /// Key latents `a, b, c` two intervals apart → the 9 latents of 10 Hz between them
    /// (fps flag 0). No guidance (one evaluation per step): the known key frames pin the
    /// clip down. `ego`: the ego's motion and the key frame `a` is, for the guide's guess.
    fn interpolate(
        &mut self,
        future: usize,
        keys: [&Tensor<B, 4>; 3],
        conditions: Conditions,
        ego: Option<(&EgoMotion, usize)>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Tensor<B, 4>>, PipelineError> {
        let g = self.g;
        let f = INTERPOLATION_FACTOR;
        let known = keys.iter().enumerate().map(|(i, z)| (i * f, (*z).clone())).collect();
        let model = g.models.interpolator.as_ref().expect("plan() checked the interpolator");
        let steps = self.guide_steps(self.opts.interpolation_guide);
        let started = Instant::now();
        let guess = (steps > 0).then(|| HeldGuess {
            frames: g.interpolation_guess(&keys, self.opts.interpolation_guess, ego),
            steps,
            trust: None,
        });
        let x = self.interpolation_start_noise(ego, rng);
        // The guess's decoding and encoding count as the phase's.
        self.timings.add(Phase::Interpolation, started.elapsed().as_secs_f64());
        self.sample_clip(
            Phase::Interpolation,
            future,
            model,
            2 * f + 1,
            known,
            conditions,
            Some(0),
            Guidance::NONE,
            guess,
            x,
            rng,
        )
    }

    /// The start noise of an interpolated chunk (keys at 0, f and 2f): each frame's own, and for
    /// `interpolation_noise` ρ > 0 each in-between frame's mixed with the noise of the key
    /// before it moved on by the ego's travel to the frame ([`EgoMotion::moved_noise`],
    /// [`GenerateOptions::interpolation_noise`]); `ego`: the motion and the key frame the chunk
    /// starts at. Draws the same numbers from `rng` whatever ρ.
    fn interpolation_start_noise(&self, ego: Option<(&EgoMotion, usize)>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
        let f = INTERPOLATION_FACTOR;
        let x = self.latent_noise(2 * f + 1, rng);
        let rho = self.opts.interpolation_noise;
        let Some((ego, first_key)) = ego.filter(|_| rho > 0.0) else {
            return x;
        };
        let step_m = ego.key_interval_m();
        let travels: Vec<f32> = (1..f).map(|j| j as f32 / f as f32 * step_m).collect();
        let mut parts = Vec::with_capacity(5);
        for key in [0, f] {
            let from_m = (first_key + key / f) as f32 * step_m;
            let noise = x.clone().narrow(0, key, 1);
            parts.push(noise.clone());
            parts.push(ego.moved_noise(noise, x.clone().narrow(0, key + 1, f - 1), rho, from_m, &travels));
        }
        parts.push(x.narrow(0, 2 * f, 1));
        Tensor::cat(parts, 0)
    }

    /// Latents `[1, z, h, w]` each → decoded (and upsampled) images; `track`: where they are,
    /// for the upsample noise.
    fn render(
        &mut self,
        latents: &[Tensor<B, 4>],
        decoder: DecoderMode,
        upsample: UpsampleMode,
        future: Option<usize>,
        track: Option<&mut NoiseTrack<'_, B>>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<RgbImage>, PipelineError> {
        let m = &self.g.models;
        let n = latents.len();
        let started = Instant::now();
        let z = m.latent_norm.denormalize(Tensor::cat(latents.to_vec(), 0));
        let low = match (decoder, &m.temporal_decoder) {
            (DecoderMode::Temporal, Some(td)) => td.forward(z, n),
            _ => m.autoencoder.decoder.forward(z, 1),
        };
        let low = low.clamp(-1.0, 1.0);
        self.timings.add(Phase::Decoding, started.elapsed().as_secs_f64());
        if self.tick(future, Phase::Decoding).is_break() {
            return Err(PipelineError::Cancelled);
        }
        Ok(tensor_to_images(self.upsample(low, upsample, future, track, rng)?))
    }

    /// Decoded frames `[n, 3, h, w]` on [-1, 1] (one clip) → 4× upsampled with `mode`
    /// (unchanged when it is off or there is no upsampler). With `track` and an upsample
    /// noise above 0, each frame's start noise and the augmentation noise added to its
    /// condition take that share from the frame before them moved on by the ego's travel
    /// ([`NoiseTrack::carry`]).
    fn upsample(
        &mut self,
        low: Tensor<B, 4>,
        mode: UpsampleMode,
        future: Option<usize>,
        track: Option<&mut NoiseTrack<'_, B>>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor<B, 4>, PipelineError> {
        let m = &self.g.models;
        let Some(up) = m.upsampler.as_ref().filter(|_| mode != UpsampleMode::Off) else {
            return Ok(low);
        };
        let n = low.dims()[0];
        let frames = if mode == UpsampleMode::Video && m.upsampler_video { n } else { 1 };
        let cond = up.upsample_condition(low);
        let level = self.opts.upsample_level;
        let noise = gaussian::<B, 4, _>(cond.dims(), rng, &self.g.device);
        let x = gaussian::<B, 4, _>(cond.dims(), rng, &self.g.device);
        let share = self.opts.upsample_noise;
        let (noise, x) = match track {
            Some(track) if share > 0.0 => {
                (track.carry(noise, share, NoiseKind::Augmentation), track.carry(x, share, NoiseKind::Start))
            }
            _ => (noise, x),
        };
        let cond = self.g.augmentation.add_noise(cond, noise, &vec![level; n]);
        let cond = UpsampleCond { frames, low: cond, level: Tensor::full([n], level as f32, &self.g.device) };
        let sampler = self.sampler_for(up.prediction, self.opts.upsample_steps, Guidance::NONE)?;
        self.sample(Phase::Upsampling, future, &sampler, &UpsampleDenoiser(up), x, None, &cond, rng)
    }

    /// One future: windows of key latents, streamed chunk by chunk into `sink`.
    fn future(&mut self, k: usize, shared: &Shared<'_, B>, sink: &mut dyn FrameSink) -> Result<(), PipelineError> {
        let Shared { conditions, z0, frame0, ego, .. } = *shared;
        let mut rng = ChaCha8Rng::seed_from_u64(shared.seeds[k]);
        let frames = self.plan.frames_per_future;
        sink.frame(k, 0, frame0)?;
        (self.on_event)(Event::Frame { future: k, index: 0, frames });
        let mut out =
            Emitter { future: k, next: 1, frames, keys: vec![z0.clone()], key_index: 0, upsample_noise: [None, None] };
        let total_keys = self.plan.key_frames;
        let mut produced = 1;
        let mut context = vec![z0.clone()];
        while produced < total_keys {
            let window = self.predict_window(k, &context, produced - 1, conditions, ego, &mut rng)?;
            let fresh: Vec<_> = window[context.len()..].iter().take(total_keys - produced).cloned().collect();
            produced += fresh.len();
            context = window[window.len() - self.opts.context_frames..].to_vec();
            for z in fresh {
                out.keys.push(z);
                self.flush(&mut out, conditions, ego, &mut rng, sink, false)?;
            }
        }
        self.flush(&mut out, conditions, ego, &mut rng, sink, true)
    }

    /// Turns buffered key latents into frames once a chunk is complete (or at the end).
    #[allow(clippy::too_many_arguments)]
    fn flush(
        &mut self,
        out: &mut Emitter<B>,
        conditions: Conditions,
        ego: &EgoMotion,
        rng: &mut ChaCha8Rng,
        sink: &mut dyn FrameSink,
        end: bool,
    ) -> Result<(), PipelineError> {
        let (decoder, upsample) = (self.opts.decoder, self.opts.upsample);
        let chunk = if self.opts.interpolate { 3 } else { self.g.models.window() + 1 };
        if out.keys.len() < chunk && !(end && out.keys.len() > 1) {
            return Ok(());
        }
        let last_key = out.key_index + out.keys.len() - 1;
        let latents = if self.opts.interpolate {
            let keys = &out.keys;
            // A final single interval repeats its last key frame and keeps half the chunk. On
            // 16 held-out clips this measured as well as interpolating it as the second half of
            // a chunk from the key before it (23.23 against 23.22 dB at the default guide,
            // 23.01 against 22.98 at guide 0), so the simpler chunk stays.
            let c = keys.get(2).unwrap_or(&keys[1]);
            let ego = Some((ego, out.key_index));
            let mut all = self.interpolate(out.future, [&keys[0], &keys[1], c], conditions, ego, rng)?;
            all.truncate((keys.len() - 1) * INTERPOLATION_FACTOR + 1);
            all
        } else {
            out.keys.clone()
        };
        let key_m = ego.key_interval_m();
        let per_key = if self.opts.interpolate { INTERPOLATION_FACTOR } else { 1 };
        let mut track = NoiseTrack::new(ego, out.key_index as f32 * key_m, key_m / per_key as f32);
        track.last = std::mem::take(&mut out.upsample_noise);
        let images = self.render(&latents, decoder, upsample, Some(out.future), Some(&mut track), rng)?;
        out.upsample_noise = track.last;
        // The chunk's first frame is the previous chunk's last (or frame 0): written already.
        for image in images.iter().skip(1) {
            sink.frame(out.future, out.next, image)?;
            (self.on_event)(Event::Frame { future: out.future, index: out.next, frames: out.frames });
            out.next += 1;
        }
        out.key_index = last_key;
        out.keys = vec![out.keys.last().expect("a chunk has keys").clone()];
        Ok(())
    }
}

/// Where a prediction window's new frames are: the last context frame (key frame `last_key`)
/// is `from_m` metres after frame 0, and the `new` frames after it each one key interval of the
/// ego's travel further on (`travels`, metres from the last context frame).
fn window_travels(ego: &EgoMotion, last_key: usize, new: usize) -> (f32, Vec<f32>) {
    let step_m = ego.key_interval_m();
    (last_key as f32 * step_m, (1..=new).map(|k| k as f32 * step_m).collect())
}

/// A guess for a clip's free frames that the sampler holds them to for its first steps
/// ([`Guide`]).
struct HeldGuess<B: Backend> {
    /// One latent per frame of the clip (the known frames' are not used).
    frames: Vec<Tensor<B, 4>>,
    /// Steps the guess is held for where it is trusted fully.
    steps: usize,
    /// How far it is trusted per entry (`[t, 1, h, w]`, in [0, 1]): each entry is held for
    /// that share of `steps`, rounded. `None`: everywhere fully.
    trust: Option<Tensor<B, 4>>,
}

/// Key latents `f` frames apart → the `(keys − 1)·f + 1` latents on the straight lines from
/// each key to the next (the keys in place): the interpolation guide's guess.
pub fn blend_keys<B: Backend>(keys: &[&Tensor<B, 4>], f: usize) -> Vec<Tensor<B, 4>> {
    let n = keys.len().checked_sub(1).map_or(0, |intervals| intervals * f + 1);
    (0..n)
        .map(|j| {
            let (k, r) = (j / f, j % f);
            match r {
                0 => keys[k].clone(),
                _ => {
                    let s = r as f32 / f as f32;
                    keys[k].clone() * (1.0 - s) + keys[k + 1].clone() * s
                }
            }
        })
        .collect()
}

/// Key latents waiting to become frames, and where the next frame goes.
struct Emitter<B: Backend> {
    future: usize,
    /// Index of the next frame to write.
    next: usize,
    frames: usize,
    /// Buffered key latents; the first was already written as a frame.
    keys: Vec<Tensor<B, 4>>,
    /// Key-frame index of `keys[0]`.
    key_index: usize,
    /// The upsampler's noises of the last frame written, for the next chunk's first (the
    /// same frame) under an upsample noise ([`NoiseTrack`]).
    upsample_noise: [Option<Tensor<B, 4>>; 2],
}

/// Where an upsampled clip's frames are, for [`GenerateOptions::upsample_noise`]: the first
/// `from_m` metres after frame 0 of `ego`'s motion, each the next `step_m` metres on; `last`:
/// the noises of the clip's first frame ([`NoiseKind`]), carried from the clip before (whose
/// last frame it is), `None` at the start.
struct NoiseTrack<'a, B: Backend> {
    ego: &'a EgoMotion,
    from_m: f32,
    step_m: f32,
    last: [Option<Tensor<B, 4>>; 2],
}

/// The upsampler's two noises per frame: the augmentation noise added to its condition and
/// the start noise of its sampler.
#[derive(Clone, Copy)]
enum NoiseKind {
    Augmentation = 0,
    Start = 1,
}

impl<B: Backend> NoiseTrack<'_, B> {
    fn new(ego: &EgoMotion, from_m: f32, step_m: f32) -> NoiseTrack<'_, B> {
        NoiseTrack { ego, from_m, step_m, last: [None, None] }
    }

    /// Fresh noise `own` (`[n, c, h, w]`, one frame each) → each frame's with `share` of the
    /// frame before it moved on by one step ([`EgoMotion::moved_noise`]); the first frame's
    /// is the carried one of its `kind` where there is one. Keeps the last frame's.
    fn carry(&mut self, own: Tensor<B, 4>, share: f32, kind: NoiseKind) -> Tensor<B, 4> {
        let n = own.dims()[0];
        let mut frames = own.chunk(n, 0);
        if let Some(last) = self.last[kind as usize].take() {
            frames[0] = last;
        }
        for j in 1..n {
            let from_m = self.from_m + (j - 1) as f32 * self.step_m;
            let moved = self.ego.moved_noise(frames[j - 1].clone(), frames[j].clone(), share, from_m, &[self.step_m]);
            frames[j] = moved;
        }
        self.last[kind as usize] = frames.last().cloned();
        Tensor::cat(frames, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::TimeOfDay;
    use burn::backend::Flex;

    /// The upsample noise's track: a clip's first frame keeps its own noise at the start and
    /// takes the carried one after; each later frame is its own noise with the frame before it
    /// moved on (at share 1 and no travel, that frame's noise exactly); the last is carried on.
    #[test]
    fn the_noise_track_moves_each_frame_from_the_one_before_and_carries_the_last() {
        let world = World::new(5, Conditions { time_of_day: TimeOfDay::Day, crowdedness: 0 }, &[]).unwrap();
        let ego = EgoMotion::from_world(&world, vec![]);
        let device = Default::default();
        let noise = |seed| gaussian::<Flex, 4, _>([3, 3, 16, 32], &mut ChaCha8Rng::seed_from_u64(seed), &device);
        let values = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
        let frame = |t: &Tensor<Flex, 4>, j| values(t.clone().narrow(0, j, 1));

        let start = NoiseKind::Start;
        let mut still = NoiseTrack::<Flex>::new(&ego, 0.0, 0.0);
        let own = noise(1);
        let out = still.carry(own.clone(), 1.0, start);
        assert_eq!(frame(&out, 0), frame(&own, 0), "the first frame at the start: its own noise");
        for j in 1..3 {
            assert_eq!(frame(&out, j), frame(&own, 0), "share 1 without travel: frame 0's noise");
        }
        let mut half = NoiseTrack::<Flex>::new(&ego, 0.0, 0.0);
        let out = half.carry(own.clone(), 0.5, start);
        let (a, b, o) = (frame(&out, 0), frame(&out, 1), frame(&own, 1));
        for k in 0..a.len() {
            let expected = 0.5f32.sqrt() * a[k] + 0.5f32.sqrt() * o[k];
            assert!((b[k] - expected).abs() < 1e-5, "share 0.5 without travel: an even mix at {k}");
        }

        let mut moving = NoiseTrack::<Flex>::new(&ego, 0.0, 1.5);
        let first = moving.carry(own.clone(), 0.9, start);
        let carried = moving.last[start as usize].clone().expect("the last frame's noise is kept");
        assert_eq!(values(carried.clone()), frame(&first, 2));
        assert!(moving.last[NoiseKind::Augmentation as usize].is_none(), "one kind's noise kept as the other's");
        moving.from_m += 2.0 * 1.5;
        let fresh = noise(2);
        let other = moving.carry(fresh.clone(), 0.9, NoiseKind::Augmentation);
        assert_eq!(frame(&other, 0), frame(&fresh, 0), "the other kind carries nothing yet");
        let second = moving.carry(fresh.clone(), 0.9, start);
        assert_eq!(frame(&second, 0), values(carried), "the next clip starts from the carried noise");
        for j in 1..3 {
            assert_ne!(frame(&second, j), frame(&fresh, j), "frame {j} kept only its own noise");
        }
        let v = values(second.narrow(0, 1, 2));
        let var = v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
        assert!((var - 1.0).abs() < 0.15, "moved noise stays unit noise: variance {var}");
    }
}
