//! `eval`: generates the held-out scene set with the pipeline, renders the world's own
//! frames of the same scenes, and measures both with the evaluators; then the optional
//! long rollout (drift) and the ablations, each a set of generation settings measured
//! the same way. The report is written by [`super::report`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use burn::tensor::backend::Backend;
use image::RgbImage;
use image::imageops::{FilterType, resize};
use serde::{Deserialize, Serialize};

use crate::data::EVAL_SEED_BASE;
use crate::pipeline::{
    self, DecoderMode, FrameSink, GenerateOptions, Generator, KnownFrames, PipelineError, UpsampleMode,
};
use crate::train::{FrameSource, KEYFRAME_FPS};

use super::crowd::CountCrowdedness;
use super::error::MetricError;
use super::features::Features;
use super::measure::{
    GroupedDistance, Judges, KernelDistance, PairedDelta, Reference, SceneFrames, SceneSpread, SettingMetrics, measure,
};
use super::projection::Projection;
use super::scenes::{EvalScene, SCENE_SEED_BASE};
use super::tasks::{MotionAccuracy, classifier_accuracy, clip_encoder_accuracy, detector_accuracy};
use super::training::{Evaluators, HELD_OUT_WORLDS};

/// Why `eval` stopped.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Options that cannot describe an evaluation (exit code 2 at the CLI).
    #[error("{0}")]
    Options(String),
    #[error("evaluators: {0}")]
    Evaluators(#[from] crate::weights::WeightsError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("reference set: {0}")]
    Metric(#[from] MetricError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("{path}: {message}")]
    Report { path: PathBuf, message: String },
}

/// Sweeps run besides the main setting; each is a table in the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ablations {
    /// DDIM step counts.
    pub steps: Vec<usize>,
    /// Label (classifier-free) guidance scales (of the boxes too, unless the main setting
    /// guides them apart).
    pub label_guidance: Vec<f64>,
    /// Box guidance scales of frame 0.
    #[serde(default)]
    pub box_guidance: Vec<f64>,
    /// Context guidance scales (1 = off: the plain context-conditional prediction).
    pub context_guidance: Vec<f64>,
    /// Prediction guide shares (0 = sampled from noise, as in the paper).
    #[serde(default)]
    pub prediction_guide: Vec<f32>,
    /// Prediction noise shares (0 = every frame's noise on its own, as in the paper).
    #[serde(default)]
    pub prediction_noise: Vec<f32>,
    /// Prediction guide falloffs (0 = every cell held for all the guide's steps).
    #[serde(default)]
    pub prediction_guide_falloff: Vec<f32>,
    /// Temporal decoder vs the per-frame image decoder.
    pub decoder: bool,
    /// Video-fine-tuned vs per-frame upsampler (frames upsampled 4×, then judged at
    /// key-frame size; by far the most expensive on a CPU).
    pub upsampler: bool,
    /// Known frames held in the sample vs through the context encoder only.
    #[serde(default)]
    pub known_frames: bool,
}

/// A longer rollout, measured per segment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriftOptions {
    pub seconds: f32,
    pub segment_s: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    pub scenes: usize,
    /// The main setting (its `futures` and `seconds` are those of every setting).
    pub generate: GenerateOptions,
    pub drift: Option<DriftOptions>,
    pub ablations: Ablations,
    /// Principal components the frame and clip features are projected on before the
    /// Fréchet distance (see `projection`).
    pub components: (usize, usize),
}

/// The evaluators' own accuracy on held-out renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluatorAccuracy {
    pub worlds: usize,
    pub detector_ap50: Option<f32>,
    pub detector_mean_iou: Option<f32>,
    pub detector_recall: Option<f32>,
    pub detector_cars: usize,
    pub day_night: Option<f32>,
    pub crowdedness_exact: Option<f32>,
    pub crowdedness_within_one: Option<f32>,
    /// Crowdedness from the detector's car count (thresholds fitted on training-range renders).
    pub count_crowdedness: Option<CountCrowdedness>,
    pub count_crowdedness_exact: Option<f32>,
    pub count_crowdedness_within_one: Option<f32>,
    /// Training facts recorded with each (steps, wall time, notes).
    pub detector_training: String,
    pub classifier_training: String,
    /// The clip encoder's ego-motion accuracy, where the evaluators have one.
    #[serde(default)]
    pub clip_motion: Option<MotionAccuracy>,
    #[serde(default)]
    pub clip_encoder_training: Option<String>,
}

/// One row of an ablation table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    pub label: String,
    /// The swept value where it is a number (for plots).
    pub value: Option<f64>,
    pub metrics: SettingMetrics,
    /// Its Fréchet distances against the main setting's, paired over the same scene
    /// resamples; `None` for a row that is the main setting (and in reports made before).
    #[serde(default)]
    pub vs_main: Option<PairedDelta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationTable {
    pub name: String,
    pub parameter: String,
    pub rows: Vec<AblationRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSegment {
    pub start_s: f32,
    pub end_s: f32,
    pub frames: usize,
    pub frechet_frames: Option<f64>,
    /// Its spread over scene resamples, as [`SettingMetrics::frechet_frames_sd`] (`None` in
    /// reports made before it existed, or where it could not be measured).
    #[serde(default)]
    pub frechet_frames_sd: Option<f64>,
    /// Its resamples' range and the scene it rests on most, as
    /// [`SettingMetrics::frechet_frames_spread`].
    #[serde(default)]
    pub frechet_frames_spread: Option<SceneSpread>,
    /// The kernel distance of the segment's frames, as [`SettingMetrics::kid_frames`].
    #[serde(default)]
    pub kid_frames: Option<KernelDistance>,
    /// Why a distance, or only its spread, could not be measured.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftResult {
    pub seconds: f32,
    pub segment_s: f32,
    pub segments: Vec<DriftSegment>,
    pub generation_s: f64,
}

/// Everything `metrics.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    pub latentdrive_version: String,
    pub weights: PathBuf,
    pub evaluators_dir: PathBuf,
    pub options: EvalOptions,
    /// World seeds of the scenes: `first_scene_seed + i`.
    pub first_scene_seed: u64,
    pub frames_per_future: usize,
    pub fps: f32,
    /// Key-frame size `(h, w)` the evaluators judge at.
    pub frame_size: (usize, usize),
    pub requested_boxes: usize,
    pub evaluators: EvaluatorAccuracy,
    /// The world's renders of the scenes, measured like a generator (the ceiling).
    pub reference: SettingMetrics,
    /// The world's renders encoded and decoded by the autoencoder (per-frame decoder,
    /// posterior mean): the ceiling of any generator in this latent space. Absent in
    /// reports written before it was measured.
    #[serde(default)]
    pub autoencoded: Option<SettingMetrics>,
    pub generated: SettingMetrics,
    pub drift: Option<DriftResult>,
    pub ablations: Vec<AblationTable>,
    pub wall_time_s: f64,
    /// World and generated frames of the first scenes side by side (`samples.png`).
    #[serde(skip)]
    pub samples: RgbImage,
}

/// Progress of the whole evaluation in generator units (sampling steps and decodes).
#[derive(Debug, Clone, Copy)]
pub struct EvalProgress<'a> {
    pub what: &'a str,
    pub done: usize,
    pub total: usize,
}

/// Collects a run's frames at key-frame size.
struct Collect {
    size: (usize, usize),
    futures: Vec<Vec<RgbImage>>,
}

impl Collect {
    fn new(size: (usize, usize), futures: usize) -> Self {
        Collect { size, futures: vec![Vec::new(); futures] }
    }

    fn key_size(&self, image: &RgbImage) -> RgbImage {
        let (h, w) = self.size;
        if image.dimensions() == (w as u32, h as u32) {
            image.clone()
        } else {
            resize(image, w as u32, h as u32, FilterType::Triangle)
        }
    }
}

impl FrameSink for Collect {
    fn frame0(&mut self, _: &RgbImage) -> Result<(), PipelineError> {
        Ok(())
    }

    fn frame(&mut self, future: usize, _: usize, image: &RgbImage) -> Result<(), PipelineError> {
        let small = self.key_size(image);
        self.futures[future].push(small);
        Ok(())
    }
}

/// One generation setting to run over every scene.
struct Setting {
    label: String,
    value: Option<f64>,
    options: GenerateOptions,
}

/// Runs the evaluation. `evaluators_dir` holds the trained evaluators (`train detector`,
/// `train classifier`); `cancel` is polled after every sampling step.
pub fn evaluate<B: Backend>(
    generator: &Generator<B>,
    evaluators: &Evaluators<B>,
    evaluators_dir: PathBuf,
    opts: &EvalOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(EvalProgress<'_>),
) -> Result<EvalResults, EvalError> {
    let started = Instant::now();
    let device = &generator.device;
    let size = generator.models.frame_size();
    check(generator, evaluators, opts)?;
    let scenes: Vec<EvalScene> =
        (0..opts.scenes).map(|i| EvalScene::new(i, size, generator.models.image_ldm.box_slots())).collect();
    // Every setting up front, so the progress bar knows the whole run.
    let main = Setting { label: "main".into(), value: None, options: opts.generate.clone() };
    let main_plan = generator.plan(&scenes[0].scenario, &main.options)?;
    let crowd = CountCrowdedness::fit(&evaluators.detector, size, device);
    let judges = Judges {
        detector: &evaluators.detector,
        classifier: &evaluators.classifier,
        clip_encoder: evaluators.clip_encoder.as_ref(),
        crowd: crowd.as_ref().ok(),
        motion_spacing: (main_plan.fps / KEYFRAME_FPS).round().max(1.0) as usize,
        device,
    };
    // Clip features need a whole window of the clip encoder per future.
    let main_frames = main_plan.frames_per_future;
    if let Some(encoder) = &evaluators.clip_encoder
        && main_frames < encoder.frames()
    {
        return Err(EvalError::Options(format!(
            "the clip encoder reads windows of {} frames; a future here has {main_frames} (use longer --seconds)",
            encoder.frames()
        )));
    }
    let tables = ablation_settings(&opts.generate, &opts.ablations);
    let drift_options = opts.drift.map(|d| GenerateOptions { futures: 1, seconds: d.seconds, ..opts.generate.clone() });
    let mut total = 0;
    let units = |o: &GenerateOptions| -> Result<usize, EvalError> {
        let mut sum = 0;
        for s in &scenes {
            sum += generator.plan(&s.scenario, o)?.total_units;
        }
        Ok(sum)
    };
    total += units(&main.options)?;
    for (_, _, rows) in &tables {
        for row in rows.iter().filter(|r| r.options != main.options) {
            total += units(&row.options)?;
        }
    }
    if let Some(o) = &drift_options {
        total += units(o)?;
    }
    let mut progress = Progress { done: 0, total, on_progress };

    // The evaluators' own accuracy, on held-out renders (not the scene set).
    let frames = FrameSource::new(size.0, size.1, 0);
    let held_out = FrameSource::held_out_seeds(HELD_OUT_WORLDS);
    progress.report("evaluators' held-out accuracy", 0);
    let det = detector_accuracy(&evaluators.detector, &frames, &held_out, device);
    let cls = classifier_accuracy(&evaluators.classifier, &frames, &held_out, device);
    let count = crowd.as_ref().ok().map(|c| c.accuracy(&evaluators.detector, &frames, &held_out, device));
    let count = count.and_then(Result::ok);
    let clip_motion =
        evaluators.clip_encoder.as_ref().and_then(|c| clip_encoder_accuracy(c, &frames, &held_out, device).ok());
    let facts = |f: &Option<crate::weights::TrainingFacts>| {
        f.as_ref().map_or_else(String::new, |f| {
            format!("{} steps in {:.0} s on {}; {}", f.steps, f.wall_time_s, f.hardware, f.notes)
        })
    };
    let evaluator_accuracy = EvaluatorAccuracy {
        worlds: held_out.len(),
        detector_ap50: det.as_ref().ok().map(|s| s.ap),
        detector_mean_iou: det.as_ref().ok().and_then(|s| s.mean_iou),
        detector_recall: det.as_ref().ok().map(|s| s.recall),
        detector_cars: det.as_ref().map_or(0, |s| s.ground_truth),
        day_night: cls.as_ref().ok().map(|a| a.time_of_day),
        crowdedness_exact: cls.as_ref().ok().map(|a| a.crowdedness_exact),
        crowdedness_within_one: cls.as_ref().ok().map(|a| a.crowdedness_within_one),
        count_crowdedness: crowd.as_ref().ok().cloned(),
        count_crowdedness_exact: count.map(|a| a.crowdedness_exact),
        count_crowdedness_within_one: count.map(|a| a.crowdedness_within_one),
        detector_training: facts(&evaluators.facts[0]),
        classifier_training: facts(&evaluators.facts[1]),
        clip_motion,
        clip_encoder_training: evaluators.clip_encoder.as_ref().map(|_| facts(&evaluators.facts[2])),
    };

    // Main setting and its reference.
    let (main_frames, main_s) = generate(generator, &scenes, &main, cancel, &mut progress)?;
    let plan = main_plan;
    let reference_frames: SceneFrames = scenes
        .iter()
        .map(|s| (0..main.options.futures).map(|k| s.reference(k, plan.frames_per_future, plan.fps, size)).collect())
        .collect();
    let reference = Reference::new(&judges, reference_frames, opts.components)?;
    let reference_metrics = measure(&judges, &scenes, &reference, None);
    let autoencoded = measure(&judges, &scenes, &reference, Some(&autoencode(generator, &reference.frames)));
    let mut generated = measure(&judges, &scenes, &reference, Some(&main_frames));
    generated.generation_s = main_s;
    let samples = sample_sheet(&reference.frames, &main_frames, SAMPLE_SCENES);

    // Ablations: rows equal to the main setting reuse its numbers.
    let mut ablations = Vec::new();
    for (name, parameter, rows) in tables {
        let mut out = Vec::new();
        for row in rows {
            let (metrics, vs_main) = if row.options == main.options {
                (generated.clone(), None)
            } else {
                let (frames, s) = generate(generator, &scenes, &row, cancel, &mut progress)?;
                let mut m = measure(&judges, &scenes, &reference, Some(&frames));
                m.generation_s = s;
                let delta = PairedDelta::between(&m, &generated);
                (m, Some(delta))
            };
            out.push(AblationRow { label: row.label, value: row.value, metrics, vs_main });
        }
        ablations.push(AblationTable { name, parameter, rows: out });
    }

    let drift = match (opts.drift, drift_options) {
        (Some(d), Some(o)) => Some(drift(generator, &judges, &scenes, d, o, opts.components.0, cancel, &mut progress)?),
        _ => None,
    };

    Ok(EvalResults {
        latentdrive_version: env!("CARGO_PKG_VERSION").to_string(),
        weights: generator.models.dir.clone().unwrap_or_default(),
        evaluators_dir,
        options: opts.clone(),
        first_scene_seed: SCENE_SEED_BASE,
        frames_per_future: plan.frames_per_future,
        fps: plan.fps,
        frame_size: size,
        requested_boxes: scenes.iter().map(|s| s.requested.len()).sum(),
        evaluators: evaluator_accuracy,
        reference: reference_metrics,
        autoencoded: Some(autoencoded),
        generated,
        drift,
        ablations,
        wall_time_s: started.elapsed().as_secs_f64(),
        samples,
    })
}

/// `frames` through the generator's autoencoder: each frame encoded to its posterior
/// mean and decoded by the per-frame decoder, one future's frames at a time.
fn autoencode<B: Backend>(generator: &Generator<B>, frames: &SceneFrames) -> SceneFrames {
    let ae = &generator.models.autoencoder;
    let device = &generator.device;
    let round_trip = |video: &Vec<RgbImage>| {
        let x = burn::tensor::Tensor::stack(
            video.iter().map(|f| crate::data::image_to_tensor::<B>(f, device)).collect(),
            0,
        );
        let (mean, _) = ae.encoder.forward(x);
        crate::data::tensor_to_images(ae.decoder.forward(mean, 1))
    };
    frames.iter().map(|futures| futures.iter().map(round_trip).collect()).collect()
}

/// Scenes shown in `samples.png`.
const SAMPLE_SCENES: usize = 4;

/// Rows of (world frame 0, generated frame 0, world last, generated last) of future 0
/// for the first `n` scenes, 2 px gaps.
fn sample_sheet(reference: &SceneFrames, generated: &SceneFrames, n: usize) -> RgbImage {
    let rows: Vec<[&RgbImage; 4]> = reference
        .iter()
        .zip(generated)
        .take(n)
        .filter_map(|(r, g)| {
            let (r, g) = (r.first()?, g.first()?);
            Some([r.first()?, g.first()?, r.last()?, g.last()?])
        })
        .collect();
    let Some(first) = rows.first() else { return RgbImage::new(0, 0) };
    let (w, h) = first[0].dimensions();
    let gap = 2;
    let mut sheet = RgbImage::from_pixel(4 * w + 3 * gap, rows.len() as u32 * (h + gap) - gap, image::Rgb([255; 3]));
    for (i, row) in rows.iter().enumerate() {
        for (j, frame) in row.iter().enumerate() {
            image::imageops::replace(&mut sheet, *frame, (j as u32 * (w + gap)) as i64, (i as u32 * (h + gap)) as i64);
        }
    }
    sheet
}

/// Refuses options that cannot give the report's numbers, before any work.
fn check<B: Backend>(
    generator: &Generator<B>,
    evaluators: &Evaluators<B>,
    opts: &EvalOptions,
) -> Result<(), EvalError> {
    let bad = |m: String| Err(EvalError::Options(m));
    if opts.scenes < 2 {
        return bad(format!("--scenes must be at least 2 (Fréchet distances need a spread), got {}", opts.scenes));
    }
    if evaluators.tier.config().frame_size != generator.models.frame_size() {
        return bad(format!(
            "the evaluators judge {:?} frames ({} tier) but the generator makes {:?} key frames",
            evaluators.tier.config().frame_size,
            evaluators.tier.dir_name(),
            generator.models.frame_size()
        ));
    }
    if opts.components.0 == 0 || opts.components.1 == 0 {
        return bad("principal components must be at least 1".into());
    }
    if let Some(d) = opts.drift
        && !(d.segment_s.is_finite() && d.segment_s > 0.0 && d.seconds.is_finite() && d.seconds >= d.segment_s)
    {
        return bad(format!("drift: segments of {} s do not fit a {} s rollout", d.segment_s, d.seconds));
    }
    if SCENE_SEED_BASE < EVAL_SEED_BASE {
        return bad("scene seeds must be held out".into());
    }
    Ok(())
}

struct Progress<'a> {
    done: usize,
    total: usize,
    on_progress: &'a mut dyn FnMut(EvalProgress<'_>),
}

impl Progress<'_> {
    fn report(&mut self, what: &str, done: usize) {
        (self.on_progress)(EvalProgress { what, done, total: self.total });
    }
}

/// Generates every scene with `setting`; returns the frames and the wall time.
///
/// The generator samples a scene's futures on its threads; when a scene has fewer
/// futures than the generator has threads (frame-0 evaluations, drift), scenes run side
/// by side as well, `threads / futures` at a time. Each scene's frames depend only on
/// its scenario and the options, so the result is the same for any number of workers.
fn generate<B: Backend>(
    generator: &Generator<B>,
    scenes: &[EvalScene],
    setting: &Setting,
    cancel: &AtomicBool,
    progress: &mut Progress<'_>,
) -> Result<(SceneFrames, f64), EvalError> {
    let t0 = Instant::now();
    let workers = (generator.threads() / setting.options.futures.max(1)).clamp(1, scenes.len().max(1));
    let all = scenes_on_workers(generator, scenes, setting, workers, cancel, progress)?;
    Ok((all, t0.elapsed().as_secs_f64()))
}

/// One scene's futures at key-frame size; `on_step` gets the run's steps done so far.
fn generate_scene<B: Backend>(
    generator: &Generator<B>,
    scene: &EvalScene,
    setting: &Setting,
    cancel: &AtomicBool,
    on_step: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<RgbImage>>, PipelineError> {
    let mut sink = Collect::new(generator.models.frame_size(), setting.options.futures);
    let mut on_event = |e| {
        if let pipeline::Event::Step { done, .. } = e {
            on_step(done);
        }
    };
    generator.run(&scene.scenario, &setting.options, &mut sink, &mut on_event, cancel)?;
    Ok(sink.futures)
}

/// [`generate`] with `workers` scenes at a time (one or more threads), each worker taking
/// the next scene when it finishes one. Progress comes back over a channel to this
/// thread, which alone reports it; the first failure (or `cancel`) stops every worker.
fn scenes_on_workers<B: Backend>(
    generator: &Generator<B>,
    scenes: &[EvalScene],
    setting: &Setting,
    workers: usize,
    cancel: &AtomicBool,
    progress: &mut Progress<'_>,
) -> Result<SceneFrames, EvalError> {
    enum Message {
        Step { scene: usize, done: usize },
        Done { scene: usize, frames: Result<Vec<Vec<RgbImage>>, PipelineError> },
    }
    let next = AtomicUsize::new(0);
    // Set on `cancel` or a failure; the workers' runs poll it.
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Message>();
    let base = progress.done;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                loop {
                    let scene = next.fetch_add(1, Ordering::Relaxed);
                    if scene >= scenes.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut on_step = |done| {
                        // The receiver lives until every worker is gone.
                        let _ = tx.send(Message::Step { scene, done });
                    };
                    let frames = generate_scene(generator, &scenes[scene], setting, stop, &mut on_step);
                    let _ = tx.send(Message::Done { scene, frames });
                }
            });
        }
        drop(tx);
        let mut steps = vec![0; scenes.len()];
        let mut frames: Vec<Option<Vec<Vec<RgbImage>>>> = vec![None; scenes.len()];
        let mut first_error = None;
        for message in rx {
            if cancel.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
            }
            match message {
                Message::Step { scene, done } => {
                    steps[scene] = done;
                    let what = format!("{} ({})", setting.label, scenes[scene].scenario.name);
                    progress.report(&what, base + steps.iter().sum::<usize>());
                }
                Message::Done { scene, frames: Ok(f) } => frames[scene] = Some(f),
                Message::Done { frames: Err(e), .. } => {
                    stop.store(true, Ordering::Relaxed);
                    // A worker stopped by another's failure reports `Cancelled`: keep the cause.
                    if first_error.is_none() || matches!(first_error, Some(PipelineError::Cancelled)) {
                        first_error = Some(e);
                    }
                }
            }
        }
        progress.done = base + steps.iter().sum::<usize>();
        if let Some(e) = first_error {
            return Err(e.into());
        }
        // Without a failure, only `cancel` leaves a scene unstarted.
        frames.into_iter().map(|f| f.ok_or(EvalError::Pipeline(PipelineError::Cancelled))).collect()
    })
}

/// The ablation tables' settings: (name, parameter, rows).
fn ablation_settings(main: &GenerateOptions, a: &Ablations) -> Vec<(String, String, Vec<Setting>)> {
    let mut tables = Vec::new();
    let with = |label: String, value: Option<f64>, f: &dyn Fn(&mut GenerateOptions)| {
        let mut options = main.clone();
        f(&mut options);
        Setting { label, value, options }
    };
    if !a.steps.is_empty() {
        let rows = a.steps.iter().map(|&n| with(format!("{n} steps"), Some(n as f64), &|o| o.steps = n)).collect();
        tables.push(("DDIM steps".into(), "steps".into(), rows));
    }
    if !a.label_guidance.is_empty() {
        let rows = a
            .label_guidance
            .iter()
            .map(|&w| {
                let label =
                    if main.box_guidance.is_some() { format!("w_lab = {w}") } else { format!("w_lab = w_box = {w}") };
                with(label, Some(w), &|o| o.label_guidance = w)
            })
            .collect();
        tables.push(("Label guidance scale".into(), "label_guidance".into(), rows));
    }
    if !a.box_guidance.is_empty() {
        let rows = a
            .box_guidance
            .iter()
            .map(|&w| with(format!("w_box = {w}"), Some(w), &|o| o.box_guidance = Some(w)))
            .collect();
        tables.push(("Box guidance scale (frame 0)".into(), "box_guidance".into(), rows));
    }
    if !a.context_guidance.is_empty() {
        let rows = a
            .context_guidance
            .iter()
            .map(|&w| {
                let label = if w == 1.0 { "off (w_ctx = 1)".to_string() } else { format!("w_ctx = {w}") };
                with(label, Some(w), &|o| o.context_guidance = w)
            })
            .collect();
        tables.push(("Context guidance".into(), "context_guidance".into(), rows));
    }
    // Shares of the sampling steps or of the noise, 0 = the paper's sampling.
    let shares = |values: &[f32], off: &str, on: &str, set: fn(&mut GenerateOptions, f32)| -> Vec<Setting> {
        values
            .iter()
            .map(|&v| {
                let label = if v == 0.0 { off.to_string() } else { format!("{on} {v}") };
                with(label, Some(v as f64), &|o| set(o, v))
            })
            .collect()
    };
    if !a.prediction_guide.is_empty() {
        let rows = shares(&a.prediction_guide, "off (from noise)", "guide", |o, v| o.prediction_guide = v);
        tables.push(("Prediction guide".into(), "prediction_guide".into(), rows));
    }
    if !a.prediction_noise.is_empty() {
        let rows = shares(&a.prediction_noise, "off (own noise)", "noise", |o, v| o.prediction_noise = v);
        tables.push(("Prediction noise".into(), "prediction_noise".into(), rows));
    }
    if !a.prediction_guide_falloff.is_empty() {
        let rows = shares(&a.prediction_guide_falloff, "off (held everywhere)", "falloff", |o, v| {
            o.prediction_guide_falloff = v
        });
        tables.push(("Prediction guide falloff".into(), "prediction_guide_falloff".into(), rows));
    }
    if a.decoder {
        let rows = vec![
            with("temporal decoder".into(), None, &|o| o.decoder = DecoderMode::Temporal),
            with("per-frame image decoder".into(), None, &|o| o.decoder = DecoderMode::PerFrame),
        ];
        tables.push(("Decoder".into(), "decoder".into(), rows));
    }
    if a.known_frames {
        let rows = vec![
            with("held in the sample".into(), None, &|o| o.known_frames = KnownFrames::Replace),
            with("context encoder only".into(), None, &|o| o.known_frames = KnownFrames::ContextOnly),
        ];
        tables.push(("Known frames in the video samplers".into(), "known_frames".into(), rows));
    }
    if a.upsampler {
        let rows = vec![
            with("video upsampler".into(), None, &|o| o.upsample = UpsampleMode::Video),
            with("per-frame upsampler".into(), None, &|o| o.upsample = UpsampleMode::PerFrame),
        ];
        tables.push(("Upsampler (4×, judged at key-frame size)".into(), "upsample".into(), rows));
    }
    tables
}

/// One long future per scene against the world's own long rollout, per segment.
#[allow(clippy::too_many_arguments)]
fn drift<B: Backend>(
    generator: &Generator<B>,
    judges: &Judges<B>,
    scenes: &[EvalScene],
    d: DriftOptions,
    options: GenerateOptions,
    components: usize,
    cancel: &AtomicBool,
    progress: &mut Progress<'_>,
) -> Result<DriftResult, EvalError> {
    let setting = Setting { label: "drift".into(), value: None, options };
    let (frames, seconds) = generate(generator, scenes, &setting, cancel, progress)?;
    let plan = generator.plan(&scenes[0].scenario, &setting.options)?;
    let size = generator.models.frame_size();
    let per_segment = ((d.segment_s * plan.fps).round() as usize).max(1);
    let segments = plan.frames_per_future.div_ceil(per_segment);
    let reference: SceneFrames =
        scenes.iter().map(|s| vec![s.reference(0, plan.frames_per_future, plan.fps, size)]).collect();
    let (generated, reference) = (judges.read(&frames), judges.read(&reference));
    let n = plan.frames_per_future;
    // One subspace for every segment (the whole reference rollout's), so segments compare.
    let projection = Features::from_rows(&reference.frame_features, "reference rollout")
        .and_then(|r| Projection::fit(&r, components));
    let seeds: Vec<u64> = scenes.iter().map(|s| s.seed).collect();
    let mut out = Vec::new();
    for seg in 0..segments {
        let range = seg * per_segment..((seg + 1) * per_segment).min(n);
        let pick = |rows: &[Vec<f32>]| -> Vec<Vec<f32>> {
            rows.chunks(n).flat_map(|video| video[range.clone()].to_vec()).collect()
        };
        let (g, r) = (pick(&generated.frame_features), pick(&reference.frame_features));
        let sets = projection.clone().and_then(|p| {
            let g = p.apply(&Features::from_rows(&g, "generated segment")?, "generated segment")?;
            let r = p.apply(&Features::from_rows(&r, "reference segment")?, "reference segment")?;
            Ok((g, r))
        });
        // One video per scene: a scene's rows are its video's frames in the segment.
        let scene_rows: Vec<std::ops::Range<usize>> =
            (0..scenes.len()).map(|s| s * range.len()..(s + 1) * range.len()).collect();
        let f = GroupedDistance::frechet(sets, (&scene_rows, &scene_rows), &seeds);
        let (frechet_frames_sd, mut notes) = match (&f.distance, f.sd) {
            (Ok(_), Ok(sd)) => (Some(sd), vec![]),
            (Ok(_), Err(e)) => (None, vec![format!("scene bootstrap: {e}")]),
            (Err(e), _) => (None, vec![e.to_string()]),
        };
        let unprojected = Features::from_rows(&g, "generated segment")
            .and_then(|g| Ok((g, Features::from_rows(&r, "reference segment")?)));
        let (kid_frames, why) =
            GroupedDistance::kernel(unprojected, (&scene_rows, &scene_rows), &seeds).kernel_result("frames");
        notes.extend(why);
        out.push(DriftSegment {
            start_s: range.start as f32 / plan.fps,
            end_s: range.end as f32 / plan.fps,
            frames: r.len(),
            frechet_frames: f.distance.ok(),
            frechet_frames_sd,
            frechet_frames_spread: f.spread,
            kid_frames,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        });
    }
    Ok(DriftResult { seconds: d.seconds, segment_s: d.segment_s, segments: out, generation_s: seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelTier;
    use crate::pipeline::Models;
    use burn::backend::Flex;

    fn setting(steps: usize) -> Setting {
        let scene = EvalScene::new(0, (16, 32), 4);
        let mut options = GenerateOptions::from_scenario(&scene.scenario);
        (options.steps, options.futures, options.seconds, options.upsample) = (steps, 1, 0.4, UpsampleMode::Off);
        Setting { label: "main".into(), value: None, options }
    }

    fn frames(g: &Generator<Flex>, scenes: &[EvalScene], cancel: bool) -> Result<(SceneFrames, usize), EvalError> {
        let mut reported = 0;
        let mut on_progress = |p: EvalProgress<'_>| reported = reported.max(p.done);
        let mut progress = Progress { done: 0, total: 0, on_progress: &mut on_progress };
        let (frames, _) = generate(g, scenes, &setting(2), &AtomicBool::new(cancel), &mut progress)?;
        assert_eq!(progress.done, reported, "the last report is the steps done");
        Ok((frames, reported))
    }

    /// One future per scene: two threads run two scenes at a time, with the frames and
    /// the step count of one scene at a time; a cancelled run stops with `Cancelled`.
    #[test]
    fn scenes_side_by_side_give_the_frames_of_one_at_a_time() {
        let models = || Models::<Flex>::seeded(ModelTier::Micro, 3, &Default::default());
        let (one, two) = (
            Generator::new(models(), Default::default()).with_threads(1),
            Generator::new(models(), Default::default()).with_threads(2),
        );
        let scenes: Vec<_> =
            (0..3).map(|i| EvalScene::new(i, one.models.frame_size(), one.models.image_ldm.box_slots())).collect();
        let (a, steps_a) = frames(&one, &scenes, false).unwrap();
        let (b, steps_b) = frames(&two, &scenes, false).unwrap();
        assert_eq!((a.len(), a[0].len()), (3, 1));
        assert!(!a[0][0].is_empty());
        assert_eq!(a, b, "other frames with scenes side by side");
        assert_eq!(steps_a, steps_b);
        assert!(matches!(frames(&two, &scenes, true), Err(EvalError::Pipeline(PipelineError::Cancelled))));
    }
}
