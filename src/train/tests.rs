//! The loop's promises on micro configs: resume is bit-exact, loss falls, NaN stops.

use std::sync::atomic::AtomicBool;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::*;
use crate::model::ModelTier;

type AB = Autodiff<Flex>;

fn weights<B: Backend, M: Module<B>>(m: &M) -> Vec<Vec<f32>> {
    struct C(Vec<Vec<f32>>);
    impl<B: Backend> ModuleVisitor<B> for C {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0.push(p.val().into_data().convert::<f32>().to_vec::<f32>().unwrap());
        }
    }
    let mut c = C(Vec::new());
    m.visit(&mut c);
    c.0
}

fn task() -> AutoencoderTask {
    let cfg = ModelTier::Micro.config();
    AutoencoderTask::new(cfg.autoencoder, cfg.frame_size, 2, 7)
}

/// The initial weights of the runs below (same seed as `loop_config`).
fn task_init() -> crate::model::Autoencoder<AB> {
    init::seeded_init(ModelTier::Micro.config().autoencoder.init(&Default::default()), 3)
}

fn loop_config(steps: u64) -> LoopConfig {
    LoopConfig {
        steps,
        lr: 1e-3,
        warmup_steps: 2,
        grad_clip: 1.0,
        ema_decay: 0.9,
        checkpoint_every: 100,
        eval_every: 2,
        init_seed: 3,
        data_parallel: 1,
        lr_decay: Default::default(),
    }
}

fn run_dir(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("latentdrive-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn resuming_half_way_gives_bit_identical_weights() {
    let dev = Default::default();
    let never = AtomicBool::new(false);
    let (a, b) = (run_dir("straight"), run_dir("resumed"));
    let Fitted { model: straight, ema: straight_ema, .. } =
        fit::<AB, _>(&task(), &loop_config(4), &a, false, &dev, &never, |_| {}).unwrap();
    let Fitted { summary: first, .. } =
        fit::<AB, _>(&task(), &loop_config(2), &b, false, &dev, &never, |_| {}).unwrap();
    assert_eq!(first.last_step, 2);
    let Fitted { model: resumed, ema: resumed_ema, summary: second } =
        fit::<AB, _>(&task(), &loop_config(4), &b, true, &dev, &never, |_| {}).unwrap();
    assert_eq!((second.first_step, second.last_step), (2, 4));
    // (Compared as booleans: a failure would otherwise print every weight.)
    assert!(weights(&straight) == weights(&resumed), "weights differ after resume");
    assert!(weights(&straight_ema.model) == weights(&resumed_ema.model), "EMA weights differ after resume");
    assert!(weights(&straight) != weights(&task_init()), "training changed the weights");
    // The start is a function of the seed alone, whatever else uses burn's global RNG.
    assert!(weights(&task_init()) == weights(&task_init()));
    // The log continues rather than restarting.
    let log = std::fs::read_to_string(b.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 1 + 4, "{log}");
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn the_cosine_schedule_warms_up_peaks_and_ends_at_its_floor() {
    let cfg = LoopConfig { warmup_steps: 2, lr_decay: LrDecay::Cosine { final_fraction: 0.1 }, ..loop_config(12) };
    let lr: Vec<f64> = (0..cfg.steps).map(|s| cfg.lr_at(s)).collect();
    assert_eq!(&lr[..3], &[0.5e-3, 1e-3, 1e-3], "linear warm-up, then the peak");
    assert!((lr[11] - 1e-4).abs() < 1e-12, "the last step is at the floor: {}", lr[11]);
    assert!(lr[2..].windows(2).all(|w| w[1] < w[0]), "decreasing after the peak: {lr:?}");
    assert!((lr[2..].iter().sum::<f64>() / 10.0 - 0.55e-3).abs() < 1e-12, "half a cosine averages mid-way");
    let constant = loop_config(12);
    assert!((2..12).all(|s| constant.lr_at(s) == constant.lr));
}

#[test]
fn a_cosine_run_stopped_half_way_resumes_bit_identically() {
    let dev = Default::default();
    let never = AtomicBool::new(false);
    let cfg = LoopConfig { lr_decay: LrDecay::Cosine { final_fraction: 0.1 }, ..loop_config(4) };
    let (a, b, c) = (run_dir("cosine-straight"), run_dir("cosine-stopped"), run_dir("cosine-constant"));
    let straight = fit::<AB, _>(&task(), &cfg, &a, false, &dev, &never, |_| {}).unwrap().model;
    // Stopped as `--minutes` or Ctrl-C stop it: the schedule still spans all 4 steps.
    let stop = AtomicBool::new(false);
    let first = fit::<AB, _>(&task(), &cfg, &b, false, &dev, &stop, |e| {
        if let Event::Step { step: 2, .. } = e {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .unwrap()
    .summary;
    assert_eq!((first.last_step, first.interrupted), (2, true));
    let resumed = fit::<AB, _>(&task(), &cfg, &b, true, &dev, &never, |_| {}).unwrap().model;
    assert!(weights(&straight) == weights(&resumed), "weights differ after resume");
    let constant = fit::<AB, _>(&task(), &loop_config(4), &c, false, &dev, &never, |_| {}).unwrap().model;
    assert!(weights(&straight) != weights(&constant), "the decay changed nothing");
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn cancelling_checkpoints_and_stops() {
    let dev = Default::default();
    let cancel = AtomicBool::new(true);
    let dir = run_dir("cancel");
    let Fitted { summary: s, .. } = fit::<AB, _>(&task(), &loop_config(4), &dir, false, &dev, &cancel, |_| {}).unwrap();
    assert!(s.interrupted);
    assert_eq!(s.last_step, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_non_finite_loss_stops_the_run_and_names_the_checkpoint() {
    let dev = Default::default();
    let never = AtomicBool::new(false);
    let dir = run_dir("nan");
    let mut cfg = loop_config(3);
    cfg.lr = f64::NAN;
    let err = fit::<AB, _>(&task(), &cfg, &dir, false, &dev, &never, |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("loss became NaN at step 1") && msg.contains("checkpoint"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A task whose loss has no random draws, so one batch split over replicas must give the
/// gradients of the whole batch: a linear map of each frame's mean colour towards 0.5.
struct MeanColour {
    frames: FrameSource,
}

impl Task<AB> for MeanColour {
    type Model = burn::nn::Linear<AB>;

    fn init(&self, device: &burn::tensor::Device<AB>, seed: u64) -> Result<Self::Model, TrainError> {
        Ok(init::seeded_init(burn::nn::LinearConfig::new(3, 2).init(device), seed))
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        3
    }

    fn batch_loss(
        &self,
        model: &Self::Model,
        seeds: &[u64],
        _: u64,
        _: Batch,
        device: &burn::tensor::Device<AB>,
    ) -> Tensor<AB, 1> {
        let x = Tensor::stack::<4>(seeds.iter().map(|&s| self.frames.frame::<AB>(s, device)).collect(), 0);
        let x = x.mean_dim(3).mean_dim(2).reshape([seeds.len(), 3]);
        (model.forward(x) - 0.5).powi_scalar(2).mean()
    }
}

#[test]
fn data_parallel_gradients_are_the_whole_batch_gradients() {
    let dev: burn::tensor::Device<AB> = Default::default();
    let task = MeanColour { frames: FrameSource::new(16, 32, 5) };
    let model = task.init(&dev, 1).unwrap();
    let whole = task.loss(&model, 0, &dev);
    let whole_value: f32 = whole.clone().into_scalar();
    let whole_grads = burn::optim::GradientsParams::from_grads(whole.backward(), &model);
    // Three samples over two replicas: shards of 2 and 1, weighted 2/3 and 1/3.
    let devices = parallel::devices::<AB>(&dev, 2);
    let (value, grads) = parallel::step_grads(&task, &model, 0, &devices).unwrap();
    assert!((value - whole_value).abs() <= 1e-6 * whole_value.abs().max(1.0), "{value} vs {whole_value}");
    let grad = |g: &burn::optim::GradientsParams| -> Vec<f32> {
        let w: Tensor<Flex, 2> = g.get(model.weight.id).unwrap();
        w.into_data().to_vec().unwrap()
    };
    let (a, b) = (grad(&whole_grads), grad(&grads));
    assert!(a.iter().any(|&x| x != 0.0), "the test must have gradients to compare");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-6 * x.abs().max(1e-3), "gradient {y} vs whole batch {x}");
    }
}

#[test]
fn data_parallel_training_is_deterministic_and_resumes_exactly() {
    let dev = Default::default();
    let never = AtomicBool::new(false);
    let cfg = |steps| LoopConfig { data_parallel: 2, ..loop_config(steps) };
    let (a, b, c) = (run_dir("dp-a"), run_dir("dp-b"), run_dir("dp-c"));
    let Fitted { model: first, .. } = fit::<AB, _>(&task(), &cfg(2), &a, false, &dev, &never, |_| {}).unwrap();
    let Fitted { model: again, .. } = fit::<AB, _>(&task(), &cfg(2), &b, false, &dev, &never, |_| {}).unwrap();
    assert!(weights(&first) == weights(&again), "two data-parallel runs differ");
    assert!(weights(&first) != weights(&task_init()), "training changed the weights");
    fit::<AB, _>(&task(), &cfg(1), &c, false, &dev, &never, |_| {}).unwrap();
    let Fitted { model: resumed, .. } = fit::<AB, _>(&task(), &cfg(2), &c, true, &dev, &never, |_| {}).unwrap();
    assert!(weights(&first) == weights(&resumed), "weights differ after resume");
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The held-out set and its draws are the same whatever the batch size (it used to be one
/// training batch), so runs and parts of a run with different `--batch` report the same loss.
#[test]
fn the_held_out_loss_does_not_follow_the_batch_size() {
    use crate::train::fit::{HELD_OUT_ITEMS, Task};
    let dev = Default::default();
    let model = task_init();
    let cfg = ModelTier::Micro.config();
    let losses: Vec<f32> = [1, 3, HELD_OUT_ITEMS, 2 * HELD_OUT_ITEMS]
        .into_iter()
        .map(|batch| {
            let t = AutoencoderTask::new(cfg.autoencoder.clone(), cfg.frame_size, batch, 7);
            Task::<AB>::held_out_loss(&t, &model, &dev)
        })
        .collect();
    assert!(losses[0].is_finite() && losses[0] > 0.0);
    for l in &losses[1..] {
        assert_eq!(*l, losses[0], "{losses:?}");
    }
}

/// The held-out pass keeps no autodiff graph, and that changes nothing it measures: its
/// loss equals the same chunks' losses through the model as training holds it, and the
/// model's parameters still require gradients afterwards.
#[test]
fn the_held_out_loss_without_a_graph_is_the_tracked_models_loss() {
    use crate::train::fit::{Batch, HELD_OUT_CHUNK, HELD_OUT_DRAWS, HELD_OUT_ITEMS, Task};
    use burn::tensor::ElementConversion;
    let dev = Default::default();
    let model = task_init();
    let t = task();
    let seeds = FrameSource::held_out_seeds(HELD_OUT_ITEMS);
    let tracked: f64 = seeds
        .chunks(HELD_OUT_CHUNK)
        .enumerate()
        .map(|(i, part)| {
            let loss = Task::<AB>::batch_loss(&t, &model, part, HELD_OUT_DRAWS ^ i as u64, Batch::HeldOut, &dev);
            f64::from(loss.into_scalar().elem::<f32>()) * part.len() as f64
        })
        .sum();
    let held_out = Task::<AB>::held_out_loss(&t, &model, &dev);
    assert_eq!(held_out, (tracked / seeds.len() as f64) as f32);
    assert!(model.encoder.conv_in.weight.val().is_require_grad(), "the model itself is untouched");
}

/// The autoencoder's saved weights carry their held-out PSNR: a reconstruction of the
/// frames themselves would be infinite, an untrained one is finite and low.
#[test]
fn autoencoder_psnr_is_measured_on_the_held_out_frames() {
    use burn::module::AutodiffModule;
    let dev = Default::default();
    let model = task_init().valid();
    let frames = task().frames;
    let db = crate::train::stages::held_out_psnr(&model, &frames, 3, &dev);
    assert!(db.is_finite() && db > 0.0 && db < 20.0, "{db}");
    let x = frames.held_out::<Flex>(2, &dev);
    let same = crate::data::psnr(x.clone(), x);
    assert!(same.iter().all(|&p| p >= 100.0), "{same:?}");
}

#[test]
fn clips_drawn_on_all_cores_equal_the_clips_drawn_one_by_one() {
    let frames = FrameSource::new(16, 32, 3);
    let device = Default::default();
    let requests = [(11, 3, 2.5), (12, 3, 10.0), (13, 3, 40.0), (14, 3, 2.5), (15, 3, 10.0)];
    let (all, conditions) = frames.clips::<Flex>(&requests, &device);
    let one_by_one: Vec<_> = requests.iter().map(|&(s, t, fps)| frames.clip::<Flex>(s, t, fps, &device)).collect();
    let expected = Tensor::cat(one_by_one.iter().map(|c| c.0.clone()).collect(), 0);
    assert_eq!(all.dims(), [15, 3, 16, 32]);
    assert_eq!(all.into_data(), expected.into_data());
    assert_eq!(conditions, one_by_one.iter().map(|c| c.1).collect::<Vec<_>>());
    let seeds = [21, 22, 23];
    let (batch, _, boxes) = frames.labelled_frames::<Flex>(&seeds, &device);
    for (k, &s) in seeds.iter().enumerate() {
        let (frame, _, b) = frames.labelled_frame::<Flex>(s, &device);
        assert_eq!(batch.clone().narrow(0, k, 1).squeeze_dim::<3>(0).into_data(), frame.into_data());
        assert_eq!(boxes[k], b);
    }
}

/// `seeded_init` is a pure function of its seed: burn's own RNG, which any thread may have
/// advanced, leaves no trace in any model that trains (a one-element random tensor would:
/// it looks constant, so it is kept as burn drew it — the discriminator's logit bias was).
#[test]
fn seeded_init_does_not_depend_on_burns_rng() {
    fn twice<M: Module<Flex>>(make: impl Fn() -> M) {
        let dev = Default::default();
        let draws: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|burn_seed| {
                Flex::seed(&dev, burn_seed);
                weights::<Flex, _>(&init::seeded_init(make(), 9))
            })
            .collect();
        let differ = draws[0].iter().zip(&draws[1]).position(|(a, b)| a != b);
        assert_eq!(differ, None, "parameter #{differ:?} of {} follows burn's RNG", std::any::type_name::<M>());
    }
    let dev = Default::default();
    let cfg = ModelTier::Micro.config();
    twice(|| cfg.autoencoder.init::<Flex>(&dev));
    twice(|| cfg.autoencoder.clone().with_temporal_decoder(true).init::<Flex>(&dev));
    twice(|| cfg.discriminator.init::<Flex>(&dev));
    twice(|| cfg.image_ldm.init::<Flex>(&dev));
    twice(|| cfg.video_ldm.init::<Flex>(&dev));
    twice(|| cfg.interpolator.init::<Flex>(&dev));
    twice(|| cfg.upsampler.init::<Flex>(&dev));
    twice(|| crate::eval::detector::DetectorConfig::micro().init::<Flex>(&dev));
    twice(|| crate::eval::classifier::ClassifierConfig::micro().init::<Flex>(&dev));
    twice(|| crate::eval::clip_encoder::ClipEncoderConfig::micro().init::<Flex>(&dev));
}
