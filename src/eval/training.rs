//! `train detector|classifier|clip-encoder`: the evaluators through the shared loop (`train::fit`),
//! their EMA weights written to an evaluators folder (`weights/eval/<tier>/` by default)
//! with a manifest entry holding the config, the training facts and the held-out
//! accuracy measured on worlds no training step saw.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use crate::model::ModelTier;
use crate::train::{Event, FitSummary, Fitted, FrameSource, LoopConfig, TrainError, fit};
use crate::weights::{FileEntry, Manifest, ModelEntry, Part, TemporalInit, TrainingFacts, WeightsError, load_parts};

use super::classifier::{ClassifierConfig, ConditionClassifier};
use super::clip_encoder::{ClipEncoder, ClipEncoderConfig};
use super::detector::{Detector, DetectorConfig};
use super::tasks::{
    ClassifierTask, ClipEncoderTask, DetectorTask, MotionAccuracy, classifier_accuracy, clip_encoder_accuracy,
    detector_accuracy,
};

/// Held-out worlds the accuracy recorded after training is measured on.
pub const HELD_OUT_WORLDS: usize = 128;

/// The evaluator networks `train` can fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Evaluator {
    /// CenterNet-style car detector (layout fidelity, track continuity).
    Detector,
    /// Day/night + crowdedness classifier (condition accuracy, Fréchet features).
    Classifier,
    /// Ego-motion clip encoder (clip features: Fréchet distance of clips, diversity).
    ClipEncoder,
}

impl Evaluator {
    /// Model name in the manifest, weights file stem and run folder name.
    pub fn name(self) -> &'static str {
        match self {
            Evaluator::Detector => "detector",
            Evaluator::Classifier => "classifier",
            Evaluator::ClipEncoder => "clip_encoder",
        }
    }
}

/// The detector config of a tier (the base tier keeps the tiny evaluators: they judge
/// frames of the same size).
pub fn detector_config(tier: ModelTier) -> DetectorConfig {
    match tier {
        ModelTier::Micro => DetectorConfig::micro(),
        ModelTier::Tiny | ModelTier::Base => DetectorConfig::tiny(),
    }
}

/// The classifier config of a tier (see [`detector_config`]).
pub fn classifier_config(tier: ModelTier) -> ClassifierConfig {
    match tier {
        ModelTier::Micro => ClassifierConfig::micro(),
        ModelTier::Tiny | ModelTier::Base => ClassifierConfig::tiny(),
    }
}

/// The clip encoder config of a tier (see [`detector_config`]).
pub fn clip_encoder_config(tier: ModelTier) -> ClipEncoderConfig {
    match tier {
        ModelTier::Micro => ClipEncoderConfig::micro(),
        ModelTier::Tiny | ModelTier::Base => ClipEncoderConfig::tiny(),
    }
}

/// Default evaluators folder of a tier.
pub fn default_evaluators_dir(tier: ModelTier) -> PathBuf {
    Path::new("weights/eval").join(tier.dir_name())
}

/// Default run folder (checkpoints, log.csv, loss.png) of an evaluator.
pub fn default_evaluator_run_dir(tier: ModelTier, evaluator: Evaluator) -> PathBuf {
    Path::new("runs/train").join(tier.dir_name()).join(evaluator.name())
}

#[derive(Debug, Clone)]
pub struct EvaluatorTrainOptions {
    pub evaluator: Evaluator,
    /// Sets the evaluator's config and the frame size (the tier's key frames).
    pub tier: ModelTier,
    pub loop_config: LoopConfig,
    pub batch: usize,
    pub seed: u64,
    pub run_dir: PathBuf,
    /// Where the weights and manifest go ([`default_evaluators_dir`]).
    pub weights_dir: PathBuf,
    pub resume: bool,
}

/// What a finished (or interrupted) evaluator run produced.
#[derive(Debug, Clone)]
pub struct EvaluatorReport {
    pub summary: FitSummary,
    /// The weights file written (absent when interrupted before any step).
    pub weights: Option<PathBuf>,
    /// Held-out accuracy of the saved (EMA) weights, one line.
    pub accuracy: Option<String>,
}

/// Trains an evaluator on the CPU (`Autodiff<Flex>`).
pub fn train_evaluator(
    opts: &EvaluatorTrainOptions,
    cancel: &AtomicBool,
    on_event: impl FnMut(Event),
) -> Result<EvaluatorReport, TrainError> {
    train_evaluator_on::<Autodiff<Flex>>(opts, &Default::default(), cancel, on_event)
}

/// Trains an evaluator on any autodiff backend.
pub fn train_evaluator_on<B: AutodiffBackend>(
    opts: &EvaluatorTrainOptions,
    device: &B::Device,
    cancel: &AtomicBool,
    on_event: impl FnMut(Event),
) -> Result<EvaluatorReport, TrainError> {
    let (h, w) = opts.tier.config().frame_size;
    let frames = FrameSource::new(h, w, opts.seed);
    let held_out = FrameSource::held_out_seeds(HELD_OUT_WORLDS);
    let not_measurable = |e: super::MetricError| format!("held-out accuracy not measurable: {e}");
    match opts.evaluator {
        Evaluator::Detector => {
            let config = detector_config(opts.tier);
            let task = DetectorTask { config: config.clone(), frames, batch: opts.batch };
            fit_and_save::<B, _, _>(opts, &task, &config, device, cancel, on_event, |model| {
                detector_accuracy(model, &task.frames, &held_out, device).map_or_else(not_measurable, |s| {
                    format!(
                        "held-out AP50 {:.3}, mean IoU {} ({} cars ≥ {} px, {} worlds)",
                        s.ap,
                        s.mean_iou.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}")),
                        s.ground_truth,
                        super::MIN_CAR_PX,
                        held_out.len()
                    )
                })
            })
        }
        Evaluator::Classifier => {
            let config = classifier_config(opts.tier);
            let task = ClassifierTask { config: config.clone(), frames, batch: opts.batch };
            fit_and_save::<B, _, _>(opts, &task, &config, device, cancel, on_event, |model| {
                classifier_accuracy(model, &task.frames, &held_out, device).map_or_else(not_measurable, |a| {
                    format!(
                        "held-out day/night {:.3}, crowdedness exact {:.3}, ±1 {:.3} ({} worlds)",
                        a.time_of_day, a.crowdedness_exact, a.crowdedness_within_one, a.samples
                    )
                })
            })
        }
        Evaluator::ClipEncoder => {
            let config = clip_encoder_config(opts.tier);
            let task = ClipEncoderTask { config: config.clone(), frames, batch: opts.batch };
            fit_and_save::<B, _, _>(opts, &task, &config, device, cancel, on_event, |model| {
                clip_encoder_accuracy(model, &task.frames, &held_out, device)
                    .map_or_else(not_measurable, |a| motion_accuracy_line(&a))
            })
        }
    }
}

/// Fits an evaluator's `task`, measures its EMA weights with `accuracy` (one line) and
/// saves them with `config` (nothing is saved when stopped before the first step).
fn fit_and_save<B, T, C>(
    opts: &EvaluatorTrainOptions,
    task: &T,
    config: &C,
    device: &B::Device,
    cancel: &AtomicBool,
    on_event: impl FnMut(Event),
    accuracy: impl FnOnce(&<T::Model as AutodiffModule<B>>::InnerModule) -> String,
) -> Result<EvaluatorReport, TrainError>
where
    B: AutodiffBackend,
    T: crate::train::Task<B> + Sync,
    C: Serialize,
{
    let Fitted { ema, summary, .. } =
        fit::<B, _>(task, &opts.loop_config, &opts.run_dir, opts.resume, device, cancel, on_event)?;
    if summary.last_step == 0 {
        return Ok(EvaluatorReport { summary, weights: None, accuracy: None });
    }
    let acc = accuracy(&ema.model);
    let written = save(opts, config, &ema.model, &summary, &acc)?;
    Ok(EvaluatorReport { summary, weights: Some(written), accuracy: Some(acc) })
}

/// One line on the clip encoder's held-out motion accuracy.
pub fn motion_accuracy_line(a: &MotionAccuracy) -> String {
    format!(
        "held-out order (forward/reversed/shuffled) accuracy {:.3}, speed MAE {:.2} m/s (constant guess {:.2}), \
         sideways MAE {:.2} m (guessing none {:.2}), lane changes found {}/{} with {} false ({} clips)",
        a.order_accuracy,
        a.speed_mae,
        a.speed_mae_constant,
        a.sideways_mae,
        a.sideways_mae_constant,
        a.lane_changes_found,
        a.lane_changes,
        a.false_lane_changes,
        a.samples
    )
}

/// Writes `model` as `<name>.safetensors` and replaces its manifest entry.
fn save<IB: Backend, M: Module<IB>, C: Serialize>(
    opts: &EvaluatorTrainOptions,
    config: &C,
    model: &M,
    summary: &FitSummary,
    accuracy: &str,
) -> Result<PathBuf, TrainError> {
    let dir = &opts.weights_dir;
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let name = opts.evaluator.name();
    let file = format!("{name}.safetensors");
    crate::weights::save_parts(model, &dir.join(&file), None)?;
    let (h, w) = opts.tier.config().frame_size;
    let mut entry = ModelEntry::new(name, config, vec![FileEntry::describe(dir, &file, Part::Spatial)?])?;
    entry.training = Some(TrainingFacts {
        steps: summary.last_step,
        wall_time_s: crate::train::plot::log_wall_seconds(&opts.run_dir.join("log.csv")).unwrap_or(summary.seconds),
        hardware: crate::train::hardware::<IB>(),
        data: format!(
            "procedural world renders, {w}×{h}, world seeds from run seed {} (training range < 2^40), batch {}",
            opts.seed, opts.batch
        ),
        notes: format!("EMA weights (decay {}); {accuracy}", opts.loop_config.ema_decay),
        base: None,
    });
    Manifest::upsert(dir, opts.tier, entry)?;
    Ok(dir.join(file))
}

/// The evaluators, loaded from an evaluators folder written by `train`.
pub struct Evaluators<B: Backend> {
    pub tier: ModelTier,
    pub detector: Detector<B>,
    pub classifier: ConditionClassifier<B>,
    pub classifier_config: ClassifierConfig,
    /// The clip encoder, where the folder has one (without it clip features are made
    /// from the classifier's frame features, see `measure::clip_feature`).
    pub clip_encoder: Option<ClipEncoder<B>>,
    /// The training facts of each (detector, classifier, clip encoder), for reports.
    pub facts: [Option<TrainingFacts>; 3],
}

impl<B: Backend> Evaluators<B> {
    /// Loads and verifies (sizes, hashes, every tensor name and shape) the evaluators.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, WeightsError> {
        let manifest = Manifest::read(dir)?;
        manifest.verify(dir)?;
        let manifest_path = Manifest::path(dir);
        let entry = |e: Evaluator| {
            manifest.model(e.name()).ok_or_else(|| WeightsError::Store {
                path: manifest_path.clone(),
                message: format!(
                    "no `{}` model; train it with `latentdrive train {} --tier {} --weights {}`",
                    e.name(),
                    e.name(),
                    manifest.tier.dir_name(),
                    dir.display()
                ),
            })
        };
        let spatial = |entry: &ModelEntry| {
            entry.file_path(dir, Part::Spatial)?.ok_or_else(|| WeightsError::Store {
                path: manifest_path.clone(),
                message: format!("model `{}` lists no spatial file", entry.name),
            })
        };
        let d = entry(Evaluator::Detector)?;
        let detector_config: DetectorConfig = d.config(&manifest_path)?;
        let detector = load_parts(detector_config.init(device), &spatial(d)?, None, TemporalInit::Require)?;
        let c = entry(Evaluator::Classifier)?;
        let classifier_config: ClassifierConfig = c.config(&manifest_path)?;
        let classifier = load_parts(classifier_config.init(device), &spatial(c)?, None, TemporalInit::Require)?;
        let clip = manifest.model(Evaluator::ClipEncoder.name());
        let clip_encoder = match clip {
            Some(e) => {
                let config: ClipEncoderConfig = e.config(&manifest_path)?;
                Some(load_parts(config.init(device), &spatial(e)?, None, TemporalInit::Require)?)
            }
            None => None,
        };
        Ok(Evaluators {
            tier: manifest.tier,
            detector,
            classifier,
            classifier_config,
            clip_encoder,
            facts: [d.training.clone(), c.training.clone(), clip.and_then(|e| e.training.clone())],
        })
    }
}
