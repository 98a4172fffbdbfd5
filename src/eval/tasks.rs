//! The evaluators as stages of the shared training loop (`train::fit`), and their own
//! accuracy on held-out renders. Training worlds come from `FrameSource` (seeds below
//! `data::EVAL_SEED_BASE`); accuracy is measured only on seeds from it upwards.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};

use crate::data::EVAL_SEED_BASE;
use crate::scenario::Conditions;
use crate::train::init::seeded_init;
use crate::train::{Batch, FrameSource, KEYFRAME_FPS, Task, TrainError};
use crate::world::Box2d;

use super::centernet::{DetectorTargets, detector_loss};
use super::classifier::{ClassifierConfig, ConditionClassifier};
use super::clip_encoder::{ClipEncoder, ClipEncoderConfig, ClipOrder, EgoMotion};
use super::conditions::{ConditionAccuracy, condition_accuracy};
use super::detection::{AP50_IOU, DetectionScores, ImageDetections, evaluate_detections};
use super::detector::{Detector, DetectorConfig};
use super::error::MetricError;

/// Cars whose box is narrower or lower than this many pixels (at the evaluator's
/// resolution) are neither trained on nor counted: below one heatmap cell there is
/// nothing to find (KITTI likewise ignores boxes under 25 px at its 375-px height).
pub const MIN_CAR_PX: f32 = 4.0;

/// Peaks decoded per image when measuring AP (more than any world has cars in view).
pub const DETECTIONS_PER_IMAGE: usize = 32;

/// Frames per forward pass when measuring held-out accuracy.
const EVAL_CHUNK: usize = 8;

/// A frame of world `seed` as `[3, h, w]`, its conditions and its findable cars in pixels.
fn sample<B: Backend>(frames: &FrameSource, seed: u64, device: &B::Device) -> (Tensor<B, 3>, Conditions, Vec<Box2d>) {
    let (frame, conditions, boxes) = frames.labelled_frame::<B>(seed, device);
    let [_, h, w] = frame.dims();
    let (h, w) = (h as f32, w as f32);
    let boxes = boxes
        .into_iter()
        .map(|b| Box2d { x1: b[0] * w, y1: b[1] * h, x2: b[2] * w, y2: b[3] * h })
        .filter(|b| b.width() >= MIN_CAR_PX && b.height() >= MIN_CAR_PX)
        .collect();
    (frame, conditions, boxes)
}

/// Trains the car detector on rendered frames and their visible cars.
pub struct DetectorTask {
    pub config: DetectorConfig,
    pub frames: FrameSource,
    pub batch: usize,
}

impl<B: AutodiffBackend> Task<B> for DetectorTask {
    type Model = Detector<B>;

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        Ok(seeded_init(self.config.init(device), seed))
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    /// The detector draws nothing at random and has no dropout: both batches alike.
    fn batch_loss(&self, model: &Self::Model, seeds: &[u64], _: u64, _: Batch, device: &B::Device) -> Tensor<B, 1> {
        let (images, boxes): (Vec<_>, Vec<_>) =
            seeds.iter().map(|&s| sample::<B>(&self.frames, s, device)).map(|(f, _, b)| (f, b)).unzip();
        let images = Tensor::stack(images, 0);
        let [_, _, h, w] = images.dims();
        let targets = DetectorTargets::new(&boxes, (h, w), self.config.stride(), device);
        detector_loss(&model.forward(images), &targets).total
    }
}

/// Trains the day/night and crowdedness classifier on rendered frames.
pub struct ClassifierTask {
    pub config: ClassifierConfig,
    pub frames: FrameSource,
    pub batch: usize,
}

impl<B: AutodiffBackend> Task<B> for ClassifierTask {
    type Model = ConditionClassifier<B>;

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        Ok(seeded_init(self.config.init(device), seed))
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn batch_loss(&self, model: &Self::Model, seeds: &[u64], _: u64, _: Batch, device: &B::Device) -> Tensor<B, 1> {
        let (images, conditions): (Vec<_>, Vec<_>) =
            seeds.iter().map(|&s| sample::<B>(&self.frames, s, device)).map(|(f, c, _)| (f, c)).unzip();
        model.forward(Tensor::stack(images, 0)).loss(&conditions)
    }
}

/// Trains the clip encoder on rendered key-frame clips and the ego's motion in them.
pub struct ClipEncoderTask {
    pub config: ClipEncoderConfig,
    pub frames: FrameSource,
    pub batch: usize,
}

/// A key-frame clip of world `seed` for the clip encoder shown in `order`, `[t, 3, h, w]`,
/// and the ego motion it shows (a clip played backwards moves the other way). A shuffle
/// of a clip too short for one plays it backwards.
fn motion_clip<B: Backend>(
    frames: &FrameSource,
    t: usize,
    seed: u64,
    order: ClipOrder,
    device: &B::Device,
) -> (Tensor<B, 4>, (EgoMotion, ClipOrder)) {
    let (clip, _, ego) = frames.rendered_clip::<B>(seed, t, KEYFRAME_FPS, device);
    let (order, idx) = match order.indices(t, seed) {
        Some(idx) => (order, idx),
        None => (ClipOrder::Reversed, (0..t).rev().collect()),
    };
    let shown: Vec<_> = idx.iter().map(|&i| ego[i]).collect();
    let index = Tensor::<B, 1, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(idx.iter().map(|&i| i as i64).collect::<Vec<_>>(), [t]),
        device,
    );
    (clip.select(0, index), (EgoMotion::of(&shown), order))
}

/// The order sample `i` of a batch is shown in (a pure function of the draw seed).
fn draw_order(draw_seed: u64, i: usize) -> ClipOrder {
    ClipOrder::ALL[(crate::world::mix(draw_seed ^ (i as u64).wrapping_mul(0x9E37)) % 3) as usize]
}

impl<B: AutodiffBackend> Task<B> for ClipEncoderTask {
    type Model = ClipEncoder<B>;

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        Ok(seeded_init(self.config.init(device), seed))
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn batch_loss(
        &self,
        model: &Self::Model,
        seeds: &[u64],
        draw_seed: u64,
        _: Batch,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        let (clips, truth): (Vec<_>, Vec<_>) = seeds
            .iter()
            .enumerate()
            .map(|(i, &s)| motion_clip::<B>(&self.frames, self.config.frames, s, draw_order(draw_seed, i), device))
            .unzip();
        model.forward(Tensor::stack(clips, 0)).loss(&truth)
    }
}

/// How well the clip encoder reads the ego's motion, next to the best constant guess.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MotionAccuracy {
    pub samples: usize,
    /// Mean absolute error of the mean speed, m/s.
    pub speed_mae: f32,
    /// The same for always guessing the held-out clips' mean speed.
    pub speed_mae_constant: f32,
    /// Mean absolute error of the sideways travel, m.
    pub sideways_mae: f32,
    /// The same for always guessing no sideways travel.
    pub sideways_mae_constant: f32,
    /// Clips with a lane change under way (see [`EgoMotion::changes_lane`]).
    pub lane_changes: usize,
    /// Of those, the ones the encoder also sees as lane changes.
    pub lane_changes_found: usize,
    /// Clips it sees as lane changes that are not.
    pub false_lane_changes: usize,
    /// Fraction of clips (each held-out clip forward, reversed and shuffled) whose order
    /// it names (chance: 1/3).
    pub order_accuracy: f32,
}

/// The clip encoder's motion accuracy on key-frame clips of held-out worlds `seeds`.
pub fn clip_encoder_accuracy<B: Backend>(
    model: &ClipEncoder<B>,
    frames: &FrameSource,
    seeds: &[u64],
    device: &B::Device,
) -> Result<MotionAccuracy, MetricError> {
    check_held_out(seeds)?;
    if seeds.is_empty() {
        return Err(MetricError::Empty { what: "held-out clips" });
    }
    let (mut truth, mut predicted) = (Vec::new(), Vec::new());
    let (mut orders, mut orders_right) = (0, 0);
    for chunk in seeds.chunks(EVAL_CHUNK) {
        for order in ClipOrder::ALL {
            let (clips, shown): (Vec<_>, Vec<_>) =
                chunk.iter().map(|&s| motion_clip::<B>(frames, model.frames(), s, order, device)).unzip();
            let guessed = model.predict(Tensor::stack(clips, 0));
            orders += shown.len();
            orders_right += shown.iter().zip(&guessed).filter(|(s, g)| s.1 == g.1).count();
            if order == ClipOrder::Forward {
                truth.extend(shown.into_iter().map(|(m, _)| m));
                predicted.extend(guessed.into_iter().map(|(m, _)| m));
            }
        }
    }
    let n = truth.len() as f32;
    let mean_speed = truth.iter().map(|m| m.speed_mps).sum::<f32>() / n;
    let mae =
        |f: &dyn Fn(&EgoMotion, &EgoMotion) -> f32| truth.iter().zip(&predicted).map(|(t, p)| f(t, p)).sum::<f32>() / n;
    let count =
        |f: &dyn Fn(&EgoMotion, &EgoMotion) -> bool| truth.iter().zip(&predicted).filter(|(t, p)| f(t, p)).count();
    Ok(MotionAccuracy {
        samples: truth.len(),
        speed_mae: mae(&|t, p| (t.speed_mps - p.speed_mps).abs()),
        speed_mae_constant: mae(&|t, _| (t.speed_mps - mean_speed).abs()),
        sideways_mae: mae(&|t, p| (t.sideways_m - p.sideways_m).abs()),
        sideways_mae_constant: mae(&|t, _| t.sideways_m.abs()),
        lane_changes: count(&|t, _| t.changes_lane()),
        lane_changes_found: count(&|t, p| t.changes_lane() && p.changes_lane()),
        false_lane_changes: count(&|t, p| !t.changes_lane() && p.changes_lane()),
        order_accuracy: orders_right as f32 / orders.max(1) as f32,
    })
}

/// Refuses seeds of the training range: held-out accuracy must not see training worlds.
fn check_held_out(seeds: &[u64]) -> Result<(), MetricError> {
    match seeds.iter().find(|&&s| s < EVAL_SEED_BASE) {
        Some(&seed) => Err(MetricError::TrainingSeed { seed }),
        None => Ok(()),
    }
}

/// The detector's AP50 and mean IoU on the renders of held-out worlds `seeds` against
/// the world's labels (findable cars only, see [`MIN_CAR_PX`]).
pub fn detector_accuracy<B: Backend>(
    model: &Detector<B>,
    frames: &FrameSource,
    seeds: &[u64],
    device: &B::Device,
) -> Result<DetectionScores, MetricError> {
    check_held_out(seeds)?;
    let mut images = Vec::with_capacity(seeds.len());
    for chunk in seeds.chunks(EVAL_CHUNK) {
        let (frames, boxes): (Vec<_>, Vec<_>) =
            chunk.iter().map(|&s| sample::<B>(frames, s, device)).map(|(f, _, b)| (f, b)).unzip();
        let detections = model.detect(Tensor::stack(frames, 0), DETECTIONS_PER_IMAGE);
        images.extend(
            detections
                .into_iter()
                .zip(boxes)
                .map(|(detections, ground_truth)| ImageDetections { detections, ground_truth }),
        );
    }
    evaluate_detections(&images, AP50_IOU)
}

/// The classifier's condition accuracy on the renders of held-out worlds `seeds`.
pub fn classifier_accuracy<B: Backend>(
    model: &ConditionClassifier<B>,
    frames: &FrameSource,
    seeds: &[u64],
    device: &B::Device,
) -> Result<ConditionAccuracy, MetricError> {
    check_held_out(seeds)?;
    let (mut truth, mut predicted) = (Vec::new(), Vec::new());
    for chunk in seeds.chunks(EVAL_CHUNK) {
        let (frames, conditions): (Vec<_>, Vec<_>) =
            chunk.iter().map(|&s| sample::<B>(frames, s, device)).map(|(f, c, _)| (f, c)).unzip();
        predicted.extend(model.predict(Tensor::stack(frames, 0)));
        truth.extend(conditions);
    }
    condition_accuracy(&truth, &predicted)
}

/// Mean loss of `task` on held-out worlds `seeds` (for reports beside the accuracy).
pub fn held_out_loss<B: AutodiffBackend, T: Task<B>>(
    task: &T,
    model: &T::Model,
    seeds: &[u64],
    device: &B::Device,
) -> Result<f32, MetricError> {
    check_held_out(seeds)?;
    Ok(task.batch_loss(model, seeds, 0, Batch::HeldOut, device).into_scalar().elem())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use burn::backend::{Autodiff, Flex};

    use super::*;
    use crate::train::{LoopConfig, fit};

    type AB = Autodiff<Flex>;

    fn loop_config(steps: u64) -> LoopConfig {
        LoopConfig {
            steps,
            lr: 5e-3,
            warmup_steps: 2,
            grad_clip: 5.0,
            ema_decay: 0.5,
            checkpoint_every: 1000,
            eval_every: steps,
            init_seed: 4,
            data_parallel: 1,
            lr_decay: Default::default(),
        }
    }

    fn run_dir(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("latentdrive-eval-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn the_detector_trains_in_the_shared_loop_and_reports_held_out_accuracy() {
        let dev = Default::default();
        let task = DetectorTask { config: DetectorConfig::micro(), frames: FrameSource::new(64, 128, 3), batch: 2 };
        let held_out = FrameSource::held_out_seeds(4);
        let initial =
            held_out_loss::<AB, _>(&task, &Task::<AB>::init(&task, &dev, 4).unwrap(), &held_out, &dev).unwrap();
        let dir = run_dir("detector");
        let fitted = fit::<AB, _>(&task, &loop_config(30), &dir, false, &dev, &AtomicBool::new(false), |_| {}).unwrap();
        let trained = held_out_loss::<AB, _>(&task, &fitted.model, &held_out, &dev).unwrap();
        eprintln!("detector task: held-out loss {initial:.3} → {trained:.3} after 30 steps");
        assert!(trained < 0.8 * initial, "held-out loss {initial} → {trained}");
        let scores = detector_accuracy(&fitted.ema.model, &task.frames, &held_out, &dev).unwrap();
        eprintln!("detector task: held-out {scores:?}");
        assert!(scores.ground_truth > 0 && (0.0..=1.0).contains(&scores.ap), "{scores:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_clip_encoder_learns_ego_motion_in_the_shared_loop() {
        let dev = Default::default();
        let task =
            ClipEncoderTask { config: ClipEncoderConfig::micro(), frames: FrameSource::new(32, 64, 3), batch: 4 };
        let held_out = FrameSource::held_out_seeds(8);
        let initial =
            held_out_loss::<AB, _>(&task, &Task::<AB>::init(&task, &dev, 4).unwrap(), &held_out, &dev).unwrap();
        let dir = run_dir("clip");
        let fitted = fit::<AB, _>(&task, &loop_config(30), &dir, false, &dev, &AtomicBool::new(false), |_| {}).unwrap();
        let trained = held_out_loss::<AB, _>(&task, &fitted.model, &held_out, &dev).unwrap();
        eprintln!("clip encoder task: held-out loss {initial:.3} → {trained:.3} after 30 steps");
        assert!(trained < 0.5 * initial, "held-out loss {initial} → {trained}");
        let acc = clip_encoder_accuracy(&fitted.ema.model, &task.frames, &held_out, &dev).unwrap();
        eprintln!("clip encoder task: held-out {acc:?}");
        assert_eq!(acc.samples, 8);
        assert!(acc.speed_mae.is_finite() && acc.speed_mae_constant > 0.0, "{acc:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn held_out_accuracy_refuses_training_seeds() {
        let dev = Default::default();
        let frames = FrameSource::new(32, 64, 3);
        let model = ClassifierConfig::micro().init::<Flex>(&dev);
        let seeds = [EVAL_SEED_BASE, frames.train_seed(0, 0)];
        let err = classifier_accuracy(&model, &frames, &seeds, &dev).unwrap_err();
        assert_eq!(err, MetricError::TrainingSeed { seed: seeds[1] });
        assert!(err.to_string().contains("training range"));
        let ok = classifier_accuracy(&model, &frames, &FrameSource::held_out_seeds(3), &dev).unwrap();
        assert_eq!(ok.samples, 3);
    }
}
